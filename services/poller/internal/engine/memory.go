package engine

import (
	"crypto/sha256"
	"encoding/hex"
	"hash/maphash"

	"github.com/accountwatch/accountwatch/pkg/flatmap"
	"github.com/accountwatch/accountwatch/pkg/upstream"
)

// memory is what a runner remembers of the listing bytes it processed: the
// fingerprint of each account's raw listing JSON when it was last processed
// successfully (bytes seen again need no decoding and no diff), each stamped
// with the last scan that listed it, which is how a scan knows what it listed
// without a 100,000-entry set of its own. It also keeps the last full scan's
// order, from which a scan predicts each next account (source.Memory): a
// steady-state scan lists the same accounts in the same order, so most
// lookups are a comparison with the next entry instead of a hash-map probe.
type memory struct {
	// The entries live in one slice and reach each other by index, and the
	// ids' bytes in another: a million accounts are a handful of objects
	// without pointers, which the garbage collector does not walk (as
	// pointers, they made a third of the poller's CPU at a million).
	ents  []sumEntry // ents[0] is no entry
	free  []int32
	ids   []byte           // the entries' ids, back to back
	idsIn int              // bytes of ids still used (the rest: dropped entries')
	byID  map[uint64]int32 // idHash → the first entry of that hash (chained by next)
	bySum map[upstream.Fingerprint]int32
	live  int // entries in use

	scan    uint32                  // the current scan's stamp
	stamped int                     // entries stamped by the current scan
	other   flatmap.Table[struct{}] // listed in the current scan, not in byID then
	dups    map[int32]bool          // unchanged accounts listed twice in the current scan
	// covered: when the last walk of the watch list (at version) found
	// every entry in byID, it marked them with gen (sumEntry.seen). While the
	// list keeps that version and byID loses nothing (forgets counts its
	// deletions), a scan that stamps as many marked entries as the list holds
	// (stampedWatched) listed every watched account.
	covered struct {
		ok      bool
		version uint64
		forgets uint64
		gen     uint32
	}
	forgets        uint64
	stampedWatched int
	// order: the accounts of the last complete full scan in listing order
	// (scan orderScan), which a full scan predicts from (pos) while it
	// records its own (next). sumEntry.ord indexes order while the entry's
	// ordScan is orderScan. An entry dropped since, its slot perhaps taken
	// by another account, is a wrong guess and nothing worse: a guess is
	// only ever taken on equal fingerprints.
	order, next []int32
	orderScan   uint32
	pos         int
	recording   bool
	// digests: the digests of the listing bytes the stored records were
	// processed from (state.Entry.Listing), read at start, until the first
	// complete listing: what a process that has no fingerprints yet
	// recognises unchanged accounts by, without decoding them.
	// The ids are in digestIDs, each digests value its offset<<16 | length
	// there: a million strings would be a million objects for the
	// collector, for the whole first scan.
	digests   map[digest]uint64
	digestIDs []byte
}

type sumEntry struct {
	sum     upstream.Fingerprint
	size    int32 // of the listing bytes; 0 once dropped
	scan    uint32
	seen    uint32 // the walk of the watch list (covered.gen) that last found it
	ord     int32  // its place in the order of scan ordScan
	ordScan uint32
	idOff   uint32 // the id is ids[idOff:idOff+idLen]
	idLen   uint32
	chain   int32 // the next entry whose id has the same idHash
}

var idSeed = maphash.MakeSeed()

// idHash keys byID (a variable: tests make ids collide).
var idHash = func(id string) uint64 { return maphash.String(idSeed, id) }

func newMemory() memory {
	return memory{ents: make([]sumEntry, 1), bySum: map[upstream.Fingerprint]int32{}, byID: map[uint64]int32{}, dups: map[int32]bool{}}
}

// idOf is entry i's id.
func (m *memory) idOf(i int32) string {
	e := &m.ents[i]
	return string(m.ids[e.idOff : e.idOff+e.idLen])
}

// lookup finds the entry of an id (0: none).
func (m *memory) lookup(id string) int32 {
	for i := m.byID[idHash(id)]; i != 0; i = m.ents[i].chain {
		e := &m.ents[i]
		if string(m.ids[e.idOff:e.idOff+e.idLen]) == id {
			return i
		}
	}
	return 0
}

// add makes an entry for id.
func (m *memory) add(id string) int32 {
	var i int32
	if n := len(m.free); n > 0 {
		i, m.free = m.free[n-1], m.free[:n-1]
	} else {
		m.ents = append(m.ents, sumEntry{})
		i = int32(len(m.ents) - 1)
	}
	if len(m.ids) > 1<<20 && m.idsIn < len(m.ids)/2 {
		m.compactIDs()
	}
	h := idHash(id)
	m.ents[i] = sumEntry{idOff: uint32(len(m.ids)), idLen: uint32(len(id)), chain: m.byID[h]}
	m.ids = append(m.ids, id...)
	m.idsIn += len(id)
	m.byID[h] = i
	m.live++
	return i
}

// compactIDs copies the ids still used into a new slice.
func (m *memory) compactIDs() {
	ids := make([]byte, 0, m.idsIn+m.idsIn/4)
	for i := range m.ents[1:] {
		e := &m.ents[i+1]
		if e.idLen == 0 { // free
			continue
		}
		off := len(ids)
		ids = append(ids, m.ids[e.idOff:e.idOff+e.idLen]...)
		e.idOff = uint32(off)
	}
	m.ids = ids
}

// remove frees entry i.
func (m *memory) remove(i int32) {
	e := &m.ents[i]
	h := idHash(string(m.ids[e.idOff : e.idOff+e.idLen]))
	if m.byID[h] == i {
		if e.chain == 0 {
			delete(m.byID, h)
		} else {
			m.byID[h] = e.chain
		}
	} else {
		for j := m.byID[h]; j != 0; j = m.ents[j].chain {
			if m.ents[j].chain == i {
				m.ents[j].chain = e.chain
				break
			}
		}
	}
	m.idsIn -= int(e.idLen)
	*e = sumEntry{}
	m.free = append(m.free, i)
	m.live--
}

// Predict guesses the next account of a full scan: the one after the last
// recognised in the last full scan's order.
func (m *memory) Predict() (int, upstream.Fingerprint, bool) {
	i := m.predicted()
	if !m.recording || i == 0 {
		return 0, upstream.Fingerprint{}, false
	}
	return int(m.ents[i].size), m.ents[i].sum, true
}

// predicted is the live entry the last full scan listed at this point, if any.
func (m *memory) predicted() int32 {
	if m.pos < len(m.order) && m.ents[m.order[m.pos]].size > 0 {
		return m.order[m.pos]
	}
	return 0
}

// digest is the first half of a SHA-256: collisions of 128 bits are as
// far out of reach as a full digest's, in half the memory a million take.
type digest [16]byte

// recall notes that the account's stored record was processed from
// listing bytes of this SHA-256 (hex).
func (m *memory) recall(sum, id string) {
	var full [sha256.Size]byte
	if hex.DecodedLen(len(sum)) != len(full) {
		return
	}
	if _, err := hex.Decode(full[:], []byte(sum)); err != nil {
		return
	}
	if m.digests == nil {
		m.digests = map[digest]uint64{}
	}
	if len(id) >= 1<<16 {
		return
	}
	m.digests[digest(full[:16])] = uint64(len(m.digestIDs))<<16 | uint64(len(id))
	m.digestIDs = append(m.digestIDs, id...)
}

// Known recognises an account whose listing bytes are unchanged. It stamps
// the account as listed by this scan (or notes a second listing).
func (m *memory) Known(sum upstream.Fingerprint, item []byte) (string, bool) {
	i := m.predicted()
	if i != 0 && m.ents[i].sum == sum {
		m.pos++ // a live entry: the one bySum holds for sum
	} else {
		var ok bool
		if i, ok = m.bySum[sum]; !ok {
			m.pos++ // most likely the predicted account, changed: predict the one after it
			if id, ok := m.recalled(item); ok && m.lookup(id) == 0 {
				m.remember(id, sum, len(item))
				return id, true
			}
			return "", false
		}
		if e := &m.ents[i]; e.ordScan == m.orderScan && e.scan != m.scan {
			m.pos = int(e.ord) + 1 // in step again
		}
	}
	if m.ents[i].scan == m.scan {
		m.dups[i] = true
	}
	m.stamp(i)
	return m.idOf(i), true
}

// stamp marks entry i as listed by this scan, recording its place in a full
// scan's order the first time.
func (m *memory) stamp(i int32) {
	e := &m.ents[i]
	if e.scan == m.scan {
		return
	}
	e.scan = m.scan
	m.stamped++
	if e.seen == m.covered.gen {
		m.stampedWatched++
	}
	if m.recording {
		e.ord, e.ordScan = int32(len(m.next)), m.scan
		m.next = append(m.next, i)
	}
}

// recalled looks bytes no fingerprint knows up among the stored records'
// digests.
func (m *memory) recalled(item []byte) (string, bool) {
	if len(m.digests) == 0 {
		return "", false
	}
	full := sha256.Sum256(item)
	d := digest(full[:16])
	at, ok := m.digests[d]
	if !ok {
		return "", false
	}
	delete(m.digests, d)
	off := at >> 16
	return string(m.digestIDs[off : off+at&0xffff]), true
}

// startScan begins a scan's stamps; a full scan predicts and records order.
func (m *memory) startScan(full bool) {
	m.scan++
	m.stamped, m.stampedWatched = 0, 0
	m.other = flatmap.Table[struct{}]{} // a discovery's million: not kept for good
	clear(m.dups)
	m.recording, m.pos, m.next = full, 0, m.next[:0]
}

// endListing ends the listing's part of a scan: the order a complete full
// listing recorded is what the next one predicts from.
func (m *memory) endListing(complete bool) {
	if m.recording && complete {
		m.order, m.next = m.next, m.order[:0]
		m.orderScan = m.scan
	}
	if complete {
		m.digests, m.digestIDs = nil, nil // what it did not recognise has changed since
	}
	m.recording = false
}

// again reports whether an unchanged account was listed twice by this scan.
func (m *memory) again(id string) bool {
	if len(m.dups) == 0 {
		return false
	}
	i := m.lookup(id)
	if !m.dups[i] {
		return false
	}
	delete(m.dups, i)
	return true
}

// listed stamps an account the scan decodes; false if the scan listed it
// already.
func (m *memory) listed(id string) bool {
	if i := m.lookup(id); i != 0 {
		if m.ents[i].scan == m.scan {
			return false
		}
		m.stamp(i)
		return true
	}
	if !m.other.Put(id, struct{}{}) {
		return false
	}
	return true
}

// remember keeps the listing bytes (their sum and size) an account was last
// processed with.
func (m *memory) remember(id string, sum upstream.Fingerprint, size int) {
	i := m.lookup(id)
	if i != 0 {
		delete(m.bySum, m.ents[i].sum)
	} else {
		i = m.add(id)
	}
	m.ents[i].sum, m.ents[i].size = sum, int32(size)
	m.bySum[sum] = i
	m.stamp(i)
}

func (m *memory) forget(id string) {
	if i := m.lookup(id); i != 0 {
		if m.ents[i].scan == m.scan {
			m.stamped--
		}
		m.drop(i)
	}
}

func (m *memory) drop(i int32) {
	if m.bySum[m.ents[i].sum] == i {
		delete(m.bySum, m.ents[i].sum)
	}
	m.remove(i)
	m.forgets++
}

// pruneSums forgets the sums of accounts a complete scan did not list; when
// it stamped every one, there is nothing to look for.
func (m *memory) pruneSums() {
	if m.stamped == m.live {
		return
	}
	for i := range m.ents[1:] {
		if e := &m.ents[i+1]; e.size > 0 && e.scan != m.scan {
			m.drop(int32(i + 1))
		}
	}
}

// seenBy marks the entry of an id found by the watch list's walk gen, and
// reports whether there is one and whether this scan listed it.
func (m *memory) seenBy(id string, gen uint32) (known, listed bool) {
	i := m.lookup(id)
	if i == 0 {
		return false, false
	}
	m.ents[i].seen = gen
	return true, m.ents[i].scan == m.scan
}
