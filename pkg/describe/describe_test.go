package describe_test

import (
	"testing"

	"github.com/accountwatch/accountwatch/pkg/describe"
	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/event/eventtest"
)

func TestMoney(t *testing.T) {
	cases := []struct{ in, cur, want string }{
		{"1234567.891", "USD", "1,234,567.89 USD"},
		{"0", "", "0.00"},
		{"-453.2", "EUR", "-453.20 EUR"},
		{"999", "", "999.00"},
		{"1000", "", "1,000.00"},
		{"", "USD", "—"},
		{"n/a", "", "n/a"},
	}
	for _, c := range cases {
		if got := describe.Money(c.in, c.cur); got != c.want {
			t.Errorf("Money(%q, %q) = %q, want %q", c.in, c.cur, got, c.want)
		}
	}
	if describe.Delta("12.5", "USD") != "+12.50 USD" || describe.Delta("-1", "") != "-1.00" {
		t.Error("Delta signs")
	}
}

func TestChangeAndLinks(t *testing.T) {
	m := eventtest.Meta("10 20", nil)
	cases := []struct {
		e    *event.Event
		want string
	}{
		{eventtest.Status(t, m, "active", "credit hold"), "status active → credit_hold (credit hold)"},
		{eventtest.Debt(t, m, "0", "512.4", "500", "above"), "debt 0.00 USD → 512.40 USD (crossed above 500.00 USD)"},
		{eventtest.Hosting(t, "1", "", "FREEZE"), "HostingStatus — → freeze (FREEZE)"},
	}
	for _, c := range cases {
		if got := describe.Change(c.e); got != c.want {
			t.Errorf("Change = %q, want %q", got, c.want)
		}
	}
	l := describe.Links{"ap-main": "https://ap.example/a/{account}"}
	if got := l.For("ap-main", "10 20"); got != "https://ap.example/a/10%2020" {
		t.Errorf("link %q", got)
	}
	if l.For("other", "1") != "" || l.For("ap-main", event.ProviderScope) != "" {
		t.Error("a link for an unknown instance or a provider-wide event")
	}
}

// TestRecoveriesAndCauses: the documents' normal states read as recoveries
// (FREEZE → TRUSTEESHIP is hosted again, Freeze → Thaw unfrozen); a
// poll.degraded names its cause.
func TestRecoveriesAndCauses(t *testing.T) {
	for _, c := range []struct {
		e        *event.Event
		recovery bool
		headline string
	}{
		{eventtest.Hosting(t, "1", "FREEZE", "TRUSTEESHIP"), true, "Hosted again"},
		{eventtest.Hosting(t, "1", "TRUSTEESHIP", "FREEZE"), false, "Hosting frozen"},
		{eventtest.Must(t)(event.CreditLimitStatusChanged(eventtest.Meta("1", nil), event.EnumValue("Freeze"), event.EnumValue("Thaw"))), true, "Credit limit thawed"},
	} {
		if describe.IsRecovery(c.e) != c.recovery || describe.Headline(c.e) != c.headline || c.recovery && c.e.Severity() != event.SeverityInfo {
			t.Errorf("%s: recovery %v, headline %q, severity %s", describe.Change(c.e), describe.IsRecovery(c.e), describe.Headline(c.e), c.e.Severity())
		}
	}
	p := event.Poll{Scope: "account", ConsecutiveFailures: 3, Since: eventtest.T0, Cause: &event.PollCause{Operation: "list accounts page 3",
		AccountID: "1000123", Field: "current_debt", Kind: "malformed", HTTPStatus: 200, RequestID: "r-1", Detail: "not a decimal amount"}}
	e := eventtest.Must(t)(event.PollDegraded(eventtest.Meta("1000123", nil), p))
	want := "3 failed reads since " + eventtest.T0.UTC().Format("2006-01-02T15:04:05Z07:00") +
		": list accounts page 3: account 1000123, field current_debt: not a decimal amount (malformed, HTTP 200, request r-1)"
	if got := describe.Change(e); got != want {
		t.Errorf("Change = %q\nwant     %q", got, want)
	}
}
