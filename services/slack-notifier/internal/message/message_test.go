package message_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/event/eventtest"
	"github.com/accountwatch/accountwatch/services/slack-notifier/internal/message"
)

func TestRecoveryAndColour(t *testing.T) {
	m := eventtest.Meta("1", nil)
	deg := m
	deg.AccountID = event.ProviderScope
	degraded := eventtest.Must(t)(event.PollDegraded(deg, event.Poll{Scope: "provider", ConsecutiveFailures: 3, Since: eventtest.T0, ErrorCode: "503"}))
	recovered := eventtest.Must(t)(event.PollRecovered(deg, event.Poll{Scope: "provider", ConsecutiveFailures: 3, Since: eventtest.T0}))
	cases := []struct {
		name     string
		e        *event.Event
		recovery bool
		colour   string
		headline string
	}{
		{"credit hold", eventtest.Status(t, m, "active", "credit hold"), false, message.ColorCritical, "Credit hold"},
		{"hold lifted", eventtest.Status(t, m, "credit_hold", "active"), true, message.ColorRecovered, "Account active again"},
		{"admin hold", eventtest.Status(t, m, "active", "administrative hold"), false, message.ColorWarning, "Administrative hold"},
		{"freeze", eventtest.Hosting(t, "9", "", "FREEZE"), false, message.ColorCritical, "Hosting frozen"},
		{"unfreeze", eventtest.Hosting(t, "9", "FREEZE", "TRUSTEESHIP"), true, message.ColorRecovered, "Hosted again"},
		{"thaw", eventtest.CreditLimit(t, "9", "Freeze", "Thaw"), true, message.ColorRecovered, "Credit limit thawed"},
		{"debt over", eventtest.Debt(t, m, "10", "600", "500", "above"), false, message.ColorCritical, "Debt over threshold"},
		{"debt under", eventtest.Debt(t, m, "600", "10", "500", "below"), true, message.ColorRecovered, "Debt back under threshold"},
		{"degraded", degraded, false, message.ColorCritical, "Cannot read upstream"},
		{"recovered", recovered, true, message.ColorRecovered, "Upstream readable again"},
	}
	for _, c := range cases {
		if got := message.IsRecovery(c.e); got != c.recovery {
			t.Errorf("%s: recovery %v", c.name, got)
		}
		if got := message.Color(c.e); got != c.colour {
			t.Errorf("%s: colour %s, want %s", c.name, got, c.colour)
		}
		if got := message.Headline(c.e); got != c.headline {
			t.Errorf("%s: headline %q, want %q", c.name, got, c.headline)
		}
		msg := message.Account([]*event.Event{c.e}, nil, false)
		if len(msg.Blocks) < 3 || msg.Text == "" {
			t.Errorf("%s: %d blocks, text %q", c.name, len(msg.Blocks), msg.Text)
		}
	}
}

func TestAccountMessage(t *testing.T) {
	m := eventtest.Meta("100 200", map[string]string{"manager": "bob"})
	m.AccountName = "<!channel> Evil & Co"
	debt := eventtest.Debt(t, m, "1234.5", "1234567.891", "1000000", "above")
	msg := message.Account([]*event.Event{debt}, message.Links{"ap-main": "https://ap.example.com/a/{account}"}, true)
	s := render(msg)
	for _, want := range []string{"1,234,567.89 USD", "1,234.50 USD", "+1,233,333.39 USD", "1,000,000.00 USD (account)", "crossed *above*", "https://ap.example.com/a/100%20200", "manager=bob", "re-sent by an operator (dead letter or replay)", debt.ID(), "&lt;!channel&gt; Evil &amp; Co"} {
		if !strings.Contains(s, want) {
			t.Errorf("message lacks %q", want)
		}
	}
	if strings.Contains(s, "<!channel>") {
		t.Error("an account name can mention @channel")
	}
	if !strings.HasPrefix(msg.Text, "[critical] Debt over threshold — <!channel> Evil & Co (100 200) (activeplatform/ap-main): debt") {
		t.Errorf("fallback %q", msg.Text)
	}
}

func TestManyChangesAndSummary(t *testing.T) {
	var evs []*event.Event
	for i := range 14 {
		m := eventtest.Meta("7", nil)
		m.Revision = uint64(i)
		m.ObservedAt = eventtest.T0.Add(time.Duration(i) * time.Minute)
		evs = append(evs, eventtest.Debt(t, m, fmt.Sprint(i), fmt.Sprint(i+1), "500", ""))
	}
	msg := message.Account(evs, nil, false)
	if !strings.Contains(render(msg), "and 4 earlier changes") || len(msg.Blocks) > 50 {
		t.Errorf("14 changes: %d blocks", len(msg.Blocks))
	}
	var many []*event.Event
	for i := range 30 {
		many = append(many, eventtest.Hosting(t, fmt.Sprintf("u%d", i), "", "FREEZE"))
	}
	many = append(many, eventtest.CreditLimit(t, "u0", "thaw", "freeze"))
	sum := message.Summary(many, nil)
	if !strings.Contains(sum.Text, "30 accounts") || !strings.Contains(sum.Text, "Hosting frozen ×30") || !strings.Contains(render(sum), "and 11 more") {
		t.Errorf("summary %q", sum.Text)
	}
}

// render is the attachment as Slack receives it, without Go's HTML escaping.
func render(m message.Message) string {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(m.Attachment())
	return b.String()
}

// TestDegradedNamesItsCause: a poll.degraded message says what could not be
// read: the operation, the account, the field.
func TestDegradedNamesItsCause(t *testing.T) {
	p := event.Poll{Scope: "account", ConsecutiveFailures: 3, Since: eventtest.T0,
		Cause: &event.PollCause{Operation: "list accounts page 3", AccountID: "1000123", Field: "current_debt", Kind: "malformed", Detail: "not a decimal amount"}}
	e := eventtest.Must(t)(event.PollDegraded(eventtest.Meta("1000123", nil), p))
	b, _ := json.Marshal(message.Account([]*event.Event{e}, nil, false).Blocks)
	for _, want := range []string{"Cause", "list accounts page 3", "account 1000123", "field current_debt", "not a decimal amount"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("the message lacks %q: %s", want, b)
		}
	}
}
