package app

import "testing"

// TestSameHost: an endpoint's fast path moves lanes only when its URL names
// another host or port, not on a new path or query.
func TestSameHost(t *testing.T) {
	cases := []struct {
		name, a, b string
		want       bool
	}{
		{"same URL", "https://h.example/a", "https://h.example/a", true},
		{"another path and query", "https://h.example/a", "https://h.example/b?x=1", true},
		{"another host", "https://h.example/a", "https://i.example/a", false},
		{"another port", "https://h.example/a", "https://h.example:8443/a", false},
		{"unparsable", "https://h.example/a", "http://[::1", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := sameHost(c.a, c.b); got != c.want {
				t.Errorf("sameHost(%q, %q) = %v, want %v", c.a, c.b, got, c.want)
			}
		})
	}
}
