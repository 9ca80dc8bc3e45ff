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
