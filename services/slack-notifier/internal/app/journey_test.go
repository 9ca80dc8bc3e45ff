package app_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/accountwatch/accountwatch/pkg/detect"
	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/event/eventtest"
	"github.com/accountwatch/accountwatch/pkg/eventbus/bustest"
	"github.com/accountwatch/accountwatch/pkg/state"
	"github.com/accountwatch/accountwatch/services/slack-notifier/internal/app"
	"github.com/accountwatch/accountwatch/services/slack-notifier/internal/slackcapture"
)

const journeyYAML = `
receivers: [{name: ops, channel: "#ops"}]
route:
  receiver: ops
  group_wait: 0s
  group_interval: 0s
  repeat_interval: 2s
  runbook:
    account.status.changed: "https://wiki.example/runbooks/credit-hold"
    default: "Call the account manager; see the finance runbook"
`

// TestFinanceJourney: an account goes warning → credit hold → reminder →
// active again (still over its threshold) → paid, through the real
// runtime and slacktest. Its thread's opening message follows its standing
// in place; the recovery says what is still wrong; every alert names the
// account, links the console and carries the runbook line; reminders stop
// once the account is in good standing. AW_SCREENSHOT_DIR keeps the
// messages for docs/screenshots.
func TestFinanceJourney(t *testing.T) {
	st := start(t, journeyYAML, nil, func(s *app.Settings) { s.ConsoleURL = "http://127.0.0.1:8491" })
	j := eventtest.NewJourney(t, "1000123", time.Now().Add(-5*time.Minute))
	posts := func() []slackcapture.Call { return st.slack.Posted("chat.postMessage") }
	updates := func() []slackcapture.Call { return st.slack.Posted("chat.update") }

	bustest.Publish(t, st.bus, j.Ladder)
	bustest.Eventually(t, "the warning opens the thread", func() bool { return len(posts()) == 1 })
	open := posts()[0]
	for _, want := range []string{"Debt past 80% of its threshold", "Acme Hosting GmbH (1000123)", "490.00 EUR", "480.00 EUR", "600.00 EUR",
		"http://127.0.0.1:8491/accounts/activeplatform/ap-main/1000123", "Call the account manager", "#F2A100", "Good standing"} {
		if !strings.Contains(open.Attachments+open.Text, want) {
			t.Errorf("the warning lacks %q", want)
		}
	}

	bustest.Publish(t, st.bus, j.Hold)
	bustest.Eventually(t, "the hold in the thread, the opening turned red", func() bool { return len(posts()) == 2 && len(updates()) == 1 })
	if p := posts()[1]; p.ThreadTS != open.TS || !strings.Contains(p.Attachments, "https://wiki.example/runbooks/credit-hold") {
		t.Errorf("hold reply %+v", p)
	}
	if u := updates()[0]; u.TS != open.TS || !strings.Contains(u.Attachments, "#D40E0D") ||
		!strings.Contains(u.Attachments, "Credit hold; debt 620.00 EUR over the 600.00 EUR threshold") {
		t.Errorf("the opening message does not show the hold: %s", u.Attachments)
	}

	bustest.Eventually(t, "a reminder in the thread", func() bool { return len(posts()) == 3 })
	rem := posts()[2]
	if rem.ThreadTS != open.TS || !strings.Contains(rem.Attachments, "Still credit hold; debt 620.00 EUR over the 600.00 EUR threshold") || rem.At.Sub(posts()[1].At) < 2*time.Second {
		t.Errorf("reminder %+v after %s", rem, rem.At.Sub(posts()[1].At))
	}

	bustest.Publish(t, st.bus, j.Active)
	const still = "Account active again; debt 620.00 EUR still over the 600.00 EUR threshold"
	bustest.Eventually(t, "the recovery says what is still wrong", func() bool {
		u := updates()
		return len(u) == 2 && strings.Contains(u[1].Attachments, still)
	})
	if u := updates()[1]; !strings.Contains(u.Attachments, "#F2A100") {
		t.Errorf("the opening message of an account still over its threshold is not orange: %s", u.Attachments)
	}
	var reply slackcapture.Call
	for _, p := range posts() {
		if strings.Contains(p.Text, "active again") {
			reply = p
		}
	}
	if !strings.Contains(reply.Text, still) || reply.ThreadTS != open.TS {
		t.Errorf("recovery reply %q", reply.Text)
	}

	bustest.Publish(t, st.bus, j.Paid)
	bustest.Eventually(t, "paid: the opening message green", func() bool {
		u := updates()
		return len(u) == 3 && strings.Contains(u[2].Attachments, "#2EB67D") && strings.Contains(u[2].Attachments, "Good standing")
	})
	n := len(posts())
	time.Sleep(5 * time.Second) // two repeat_intervals and more: a reminder would have come
	if len(posts()) != n {
		t.Errorf("%d reminders after the account was back in good standing", len(posts())-n)
	}
	if dir := os.Getenv("AW_SCREENSHOT_DIR"); dir != "" {
		calls := st.slack.Calls()
		b, _ := json.MarshalIndent(calls, "", "  ")
		errs := []error{os.WriteFile(filepath.Join(dir, "slack-journey.json"), b, 0o644)}
		// One page per step, from the first call of the step to the next
		// step's: the warning opens the thread; the hold (a reply, the
		// opening turned red); the reminder; the recovery; paid.
		steps := []struct{ name, title, marks string }{
			{"slack-1-warning", "1. Warning: the debt passes 80% of its threshold; the account's thread opens", "Debt past 80%"},
			{"slack-2-credit-hold", "2. Credit hold: a reply in the thread; the opening message turns red in place", "Credit hold —"},
			{"slack-3-reminder", "3. A reminder after repeat_interval: still on credit hold", "⏰"},
			{"slack-4-recovery", "4. Active again, saying what is still wrong; the opening message follows", "active again"},
			{"slack-5-paid", "5. Paid under the threshold: good standing, the opening message green", "Debt back under threshold"},
		}
		starts := make([]int, len(steps)+1)
		for i, st := range steps {
			starts[i] = slices.IndexFunc(calls, func(c slackcapture.Call) bool { return strings.Contains(c.Attachments, st.marks) })
		}
		starts[len(steps)] = len(calls)
		for i, st := range steps {
			errs = append(errs, os.WriteFile(filepath.Join(dir, st.name+".html"), []byte(previewHTML(st.title, calls, starts[i], starts[i+1])), 0o644))
		}
		if err := errors.Join(errs...); err != nil {
			t.Fatal(err)
		}
	}
}

// TestStandingReportInSlack: a route's report is one channel message
// listing every account in bad standing, those on hold since watching
// began (no event ever) included, with their figures in their currency.
func TestStandingReportInSlack(t *testing.T) {
	at := time.Now().UTC().Add(-time.Minute).Format("15:04")
	st, s := prepare(t, fmt.Sprintf(`
receivers: [{name: ops, channel: "#ops"}]
route: {receiver: ops, report: {every: daily, at: "%s", location: UTC}}
`, at), nil, func(s *app.Settings) { s.ConsoleURL = "http://127.0.0.1:8491" })
	ctx := context.Background()
	stt, err := state.Open(ctx, st.bus.JS)
	if err != nil {
		t.Fatal(err)
	}
	since := time.Now().Add(-72 * time.Hour).UTC()
	for _, r := range []detect.Record{
		{AccountID: "1000124", Name: "Globex Cloud GmbH", Enums: map[string]event.Value{detect.FieldStatus: {Value: "credit_hold"}}, BadSince: since,
			Debt: &detect.DebtState{Value: "900", Current: "900", Threshold: "600", Currency: "EUR", Above: true}},
		{AccountID: "1000125", Name: "Initech", Enums: map[string]event.Value{detect.FieldStatus: {Value: "active"}}},
	} {
		r.Provider, r.Instance, r.Baseline = event.ProviderActivePlatform, "ap-main", true
		if err := stt.Put(ctx, state.Key(r.Provider, r.Instance, r.AccountID), &state.Entry{}, r); err != nil {
			t.Fatal(err)
		}
	}
	st.run(t, s)
	bustest.Eventually(t, "the report", func() bool { return len(st.slack.Posted("chat.postMessage")) == 1 })
	p := st.slack.Posted("chat.postMessage")[0]
	for _, want := range []string{"Daily standing report: 1 account in bad standing", "Globex Cloud GmbH (1000124)", "Credit hold; debt 900.00 EUR over the 600.00 EUR threshold",
		"900.00 EUR of 600.00 EUR", since.Format("2006-01-02 15:04 UTC"), "http://127.0.0.1:8491/accounts/activeplatform/ap-main/1000124"} {
		if !strings.Contains(p.Attachments+p.Text, want) {
			t.Errorf("the report lacks %q: %s", want, p.Attachments)
		}
	}
	if p.ThreadTS != "" || strings.Contains(p.Attachments, "Initech") {
		t.Errorf("report %+v", p)
	}
}
