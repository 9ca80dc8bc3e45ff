// Package egress guards outbound connections to destinations a user can set
// (webhook URLs, the Slack API base, an SMTP relay) against server-side
// request forgery. Only globally reachable addresses pass, with the IANA IPv4
// and IPv6 special-purpose address registries as the reference; every
// spelling of an address is judged as the address it is (IPv4-mapped,
// NAT64, a zone, a trailing dot, inet_aton's decimal, octal and hex forms).
// Every connection is checked again at dial time, on the address DNS
// actually returned, so a name that resolves (or re-resolves) to an internal
// address fails as surely as the address itself.
package egress

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ErrRefused is returned for a destination the guard will not connect to.
var ErrRefused = errors.New("destination refused")

// Guard decides where a service may connect.
type Guard struct {
	allow     []netip.Prefix
	httpsOnly bool
	resolver  *net.Resolver
}

// Option configures a Guard.
type Option func(*Guard)

// WithResolver resolves names with r (tests point it at their own DNS server).
func WithResolver(r *net.Resolver) Option { return func(g *Guard) { g.resolver = r } }

// New builds a guard; allow lists CIDRs that may be reached even though they
// are not global (tests, private deployments). httpsOnly refuses http URLs.
func New(allow []string, httpsOnly bool, opts ...Option) (*Guard, error) {
	g := &Guard{httpsOnly: httpsOnly}
	for _, a := range allow {
		if a = strings.TrimSpace(a); a == "" {
			continue
		}
		p, err := netip.ParsePrefix(a)
		if err != nil {
			return nil, fmt.Errorf("allow-list: %q: %v", a, err)
		}
		if p.Addr().Zone() != "" {
			return nil, fmt.Errorf("allow-list: %q: a zone has no place in a CIDR", a)
		}
		g.allow = append(g.allow, p.Masked())
	}
	for _, o := range opts {
		o(g)
	}
	return g, nil
}

// Classify says why ip is not globally reachable ("" when it is): the name
// of its block in the IANA registry, for an embedding form with the IPv4
// address it carries. A zone is ignored (only non-global addresses take one).
func Classify(ip netip.Addr) string {
	ip = ip.WithZone("")
	switch {
	case !ip.IsValid():
		return "not an IP address"
	case ip.Is4():
		if e, ok := lookup(special4, ip); ok && !e.global {
			return e.name
		}
		return ""
	case ip.Is4In6():
		if why := Classify(ip.Unmap()); why != "" {
			return "IPv4-mapped Address of " + ip.Unmap().String() + ", " + why
		}
		return ""
	}
	e, found := lookup(special6, ip)
	if found && e.prefix == nat64 {
		// The well-known NAT64 prefix reaches the IPv4 address it embeds.
		a := ip.As16()
		v4 := netip.AddrFrom4([4]byte{a[12], a[13], a[14], a[15]})
		if why := Classify(v4); why != "" {
			return "NAT64 of " + v4.String() + ", " + why
		}
		return ""
	}
	switch {
	case found && !e.global:
		if v4, ok := embedded(ip, e.prefix); ok {
			return e.name + " (embeds " + v4.String() + ")"
		}
		return e.name
	case found:
		return ""
	case !globalUnicast6.Contains(ip):
		return "outside global unicast 2000::/3 (reserved by the IETF)"
	}
	return ""
}

var (
	nat64     = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour = netip.MustParsePrefix("2002::/16")
	teredo    = netip.MustParsePrefix("2001::/32")
	compat    = netip.MustParsePrefix("::/96")
)

// embedded is the IPv4 address an IPv6 transition form carries, to name it
// in an error: 6to4 (bits 16-47), Teredo's server (bits 32-63), IPv4-compatible.
func embedded(ip netip.Addr, p netip.Prefix) (netip.Addr, bool) {
	a := ip.As16()
	switch p {
	case sixToFour:
		return netip.AddrFrom4([4]byte{a[2], a[3], a[4], a[5]}), true
	case teredo:
		return netip.AddrFrom4([4]byte{a[4], a[5], a[6], a[7]}), true
	case compat:
		if ip.Compare(netip.MustParseAddr("::1")) > 0 {
			return netip.AddrFrom4([4]byte{a[12], a[13], a[14], a[15]}), true
		}
	}
	return netip.Addr{}, false
}

// CheckIP refuses an address that is not globally reachable and not
// allow-listed.
func (g *Guard) CheckIP(ip netip.Addr) error {
	ip = ip.WithZone("")
	for _, a := range g.allow {
		if a.Contains(ip) || ip.Is4In6() && a.Contains(ip.Unmap()) {
			return nil
		}
	}
	if why := Classify(ip); why != "" {
		return fmt.Errorf("%w: %s is %s", ErrRefused, ip, why)
	}
	return nil
}

// localNames are DNS names that never leave the host or the site (RFC 6761,
// RFC 6762, RFC 8375, ICANN's .internal).
var localNames = []string{"localhost", "local", "internal", "home.arpa", "localdomain", "invalid"}

// CheckHost checks what can be known of a host (a DNS name or an address
// literal, without brackets or port) before any DNS lookup: a literal must be
// global, a name must be an ASCII DNS name that is not site-local and is not
// an IPv4 address in a spelling other than dotted decimal.
func (g *Guard) CheckHost(host string) error {
	if host == "" {
		return fmt.Errorf("%w: no host", ErrRefused)
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if ip.Zone() != "" {
			return fmt.Errorf("%w: %q: an address with a zone (%%%s)", ErrRefused, host, ip.Zone())
		}
		return g.CheckIP(ip)
	}
	// One trailing dot is the same name, fully qualified.
	name := strings.ToLower(strings.TrimSuffix(host, "."))
	if ip, err := netip.ParseAddr(name); err == nil {
		return g.CheckIP(ip)
	}
	if len(name) > 253 {
		return fmt.Errorf("%w: host longer than 253 characters", ErrRefused)
	}
	labels := strings.Split(name, ".")
	for _, l := range labels {
		if l == "" || len(l) > 63 {
			return fmt.Errorf("%w: %q is not a DNS name (empty or over-long label)", ErrRefused, host)
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return fmt.Errorf("%w: %q is not an ASCII DNS name (write an internationalised name in its xn-- form)", ErrRefused, host)
			}
		}
	}
	if ip, ok := inetAton(labels); ok {
		// Resolvers built on inet_aton read "127.1", "2130706433" and
		// "0x7f.0.0.1" as addresses; no DNS name ends in a number.
		if err := g.CheckIP(ip); err != nil {
			return fmt.Errorf("%w (spelled %q)", err, host)
		}
		return fmt.Errorf("%w: %q spells an IPv4 address other than in dotted decimal (write %s)", ErrRefused, host, ip)
	}
	if last := labels[len(labels)-1]; numeric(last) {
		return fmt.Errorf("%w: %q ends in a number: no DNS name does, and resolvers may read it as an address", ErrRefused, host)
	}
	for _, l := range localNames {
		if name == l || strings.HasSuffix(name, "."+l) {
			return fmt.Errorf("%w: %q is a site-local name (.%s)", ErrRefused, host, l)
		}
	}
	return nil
}

// numeric reports whether a label is a number in C's notation, of any size:
// decimal digits (octal with a leading 0), or hex digits after 0x.
func numeric(l string) bool {
	digits := "0123456789"
	if len(l) >= 2 && (l[:2] == "0x" || l[:2] == "0X") {
		l, digits = l[2:], "0123456789abcdefABCDEF" // "0x" alone is 0 to inet_aton
	} else if l == "" {
		return false
	}
	for i := 0; i < len(l); i++ {
		if !strings.ContainsRune(digits, rune(l[i])) {
			return false
		}
	}
	return true
}

func cNumber(l string) (uint64, bool) {
	base := 10
	switch {
	case len(l) > 1 && (strings.HasPrefix(l, "0x") || strings.HasPrefix(l, "0X")):
		base, l = 16, l[2:]
		if l == "" {
			return 0, true // "0x" alone is 0 to inet_aton
		}
	case len(l) > 1 && l[0] == '0':
		base, l = 8, l[1:]
	}
	n, err := strconv.ParseUint(l, base, 64)
	return n, err == nil
}

// inetAton reads labels as inet_aton(3) does: one to four numbers, the last
// filling the remaining bytes.
func inetAton(labels []string) (netip.Addr, bool) {
	if len(labels) > 4 {
		return netip.Addr{}, false
	}
	var parts []uint64
	for _, l := range labels {
		n, ok := cNumber(l)
		if !ok {
			return netip.Addr{}, false
		}
		parts = append(parts, n)
	}
	var v uint64
	for i, p := range parts[:len(parts)-1] {
		if p > 255 {
			return netip.Addr{}, false
		}
		v |= p << (24 - 8*i)
	}
	last := parts[len(parts)-1]
	if last >= 1<<(8*(5-len(parts))) {
		return netip.Addr{}, false
	}
	v |= last
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), true
}

// MaxURL bounds a URL's length.
const MaxURL = 2048

// CheckURL checks what can be known before any DNS lookup: the scheme, a
// host (CheckHost), no credentials, a port in range, no raw space, control
// or non-ASCII character.
func (g *Guard) CheckURL(raw string) error {
	_, err := g.ParseURL(raw)
	return err
}

// ParseURL is CheckURL that also returns the parsed URL.
func (g *Guard) ParseURL(raw string) (*url.URL, error) {
	if len(raw) > MaxURL {
		return nil, fmt.Errorf("%w: URL longer than %d characters", ErrRefused, MaxURL)
	}
	for i := 0; i < len(raw); i++ {
		if c := raw[i]; c <= ' ' || c >= 0x7f {
			return nil, fmt.Errorf("%w: a space, control or non-ASCII character at offset %d (percent-encode it)", ErrRefused, i)
		}
	}
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("%w: %v", ErrRefused, err)
	}
	switch {
	case u.Scheme != "https" && u.Scheme != "http":
		return nil, fmt.Errorf("%w: scheme %q (want https or http)", ErrRefused, u.Scheme)
	case g.httpsOnly && u.Scheme != "https":
		return nil, fmt.Errorf("%w: not https (https only)", ErrRefused)
	case u.Opaque != "" || u.Host == "":
		return nil, fmt.Errorf("%w: no host", ErrRefused)
	case u.User != nil:
		return nil, fmt.Errorf("%w: credentials in the URL (use custom headers)", ErrRefused)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("%w: port %q (want 1 to 65535)", ErrRefused, p)
		}
	} else if strings.HasSuffix(u.Host, ":") {
		return nil, fmt.Errorf("%w: an empty port", ErrRefused)
	}
	if err := g.CheckHost(u.Hostname()); err != nil {
		return nil, err
	}
	return u, nil
}

// control runs for every connection after DNS resolution, before connecting.
func (g *Guard) control(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: %q", ErrRefused, address)
	}
	return g.CheckIP(ap.Addr())
}

// Dialer dials only where the guard allows: every address a name resolves
// to is checked as the connection is made.
func (g *Guard) Dialer(timeout time.Duration) *net.Dialer {
	return &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second, Control: g.control, Resolver: g.resolver}
}

// DialContext is the guarded Dialer's DialContext with a 10 s connect timeout.
func (g *Guard) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	return g.Dialer(10*time.Second).DialContext(ctx, network, address)
}

// Client is an HTTP client that dials only where the guard allows, uses no
// proxy (a proxy would dial for us, unchecked) and follows no redirect (a
// webhook answers; a 3xx is a failed delivery, not a new destination). It
// opens at most perHost connections to one host: a subscriber with many
// endpoints is not flooded, and requests past that wait for a connection.
func (g *Guard) Client(timeout time.Duration, perHost int) *http.Client {
	t := &http.Transport{
		Proxy:               nil,
		DialContext:         g.Dialer(10 * time.Second).DialContext,
		ForceAttemptHTTP2:   true,
		MaxIdleConns:        1024,
		MaxIdleConnsPerHost: perHost,
		MaxConnsPerHost:     perHost,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: 10 * time.Second,
		// No "Accept-Encoding: gzip" on every request: a webhook's or
		// Slack's answer is a status and a few bytes, and the transport
		// would add the header to each request in a map of its own.
		DisableCompression: true,
		// No ResponseHeaderTimeout: the client's Timeout bounds the whole
		// exchange already, and each timer costs on every delivery.
	}
	return &http.Client{
		Transport:     t,
		Timeout:       timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// Loopback is the allow-list of an operator's own host: a local SMTP relay,
// a capture server (the Slack and email notifiers' default allow-lists).
var Loopback = []string{"127.0.0.0/8", "::1/128"}
