package engine

import (
	"crypto/sha256"
	"encoding/hex"

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
	bySum   map[upstream.Fingerprint]*sumEntry
	byID    map[string]*sumEntry
	scan    uint32          // the current scan's stamp
	stamped int             // entries stamped by the current scan
	other   map[string]bool // listed in the current scan, not in byID then
	dups    map[string]bool // unchanged accounts listed twice in the current scan
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
	// ordScan is orderScan.
	order, next []*sumEntry
	orderScan   uint32
	pos         int
	recording   bool
	// digests: the digests of the listing bytes the stored records were
	// processed from (state.Entry.Listing), read at start, until the first
	// complete listing: what a process that has no fingerprints yet
	// recognises unchanged accounts by, without decoding them.
	digests map[digest]string
}

type sumEntry struct {
	id      string
	sum     upstream.Fingerprint
	size    int32 // of the listing bytes; 0 once forgotten
	scan    uint32
	seen    uint32 // the walk of the watch list (covered.gen) that last found it
	ord     int32  // its place in the order of scan ordScan
	ordScan uint32
}

func newMemory() memory {
	return memory{bySum: map[upstream.Fingerprint]*sumEntry{}, byID: map[string]*sumEntry{}, other: map[string]bool{}, dups: map[string]bool{}}
}

// Predict guesses the next account of a full scan: the one after the last
// recognised in the last full scan's order.
func (m *memory) Predict() (int, upstream.Fingerprint, bool) {
	e := m.predicted()
	if !m.recording || e == nil {
		return 0, upstream.Fingerprint{}, false
	}
	return int(e.size), e.sum, true
}

// predicted is the live entry the last full scan listed at this point, if any.
func (m *memory) predicted() *sumEntry {
	if m.pos < len(m.order) && m.order[m.pos].size > 0 {
		return m.order[m.pos]
	}
	return nil
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
		m.digests = map[digest]string{}
	}
	m.digests[digest(full[:16])] = id
}

// Known recognises an account whose listing bytes are unchanged. It stamps
// the account as listed by this scan (or notes a second listing).
func (m *memory) Known(sum upstream.Fingerprint, item []byte) (string, bool) {
	e := m.predicted()
	if e != nil && e.sum == sum {
		m.pos++ // a live entry: the one bySum holds for sum
	} else {
		var ok bool
		if e, ok = m.bySum[sum]; !ok {
			m.pos++ // most likely the predicted account, changed: predict the one after it
			if id, ok := m.recalled(item); ok && m.byID[id] == nil {
				m.remember(id, sum, len(item))
				return id, true
			}
			return "", false
		}
		if e.ordScan == m.orderScan && e.scan != m.scan {
			m.pos = int(e.ord) + 1 // in step again
		}
	}
	if e.scan == m.scan {
		m.dups[e.id] = true
	}
	m.stamp(e)
	return e.id, true
}

// stamp marks e as listed by this scan, recording its place in a full
// scan's order the first time.
func (m *memory) stamp(e *sumEntry) {
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
		m.next = append(m.next, e)
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
	id, ok := m.digests[d]
	if ok {
		delete(m.digests, d)
	}
	return id, ok
}

// startScan begins a scan's stamps; a full scan predicts and records order.
func (m *memory) startScan(full bool) {
	m.scan++
	m.stamped, m.stampedWatched = 0, 0
	if len(m.other) > 4096 {
		m.other = map[string]bool{} // a discovery's million: not kept for good
	}
	clear(m.other)
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
		m.digests = nil // what it did not recognise has changed since
	}
	m.recording = false
}

// again reports whether an unchanged account was listed twice by this scan.
func (m *memory) again(id string) bool {
	if len(m.dups) == 0 || !m.dups[id] {
		return false
	}
	delete(m.dups, id)
	return true
}

// listed stamps an account the scan decodes; false if the scan listed it
// already.
func (m *memory) listed(id string) bool {
	if e, ok := m.byID[id]; ok {
		if e.scan == m.scan {
			return false
		}
		m.stamp(e)
		return true
	}
	if m.other[id] {
		return false
	}
	m.other[id] = true
	return true
}

// remember keeps the listing bytes (their sum and size) an account was last
// processed with.
func (m *memory) remember(id string, sum upstream.Fingerprint, size int) {
	e, ok := m.byID[id]
	if ok {
		delete(m.bySum, e.sum)
	} else {
		e = &sumEntry{id: id}
		m.byID[id] = e
	}
	e.sum, e.size = sum, int32(size)
	m.bySum[sum] = e
	m.stamp(e)
}

func (m *memory) forget(id string) {
	if e, ok := m.byID[id]; ok {
		if e.scan == m.scan {
			m.stamped--
		}
		m.drop(e)
	}
}

func (m *memory) drop(e *sumEntry) {
	delete(m.bySum, e.sum)
	delete(m.byID, e.id)
	e.size = 0 // order may still hold it
	m.forgets++
}

// pruneSums forgets the sums of accounts a complete scan did not list; when
// it stamped every one, there is nothing to look for.
func (m *memory) pruneSums() {
	if m.stamped == len(m.byID) {
		return
	}
	for _, e := range m.byID {
		if e.scan != m.scan {
			m.drop(e)
		}
	}
}
