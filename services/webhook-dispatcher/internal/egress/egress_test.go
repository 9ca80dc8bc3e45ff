package egress_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/accountwatch/accountwatch/services/webhook-dispatcher/internal/egress"
)

func TestAddressClasses(t *testing.T) {
	g, _ := egress.New(nil, false)
	refused := map[string]string{
		"127.0.0.1": "loopback", "127.10.0.1": "loopback", "::1": "loopback",
		"10.1.2.3": "private", "172.16.0.1": "private", "172.31.255.255": "private", "192.168.1.1": "private", "fc00::1": "private", "fd00:ec2::254": "private",
		"169.254.169.254": "link-local", "fe80::1": "link-local",
		"100.64.0.1": "CGNAT", "100.100.100.200": "CGNAT",
		"224.0.0.1": "multicast", "239.255.255.250": "multicast", "ff02::1": "multicast",
		"0.0.0.0": "unspecified", "::": "unspecified", "::ffff:127.0.0.1": "loopback",
	}
	for ip, class := range refused {
		err := g.CheckIP(netip.MustParseAddr(ip))
		if !errors.Is(err, egress.ErrRefused) || !strings.Contains(err.Error(), class) {
			t.Errorf("%s: %v, want refused as %s", ip, err, class)
		}
	}
	for _, ip := range []string{"93.184.216.34", "8.8.8.8", "2606:4700::1111", "172.32.0.1", "100.128.0.1"} {
		if err := g.CheckIP(netip.MustParseAddr(ip)); err != nil {
			t.Errorf("%s refused: %v", ip, err)
		}
	}
	allow, _ := egress.New([]string{"10.20.0.0/16"}, false)
	if allow.CheckIP(netip.MustParseAddr("10.20.3.4")) != nil || allow.CheckIP(netip.MustParseAddr("10.21.3.4")) == nil {
		t.Error("allow-list")
	}
	if _, err := egress.New([]string{"10.0.0.0/33"}, false); err == nil || !strings.Contains(err.Error(), "AW_WEBHOOK_ALLOW_CIDRS") {
		t.Errorf("bad CIDR: %v", err)
	}
}

func TestURLs(t *testing.T) {
	g, _ := egress.New(nil, false)
	https, _ := egress.New(nil, true)
	cases := []struct {
		g    *egress.Guard
		url  string
		want string
	}{
		{g, "ftp://x.example/", "scheme"},
		{g, "https:///path", "no host"},
		{g, "https://user:pw@x.example/", "credentials"},
		{g, "http://169.254.169.254/latest/meta-data/", "link-local"},
		{g, "http://[::1]:8080/", "loopback"},
		{https, "http://x.example/", "not https"},
	}
	for _, c := range cases {
		if err := c.g.CheckURL(c.url); !errors.Is(err, egress.ErrRefused) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.url, err, c.want)
		}
	}
	if err := https.CheckURL("https://hooks.example.com/x"); err != nil {
		t.Error(err)
	}
}

// TestDialTimeCheck: a name that resolves to loopback is refused when the
// connection is made, although the URL check (no DNS) let it through.
func TestDialTimeCheck(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(204) }))
	defer srv.Close()
	port := srv.URL[strings.LastIndexByte(srv.URL, ':')+1:]
	g, _ := egress.New(nil, false)
	url := "http://localhost:" + port + "/"
	if err := g.CheckURL(url); err != nil {
		t.Fatalf("a DNS name passes the URL check: %v", err)
	}
	_, err := g.Client(5*time.Second, 1).Get(url)
	if !errors.Is(err, egress.ErrRefused) || !strings.Contains(err.Error(), "loopback") {
		t.Errorf("localhost (127.0.0.1): %v, want refused at dial time", err)
	}
	allowed, _ := egress.New([]string{"127.0.0.0/8", "::1/128"}, false)
	resp, err := allowed.Client(5*time.Second, 1).Get(url)
	if err != nil || resp.StatusCode != 204 {
		t.Errorf("allow-listed loopback: %v", err)
	}
	redirect := httptest.NewServer(http.RedirectHandler("http://169.254.169.254/", http.StatusFound))
	defer redirect.Close()
	resp, err = allowed.Client(5*time.Second, 1).Get(redirect.URL)
	if err != nil || resp.StatusCode != http.StatusFound {
		t.Errorf("a redirect was followed: %v", err)
	}
}
