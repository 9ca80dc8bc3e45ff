package sink

import (
	"slices"
	"testing"
)

// TestFilters: the stream's own subject asks for no filter (the server then
// reads in order without matching each subject); other filters pass as given.
func TestFilters(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []string
	}{
		{"aw.events.>", nil},
		{" aw.events.> ", nil},
		{"aw.events.activeplatform.>", []string{"aw.events.activeplatform.>"}},
		{"aw.events.a.>, aw.events.b.>", []string{"aw.events.a.>", "aw.events.b.>"}},
		{"aw.events.a.>,aw.events.>", nil},
	} {
		if got := (Settings{Filter: c.in}).filters(); !slices.Equal(got, c.want) {
			t.Errorf("filters(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
