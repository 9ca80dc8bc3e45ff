package app_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/accountwatch/accountwatch/pkg/deadletter"
	"github.com/accountwatch/accountwatch/pkg/deliverylog"
	"github.com/accountwatch/accountwatch/pkg/detect"
	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/event/eventtest"
	"github.com/accountwatch/accountwatch/pkg/eventbus"
	"github.com/accountwatch/accountwatch/pkg/eventbus/bustest"
	"github.com/accountwatch/accountwatch/pkg/ops"
	"github.com/accountwatch/accountwatch/pkg/roster"
	"github.com/accountwatch/accountwatch/pkg/state"
	"github.com/accountwatch/accountwatch/services/auditor/internal/app"
)

const token = "auditor-test-token-0123456789"

type fixture struct {
	bus    *eventbus.Bus
	base   string
	events []*event.Event
	logs   *bytes.Buffer
}

// start fills a stream (an account with a chain of changes, a frozen BSS
// member), the state bucket, a dead letter, a subscription and a delivery
// record, then runs the auditor in-process (with mods applied to its settings).
func start(t *testing.T, mods ...func(*app.Settings)) *fixture {
	t.Helper()
	ctx := context.Background()
	f := &fixture{bus: bustest.Start(t, bustest.Config(t, "127.0.0.1:0")), logs: &bytes.Buffer{}}
	// Observed after the stream was created, as in any log that verifies.
	now := time.Now().UTC()
	m := eventtest.Meta("1000123", map[string]string{"team": "emea"})
	m.AccountName, m.ObservedAt = "Acme Hosting LLC", now
	hold := eventtest.Status(t, m, "active", "credit hold")
	m.Revision, m.Chain = 1, event.Chain{Seq: 2, Prev: hold.Hash()}
	m.ObservedAt = now.Add(time.Minute)
	debt := eventtest.Debt(t, m, "0", "512.40", "500", "above")
	fm := eventtest.Meta("1500000000000001", nil)
	fm.Provider, fm.Instance, fm.AccountName, fm.ObservedAt = event.ProviderAlibabaBSS, "bss-main", "Member 1500000000000001", now
	frozen := eventtest.Must(t)(event.HostingStatusChanged(fm, event.EnumValue(""), event.EnumValue("FREEZE")))
	f.events = []*event.Event{hold, debt, frozen}
	if _, err := eventbus.NewPublisher(f.bus.JS).PublishAll(ctx, f.events); err != nil {
		t.Fatal(err)
	}
	kv, _ := f.bus.JS.KeyValue(ctx, eventbus.BucketState)
	put := func(r detect.Record) {
		b, _ := json.Marshal(state.Entry{Record: r})
		if _, err := kv.Put(ctx, state.Key(r.Provider, r.Instance, r.AccountID), b); err != nil {
			t.Fatal(err)
		}
	}
	put(detect.Record{Provider: event.ProviderActivePlatform, Instance: "ap-main", AccountID: "1000123", Name: "Acme Hosting LLC", Baseline: true,
		Enums: map[string]event.Value{detect.FieldStatus: {Value: "credit_hold"}}, Debt: &detect.DebtState{Value: "512.4", Above: true}, Attrs: map[string]string{"currency": "USD"}, ChangedAt: eventtest.T0, Chain: event.Chain{Seq: 2, Prev: debt.Hash()}})
	put(detect.Record{Provider: event.ProviderAlibabaBSS, Instance: "bss-main", AccountID: "1500000000000001", Baseline: true,
		Enums: map[string]event.Value{detect.FieldHostingStatus: {Value: "freeze"}}, Chain: event.Chain{Seq: 1, Prev: frozen.Hash()}})
	put(detect.Record{Provider: event.ProviderActivePlatform, Instance: "ap-main", AccountID: "1000124", Name: "Beta Cloud", Baseline: true,
		Enums: map[string]event.Value{detect.FieldStatus: {Value: "active"}}})
	// bss-main as a whole: its upstream unreadable (the provider scope "*").
	put(detect.Record{Provider: event.ProviderAlibabaBSS, Instance: "bss-main", AccountID: event.ProviderScope, Baseline: true,
		Degraded: true, Failures: 3, FailingSince: now, LastError: "transient upstream failure: 503"})
	msg, _ := eventbus.Encode(debt)
	if err := deadletter.NewWriter(f.bus.JS).Write(ctx, deadletter.Entry{Sink: "slack", Receiver: "ops", Reason: "client_error", Err: errors.New("channel_not_found"), Attempts: 1, OriginSeq: 2}, msg.Subject, msg.Header, msg.Data); err != nil {
		t.Fatal(err)
	}
	subs, _ := f.bus.JS.KeyValue(ctx, eventbus.BucketSubscriptions)
	subs.Put(ctx, "ep_0123456789abcdef", []byte(`{"id":"ep_0123456789abcdef","url":"https://erp.example.com/hooks","content_mode":"structured","status":"active","created_at":"2026-11-23T09:00:00Z"}`))
	subs.Put(ctx, "ep_00000000000000ff", []byte(`{"id":"ep_00000000000000ff","url":"http://127.0.0.1:9999/hooks","content_mode":"structured","status":"active","created_at":"2026-11-23T09:00:00Z"}`))
	dl, err := deliverylog.Open(ctx, f.bus.JS, deliverylog.StreamConfig(f.bus.Cfg, time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	dl.Add(deliverylog.Record{Sink: "webhook", Receiver: "ep_0123456789abcdef", EventID: debt.ID(), Attempt: 1, At: time.Now(), Outcome: "delivered", Status: 204, LatencyMS: 12.5})
	// What the notifiers publish when they start (re-drives are checked against it).
	for _, e := range []roster.Entry{
		{Sink: "webhook", ReceiverBucket: eventbus.BucketSubscriptions},
		{Sink: "slack", Receivers: []string{"ops"}, Adhoc: deadletter.AddressSlackChannel},
		{Sink: "email", Receivers: []string{"default"}, Adhoc: deadletter.AddressEmail},
	} {
		if err := roster.Publish(ctx, f.bus, e); err != nil {
			t.Fatal(err)
		}
	}

	var s app.Settings
	s.Config = f.bus.Cfg
	s.URL, s.NKeySeedFile = f.bus.ClientURL(), f.bus.SeedFile(eventbus.RoleAuditor)
	s.Token, s.Listen, s.OpsListen, s.LogRetention, s.LogLevel = token, "127.0.0.1:0", "127.0.0.1:0", time.Hour, "info"
	s.StallIntervals, s.StallLeaseGrace, s.StallCheck = 3, time.Minute, time.Second
	for _, m := range mods {
		m(&s)
	}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	log, _ := ops.NewLogger(f.logs, "info", "auditor")
	rctx, cancel := context.WithCancel(ctx)
	addr := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- app.Run(rctx, s, log, func(a string) { addr <- a }) }()
	select {
	case a := <-addr:
		f.base = "http://" + a
	case err := <-done:
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return f
}

func (f *fixture) api(t *testing.T, method, path string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, f.base+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestAPI(t *testing.T) {
	f := start(t)
	resp, _ := http.Get(f.base + "/api/v1/verify")
	if resp.StatusCode != 401 {
		t.Errorf("no token: %d", resp.StatusCode)
	}
	cases := []struct {
		path string
		code int
		want string
	}{
		{"/api/v1/verify", 200, `"ok": true`},
		{"/api/v1/replay?format=jsonl", 200, f.events[2].ID()},
		{"/api/v1/replay?account=1000123&format=table", 200, "crossed above 500.00 USD"},
		{"/api/v1/replay?min_severity=loud", 400, "min_severity"},
		{"/api/v1/replay?format=xml", 400, "format"},
		{"/api/v1/timeline?provider=activeplatform&instance=ap-main&account=1000123", 200, "Debt over threshold"},
		{"/api/v1/accounts?standing=credit_hold", 200, `"account_id": "1000123"`},
	}
	for _, c := range cases {
		code, body := f.api(t, "GET", c.path)
		if code != c.code || !strings.Contains(body, c.want) {
			t.Errorf("%s: %d %.300s, want %d with %q", c.path, code, body, c.code, c.want)
		}
	}
	_, body := f.api(t, "GET", "/api/v1/replay?format=csv&provider=activeplatform")
	rows, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	if err != nil || len(rows) != 3 || rows[2][2] != f.events[1].ID() {
		t.Errorf("csv export: %v %v", err, rows)
	}
	code, body := f.api(t, "POST", "/api/v1/redrive?account=1000123&sink=webhook&receiver=ep_0123456789abcdef&dry_run=true")
	if code != 200 || !strings.Contains(body, `"events": 2`) || !strings.Contains(body, `"dry_run": true`) {
		t.Errorf("dry run: %d %s", code, body)
	}
	if code, body := f.api(t, "POST", "/api/v1/redrive?account=1000123&sink=webhook&receiver=ep_0123456789abcdef"); code != 200 || !strings.Contains(body, `"events": 2`) {
		t.Errorf("re-drive: %d %s", code, body)
	}
	r, _ := f.bus.JS.Stream(context.Background(), eventbus.StreamRedrive)
	if info, _ := r.Info(context.Background()); info.State.Msgs != 2 {
		t.Errorf("%d re-driven messages, want 2", info.State.Msgs)
	}
	if code, _ := f.api(t, "POST", "/api/v1/redrive?account=1000123&sink=webhook&receiver=a.b"); code != 400 {
		t.Errorf("bad receiver: %d", code)
	}
}

func TestConsolePages(t *testing.T) {
	f := start(t)
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	resp, _ := c.Get(f.base + "/")
	if resp.Request.URL.Path != "/login" {
		t.Fatalf("not signed in: ended at %s", resp.Request.URL)
	}
	if resp, _ := c.PostForm(f.base+"/login", url.Values{"token": {"wrong"}}); resp.StatusCode != 401 {
		t.Errorf("wrong token: %d", resp.StatusCode)
	}
	if resp, _ := c.PostForm(f.base+"/login", url.Values{"token": {token}}); resp.StatusCode != 200 || resp.Request.URL.Path != "/" {
		t.Fatalf("sign-in: %d at %s", resp.StatusCode, resp.Request.URL)
	}
	get := func(path string) string {
		resp, err := c.Get(f.base + path)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s: %v %v", path, err, resp.Status)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return string(b)
	}
	pages := []struct{ path, want string }{
		{"/", "Acme Hosting LLC"},
		{"/?standing=frozen", "1500000000000001"},
		{"/?q=beta", "Beta Cloud"},
		{"/accounts/activeplatform/ap-main/1000123", "Debt over threshold"},
		// Money with its currency, in the columns and on the account's page.
		{"/", "512.40 USD"},
		{"/accounts/activeplatform/ap-main/1000123", "512.40 USD"},
		{"/events/2", f.events[1].ID()},
		{"/events/2", "ep_0123456789abcdef"},
		{"/dead-letters", "channel_not_found"},
		{"/subscriptions", "https://erp.example.com/hooks"},
		// "active" is not "reached": each endpoint's last attempt beside it.
		{"/subscriptions", "delivered</span> 204"},
		{"/subscriptions", "nothing delivered yet"},
		{"/verify", "Intact"},
		// The "*" pseudo-account: linked from the overview, says what it is.
		{"/", `href="/connections/alibaba-bss/bss-main"`},
		{"/connections/alibaba-bss/bss-main", "This is not an account"},
		{"/connections/alibaba-bss/bss-main", "transient upstream failure: 503"},
		{"/accounts/alibaba-bss/bss-main/*", "This is not an account"},
		{"/accounts/alibaba-bss/bss-main/*poller", "the dead-man"},
	}
	for _, p := range pages {
		if body := get(p.path); !strings.Contains(body, p.want) {
			t.Errorf("%s lacks %q", p.path, p.want)
		}
	}
	if body := get("/?standing=frozen"); strings.Contains(body, "Acme Hosting LLC") {
		t.Error("the frozen filter shows an account on credit hold only")
	}
	if resp, _ := c.Get(f.base + "/events/999"); resp.StatusCode != 404 {
		t.Errorf("missing event: %d", resp.StatusCode)
	}
}

// TestConsoleInBrowser drives the console in headless Chromium: sign in, the
// overview, an account, an event, re-driving a dead letter; a screenshot of
// each goes to testdata/artifacts.
func TestConsoleInBrowser(t *testing.T) {
	f := start(t)
	tctx, shot, text := browser(t) // after start: its cleanup closes the browser before the auditor
	var overview, timeline, ce, flash string
	err := chromedp.Do(tctx,
		chromedp.Navigate(f.base+"/"),
		chromedp.WaitVisible("#token"),
		chromedp.SendKeys("#token", token),
		chromedp.Click("#signin"),
		chromedp.WaitVisible("#accounts"),
		text("#accounts", &overview),
		shot("1-overview"),
		chromedp.Click(`a.acct[href*="1000123"]`),
		chromedp.WaitVisible("#timeline"),
		text("#timeline", &timeline),
		shot("2-account"),
		chromedp.Click("a.ev"),
		chromedp.WaitVisible("#cloudevent"),
		text("#cloudevent", &ce),
		shot("3-event"),
		chromedp.Navigate(f.base+"/dead-letters"),
		chromedp.WaitVisible("#dead-letters"),
		chromedp.Click("button.redrive"),
		chromedp.WaitVisible("#flash"),
		text("#flash", &flash),
		shot("4-redriven"),
	)
	if err != nil {
		t.Fatalf("browser: %v", err)
	}
	if !strings.Contains(overview, "Acme Hosting LLC") || !strings.Contains(overview, "credit hold") {
		t.Errorf("overview: %q", overview)
	}
	if !strings.Contains(timeline, "Debt over threshold") || !strings.Contains(timeline, "Credit hold") {
		t.Errorf("timeline: %q", timeline)
	}
	if !strings.Contains(ce, f.events[1].ID()) { // the newest event is first in the timeline
		t.Errorf("event page shows %q", ce[:min(200, len(ce))])
	}
	if !strings.Contains(flash, "Re-drove dead letter") {
		t.Errorf("flash %q", flash)
	}
	r, _ := f.bus.JS.Stream(context.Background(), eventbus.StreamRedrive)
	if info, _ := r.Info(context.Background()); info.State.Msgs != 1 {
		t.Errorf("the re-drive button sent %d messages, want 1", info.State.Msgs)
	}
}
