package app_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/accountwatch/accountwatch/pkg/event/eventtest"
	"github.com/accountwatch/accountwatch/pkg/eventbus/bustest"
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
	if rem.ThreadTS != open.TS || !strings.Contains(rem.Attachments, "Still credit hold") || rem.At.Sub(posts()[1].At) < 2*time.Second {
		t.Errorf("reminder %+v after %s", rem, rem.At.Sub(posts()[1].At))
	}

	bustest.Publish(t, st.bus, j.Active)
	const still = "Account active again; debt 620.00 EUR still over the 600.00 EUR threshold"
	bustest.Eventually(t, "the recovery says what is still wrong", func() bool {
		u := updates()
		return len(u) == 2 && strings.Contains(u[1].Attachments, still)
	})
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
		b, _ := json.MarshalIndent(st.slack.Calls(), "", "  ")
		if err := os.WriteFile(filepath.Join(dir, "slack-journey.json"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
