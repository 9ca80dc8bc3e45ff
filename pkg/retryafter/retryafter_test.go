package retryafter_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/accountwatch/accountwatch/pkg/retryafter"
)

// now is one second before RFC 9110's example date.
var now = time.Date(1999, 12, 31, 23, 59, 58, 0, time.UTC)

func TestParse(t *testing.T) {
	cases := []struct {
		name, v string
		want    time.Duration
		ok      bool
	}{
		// RFC 9110 section 10.2.3's own examples.
		{"rfc example date", "Fri, 31 Dec 1999 23:59:59 GMT", time.Second, true},
		{"rfc example seconds", "120", 2 * time.Minute, true},
		// The obsolete date formats a recipient must accept (section 5.6.7).
		{"rfc 850 date", "Friday, 31-Dec-99 23:59:59 GMT", time.Second, true},
		{"asctime date", "Fri Dec 31 23:59:59 1999", time.Second, true},
		{"zero", "0", 0, true},
		{"padded", "  5 ", 5 * time.Second, true},
		{"past date", "Thu, 30 Dec 1999 00:00:00 GMT", 0, true},
		{"far date", "Fri, 31 Dec 2999 23:59:59 GMT", retryafter.Max, true},
		{"huge number", "99999999999999999999999", retryafter.Max, true},
		{"large number", "9999999999", retryafter.Max, true},
		{"empty", "", 0, false},
		{"negative", "-1", 0, false},
		{"fraction", "1.5", 0, false},
		{"number with unit", "10s", 0, false},
		{"garbage", "soon", 0, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d, ok := retryafter.Parse(c.v, now)
			if d != c.want || ok != c.ok {
				t.Errorf("Parse(%q) = %s, %v; want %s, %v", c.v, d, ok, c.want, c.ok)
			}
		})
	}
	if d, ok := retryafter.Header(http.Header{"Retry-After": {"3"}}, now); d != 3*time.Second || !ok {
		t.Errorf("Header: %s %v", d, ok)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"120", "Fri, 31 Dec 1999 23:59:59 GMT", "Friday, 31-Dec-99 23:59:59 GMT", "Fri Dec 31 23:59:59 1999", "0", "-1", "1e9", "18446744073709551616", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		d, ok := retryafter.Parse(v, now)
		if d < 0 || d > retryafter.Max {
			t.Errorf("Parse(%q) = %s, out of [0, Max]", v, d)
		}
		if !ok && d != 0 {
			t.Errorf("Parse(%q) = %s without ok", v, d)
		}
	})
}
