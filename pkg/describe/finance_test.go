package describe_test

import (
	"testing"
	"time"

	"github.com/accountwatch/accountwatch/pkg/describe"
	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/event/eventtest"
)

func TestStandingAndStillWrong(t *testing.T) {
	over := &event.Standing{Problems: []string{event.ProblemOverThreshold}, Debt: "620", Threshold: "600", Currency: "EUR"}
	m := eventtest.Meta("1000123", nil)
	m.Standing = over
	active := eventtest.Status(t, m, "credit_hold", "active")
	if got := describe.Title(active); got != "Account active again; debt 620.00 EUR still over the 600.00 EUR threshold" {
		t.Errorf("title %q", got)
	}
	m.Standing = &event.Standing{Problems: []string{}}
	if got := describe.Title(eventtest.Status(t, m, "credit_hold", "active")); got != "Account active again" {
		t.Errorf("title in good standing %q", got)
	}
	m.Standing = &event.Standing{Problems: []string{event.ProblemCreditHold, event.ProblemOverThreshold}, Debt: "620", Threshold: "600", Currency: "EUR"}
	if got := describe.Standing(m.Standing); got != "Credit hold; debt 620.00 EUR over the 600.00 EUR threshold" {
		t.Errorf("standing %q", got)
	}
	// A thaw of the credit limit while hosting stays frozen.
	frozen := eventtest.CreditLimit(t, "1234567890123456", "Freeze", "Thaw")
	frozen.Data.Standing = &event.Standing{Problems: []string{event.ProblemFrozen}, HostingStatus: "freeze", CreditLimitStatus: "thaw"}
	if got := describe.StillWrong(frozen); got != "hosting still frozen" {
		t.Errorf("still wrong after a thaw %q", got)
	}
	if describe.StillWrong(eventtest.Status(t, m, "active", "credit_hold")) != "" {
		t.Error("no recovery, nothing 'still' wrong")
	}
}

func TestNameAndConsole(t *testing.T) {
	bss := eventtest.Hosting(t, "1234567890123456", "TRUSTEESHIP", "FREEZE")
	bss.Data.AccountName = "" // a BSS account without a display name
	if got := describe.Name(bss.Data); got != "Alibaba Cloud BSS account 1234567890123456" {
		t.Errorf("name %q", got)
	}
	bss.Data.AccountName = "Acme Shanghai"
	if got := describe.Name(bss.Data); got != "Acme Shanghai (1234567890123456)" {
		t.Errorf("name %q", got)
	}
	c := describe.Console("http://127.0.0.1:8491/")
	if got := c.Account(bss.Data); got != "http://127.0.0.1:8491/accounts/alibaba-bss/"+bss.Data.Instance+"/1234567890123456" {
		t.Errorf("console link %q", got)
	}
	if describe.Console("").Account(bss.Data) != "" {
		t.Error("a link without a console")
	}
}

func TestForecastWords(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	f := &event.Forecast{Method: "least_squares", Threshold: "600", Currency: "EUR", Current: "465", RatePerDay: "45.0012",
		ETA: now.Add(72 * time.Hour), Observations: []event.Point{{At: now.Add(-96 * time.Hour), Value: "285"}, {At: now, Value: "465"}}}
	if got := describe.Forecast(f, now); got != "reaches its 600.00 EUR threshold in ~3 days (2026-12-04) at +45.00 EUR/day" {
		t.Errorf("forecast %q", got)
	}
	if got := describe.ForecastMethod(f); got != "least-squares line through 2 observations over 4 days" {
		t.Errorf("method %q", got)
	}
}

func TestParseConsole(t *testing.T) {
	for in, ok := range map[string]bool{"": true, "http://127.0.0.1:8491": true, "https://aw.example/console/": true, "127.0.0.1:8491": false, "ftp://x": false, "https://": false} {
		if _, err := describe.ParseConsole(in); (err == nil) != ok {
			t.Errorf("ParseConsole(%q): %v", in, err)
		}
	}
}
