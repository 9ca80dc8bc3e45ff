package app_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/accountwatch/accountwatch/pkg/eventbus"
	"github.com/accountwatch/accountwatch/pkg/listen/listentest"
	"github.com/accountwatch/accountwatch/pkg/ops"
	"github.com/accountwatch/accountwatch/services/auditor/internal/app"
)

func redriven(t *testing.T, f *fixture) uint64 {
	t.Helper()
	r, err := f.bus.JS.Stream(context.Background(), eventbus.StreamRedrive)
	if err != nil {
		t.Fatal(err)
	}
	info, _ := r.Info(context.Background())
	return info.State.Msgs
}

// TestRedriveTargetsValidated: a re-drive to a sink, receiver or address
// that cannot be delivered to is a 400 naming the field, and nothing is
// parked in AW_REDRIVE.
func TestRedriveTargetsValidated(t *testing.T) {
	f := start(t)
	cases := []struct{ query, want string }{
		{"sink=pager&receiver=ops", `sink: \"pager\" is not a sink that has started (known: email, slack, webhook)`},
		{"sink=slack&receiver=nobody", `receiver: sink slack has no receiver \"nobody\"`},
		{"sink=webhook&receiver=ep_ffffffffffffffff", `receiver: sink webhook has no receiver`},
		{"sink=webhook&to=" + url.QueryEscape("http://127.0.0.1:8080/"), "to: sink webhook takes no ad-hoc destination"},
		{"sink=email&to=" + url.QueryEscape("attacker@evil.example\r\nBcc: all@acme.example"), "to: " + `\"attacker@evil.example\\r\\nBcc: all@acme.example\" holds a control character`},
		{"sink=email&to=" + url.QueryEscape("Eve <eve@evil.example>"), "not an email address"},
		{"sink=slack&to=" + url.QueryEscape("#Not A Channel"), "not a Slack channel"},
		{"sink=email&receiver=adhoc", "to: required"},
		{"sink=slack", "receiver: required"},
	}
	for _, c := range cases {
		code, body := f.api(t, "POST", "/api/v1/redrive?account=1000123&"+c.query)
		if code != 400 || !strings.Contains(body, c.want) {
			t.Errorf("%s: %d %s, want 400 with %q", c.query, code, body, c.want)
		}
	}
	if n := redriven(t, f); n != 0 {
		t.Errorf("%d messages parked in AW_REDRIVE", n)
	}
	if code, body := f.api(t, "POST", "/api/v1/redrive?account=1000123&sink=email&to="+url.QueryEscape("cfo@acme.example")); code != 200 || !strings.Contains(body, `"events": 2`) {
		t.Errorf("a valid ad-hoc re-drive: %d %s", code, body)
	}
}

var csrfInput = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// TestConsoleSessionsAndForms over real HTTP: the re-drive form needs its
// token, the outcome is told once (from the session, never from the URL),
// and sign-out makes the cookie worthless.
func TestConsoleSessionsAndForms(t *testing.T) {
	f := start(t)
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	if resp, err := c.PostForm(f.base+"/login", url.Values{"token": {token}}); err != nil || resp.Request.URL.Path != "/" {
		t.Fatalf("sign-in: %v", err)
	}
	u, _ := url.Parse(f.base)
	cookie := jar.Cookies(u)[0]
	get := func(path string) string {
		resp, err := c.Get(f.base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	page := get("/dead-letters?flash=" + url.QueryEscape("<b>Account locked</b>: call 555-0100"))
	if strings.Contains(page, "555-0100") {
		t.Error("the flash parameter is reflected")
	}
	m := csrfInput.FindStringSubmatch(page)
	if m == nil {
		t.Fatal("no CSRF token in the dead-letters form")
	}
	resp, _ := c.PostForm(f.base+"/dead-letters/1/redrive", url.Values{})
	if resp.StatusCode != http.StatusForbidden || redriven(t, f) != 0 {
		t.Errorf("re-drive without the token: %d, %d re-driven", resp.StatusCode, redriven(t, f))
	}
	resp, _ = c.PostForm(f.base+"/dead-letters/1/redrive", url.Values{"csrf": {m[1]}})
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.Contains(string(body), "Re-drove dead letter 1") || redriven(t, f) != 1 {
		t.Errorf("re-drive with the token: %d %d", resp.StatusCode, redriven(t, f))
	}
	if strings.Contains(get("/dead-letters"), "Re-drove dead letter 1") {
		t.Error("the outcome is shown twice")
	}
	if resp, _ := c.PostForm(f.base+"/logout", url.Values{"csrf": {m[1]}}); resp.Request.URL.Path != "/login" {
		t.Errorf("sign-out ended at %s", resp.Request.URL)
	}
	// The old cookie, replayed by hand, no longer opens anything.
	req, _ := http.NewRequest("GET", f.base+"/api/v1/accounts", nil)
	req.AddCookie(&http.Cookie{Name: cookie.Name, Value: cookie.Value})
	if resp, _ := http.DefaultClient.Do(req); resp.StatusCode != 401 {
		t.Errorf("the cookie after sign-out: %d", resp.StatusCode)
	}
	if strings.Contains(f.logs.String(), cookie.Value) || strings.Contains(f.logs.String(), m[1]) {
		t.Error("a session cookie or CSRF token is in the log")
	}
}

// TestTLSConsole: with a certificate the console speaks HTTPS and the
// session cookie is Secure, under the __Host- prefix.
func TestTLSConsole(t *testing.T) {
	f := start(t)
	cert, key, client := listentest.Cert(t, t.TempDir(), "auditor")
	var s app.Settings
	s.Config = f.bus.Cfg
	s.URL, s.NKeySeedFile = f.bus.ClientURL(), f.bus.SeedFile(eventbus.RoleAuditor)
	s.Token, s.Listen, s.OpsListen, s.LogRetention, s.LogLevel = token, "127.0.0.1:0", "127.0.0.1:0", time.Hour, "info"
	s.TLSCert, s.TLSKey = cert, key
	s.StallIntervals, s.StallLeaseGrace, s.StallCheck = 3, time.Minute, time.Second
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	log, _ := ops.NewLogger(io.Discard, "info", "auditor")
	ctx, cancel := context.WithCancel(context.Background())
	addr, done := make(chan string, 1), make(chan error, 1)
	go func() { done <- app.Run(ctx, s, log, func(a string) { addr <- a }) }()
	var base string
	select {
	case a := <-addr:
		base = "https://" + a
	case err := <-done:
		t.Fatal(err)
	}
	defer func() { cancel(); <-done }()
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := client.PostForm(base+"/login", url.Values{"token": {token}})
	if err != nil {
		t.Fatal(err)
	}
	cs := resp.Cookies()
	if len(cs) != 1 || !cs[0].Secure || cs[0].Name != "__Host-aw_audit" || resp.Header.Get("Strict-Transport-Security") == "" {
		t.Errorf("over TLS: %v %v", cs, resp.Header)
	}
	bad := s
	bad.TLSKey = ""
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "AW_AUDITOR_TLS_KEY") {
		t.Errorf("a certificate without its key: %v", err)
	}
	bad = s
	bad.TrustedProxies = "proxy.example"
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "AW_AUDITOR_TRUSTED_PROXIES") {
		t.Errorf("a bad trusted proxy: %v", err)
	}
}

// TestCrossSiteFormsRefusedInBrowser signs in to the console in headless
// Chromium, then opens pages of an attacker that auto-submit forms to the
// console: one on another site (localhost, while the console is 127.0.0.1),
// one on the same site but another port. Neither re-drives the dead letter
// nor sends an account's events to an outside address; the console's own
// button then still works in the same session.
func TestCrossSiteFormsRefusedInBrowser(t *testing.T) {
	chromium, err := exec.LookPath("chromium")
	switch {
	case err != nil && os.Getenv("CI") == "true":
		t.Fatalf("Debian package chromium is missing (.ci/run installs it): %v", err)
	case err != nil:
		t.Skipf("needs Debian package chromium (apt-get install chromium): %v", err)
	}
	f := start(t)
	attacker := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		action := f.base + "/dead-letters/1/redrive"
		if r.URL.Query().Get("form") == "api" {
			action = f.base + "/api/v1/redrive?account=1000123&sink=email&to=" + url.QueryEscape("attacker@evil.example")
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!DOCTYPE html><html><body onload="document.forms[0].submit()"><form method="post" action="%s"><input type="hidden" name="csrf" value="guessed"></form></body></html>`, action)
	}))
	defer attacker.Close()
	port := attacker.URL[strings.LastIndexByte(attacker.URL, ':')+1:]

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium), chromedp.NoSandbox, chromedp.Flag("disable-dev-shm-usage", true))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancel()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("browser: %v", err)
	}
	tctx, tcancel := context.WithTimeout(ctx, 90*time.Second)
	defer tcancel()
	if err := chromedp.Do(tctx, chromedp.Navigate(f.base+"/"), chromedp.WaitVisible("#token"), chromedp.SendKeys("#token", token),
		chromedp.Click("#signin"), chromedp.WaitVisible("#accounts")); err != nil {
		t.Fatalf("sign-in: %v", err)
	}
	// landed waits until the forged form's submission has navigated to the
	// console, and returns what the console answered.
	landed := func() (string, error) {
		for tctx.Err() == nil {
			loc, err := chromedp.Run(tctx, chromedp.Location())
			if err == nil && strings.HasPrefix(loc, f.base) {
				// The location changes before the document does: a body
				// read meanwhile finds the old document's nodes gone ("No
				// node with given id found") or the attacker's page, which
				// has no text; both are asked again.
				text, err := chromedp.Run(tctx, chromedp.Text("body"))
				if err == nil && strings.TrimSpace(text) != "" {
					return text, nil
				}
			}
			time.Sleep(20 * time.Millisecond) // the page is navigating: ask again
		}
		return "", tctx.Err()
	}
	for i, c := range []struct{ name, page, sees string }{
		{"same-site, other port", "http://127.0.0.1:" + port + "/?form=console", "same-site"},
		{"same-site, other port, API", "http://127.0.0.1:" + port + "/?form=api", "same-site"},
		{"cross-site", "http://localhost:" + port + "/?form=console", "cross-site"},
		{"cross-site, API", "http://localhost:" + port + "/?form=api", "cross-site"},
	} {
		if err := chromedp.Do(tctx, chromedp.Navigate(c.page)); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		text, err := landed()
		if err != nil {
			t.Fatalf("%s: the forged form did not reach the console: %v", c.name, err)
		}
		if !strings.Contains(text, "cross-origin request refused") {
			t.Errorf("%s: the console answered %q", c.name, text)
		}
		if n := strings.Count(f.logs.String(), `"sec_fetch_site":"`+c.sees+`"`); n != i%2+1 {
			t.Errorf("%s: %d refusals logged with Sec-Fetch-Site %s, want %d (logs: %s)", c.name, n, c.sees, i%2+1, f.logs.String())
		}
		if n := redriven(t, f); n != 0 {
			t.Fatalf("%s: %d messages re-driven", c.name, n)
		}
	}
	var flash string
	err = chromedp.Do(tctx, chromedp.Navigate(f.base+"/dead-letters"), chromedp.WaitVisible("#dead-letters"), chromedp.Click("button.redrive"),
		chromedp.WaitVisible("#flash"), func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
			v, err := chromedp.Text("#flash")(ctx, tg)
			flash = v
			return chromedp.Void{}, err
		})
	if err != nil || !strings.Contains(flash, "Re-drove dead letter 1") || redriven(t, f) != 1 {
		t.Errorf("the console's own form in the same session: %v %q, %d re-driven", err, flash, redriven(t, f))
	}
}
