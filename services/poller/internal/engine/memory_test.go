package engine

import (
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
		sum := fp(id + string(rune('0'+version[id])))
		if got, ok := m.Known(sum); ok {
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
