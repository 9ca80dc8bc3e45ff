package egress_test

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/accountwatch/accountwatch/pkg/egress"
)

// FuzzParseURL: whatever the input, the guard does not panic, and a URL it
// accepts is http(s), has a host, no credentials, no raw space or control
// character, and no host that is (or spells) a non-global address or a
// site-local name. Seeds: testdata/fuzz/FuzzParseURL.
func FuzzParseURL(f *testing.F) {
	g, _ := egress.New(nil, false)
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := g.ParseURL(raw)
		if err != nil {
			return
		}
		if u.Scheme != "http" && u.Scheme != "https" || u.User != nil || u.Hostname() == "" {
			t.Fatalf("%q accepted: scheme %q, user %v, host %q", raw, u.Scheme, u.User, u.Hostname())
		}
		if strings.ContainsFunc(raw, func(r rune) bool { return r <= ' ' || r >= 0x7f }) {
			t.Fatalf("%q accepted with a space, control or non-ASCII character", raw)
		}
		host := strings.ToLower(strings.TrimSuffix(u.Hostname(), "."))
		if ip, err := netip.ParseAddr(host); err == nil {
			if ip.Zone() != "" || egress.Classify(ip) != "" {
				t.Fatalf("%q accepted: %s is %s", raw, ip, egress.Classify(ip))
			}
			return
		}
		labels := strings.Split(host, ".")
		if l := labels[len(labels)-1]; strings.Trim(l, "0123456789") == "" || strings.HasPrefix(l, "0x") && strings.Trim(l[2:], "0123456789abcdef") == "" {
			t.Fatalf("%q accepted: the host ends in a number", raw)
		}
		if host == "localhost" || strings.HasSuffix(host, ".localhost") || strings.HasSuffix(host, ".internal") || strings.HasSuffix(host, ".local") {
			t.Fatalf("%q accepted: a site-local name", raw)
		}
	})
}
