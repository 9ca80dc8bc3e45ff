package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/accountwatch/accountwatch/pkg/audit"
	"github.com/accountwatch/accountwatch/pkg/deadletter"
	"github.com/accountwatch/accountwatch/pkg/deliverylog"
	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/event/eventtest"
	"github.com/accountwatch/accountwatch/pkg/eventbus"
	"github.com/accountwatch/accountwatch/pkg/eventbus/bustest"
	"github.com/accountwatch/accountwatch/pkg/ops"
	"github.com/accountwatch/accountwatch/pkg/ops/opstest"
	"github.com/accountwatch/accountwatch/pkg/route"
	"github.com/accountwatch/accountwatch/pkg/silence"
	"github.com/accountwatch/accountwatch/pkg/sink"
	"github.com/accountwatch/accountwatch/services/slack-notifier/internal/app"
	"github.com/accountwatch/accountwatch/services/slack-notifier/internal/slackcapture"
)

const token = "xoxb-1111-2222-secrettokenvalue"

type stack struct {
	bus   *eventbus.Bus
	slack *slackcapture.Server
	out   *opstest.Buffer
	logs  *opstest.Buffer
}

func settings(t *testing.T, bus *eventbus.Bus, apiURL, yaml string) app.Settings {
	t.Helper()
	var s app.Settings
	s.Config = bus.Cfg
	s.URL, s.NKeySeedFile = bus.ClientURL(), bus.SeedFile(eventbus.RoleSlack)
	s.Settings = sink.DefaultSettings()
	s.Start = "all"
	s.BackoffInitial, s.BackoffMax = 50*time.Millisecond, 200*time.Millisecond
	s.AckWait = 5 * time.Second
	s.Token, s.APIURL = token, apiURL
	s.Channel = "#accountwatch"
	s.LocalDir = t.TempDir()
	s.OpsListen = "127.0.0.1:0"
	s.LogLevel = "debug"
	if yaml != "" {
		p := filepath.Join(t.TempDir(), "slack.yaml")
		if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		s.ConfigFile = p
	}
	return s
}

// start runs the notifier in-process against a fresh bus and capture server.
func start(t *testing.T, yaml string, inject func(int, slackcapture.Call) *slackcapture.Failure, mod ...func(*app.Settings)) *stack {
	t.Helper()
	st, s := prepare(t, yaml, inject, mod...)
	st.run(t, s)
	return st
}

// prepare is start without running the notifier: a test publishes first.
func prepare(t *testing.T, yaml string, inject func(int, slackcapture.Call) *slackcapture.Failure, mod ...func(*app.Settings)) (*stack, app.Settings) {
	t.Helper()
	st := &stack{bus: bustest.Start(t, bustest.Config(t, "127.0.0.1:0")), slack: slackcapture.Start(inject), out: &opstest.Buffer{}, logs: &opstest.Buffer{}}
	t.Cleanup(st.slack.Stop)
	s := settings(t, st.bus, st.slack.URL(), yaml)
	for _, m := range mod {
		m(&s)
	}
	return st, s
}

func (st *stack) run(t *testing.T, s app.Settings) (stop func()) {
	t.Helper()
	bustest.Provision(t, st.bus, deliverylog.StreamConfig(st.bus.Cfg, s.LogRetention)) // the admin's, as awctl provision does
	log, err := ops.NewLogger(st.logs, s.LogLevel, "slack-notifier")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx, s, log, st.out) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("notifier: %v", err)
			}
		})
	}
	t.Cleanup(func() {
		stop()
		if strings.Contains(st.logs.String(), token) || strings.Contains(st.out.String(), token) {
			t.Error("the Slack token appears in the logs")
		}
	})
	return stop
}

const perEvent = `
receivers:
  - {name: ops, channel: "#ops"}
route: {receiver: ops, group_wait: 0s, group_interval: 0s}
links:
  ap-main: "https://ap.example.com/accounts/{account}"
`

func TestThreadAndUpdateInPlace(t *testing.T) {
	st := start(t, perEvent, nil)
	m := eventtest.Meta("1000123", map[string]string{"team": "emea"})
	hold := eventtest.Status(t, m, "active", "credit hold")
	bustest.Publish(t, st.bus, hold)
	bustest.Eventually(t, "opening message", func() bool { return len(st.slack.Posted("chat.postMessage")) == 1 })
	m.Revision = 1
	debt := eventtest.Debt(t, m, "0", "512.40", "500", "above")
	bustest.Publish(t, st.bus, debt)
	bustest.Eventually(t, "reply", func() bool { return len(st.slack.Posted("chat.postMessage")) == 2 })
	m.Revision = 2
	back := eventtest.Status(t, m, "credit_hold", "active")
	bustest.Publish(t, st.bus, back)
	bustest.Eventually(t, "recovery reply and update", func() bool {
		return len(st.slack.Posted("chat.postMessage")) == 3 && len(st.slack.Posted("chat.update")) == 1
	})
	other := eventtest.Hosting(t, "1500000000000001", "", "FREEZE")
	bustest.Publish(t, st.bus, other)
	bustest.Eventually(t, "second account's own thread", func() bool { return len(st.slack.Posted("chat.postMessage")) == 4 })

	posts := st.slack.Posted("chat.postMessage")
	open := posts[0]
	if open.ThreadTS != "" || open.Channel != "#ops" || !strings.Contains(open.Text, "Credit hold") || !strings.Contains(open.Attachments, "#D40E0D") {
		t.Errorf("opening message: %+v", open)
	}
	if !strings.Contains(open.Attachments, "https://ap.example.com/accounts/1000123") || !strings.Contains(open.Attachments, "team=emea") {
		t.Error("opening message lacks the account link or the labels")
	}
	for i, p := range posts[1:3] {
		if p.ThreadTS != open.TS || p.Channel != "Cops" {
			t.Errorf("change %d not in the account's thread: thread_ts %q channel %q, want %q in Cops", i+2, p.ThreadTS, p.Channel, open.TS)
		}
	}
	if !strings.Contains(posts[1].Attachments, "512.40 USD") || !strings.Contains(posts[1].Attachments, "500.00 USD") {
		t.Errorf("debt message lacks debt vs threshold: %s", posts[1].Attachments)
	}
	up := st.slack.Posted("chat.update")[0]
	if up.TS != open.TS || !strings.Contains(up.Attachments, "#2EB67D") || !strings.Contains(up.Text, "active again") {
		t.Errorf("update: %+v", up)
	}
	if posts[3].ThreadTS != "" {
		t.Error("another account replied in the first account's thread")
	}
	for i, e := range []*event.Event{hold, debt, back, other} {
		if len(posts[i].EventIDs) == 0 || posts[i].EventIDs[len(posts[i].EventIDs)-1] != e.ID() {
			t.Errorf("message %d names events %v, want %s", i, posts[i].EventIDs, e.ID())
		}
	}
}

func TestGroupedNotification(t *testing.T) {
	st, s := prepare(t, `
receivers: [{name: ops, channel: "#ops"}]
route:
  receiver: ops
  group_wait: 2s
  group_by: [provider, instance, type]
`, nil)
	evs := make([]*event.Event, 500)
	for i := range evs {
		evs[i] = eventtest.Hosting(t, fmt.Sprintf("15%014d", i), "", "FREEZE")
	}
	// Stored before the notifier starts: the group's window measures how
	// fast the notifier takes them, not how fast 500 fsync'd publishes are.
	bustest.Publish(t, st.bus, evs...)
	st.run(t, s)
	bustest.Eventually(t, "a grouped message", func() bool { return len(st.slack.Posted("chat.postMessage")) >= 1 })
	time.Sleep(500 * time.Millisecond)
	posts := st.slack.Posted("chat.postMessage")
	if len(posts) != 1 {
		t.Fatalf("%d messages for 500 frozen accounts, want 1", len(posts))
	}
	if !strings.Contains(posts[0].Text, "500 accounts") || !strings.Contains(posts[0].Attachments, "and 480 more") {
		t.Errorf("grouped message: %q", posts[0].Text)
	}
}

func TestRoutingAndSilences(t *testing.T) {
	st, s := prepare(t, `
receivers:
  - {name: ops, channel: "#ops"}
  - {name: finance, channel: "#finance"}
route:
  receiver: ops
  group_wait: 0s
  routes:
    - match: {type: ["account.debt.*"]}
      receiver: finance
    - match: {provider: [alibaba-bss]}
      min_severity: critical
      receiver: finance
      continue: true
`, nil)
	store, err := silence.Open(context.Background(), st.bus.JS)
	if err != nil {
		t.Fatal(err)
	}
	ms, _ := route.ParseMatchers([]string{"account=2000"})
	if _, err := store.Add(context.Background(), silence.Silence{Matchers: ms, EndsAt: time.Now().Add(time.Hour), CreatedBy: "test", Comment: "known"}); err != nil {
		t.Fatal(err)
	}
	st.run(t, s) // loads the silences before it consumes
	debt := eventtest.Debt(t, eventtest.Meta("1000", nil), "0", "10", "500", "")
	silenced := eventtest.Status(t, eventtest.Meta("2000", nil), "active", "credit_hold")
	status := eventtest.Status(t, eventtest.Meta("3000", nil), "active", "credit_hold")
	// critical: finance; continue finds no later match, and a matched child
	// means the root is no leaf, so ops does not get it.
	freeze := eventtest.CreditLimit(t, "4000", "thaw", "freeze")
	bustest.Publish(t, st.bus, debt, silenced, status, freeze)
	bustest.Eventually(t, "3 messages", func() bool { return len(st.slack.Posted("chat.postMessage")) == 3 })
	time.Sleep(300 * time.Millisecond)
	got := map[string][]string{}
	for _, p := range st.slack.Posted("chat.postMessage") {
		got[p.Channel] = append(got[p.Channel], p.EventIDs[len(p.EventIDs)-1])
	}
	want := map[string][]string{"#finance": {debt.ID(), freeze.ID()}, "#ops": {status.ID()}}
	for ch, ids := range want {
		for _, id := range ids {
			found := false
			for _, g := range got[ch] {
				found = found || g == id
			}
			if !found {
				t.Errorf("%s did not get %s; got %v", ch, id, got)
			}
		}
	}
	for _, p := range st.slack.Calls() {
		for _, id := range p.EventIDs {
			if id == silenced.ID() {
				t.Error("a silenced event reached Slack")
			}
		}
	}
}

func TestRateLimitStorm(t *testing.T) {
	inject := func(n int, c slackcapture.Call) *slackcapture.Failure {
		if n <= 3 {
			return &slackcapture.Failure{Status: 429, RetryAfter: 1}
		}
		return nil
	}
	// One delivery at a time: a call already on its way when a 429 is
	// answered cannot be recalled, and how late such a call reaches Slack on
	// a loaded machine is no measure of the pause. So no call may start
	// between a 429's answer and the end of its Retry-After.
	st := start(t, perEvent, inject, func(s *app.Settings) { s.Concurrency = 1 })
	evs := make([]*event.Event, 12)
	for i := range evs {
		evs[i] = eventtest.Status(t, eventtest.Meta(fmt.Sprintf("r%d", i), nil), "active", "credit_hold")
	}
	bustest.Publish(t, st.bus, evs...)
	bustest.Eventually(t, "every event posted", func() bool { return len(st.slack.Posted("chat.postMessage")) >= 12 })
	time.Sleep(300 * time.Millisecond)
	count := map[string]int{}
	for _, p := range st.slack.Posted("chat.postMessage") {
		count[p.EventIDs[0]]++
	}
	for _, e := range evs {
		if count[e.ID()] != 1 {
			t.Errorf("%s posted %d times", e.Data.AccountID, count[e.ID()])
		}
	}
	calls := st.slack.Calls()
	for _, c := range calls {
		if c.Status != 429 {
			continue
		}
		for _, later := range calls {
			if later.At.After(c.Done) && later.At.Before(c.Done.Add(time.Second)) {
				t.Errorf("a call %s after a 429 with Retry-After: 1 was answered", later.At.Sub(c.Done))
			}
		}
	}
}

func TestErrorsClassified(t *testing.T) {
	inject := func(n int, c slackcapture.Call) *slackcapture.Failure {
		switch {
		case strings.Contains(c.Attachments, "deadchan"):
			return &slackcapture.Failure{Error: "channel_not_found"}
		case strings.Contains(c.Attachments, "flaky") && n <= 3:
			return &slackcapture.Failure{Status: 502}
		}
		return nil
	}
	st := start(t, perEvent, inject)
	dead := eventtest.Status(t, eventtest.Meta("deadchan", nil), "active", "credit_hold")
	flaky := eventtest.Status(t, eventtest.Meta("flaky", nil), "active", "credit_hold")
	bustest.Publish(t, st.bus, dead, flaky)
	store, _ := deadletter.Open(context.Background(), st.bus.JS)
	var letters []deadletter.Letter
	bustest.Eventually(t, "dead letter", func() bool {
		letters, _ = store.List(context.Background(), deadletter.Filter{Sink: "slack"})
		return len(letters) == 1
	})
	if l := letters[0]; l.EventID != dead.ID() || l.Reason != "client_error" || !strings.Contains(l.Error, "channel_not_found") || !strings.Contains(l.Error, "fix the receiver's channel") {
		t.Errorf("letter %+v", l)
	}
	bustest.Eventually(t, "flaky delivered after 5xx", func() bool {
		for _, p := range st.slack.Posted("chat.postMessage") {
			if p.EventIDs[0] == flaky.ID() {
				return true
			}
		}
		return false
	})
}

func TestPIINeverInMessage(t *testing.T) {
	st := start(t, perEvent, nil)
	m := eventtest.Meta("1000777", nil)
	e, err := event.Discovered(m, map[string]string{
		"status": "active", "custom_attributes.passport": "P1234567", "login_email": "cfo@acme.example", "contact_phone": "+15550100",
	})
	if err != nil {
		t.Fatal(err)
	}
	bustest.Publish(t, st.bus, e)
	bustest.Eventually(t, "posted", func() bool { return len(st.slack.Posted("chat.postMessage")) == 1 })
	p := st.slack.Posted("chat.postMessage")[0]
	for _, pii := range []string{"P1234567", "cfo@acme.example", "+15550100", "passport"} {
		if strings.Contains(p.Text+p.Attachments, pii) {
			t.Errorf("message carries %q", pii)
		}
	}
	if !strings.Contains(p.Attachments, "status") {
		t.Error("allow-listed attribute missing")
	}
}

func TestLocalSinkWithoutToken(t *testing.T) {
	st := start(t, "", nil, func(s *app.Settings) { s.Token = "" })
	bustest.Publish(t, st.bus, eventtest.Status(t, eventtest.Meta("42", nil), "active", "credit_hold"))
	bustest.Eventually(t, "a local line", func() bool {
		return strings.Contains(st.out.String(), "slack #accountwatch (post): [critical] Credit hold")
	})
	if !strings.Contains(st.logs.String(), "messages go to the local sink") {
		t.Error("the notifier does not say it writes to the local sink")
	}
	if len(st.slack.Calls()) != 0 {
		t.Error("called Slack without a token")
	}
}

func TestLoadFileErrors(t *testing.T) {
	cases := []struct{ yaml, want string }{
		{"receivers: [{name: a}]\nroute: {receiver: a}", "receivers[0] (a): set channel or webhook_url"},
		{"receivers: [{name: 'a b', channel: x}]\nroute: {receiver: a}", "receivers[0].name"},
		{"receivers: [{name: a, webhook_url: 'ftp://x'}]\nroute: {receiver: a}", "receivers[0] (a): webhook_url: not an http(s) URL"},
		{"receivers: [{name: a, channel: x}]\nroute: {receiver: b}", `"b" is not defined`},
		{"receivers: [{name: a, channel: x, colour: red}]\nroute: {receiver: a}", "colour"},
	}
	for _, c := range cases {
		p := filepath.Join(t.TempDir(), "s.yaml")
		os.WriteFile(p, []byte(c.yaml), 0o600)
		_, _, err := app.LoadFile(p, "#x")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want %q", c.yaml, err, c.want)
		}
	}
}

func TestExampleConfigLoads(t *testing.T) {
	f, tree, err := app.LoadFile(filepath.Join("..", "..", "..", "..", "deploy", "examples", "slack.yaml"), "#x")
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Receivers) != 3 || len(tree.Receivers()) != 3 {
		t.Errorf("receivers %d, routed %v", len(f.Receivers), tree.Receivers())
	}
	crit := eventtest.Status(t, eventtest.Meta("1", nil), "active", "credit_hold")
	var got []string
	for _, l := range tree.Match(crit) {
		got = append(got, l.Receiver)
	}
	if strings.Join(got, ",") != "billing-oncall,finance" {
		t.Errorf("a critical status change goes to %v", got)
	}
	frozen := tree.Match(eventtest.Hosting(t, "1", "", "TRUSTEESHIP"))
	if len(frozen) != 1 || strings.Join(frozen[0].GroupBy, ",") != "provider,instance,type" {
		t.Errorf("a BSS hosting change is not summarised per provider: %+v", frozen[0])
	}
}

func TestIncomingWebhookMode(t *testing.T) {
	var mu sync.Mutex
	var bodies []string
	calls := 0
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		calls++
		if calls == 1 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		bodies = append(bodies, string(b))
		io.WriteString(w, "ok")
	}))
	defer hook.Close()
	st := start(t, fmt.Sprintf(`
receivers: [{name: partners, webhook_url: "%s/services/T0/B0/secretpath"}]
route: {receiver: partners, group_wait: 0s, group_interval: 0s}
`, hook.URL), nil)
	m := eventtest.Meta("55", nil)
	hold := eventtest.Status(t, m, "active", "credit_hold")
	bustest.Publish(t, st.bus, hold)
	bustest.Eventually(t, "the 429", func() bool { mu.Lock(); defer mu.Unlock(); return calls == 1 })
	m.Revision = 1
	back := eventtest.Status(t, m, "credit_hold", "active")
	bustest.Publish(t, st.bus, back)
	bustest.Eventually(t, "both changes posted after the 429", func() bool {
		mu.Lock()
		defer mu.Unlock()
		all := strings.Join(bodies, "")
		return strings.Contains(all, hold.ID()) && strings.Contains(all, back.ID())
	})
	mu.Lock()
	defer mu.Unlock()
	// The retried change comes first: in an earlier post, or earlier in the same one.
	all := strings.Join(bodies, "")
	if strings.Index(all, hold.ID()) > strings.Index(all, back.ID()) {
		t.Error("the change retried after a 429 was overtaken by the later one")
	}
	var msg struct {
		Text        string `json:"text"`
		ThreadTS    string `json:"thread_ts"`
		Attachments []struct {
			Color  string            `json:"color"`
			Blocks []json.RawMessage `json:"blocks"`
		} `json:"attachments"`
	}
	if err := json.Unmarshal([]byte(bodies[0]), &msg); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(msg.Text, "credit_hold") || msg.ThreadTS != "" || len(msg.Attachments) != 1 || msg.Attachments[0].Color == "" || len(msg.Attachments[0].Blocks) < 3 {
		t.Errorf("webhook message: %s", bodies[0])
	}
	if len(st.slack.Calls()) != 0 {
		t.Error("webhook mode called the Web API")
	}
	if strings.Contains(st.logs.String(), "secretpath") {
		t.Error("the webhook URL's secret path is in the logs")
	}
}

func TestAdhocRedriveToAChannel(t *testing.T) {
	st := start(t, perEvent, nil)
	ev := eventtest.Status(t, eventtest.Meta("777", nil), "active", "credit_hold")
	bustest.Publish(t, st.bus, ev)
	bustest.Eventually(t, "the normal delivery", func() bool { return len(st.slack.Posted("chat.postMessage")) == 1 })
	n, err := audit.Redrive(context.Background(), st.bus.JS, audit.Selection{Account: "777"}, audit.Target{Sink: "slack", To: "#audit-review"}, false, nil)
	if err != nil || n != 1 {
		t.Fatalf("re-drive: %d %v", n, err)
	}
	bustest.Eventually(t, "the re-drive in the chosen channel", func() bool { return len(st.slack.Posted("chat.postMessage")) == 2 })
	p := st.slack.Posted("chat.postMessage")[1]
	if p.Channel != "#audit-review" || p.ThreadTS != "" || !strings.Contains(p.Attachments, "re-sent") || p.EventIDs[0] != ev.ID() {
		t.Errorf("ad-hoc post: %+v", p)
	}
}
