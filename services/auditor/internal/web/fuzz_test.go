package web

import (
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/accountwatch/accountwatch/pkg/audit"
)

// FuzzSelection feeds any query string to the API's decoding of a replay,
// export or re-drive selection: it never panics, a refusal is an
// audit.ErrInvalid naming a parameter, and what it accepts is within every
// bound and valid by audit.Selection's own rules. Seeds:
// testdata/fuzz/FuzzSelection.
func FuzzSelection(f *testing.F) {
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		sel, err := selection(q)
		if err != nil {
			if !errors.Is(err, audit.ErrInvalid) {
				t.Fatalf("%q: %v is not a client error", raw, err)
			}
			return
		}
		if sel.Limit < 0 || sel.Limit > maxLimit || len(sel.Types) > maxTypes || len(sel.Account) > maxQuery || len(sel.Instance) > maxQuery {
			t.Fatalf("%q: accepted out of bounds: %+v", raw, sel)
		}
		if err := sel.Validate(); err != nil {
			t.Fatalf("%q: accepted, but %v", raw, err)
		}
		for _, ty := range sel.Types {
			if !strings.HasPrefix(string(ty), "com.accountwatch.") {
				t.Fatalf("type %q", ty)
			}
		}
		if d := q.Get("dry_run"); d != "" && d != "true" && d != "false" {
			t.Fatalf("dry_run %q accepted", d)
		}
	})
}
