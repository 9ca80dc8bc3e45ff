package app_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/accountwatch/accountwatch/pkg/detect"
	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/event/eventtest"
	"github.com/accountwatch/accountwatch/pkg/eventbus/bustest"
	"github.com/accountwatch/accountwatch/pkg/state"
	"github.com/accountwatch/accountwatch/services/email-notifier/internal/smtpcapture"
)

// TestOneFreezeIsOneCriticalEmail: a BSS freeze is HostingStatus and
// CreditLimitStatus frozen, here a poll apart: one critical email says
// both, named in the provider's wording.
func TestOneFreezeIsOneCriticalEmail(t *testing.T) {
	st := start(t, `
receivers: [{name: fin, to: ["finance@reseller.example"]}]
route: {receiver: fin, group_wait: 1m, critical_bypasses_grouping: true, critical_group_wait: 3s}
`, &smtpcapture.Options{TLS: "none"})
	m := eventtest.Meta("1234567890123456", nil)
	m.Provider, m.Instance, m.AccountName = event.ProviderAlibabaBSS, "bss-main", "" // no display_name label: the id in BSS wording
	hosting := eventtest.Must(t)(event.HostingStatusChanged(m, event.EnumValue("TRUSTEESHIP"), event.EnumValue("FREEZE")))
	m.Revision, m.Chain = 2, event.Chain{Seq: 2, Prev: strings.Repeat("ab", 32)}
	credit := eventtest.Must(t)(event.CreditLimitStatusChanged(m, event.EnumValue("Thaw"), event.EnumValue("Freeze")))
	bustest.Publish(t, st.bus, hosting)
	time.Sleep(500 * time.Millisecond) // the next poll
	bustest.Publish(t, st.bus, credit)
	bustest.Eventually(t, "an email", func() bool { return len(st.smtp.Messages()) >= 1 })
	time.Sleep(4 * time.Second) // past critical_group_wait: a second email would be here
	msgs := st.smtp.Messages()
	if len(msgs) != 1 {
		t.Fatalf("%d emails for one freeze", len(msgs))
	}
	p := parse(t, msgs[0])
	if got := p.h.Get("X-Accountwatch-Events"); got != hosting.ID()+" "+credit.ID() {
		t.Errorf("events %q", got)
	}
	subj := p.h.Get("Subject")
	if !strings.Contains(subj, "2 critical") || !strings.Contains(subj, "Alibaba Cloud BSS account 1234567890123456") {
		t.Errorf("subject %q", subj)
	}
}

// TestRemindersAndReportByEmail: a reminder in the account's thread while
// it stays on credit hold, and a standing report listing the accounts in
// bad standing of AW_STATE, those on hold since watching began included.
func TestRemindersAndReportByEmail(t *testing.T) {
	st, s := prepare(t, "", &smtpcapture.Options{TLS: "none"})
	ctx := context.Background()
	stt, err := state.Open(ctx, st.bus.JS)
	if err != nil {
		t.Fatal(err)
	}
	since := time.Now().Add(-72 * time.Hour).UTC()
	baseline := detect.Record{Provider: event.ProviderActivePlatform, Instance: "ap-main", AccountID: "1000124", Baseline: true, Name: "Globex Cloud GmbH",
		Enums: map[string]event.Value{detect.FieldStatus: {Value: "credit_hold"}}, BadSince: since,
		Debt: &detect.DebtState{Value: "900", Current: "900", Threshold: "600", Currency: "EUR", Above: true}}
	if err := stt.Put(ctx, state.Key(baseline.Provider, baseline.Instance, baseline.AccountID), &state.Entry{}, baseline); err != nil {
		t.Fatal(err)
	}
	// A report due a minute ago (UTC): sent at start, once.
	at := time.Now().UTC().Add(-time.Minute).Format("15:04")
	yaml := fmt.Sprintf(`
receivers: [{name: fin, to: ["finance@reseller.example"]}]
route:
  receiver: fin
  group_wait: 0s
  group_interval: 0s
  repeat_interval: 2s
  runbook: {default: "Call the account manager"}
  routes:
    - {receiver: fin, match: {provider: [activeplatform]}, report: {every: daily, at: "%s", location: UTC}, continue: true}
`, at)
	p := filepath.Join(t.TempDir(), "email.yaml")
	if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	s.ConfigFile, s.ConsoleURL = p, "http://127.0.0.1:8491"
	j := eventtest.NewJourney(t, "1000123", time.Now().Add(-5*time.Minute))
	bustest.Publish(t, st.bus, j.Ladder, j.Hold)
	st.run(t, s)
	find := func(sub string) []parsed {
		var out []parsed
		for _, m := range st.smtp.Messages() {
			if q := parse(t, m); strings.Contains(q.h.Get("Subject"), sub) {
				out = append(out, q)
			}
		}
		return out
	}
	bustest.Eventually(t, "the report, the hold and a reminder", func() bool {
		return len(find("standing report")) == 1 && len(find("Credit hold")) == 1 && len(find("Reminder")) >= 1
	})
	rep := find("standing report")[0]
	for _, want := range []string{"Globex Cloud GmbH (1000124)", "Credit hold; debt 900.00 EUR over the 600.00 EUR threshold", since.Format("2006-01-02 15:04 UTC"),
		"900.00 EUR of 600.00 EUR", "http://127.0.0.1:8491/accounts/activeplatform/ap-main/1000124"} {
		if !strings.Contains(rep.html, want) || !strings.Contains(rep.text, strings.SplitN(want, "http", 2)[0]) {
			t.Errorf("the report lacks %q:\n%s", want, rep.text)
		}
	}
	hold, rem := find("Credit hold")[0], find("Reminder")[0]
	if rem.h.Get("Message-Id") == hold.h.Get("Message-Id") || rem.h.Get("In-Reply-To") != hold.h.Get("In-Reply-To") {
		t.Errorf("the reminder is not a message of its own in the account's thread: %s / %s", rem.h.Get("Message-Id"), rem.h.Get("In-Reply-To"))
	}
	for _, want := range []string{"Reminder: still credit hold", "Call the account manager", "http://127.0.0.1:8491/accounts/activeplatform/ap-main/1000123", "620.00 EUR"} {
		if !strings.Contains(rem.text, want) {
			t.Errorf("the reminder lacks %q:\n%s", want, rem.text)
		}
	}
	// Active again while still over the threshold: the email says so.
	bustest.Publish(t, st.bus, j.Active)
	const still = "Account active again; debt 620.00 EUR still over the 600.00 EUR threshold"
	bustest.Eventually(t, "the recovery", func() bool { return len(find(still)) == 1 })
	if rec := find(still)[0]; !strings.Contains(rec.html, still) || !strings.Contains(rec.text, still) {
		t.Errorf("the recovery email does not say what is still wrong:\n%s", rec.text)
	}
	warn := find("Debt past 80% of its threshold")
	if len(warn) != 1 || !strings.Contains(warn[0].text, "80% of the threshold: 480.00 EUR") {
		t.Fatalf("the ladder step: %d emails", len(warn))
	}
	if dir := os.Getenv("AW_SCREENSHOT_DIR"); dir != "" {
		for name, q := range map[string]parsed{"email-1-warning.html": warn[0], "email-2-credit-hold.html": hold, "email-3-reminder.html": rem,
			"email-4-recovery.html": find(still)[0], "email-5-report.html": rep} {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(q.html), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}
