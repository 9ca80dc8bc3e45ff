package event_test

import (
	"testing"

	"github.com/accountwatch/accountwatch/pkg/event"
)

func TestAllowList(t *testing.T) {
	a := event.DefaultAllowList.With("custom_attributes.tier", `custom_attributes["Billing *"]`, `custom_attributes["Seats"]`, "billing.*", " ", "x?z", "[bad")
	for _, tc := range []struct {
		key  string
		want bool
	}{
		{"status", true},
		{"current_debt", true},
		{"email", false},
		{event.AttributeKey("tier"), true},
		{event.AttributeKey("Tier"), true}, // attribute names are matched without regard to case
		{event.AttributeKey(" TIER "), true},
		{event.AttributeKey("Passport number"), false},
		{event.AttributeKey("tier.x"), false},
		{event.AttributeKey("seats"), true},
		{event.AttributeKey("Billing contact"), true},
		{event.AttributeKey("Billing"), false},
		{event.AttributeKey(`Odd "quoted" name`), false},
		{`custom_attributes["tier"`, false},
		{"custom_attributes", false},
		{"billing.plan", true},
		{"billing.plan.x", true}, // path.Match: * stops at a slash, not at a dot
		{"billing", false},
		{"xyz", true},
		{"x?z", true},
		{"[bad", false}, // a malformed glob matches nothing
		{"", false},
		{" ", false},
		{"Status", false},
	} {
		if got := a.Allowed(tc.key); got != tc.want {
			t.Errorf("Allowed(%q) = %v, want %v", tc.key, got, tc.want)
		}
	}
	got := a.Filter(map[string]string{"status": "active", "email": "a@b.c", "billing.plan": "gold"})
	if len(got) != 2 || got["status"] != "active" || got["billing.plan"] != "gold" {
		t.Fatalf("Filter: %v", got)
	}
	if event.DefaultAllowList.Filter(map[string]string{"email": "a@b.c"}) != nil {
		t.Fatal("Filter of nothing allowed is not nil")
	}
}

func TestAllowListByAttributeName(t *testing.T) {
	all := event.DefaultAllowList.With("custom_attributes.*")
	if !all.Allowed(event.AttributeKey("Passport number")) || event.DefaultAllowList.Allowed(event.AttributeKey("Passport number")) {
		t.Fatal("custom_attributes.* allows every attribute, the default none")
	}
	quoted := event.DefaultAllowList.With(`custom_attributes["Odd \"quoted\" name"]`)
	if !quoted.Allowed(event.AttributeKey(`Odd "quoted" name`)) {
		t.Fatal("a name with quotes")
	}
}

func TestScrubPII(t *testing.T) {
	for in, want := range map[string]string{
		"loginEmail=685741089H@chinaunicom.cn,has used": "loginEmail=[email],has used",
		"call +375 29 123-45-67 now":                    "call [phone] now",
		"account 1000123: current_debt: not a decimal":  "account 1000123: current_debt: not a decimal",
	} {
		if got := event.ScrubPII(in); got != want {
			t.Errorf("ScrubPII(%q) = %q, want %q", in, got, want)
		}
	}
}
