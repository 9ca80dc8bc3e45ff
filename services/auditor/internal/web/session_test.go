package web_test

import (
	"crypto/tls"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/accountwatch/accountwatch/services/auditor/internal/web"
)

const testToken = "web-test-token-0123456789"

// signIn posts the token and returns the session cookie.
func signIn(t *testing.T, h http.Handler, mod func(*http.Request)) *http.Cookie {
	t.Helper()
	req := httptest.NewRequest("POST", "/login", strings.NewReader("token="+testToken))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if mod != nil {
		mod(req)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusSeeOther || len(rec.Result().Cookies()) != 1 {
		t.Fatalf("sign-in: %d %v", rec.Code, rec.Result().Cookies())
	}
	return rec.Result().Cookies()[0]
}

func do(h http.Handler, method, path string, c *http.Cookie, form url.Values, hdr map[string]string) *httptest.ResponseRecorder {
	var req *http.Request
	if form != nil {
		req = httptest.NewRequest(method, path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	} else {
		req = httptest.NewRequest(method, path, nil)
	}
	if c != nil {
		req.AddCookie(c)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func csrfOf(t *testing.T, h http.Handler, c *http.Cookie) string {
	t.Helper()
	rec := do(h, "GET", "/", c, nil, nil)
	m := csrfRE.FindStringSubmatch(rec.Body.String())
	if rec.Code != 200 || m == nil {
		t.Fatalf("no CSRF token in the page: %d", rec.Code)
	}
	return m[1]
}

// TestSessionsAreRandomAndRevoked: every sign-in is a new random session
// (nothing derived from the token), and sign-out ends it on the server.
func TestSessionsAreRandomAndRevoked(t *testing.T) {
	h := server(t, 10)
	a, b := signIn(t, h, nil), signIn(t, h, nil)
	if a.Value == b.Value || len(a.Value) < 40 || strings.Contains(a.Value, testToken) {
		t.Fatalf("sessions %q and %q: want two random values", a.Value, b.Value)
	}
	if !a.HttpOnly || a.SameSite != http.SameSiteStrictMode || a.Secure || a.Name != "aw_audit" {
		t.Errorf("cookie over plain HTTP: %+v", a)
	}
	if rec := do(h, "GET", "/", a, nil, nil); rec.Code != 200 {
		t.Fatalf("signed in: %d", rec.Code)
	}
	// Sign-out needs the session's CSRF token.
	if rec := do(h, "POST", "/logout", a, url.Values{}, nil); rec.Code != http.StatusForbidden {
		t.Errorf("sign-out without the token: %d", rec.Code)
	}
	if rec := do(h, "POST", "/logout", a, url.Values{"csrf": {csrfOf(t, h, b)}}, nil); rec.Code != http.StatusForbidden {
		t.Errorf("sign-out with another session's token: %d", rec.Code)
	}
	if rec := do(h, "POST", "/logout", a, url.Values{"csrf": {csrfOf(t, h, a)}}, nil); rec.Code != http.StatusSeeOther {
		t.Fatalf("sign-out: %d", rec.Code)
	}
	if rec := do(h, "GET", "/", a, nil, nil); rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/login" {
		t.Errorf("the cookie still works after sign-out: %d", rec.Code)
	}
	if rec := do(h, "GET", "/api/v1/accounts", a, nil, nil); rec.Code != http.StatusUnauthorized {
		t.Errorf("the API still takes the cookie after sign-out: %d", rec.Code)
	}
	if rec := do(h, "GET", "/", b, nil, nil); rec.Code != 200 {
		t.Errorf("another session ended with it: %d", rec.Code)
	}
	// A restart (how the token is rotated) forgets every session.
	if rec := do(server(t, 10), "GET", "/", b, nil, nil); rec.Code != http.StatusSeeOther {
		t.Errorf("a session outlived the server: %d", rec.Code)
	}
	forged := &http.Cookie{Name: "aw_audit", Value: a.Value + "x"}
	if rec := do(h, "GET", "/", forged, nil, nil); rec.Code != http.StatusSeeOther {
		t.Errorf("a forged cookie: %d", rec.Code)
	}
}

// TestStateChangesNeedTokenAndSameOrigin: a state-changing request carries
// the session's CSRF token and comes from the console's own origin; the
// API changes nothing for a cookie.
func TestStateChangesNeedTokenAndSameOrigin(t *testing.T) {
	h := server(t, 10)
	c := signIn(t, h, nil)
	tok := csrfOf(t, h, c)
	cases := []struct {
		name   string
		method string
		path   string
		form   url.Values
		hdr    map[string]string
		code   int
	}{
		{"no token", "POST", "/dead-letters/1/redrive", url.Values{}, nil, 403},
		{"wrong token", "POST", "/dead-letters/1/redrive", url.Values{"csrf": {"x" + tok}}, nil, 403},
		{"cross-site", "POST", "/dead-letters/1/redrive", url.Values{"csrf": {tok}}, map[string]string{"Sec-Fetch-Site": "cross-site"}, 403},
		{"same-site other origin", "POST", "/dead-letters/1/redrive", url.Values{"csrf": {tok}}, map[string]string{"Sec-Fetch-Site": "same-site"}, 403},
		{"foreign Origin", "POST", "/dead-letters/1/redrive", url.Values{"csrf": {tok}}, map[string]string{"Origin": "http://example.com:8491"}, 403},
		{"other port Origin", "POST", "/logout", url.Values{"csrf": {tok}}, map[string]string{"Origin": "http://example.com:1234"}, 403},
		{"login from another site", "POST", "/login", url.Values{"token": {testToken}}, map[string]string{"Sec-Fetch-Site": "cross-site"}, 403},
		{"API write with the cookie", "POST", "/api/v1/redrive?sink=email&to=a@b.example&account=1", nil, nil, 401},
		{"API write with the cookie and token", "POST", "/api/v1/redrive?sink=email&to=a@b.example&account=1", nil, map[string]string{"X-CSRF-Token": tok}, 401},
	}
	for _, tc := range cases {
		rec := do(h, tc.method, tc.path, c, tc.form, tc.hdr)
		if rec.Code != tc.code {
			t.Errorf("%s: %d %.120s, want %d", tc.name, rec.Code, rec.Body.String(), tc.code)
		}
	}
	// The session survived every refused request.
	if rec := do(h, "GET", "/", c, nil, nil); rec.Code != 200 {
		t.Errorf("after the refused requests: %d", rec.Code)
	}
}

func TestSecurityHeadersAndNoReflection(t *testing.T) {
	h := server(t, 10)
	c := signIn(t, h, nil)
	for _, path := range []string{"/login", "/", "/api/v1/accounts", "/assets/console.css"} {
		rec := do(h, "GET", path, c, nil, nil)
		hd := rec.Header()
		if rec.Code != 200 || hd.Get("X-Frame-Options") != "DENY" || hd.Get("X-Content-Type-Options") != "nosniff" ||
			!strings.Contains(hd.Get("Content-Security-Policy"), "default-src 'none'") || !strings.Contains(hd.Get("Content-Security-Policy"), "frame-ancestors 'none'") ||
			strings.Contains(hd.Get("Content-Security-Policy"), "unsafe-inline") {
			t.Errorf("%s: %d %v", path, rec.Code, hd)
		}
	}
	if ct := do(h, "GET", "/assets/console.css", nil, nil, nil).Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/css") {
		t.Errorf("stylesheet served as %q", ct)
	}
	for _, path := range []string{"/", "/login"} {
		body := do(h, "GET", path, c, nil, nil).Body.String()
		if strings.Contains(body, "<style") || strings.Contains(body, "style=") || strings.Contains(body, "<script") {
			t.Errorf("%s has inline style or script, which the CSP forbids", path)
		}
	}
	rec := do(h, "GET", "/?flash=Your+account+is+locked:+call+555-0100", c, nil, nil)
	if strings.Contains(rec.Body.String(), "555-0100") || strings.Contains(rec.Body.String(), `id="flash"`) {
		t.Error("the flash parameter is reflected into the page")
	}
	if rec := do(h, "GET", "/?standing=call+555-0100", c, nil, nil); rec.Code != 400 {
		t.Errorf("an unknown standing: %d", rec.Code)
	}
}

func TestSecureCookie(t *testing.T) {
	s := &web.Server{Token: testToken, Index: index(1), Logger: slog.New(slog.DiscardHandler), TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}
	if err := s.Init(); err != nil {
		t.Fatal(err)
	}
	h := s.Handler()
	cases := []struct {
		name   string
		mod    func(*http.Request)
		secure bool
	}{
		{"plain", nil, false},
		{"TLS", func(r *http.Request) { r.TLS = &tls.ConnectionState{} }, true},
		{"trusted proxy, https", func(r *http.Request) { r.RemoteAddr = "10.1.2.3:5000"; r.Header.Set("X-Forwarded-Proto", "https") }, true},
		{"trusted proxy, Forwarded", func(r *http.Request) {
			r.RemoteAddr = "10.1.2.3:5000"
			r.Header.Set("Forwarded", `for=192.0.2.60;proto=https`)
		}, true},
		{"trusted proxy, http", func(r *http.Request) { r.RemoteAddr = "10.1.2.3:5000"; r.Header.Set("X-Forwarded-Proto", "http") }, false},
		{"untrusted peer says https", func(r *http.Request) { r.RemoteAddr = "192.0.2.7:5000"; r.Header.Set("X-Forwarded-Proto", "https") }, false},
	}
	for _, c := range cases {
		ck := signIn(t, h, c.mod)
		if ck.Secure != c.secure || (ck.Name == "__Host-aw_audit") != c.secure {
			t.Errorf("%s: cookie %s Secure=%v, want Secure=%v", c.name, ck.Name, ck.Secure, c.secure)
		}
	}
	for _, bad := range []string{"10.0.0.0/33", "proxy.example"} {
		if _, err := web.ParseTrustedProxies(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
	if p, err := web.ParseTrustedProxies(" 127.0.0.1, ::1 ,10.0.0.0/8"); err != nil || len(p) != 3 || p[0].Bits() != 32 {
		t.Errorf("%v %v", p, err)
	}
}

func TestQueryValidation(t *testing.T) {
	h := server(t, 10)
	for path, want := range map[string]string{
		"/api/v1/accounts?per_page=0":                                "per_page",
		"/api/v1/accounts?page=x":                                    "page",
		"/api/v1/accounts?standing=nope":                             "standing",
		"/api/v1/replay?limit=-1":                                    "limit",
		"/api/v1/replay?limit=1e9":                                   "limit",
		"/api/v1/replay?from_seq=-3":                                 "from_seq",
		"/api/v1/replay?account=" + strings.Repeat("a", 300):         "account: longer than",
		"/api/v1/replay?since=yesterday":                             "since",
		"/api/v1/replay?type=" + strings.Repeat("x&type=", 40) + "y": "type: more than",
	} {
		rec := do(h, "GET", path, nil, nil, map[string]string{"Authorization": "Bearer " + testToken})
		if rec.Code != 400 || !strings.Contains(rec.Body.String(), want) {
			t.Errorf("%.60s: %d %.200s, want 400 naming %q", path, rec.Code, rec.Body.String(), want)
		}
	}
}
