package engine

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
	"testing"

	"github.com/accountwatch/accountwatch/pkg/upstream"
)

func fp(s string) upstream.Fingerprint { return upstream.FingerprintOf([]byte(s)) }

// scanOf runs one scan over listing (ids; a "*" suffix marks an account whose
// bytes changed since the last scan) the way a cycle drives memory, and
// returns, per listed account, what Predict guessed before it (an id, or ""
// for no guess).
func scanOf(m *memory, full, complete bool, listing []string, version map[string]int) []string {
	m.startScan(full)
	var guesses []string
	for _, l := range listing {
		id, changed := l, false
		if l[len(l)-1] == '*' {
			id, changed = l[:len(l)-1], true
		}
		if _, ok := version[id]; !ok {
			version[id] = 0
		}
		guess := ""
		if size, sum, ok := m.Predict(); ok {
			for other, v := range version {
				if sum == fp(other+string(rune('0'+v))) && size == len(other)+1 {
					guess = other
				}
			}
		}
		guesses = append(guesses, guess)
		if changed {
			version[id]++
		}
		item := []byte(id + string(rune('0'+version[id])))
		sum := upstream.FingerprintOf(item)
		if got, ok := m.Known(sum, item); ok {
			if changed || got != id {
				panic("recognised " + got + " as " + l)
			}
			continue
		}
		m.listed(id)
		m.remember(id, sum, len(id)+1)
	}
	m.endListing(complete)
	return guesses
}

func TestMemoryPredictsFromTheLastFullScan(t *testing.T) {
	m := newMemory()
	version := map[string]int{}
	steps := []struct {
		name           string
		full, complete bool
		listing        []string
		want           []string
	}{
		{"first scan: nothing to predict from", true, true, []string{"a", "b", "c", "d"}, []string{"", "", "", ""}},
		{"steady state: every guess right", true, true, []string{"a", "b", "c", "d"}, []string{"a", "b", "c", "d"}},
		{"a changed account, a new one, one gone: back in step after each", true, true, []string{"a", "b*", "x", "c"}, []string{"a", "b", "c", "d"}},
		{"the order recorded last time", true, true, []string{"a", "b", "x", "c"}, []string{"a", "b", "x", "c"}},
		{"an incremental scan guesses nothing", false, true, []string{"b*"}, []string{""}},
		{"and leaves the order to the next full scan", true, true, []string{"a", "b", "x", "c"}, []string{"a", "b", "x", "c"}},
		{"an incomplete full scan", true, false, []string{"c", "a"}, []string{"a", ""}},
		{"leaves the order as it was", true, true, []string{"a", "b", "x", "c"}, []string{"a", "b", "x", "c"}},
	}
	for _, s := range steps {
		got := scanOf(&m, s.full, s.complete, s.listing, version)
		if len(got) != len(s.want) {
			t.Fatalf("%s: %q", s.name, got)
		}
		for i := range got {
			if got[i] != s.want[i] {
				t.Fatalf("%s: guessed %q, want %q", s.name, got, s.want)
			}
		}
	}
	m.forget("x")
	if got := scanOf(&m, true, true, []string{"a", "b", "c"}, version); got[2] != "" {
		t.Fatalf("a forgotten account is still predicted: %q", got)
	}
}

// TestMemoryRecallsStoredDigests: a process without fingerprints recognises
// the accounts whose listing bytes are those their records were processed
// from, by digest, and no other; a complete listing ends the recall.
func TestMemoryRecallsStoredDigests(t *testing.T) {
	m := newMemory()
	digest := func(s string) string { d := sha256.Sum256([]byte(s)); return hex.EncodeToString(d[:]) }
	m.recall(digest("a0"), "a")
	m.recall(digest("b0"), "b")
	m.recall("not a digest", "c")
	m.startScan(true)
	for _, c := range []struct {
		item, want string
	}{{"a0", "a"}, {"b1", ""}, {"c0", ""}} {
		id, ok := m.Known(upstream.FingerprintOf([]byte(c.item)), []byte(c.item))
		if id != c.want || ok != (c.want != "") {
			t.Errorf("%s: recognised as %q %v, want %q", c.item, id, ok, c.want)
		}
	}
	if i := m.lookup("a"); i == 0 || m.ents[i].scan != m.scan || m.ents[i].sum != fp("a0") {
		t.Fatalf("a recalled account is not remembered as listed: %d", i)
	}
	m.endListing(false)
	if len(m.digests) == 0 {
		t.Fatal("an incomplete listing ended the recall")
	}
	m.startScan(true)
	m.endListing(true)
	if m.digests != nil {
		t.Fatal("a complete listing kept the stored digests")
	}
}

// TestMemoryEntries: entries keep their ids and sums through drops, slots
// taken again and compaction of the ids, with ids apart and with every id
// on one hash chain.
func TestMemoryEntries(t *testing.T) {
	for _, collide := range []bool{false, true} {
		if collide {
			defer func(h func(string) uint64) { idHash = h }(idHash)
			idHash = func(id string) uint64 { return uint64(len(id) % 2) }
		}
		m := newMemory()
		want := map[string]upstream.Fingerprint{}
		m.startScan(true)
		for round := range 6 {
			for i := range 1500 {
				id := strings.Repeat("x", i%7) + strconv.Itoa(i) + "-" + strconv.Itoa(round)
				if i%3 == round%3 {
					sum := fp(id + "sum")
					m.remember(id, sum, len(id)+1)
					want[id] = sum
				}
			}
			for id := range want {
				if (len(id)+round)%3 == 0 {
					m.forget(id)
					delete(want, id)
					if m.lookup(id) != 0 {
						t.Fatalf("%s: found once forgotten", id)
					}
				}
			}
		}
		check := func(when string) {
			if m.live != len(want) {
				t.Fatalf("collide %v, %s: %d live entries, want %d", collide, when, m.live, len(want))
			}
			for id, sum := range want {
				i := m.lookup(id)
				if i == 0 || m.idOf(i) != id || m.ents[i].sum != sum || m.bySum[sum] != i {
					t.Fatalf("collide %v, %s: %s: entry %d", collide, when, id, i)
				}
			}
		}
		check("before compaction")
		m.compactIDs()
		check("after compaction")
	}
}
