// Package egress guards the dispatcher's outbound HTTP against server-side
// request forgery: every connection is checked at dial time, on the address
// DNS actually returned, so a name that resolves (or re-resolves) to an
// internal address fails as surely as the address itself.
package egress

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// ErrRefused is returned for a destination the guard will not connect to.
var ErrRefused = errors.New("destination refused")

// blocked are the address classes no webhook may reach unless allow-listed.
var blocked = []struct {
	prefix netip.Prefix
	class  string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "unspecified"},
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback"},
	{netip.MustParsePrefix("10.0.0.0/8"), "private"},
	{netip.MustParsePrefix("172.16.0.0/12"), "private"},
	{netip.MustParsePrefix("192.168.0.0/16"), "private"},
	{netip.MustParsePrefix("100.64.0.0/10"), "CGNAT (Alibaba Cloud metadata 100.100.100.200 is here)"},
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local (cloud metadata 169.254.169.254 is here)"},
	{netip.MustParsePrefix("192.0.0.0/24"), "IETF protocol assignments"},
	{netip.MustParsePrefix("198.18.0.0/15"), "benchmarking"},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved"},
	{netip.MustParsePrefix("::/128"), "unspecified"},
	{netip.MustParsePrefix("::1/128"), "loopback"},
	{netip.MustParsePrefix("fc00::/7"), "private (unique local; AWS IPv6 metadata fd00:ec2::254 is here)"},
	{netip.MustParsePrefix("fe80::/10"), "link-local"},
	{netip.MustParsePrefix("ff00::/8"), "multicast"},
	{netip.MustParsePrefix("64:ff9b::/96"), "NAT64 (may reach IPv4 internals)"},
}

// Guard decides where the dispatcher may connect.
type Guard struct {
	allow     []netip.Prefix
	httpsOnly bool
}

// New builds a guard; allow lists CIDRs that may be reached even though they
// are internal (tests, private deployments).
func New(allow []string, httpsOnly bool) (*Guard, error) {
	g := &Guard{httpsOnly: httpsOnly}
	for _, a := range allow {
		if a = strings.TrimSpace(a); a == "" {
			continue
		}
		p, err := netip.ParsePrefix(a)
		if err != nil {
			return nil, fmt.Errorf("AW_WEBHOOK_ALLOW_CIDRS: %q: %v", a, err)
		}
		g.allow = append(g.allow, p.Masked())
	}
	return g, nil
}

// CheckIP refuses an internal address that is not allow-listed.
func (g *Guard) CheckIP(ip netip.Addr) error {
	ip = ip.Unmap()
	for _, a := range g.allow {
		if a.Contains(ip) {
			return nil
		}
	}
	for _, b := range blocked {
		if b.prefix.Contains(ip) {
			return fmt.Errorf("%w: %s is %s", ErrRefused, ip, b.class)
		}
	}
	return nil
}

// CheckURL checks what can be known before any DNS lookup: the scheme, a
// host, and a literal address.
func (g *Guard) CheckURL(raw string) error {
	_, err := g.ParseURL(raw)
	return err
}

// ParseURL is CheckURL that also returns the parsed URL.
func (g *Guard) ParseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrRefused, err)
	}
	switch {
	case u.Scheme != "https" && u.Scheme != "http":
		return nil, fmt.Errorf("%w: scheme %q (want https or http)", ErrRefused, u.Scheme)
	case g.httpsOnly && u.Scheme != "https":
		return nil, fmt.Errorf("%w: %s is not https (AW_WEBHOOK_HTTPS_ONLY)", ErrRefused, raw)
	case u.Hostname() == "":
		return nil, fmt.Errorf("%w: no host in %q", ErrRefused, raw)
	case u.User != nil:
		return nil, fmt.Errorf("%w: credentials in the URL (use custom headers)", ErrRefused)
	}
	if ip, err := netip.ParseAddr(u.Hostname()); err == nil {
		if err := g.CheckIP(ip); err != nil {
			return nil, err
		}
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

// Client is an HTTP client that dials only where the guard allows, uses no
// proxy (a proxy would dial for us, unchecked) and follows no redirect (a
// webhook answers; a 3xx is a failed delivery, not a new destination). It
// opens at most perHost connections to one host: a subscriber with many
// endpoints is not flooded, and requests past that wait for a connection.
func (g *Guard) Client(timeout time.Duration, perHost int) *http.Client {
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second, Control: g.control}
	t := &http.Transport{
		Proxy:               nil,
		DialContext:         d.DialContext,
		ForceAttemptHTTP2:   true,
		MaxIdleConns:        1024,
		MaxIdleConnsPerHost: perHost,
		MaxConnsPerHost:     perHost,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: 10 * time.Second,
		// No ResponseHeaderTimeout: the client's Timeout bounds the whole
		// exchange already, and each timer costs on every delivery.
	}
	return &http.Client{
		Transport:     t,
		Timeout:       timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}
