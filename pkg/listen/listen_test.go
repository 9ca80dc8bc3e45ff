package listen_test

import (
	"context"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/accountwatch/accountwatch/pkg/listen"
	"github.com/accountwatch/accountwatch/pkg/listen/listentest"
)

func hello(w http.ResponseWriter, r *http.Request) {
	if r.TLS != nil {
		io.WriteString(w, "tls "+r.Proto)
		return
	}
	io.WriteString(w, "plain")
}

func get(t *testing.T, c *http.Client, url string) string {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func TestPlainAndTLS(t *testing.T) {
	plain, err := listen.Serve("127.0.0.1:0", http.HandlerFunc(hello), "", "")
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Shutdown(context.Background())
	if plain.TLS() || !strings.HasPrefix(plain.URL(), "http://") || get(t, http.DefaultClient, plain.URL()) != "plain" {
		t.Error("plain server")
	}
	dir := t.TempDir()
	cert, key, client := listentest.Cert(t, dir, "first")
	s, err := listen.Serve("127.0.0.1:0", http.HandlerFunc(hello), cert, key)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(context.Background())
	if !s.TLS() || !strings.HasPrefix(s.URL(), "https://") {
		t.Fatalf("TLS server: %s", s.URL())
	}
	if got := get(t, client, s.URL()); got != "tls HTTP/2.0" {
		t.Errorf("TLS answered %q (want HTTP/2 over TLS)", got)
	}
	if _, err := http.Get(s.URL()); err == nil {
		t.Error("a client that does not trust the certificate connected")
	}

	// A renewed pair in the same files is served without a restart.
	c2, k2, client2 := listentest.Cert(t, t.TempDir(), "second")
	later := time.Now().Add(time.Minute) // a file system's mtimes may be coarse
	for src, dst := range map[string]string{c2: cert, k2: key} {
		b, _ := os.ReadFile(src)
		if err := os.WriteFile(dst, b, 0o600); err != nil {
			t.Fatal(err)
		}
		os.Chtimes(dst, later, later)
	}
	client2.Transport.(*http.Transport).DisableKeepAlives = true
	if got := get(t, client2, s.URL()); !strings.HasPrefix(got, "tls") {
		t.Errorf("after renewal: %q", got)
	}
}

func TestCheckFiles(t *testing.T) {
	dir := t.TempDir()
	cert, key, _ := listentest.Cert(t, dir, "x")
	for _, c := range []struct{ cert, key, want string }{
		{"", "", ""}, {cert, key, ""}, {cert, "", "both"}, {"", key, "both"},
		{key, cert, "PEM"}, {dir + "/missing.crt", key, "no such file"},
	} {
		err := listen.CheckFiles(c.cert, c.key)
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%q %q: %v, want %q", c.cert, c.key, err, c.want)
		}
	}
	if _, err := listen.Serve("127.0.0.1:0", http.NotFoundHandler(), cert, ""); err == nil {
		t.Error("half a pair served")
	}
}
