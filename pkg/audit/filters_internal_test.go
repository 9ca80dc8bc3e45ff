package audit

import (
	"slices"
	"testing"

	"github.com/accountwatch/accountwatch/pkg/event"
)

// TestFilters: a whole-stream selection asks the server for no filter (a
// match-all one made it match every message's subject, a third of the
// replay rate); a narrower one gets subject filters.
func TestFilters(t *testing.T) {
	for _, c := range []struct {
		sel  Selection
		want []string
	}{
		{Selection{}, nil},
		{Selection{MinSeverity: event.SeverityCritical, Limit: 3}, nil},
		{Selection{Account: "1000123"}, []string{event.FilterSubject("", "", "", "1000123")}},
		{Selection{Provider: event.ProviderActivePlatform}, []string{event.FilterSubject(event.ProviderActivePlatform, "", "", "")}},
	} {
		if got := c.sel.filters(); !slices.Equal(got, c.want) {
			t.Errorf("%+v: filters %q, want %q", c.sel, got, c.want)
		}
	}
}
