package egress_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/accountwatch/accountwatch/pkg/egress"
	"github.com/accountwatch/accountwatch/pkg/egress/egresstest"
)

// registry is every block of the IANA IPv4 and IPv6 Special-Purpose Address
// Registries (iana-ipv4-special-registry, iana-ipv6-special-registry) with
// its name there and its "Globally Reachable" column, plus the non-global
// blocks of the IPv4 multicast and IPv6 address space registries. It is
// written from the registries, not from the package's table, so that the
// two are compared.
var registry = []struct {
	block, name string
	global      bool
}{
	// IPv4 Special-Purpose Address Registry.
	{"0.0.0.0/8", `"This network"`, false},
	{"0.0.0.0/32", `"This host on this network"`, false},
	{"10.0.0.0/8", "Private-Use", false},
	{"100.64.0.0/10", "Shared Address Space", false},
	{"127.0.0.0/8", "Loopback", false},
	{"169.254.0.0/16", "Link Local", false},
	{"172.16.0.0/12", "Private-Use", false},
	{"192.0.0.0/24", "IETF Protocol Assignments", false},
	{"192.0.0.0/29", "IPv4 Service Continuity Prefix", false},
	{"192.0.0.8/32", "IPv4 dummy address", false},
	{"192.0.0.9/32", "Port Control Protocol Anycast", true},
	{"192.0.0.10/32", "Traversal Using Relays around NAT Anycast", true},
	{"192.0.0.170/32", "NAT64/DNS64 Discovery", false},
	{"192.0.0.171/32", "NAT64/DNS64 Discovery", false},
	{"192.0.2.0/24", "Documentation (TEST-NET-1)", false},
	{"192.31.196.0/24", "AS112-v4", true},
	{"192.52.193.0/24", "AMT", true},
	{"192.88.99.0/24", "Deprecated (6to4 Relay Anycast)", false},
	{"192.88.99.2/32", "6a44-relay anycast address", false},
	{"192.168.0.0/16", "Private-Use", false},
	{"192.175.48.0/24", "Direct Delegation AS112 Service", true},
	{"198.18.0.0/15", "Benchmarking", false},
	{"198.51.100.0/24", "Documentation (TEST-NET-2)", false},
	{"203.0.113.0/24", "Documentation (TEST-NET-3)", false},
	{"240.0.0.0/4", "Reserved", false},
	{"255.255.255.255/32", "Limited Broadcast", false},
	// IPv4 Multicast Address Space Registry.
	{"224.0.0.0/4", "Multicast", false},
	// IPv6 Special-Purpose Address Registry.
	{"::1/128", "Loopback Address", false},
	{"::/128", "Unspecified Address", false},
	{"::ffff:0:0/96", "IPv4-mapped Address", false},
	{"64:ff9b::/96", "IPv4-IPv6 Translat.", true},
	{"64:ff9b:1::/48", "IPv4-IPv6 Translat.", false},
	{"100::/64", "Discard-Only Address Block", false},
	{"100:0:0:1::/64", "Dummy IPv6 Prefix", false},
	{"2001::/23", "IETF Protocol Assignments", false},
	{"2001::/32", "TEREDO", false},
	{"2001:1::1/128", "Port Control Protocol Anycast", true},
	{"2001:1::2/128", "Traversal Using Relays around NAT Anycast", true},
	{"2001:1::3/128", "DNS-SD Service Registration Protocol Anycast", true},
	{"2001:2::/48", "Benchmarking", false},
	{"2001:3::/32", "AMT", true},
	{"2001:4:112::/48", "AS112-v6", true},
	{"2001:10::/28", "Deprecated (previously ORCHID)", false},
	{"2001:20::/28", "ORCHIDv2", true},
	{"2001:30::/28", "Drone Remote ID Protocol Entity Tags (DETs) Prefix", true},
	{"2001:db8::/32", "Documentation", false},
	{"2002::/16", "6to4", false}, // the registry says N/A; a 6to4 site's own hosts are internal
	{"2620:4f:8000::/48", "Direct Delegation AS112 Service", true},
	{"3fff::/20", "Documentation", false},
	{"5f00::/16", "Segment Routing (SRv6) SIDs", false},
	{"fc00::/7", "Unique-Local", false},
	{"fe80::/10", "Link-Local Unicast", false},
	// IPv6 Address Space registry: deprecated and multicast space.
	{"::/96", "IPv4-compatible Address", false},
	{"::ffff:0:0:0/96", "IPv4-translated Address", false},
	{"fec0::/10", "Site-Local", false},
	{"ff00::/8", "Multicast", false},
}

// last is the highest address of p.
func last(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().AsSlice()
	bits := p.Bits()
	for i := range a {
		for j := range 8 {
			if i*8+j >= bits {
				a[i] |= 0x80 >> j
			}
		}
	}
	ip, _ := netip.AddrFromSlice(a)
	return ip
}

// covered reports whether a more specific registry block than p holds ip.
func covered(ip netip.Addr, p netip.Prefix) bool {
	for _, r := range registry {
		q := netip.MustParsePrefix(r.block)
		if q.Bits() > p.Bits() && q.Contains(ip) {
			return true
		}
	}
	return false
}

// TestRegistry checks the first, a middle and the last address of every
// registry block: a global block's addresses pass, every other block's are
// refused, naming the block as the registry does (unless a more specific
// block holds the address). The well-known NAT64 prefix is global and is
// judged by the IPv4 address it embeds (TestSpellings).
func TestRegistry(t *testing.T) {
	g, _ := egress.New(nil, false)
	for _, r := range registry {
		p := netip.MustParsePrefix(r.block)
		first := p.Addr()
		mid := first
		for range 3 {
			if n := mid.Next(); p.Contains(n) {
				mid = n
			}
		}
		for _, ip := range []netip.Addr{first, mid, last(p)} {
			if covered(ip, p) {
				continue
			}
			err := g.CheckIP(ip)
			if p == netip.MustParsePrefix("64:ff9b::/96") {
				continue // 64:ff9b::0.0.0.0 is NAT64 of "This network"
			}
			switch {
			case r.global && err != nil:
				t.Errorf("%s (%s, %s, globally reachable): refused: %v", ip, r.block, r.name, err)
			case !r.global && (!errors.Is(err, egress.ErrRefused) || !strings.Contains(err.Error(), r.name)):
				t.Errorf("%s (%s, %s): %v, want refused naming %q", ip, r.block, r.name, err, r.name)
			}
		}
	}
}

// TestGlobal: addresses next to the blocks, and public services, pass.
func TestGlobal(t *testing.T) {
	g, _ := egress.New(nil, false)
	for _, ip := range []string{
		"1.1.1.1", "8.8.8.8", "9.255.255.255", "11.0.0.0", "93.184.216.34", "100.63.255.255", "100.128.0.0",
		"126.255.255.255", "128.0.0.0", "169.253.255.255", "169.255.0.0", "172.15.255.255", "172.32.0.0",
		"192.0.1.0", "192.0.3.0", "192.88.98.255", "192.88.100.0", "192.167.255.255", "192.169.0.0",
		"198.17.255.255", "198.20.0.0", "198.51.99.255", "198.51.101.0", "203.0.112.255", "203.0.114.0", "223.255.255.255",
		"2606:4700::1111", "2a00:1450:4001::200e", "2001:200::1", "2001:4860:4860::8888", "2003::1", "3ffe::1",
		"64:ff9b::808:808", "::ffff:8.8.8.8",
	} {
		if err := g.CheckIP(netip.MustParseAddr(ip)); err != nil {
			t.Errorf("%s refused: %v", ip, err)
		}
	}
	// Outside 2000::/3 and named by no registry entry: reserved by the IETF.
	for _, ip := range []string{"1::1", "4000::1", "e000::1", "fe00::1", "200::1"} {
		if err := g.CheckIP(netip.MustParseAddr(ip)); !errors.Is(err, egress.ErrRefused) || !strings.Contains(err.Error(), "2000::/3") {
			t.Errorf("%s: %v, want refused as outside global unicast", ip, err)
		}
	}
}

func TestAllowList(t *testing.T) {
	g, err := egress.New([]string{"10.20.0.0/16", " ", "fd00::/8"}, false)
	if err != nil {
		t.Fatal(err)
	}
	for ip, ok := range map[string]bool{"10.20.3.4": true, "::ffff:10.20.3.4": true, "fd00::1%eth0": true, "10.21.3.4": false, "fc00::1": false} {
		if err := g.CheckIP(netip.MustParseAddr(ip)); (err == nil) != ok {
			t.Errorf("%s: %v, want allowed %v", ip, err, ok)
		}
	}
	for _, bad := range []string{"10.0.0.0/33", "fe80::/10%eth0", "10.0.0.1"} {
		if _, err := egress.New([]string{bad}, false); err == nil || !strings.Contains(err.Error(), "allow-list") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

// spellings are URLs that reach a loopback, private or metadata address
// however written; %s is a port.
var spellings = []struct{ url, want string }{
	{"http://127.0.0.1:%s/", "Loopback"},
	{"http://127.1:%s/", "Loopback"},
	{"http://127.0.1:%s/", "Loopback"},
	{"http://2130706433:%s/", "Loopback"},
	{"http://0x7f000001:%s/", "Loopback"},
	{"http://0X7F.0.0.1:%s/", "Loopback"},
	{"http://0177.0.0.1:%s/", "Loopback"},
	{"http://017700000001:%s/", "Loopback"},
	{"http://127.000.000.001:%s/", "Loopback"},
	{"http://127.0.0.1.:%s/", "Loopback"},
	{"http://0:%s/", `"This host on this network"`},
	{"http://0.1:%s/", `"This network"`},
	{"http://0.0.0.0:%s/", `"This host on this network"`},
	{"http://[::]:%s/", "Unspecified Address"},
	{"http://[::1]:%s/", "Loopback Address"},
	{"http://[0:0:0:0:0:0:0:1]:%s/", "Loopback Address"},
	{"http://[0000:0000:0000:0000:0000:0000:0000:0001]:%s/", "Loopback Address"},
	{"http://[::1%25lo]:%s/", "zone"},
	{"http://[::1%25eth0]:%s/", "zone"},
	{"http://[fe80::1%25eth0]:%s/", "zone"},
	{"http://[fc00::1%25eth0]:%s/", "zone"},
	{"http://[ff02::1%25lo]:%s/", "zone"},
	{"http://[::ffff:127.0.0.1]:%s/", "IPv4-mapped Address of 127.0.0.1, Loopback"},
	{"http://[::ffff:7f00:1]:%s/", "IPv4-mapped Address of 127.0.0.1, Loopback"},
	{"http://[::ffff:169.254.169.254]:%s/", "Link Local"},
	{"http://[::127.0.0.1]:%s/", "IPv4-compatible Address"},
	{"http://[::ffff:0:127.0.0.1]:%s/", "IPv4-translated Address"},
	{"http://[64:ff9b::127.0.0.1]:%s/", "NAT64 of 127.0.0.1, Loopback"},
	{"http://[64:ff9b::a9fe:a9fe]:%s/", "NAT64 of 169.254.169.254, Link Local"},
	{"http://[64:ff9b:1::7f00:1]:%s/", "local-use NAT64"},
	{"http://[2002:7f00:1::1]:%s/", "6to4 (embeds 127.0.0.1)"},
	{"http://[2002:808:808::1]:%s/", "6to4"},
	{"http://[2001:0:7f00:1::1]:%s/", "TEREDO (embeds 127.0.0.1)"},
	{"http://[fd00:ec2::254]:%s/", "Unique-Local"},
	{"http://[fec0::1]:%s/", "Site-Local"},
	{"http://169.254.169.254:%s/latest/meta-data/", "Link Local"},
	{"http://100.100.100.200:%s/", "Shared Address Space"},
	{"http://10.0.0.1:%s/", "Private-Use"},
	{"http://localhost:%s/", "site-local name"},
	{"http://LOCALHOST.:%s/", "site-local name"},
	{"http://api.localhost:%s/", "site-local name"},
	{"http://printer.local:%s/", "site-local name"},
	{"http://metadata.google.internal:%s/", "site-local name"},
	{"http://router.home.arpa:%s/", "site-local name"},
	{"http://hooks.example.123:%s/", "ends in a number"},
	{"http://1.2.3.0x7f:%s/", "other than in dotted decimal"},
	{"http://0x08.0x08.0x08.0x08:%s/", "other than in dotted decimal"},
}

func TestSpellings(t *testing.T) {
	g, _ := egress.New(nil, false)
	for _, tmpl := range egresstest.Loopback {
		u := strings.Replace(tmpl, "{port}", "8080", 1)
		if err := g.CheckURL(u); !errors.Is(err, egress.ErrRefused) {
			t.Errorf("%s: %v, want refused", u, err)
		}
	}
	for _, s := range spellings {
		u := strings.Replace(s.url, "%s", "8080", 1)
		if err := g.CheckURL(u); !errors.Is(err, egress.ErrRefused) || !strings.Contains(err.Error(), s.want) {
			t.Errorf("%s: %v, want refused with %q", u, err, s.want)
		}
	}
}

func TestURLs(t *testing.T) {
	g, _ := egress.New(nil, false)
	https, _ := egress.New(nil, true)
	cases := []struct {
		g    *egress.Guard
		url  string
		want string // "" accepted
	}{
		{g, "https://hooks.example.com/x?y=1", ""},
		{g, "https://hooks.example.com./x", ""},
		{g, "http://93.184.216.34:8443/a%20b", ""},
		{g, "https://[2606:4700::1111]/", ""},
		{g, "https://xn--bcher-kva.example/", ""},
		{g, "ftp://x.example/", "scheme"},
		{g, "//x.example/", "scheme"},
		{g, "https:///path", "no host"},
		{g, "http:x.example", "no host"},
		{g, "https://user:pw@x.example/", "credentials"},
		{g, "https://user@x.example/", "credentials"},
		{g, "https://x.example/a b", "space"},
		{g, "https://x.example/\x00", "control"},
		{g, "https://x.example/\r\nHost: evil", "control"},
		{g, "https://bücher.example/", "non-ASCII"},
		{g, "https://x.example:0/", "port"},
		{g, "https://x.example:65536/", "port"},
		{g, "https://x.example:/", "empty port"},
		{g, "https://x_y..example/", "not a DNS name"},
		{g, "https://x.example%2F@y/", "credentials"},
		{g, "https://" + strings.Repeat("a", 64) + ".example/", "not a DNS name"},
		{g, "https://x.example/" + strings.Repeat("a", egress.MaxURL), "longer than"},
		{https, "http://x.example/", "not https"},
		{https, "https://x.example/", ""},
	}
	for _, c := range cases {
		err := c.g.CheckURL(c.url)
		if c.want == "" && err != nil || c.want != "" && (!errors.Is(err, egress.ErrRefused) || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%.80q: %v, want %q", c.url, err, c.want)
		}
	}
}

func TestCheckHost(t *testing.T) {
	g, _ := egress.New(nil, false)
	for host, want := range map[string]string{
		"smtp.example.com": "", "203.0.114.5": "", "2606:4700::1111": "",
		"127.0.0.1": "Loopback", "localhost": "site-local", "::1": "Loopback", "fe80::1%eth0": "zone", "": "no host", "mail.local": "site-local",
	} {
		err := g.CheckHost(host)
		if want == "" && err != nil || want != "" && (err == nil || !strings.Contains(err.Error(), want)) {
			t.Errorf("%q: %v, want %q", host, err, want)
		}
	}
}

// rebinder is a DNS server (miekg/dns) that answers every A and AAAA
// question with loopback: a hostile resolver, or a name re-pointed after it
// was checked.
func rebinder(t *testing.T) *net.Resolver {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		for _, qq := range q.Question {
			hdr := dns.RR_Header{Name: qq.Name, Class: dns.ClassINET, Ttl: 0}
			switch qq.Qtype {
			case dns.TypeA:
				hdr.Rrtype = dns.TypeA
				m.Answer = append(m.Answer, &dns.A{Hdr: hdr, A: net.IPv4(127, 0, 0, 1)})
			case dns.TypeAAAA:
				hdr.Rrtype = dns.TypeAAAA
				m.Answer = append(m.Answer, &dns.AAAA{Hdr: hdr, AAAA: net.IPv6loopback})
			}
		}
		_ = w.WriteMsg(m)
	})}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	go srv.ActivateAndServe()
	<-started
	t.Cleanup(func() { _ = srv.Shutdown() })
	addr := pc.LocalAddr().String()
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", addr)
	}}
}

// TestLoopbackCanary: every spelling of loopback (and a name that resolves
// to it) is refused by the URL check, and, asked to dial anyway, by the
// dialer; the canary listening on loopback receives no connection. An
// allow-listed guard then reaches it, which shows the canary counts.
func TestLoopbackCanary(t *testing.T) {
	c := egresstest.NewCanary(t)
	res := rebinder(t)
	g, _ := egress.New(nil, false, egress.WithResolver(res))
	client := g.Client(5*time.Second, 1)
	urls := append([]string{"http://rebound.example:" + c.Port + "/"}, c.URLs()...)
	for _, s := range spellings {
		urls = append(urls, strings.Replace(s.url, "%s", c.Port, 1))
	}
	for _, u := range urls {
		if !strings.Contains(u, "rebound") {
			if err := g.CheckURL(u); err == nil {
				t.Errorf("%s passed the URL check", u)
			}
		}
		req, err := http.NewRequest("POST", u, strings.NewReader("{}"))
		if err != nil {
			continue // not even a URL to net/http
		}
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			t.Errorf("%s: connected", u)
		} else if dnsErr := (*net.DNSError)(nil); !errors.Is(err, egress.ErrRefused) && !errors.As(err, &dnsErr) {
			// Go's resolver looks up no all-numeric name: "no such host".
			t.Errorf("%s: %v, want refused by the dialer", u, err)
		}
	}
	if n := c.Connections(); n != 0 {
		t.Fatalf("the loopback canary received %d connections", n)
	}
	open, _ := egress.New([]string{"127.0.0.0/8", "::1/128"}, false, egress.WithResolver(res))
	// The canary hangs up at once: the request fails, but it connected.
	_, err := open.Client(5*time.Second, 1).Get("http://rebound.example:" + c.Port + "/")
	if c.Connections() == 0 {
		t.Fatalf("an allow-listed dial did not reach the canary either (%v): the test proves nothing", err)
	}
}

// TestDialTimeCheck: a name that resolves to loopback passes the URL check
// (no DNS there) and is refused when the connection is made; redirects are
// not followed.
func TestDialTimeCheck(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(204) }))
	defer srv.Close()
	port := srv.URL[strings.LastIndexByte(srv.URL, ':')+1:]
	res := rebinder(t)
	g, _ := egress.New(nil, false, egress.WithResolver(res))
	url := "http://hooks.rebound.example:" + port + "/"
	if err := g.CheckURL(url); err != nil {
		t.Fatalf("a DNS name passes the URL check: %v", err)
	}
	_, err := g.Client(5*time.Second, 1).Get(url)
	if !errors.Is(err, egress.ErrRefused) || !strings.Contains(err.Error(), "Loopback") {
		t.Errorf("a name resolving to 127.0.0.1: %v, want refused at dial time", err)
	}
	conn, err := g.DialContext(context.Background(), "tcp", "hooks.rebound.example:"+port)
	if err == nil {
		conn.Close()
		t.Error("DialContext connected to loopback")
	}
	allowed, _ := egress.New([]string{"127.0.0.0/8", "::1/128"}, false, egress.WithResolver(res))
	resp, err := allowed.Client(5*time.Second, 1).Get(url)
	if err != nil || resp.StatusCode != 204 {
		t.Fatalf("allow-listed loopback: %v", err)
	}
	// No compression is asked for: the answers are a few bytes.
	asked := make(chan string, 1)
	enc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { asked <- r.Header.Get("Accept-Encoding") }))
	defer enc.Close()
	if resp, err = allowed.Client(5*time.Second, 1).Get(enc.URL); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if a := <-asked; a != "" {
		t.Errorf("the client asked for Accept-Encoding %q, want no header", a)
	}
	redirect := httptest.NewServer(http.RedirectHandler("http://169.254.169.254/", http.StatusFound))
	defer redirect.Close()
	resp, err = allowed.Client(5*time.Second, 1).Get(redirect.URL)
	if err != nil || resp.StatusCode != http.StatusFound {
		t.Errorf("a redirect was followed: %v", err)
	}
}
