package flatmap_test

import (
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"github.com/accountwatch/accountwatch/pkg/flatmap"
)

// TestTableMatchesMap: random puts, replacements and deletes (enough to
// compact the keys more than once) leave a Table holding what a Go map
// holds, with distinct hashes and with keys sharing a few.
func TestTableMatchesMap(t *testing.T) {
	for _, name := range []string{"distinct hashes", "colliding hashes"} {
		t.Run(name, func(t *testing.T) {
			if name == "colliding hashes" {
				defer flatmap.Collide()()
			}
			var tab flatmap.Table[int]
			want := map[string]int{}
			rng := rand.New(rand.NewPCG(1, 2))
			keys := 3000
			if name == "colliding hashes" {
				keys = 300 // chains of a hundred
			}
			for op := range 200_000 {
				k := strings.Repeat("k", rng.IntN(4)) + strconv.Itoa(rng.IntN(keys)) + strings.Repeat("-", 100) // long keys: compaction runs
				switch rng.IntN(3) {
				case 0, 1:
					_, had := want[k]
					if added := tab.Put(k, op); added == had {
						t.Fatalf("Put(%s) added %v, had %v", k, added, had)
					}
					want[k] = op
				case 2:
					_, had := want[k]
					if tab.Delete(k) != had {
						t.Fatalf("Delete(%s) != %v", k, had)
					}
					delete(want, k)
				}
				w, had := want[k]
				if v, ok := tab.Get(k); v != w || ok != had {
					t.Fatalf("Get(%s) = %d, %v; want %d, %v", k, v, ok, w, had)
				}
			}
			if tab.Len() != len(want) {
				t.Fatalf("Len %d, want %d", tab.Len(), len(want))
			}
			seen := map[string]int{}
			tab.Range(func(k string, v int) bool {
				seen[strings.Clone(k)] = v
				return true
			})
			if len(seen) != len(want) {
				t.Fatalf("Range saw %d keys, want %d", len(seen), len(want))
			}
			for k, v := range want {
				if got, ok := tab.Get(k); !ok || got != v || seen[k] != v {
					t.Fatalf("%s: Get %d %v, Range %d; want %d", k, got, ok, seen[k], v)
				}
			}
		})
	}
}

// TestTableZero: the zero Table answers as empty.
func TestTableZero(t *testing.T) {
	var tab flatmap.Table[struct{}]
	if _, ok := tab.Get("x"); ok || tab.Delete("x") || tab.Len() != 0 {
		t.Error("the zero Table is not empty")
	}
	tab.Range(func(string, struct{}) bool { t.Error("Range of an empty table called fn"); return true })
}
