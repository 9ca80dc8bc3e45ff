package message_test

import (
	"strings"
	"testing"
	"time"

	"github.com/accountwatch/accountwatch/pkg/describe"
	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/event/eventtest"
	"github.com/accountwatch/accountwatch/services/slack-notifier/internal/message"
)

// TestSeverityIsTheWorstEvents: a message of a critical change and a
// milder one after it says critical, in its colour and its context.
func TestSeverityIsTheWorstEvents(t *testing.T) {
	m := eventtest.Meta("1000123", nil)
	hold := eventtest.Status(t, m, "active", "credit_hold")
	m.Revision = 1
	down := eventtest.Debt(t, m, "620", "610", "600", "")
	msg := message.AccountWith([]*event.Event{hold, down}, message.Context{})
	if msg.Color != message.ColorCritical || !strings.HasPrefix(msg.Text, "[critical]") {
		t.Errorf("colour %s, text %q", msg.Color, msg.Text)
	}
	if s := render(msg); !strings.Contains(s, "*critical* · observed") {
		t.Error("the context does not say critical")
	}
}

func TestForecastAndRunbook(t *testing.T) {
	now := time.Now()
	m := eventtest.Meta("1000123", nil)
	m.AccountName = "Acme Hosting GmbH"
	f := eventtest.Must(t)(event.DebtForecast(m, event.Forecast{Method: "least_squares", Threshold: "600", Currency: "EUR", Current: "465", RatePerDay: "45",
		ETA: now.Add(72*time.Hour + time.Minute), Observations: []event.Point{{At: now.Add(-72 * time.Hour), Value: "330"}, {At: now, Value: "465"}}}))
	msg := message.AccountWith([]*event.Event{f}, message.Context{Now: now, Console: describe.Console("https://aw.example"),
		Runbook: func(*event.Event) string { return "Ask the customer for a payment plan" }})
	s := render(msg)
	for _, want := range []string{"Debt reaches its threshold soon — Acme Hosting GmbH (1000123)", "465.00 EUR", "reaches its 600.00 EUR threshold in ~3 days",
		"+45.00 EUR/day", "least-squares line through 2 observations over 3 days", "Ask the customer for a payment plan",
		"https://aw.example/accounts/activeplatform/ap-main/1000123"} {
		if !strings.Contains(s, want) {
			t.Errorf("the forecast message lacks %q", want)
		}
	}
}
