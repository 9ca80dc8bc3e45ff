package event_test

import (
	"testing"

	"github.com/accountwatch/accountwatch/pkg/event"
)

func TestAllowList(t *testing.T) {
	a := event.DefaultAllowList.With("custom_attributes.tier", "billing.*", " ", "x?z", "[bad")
	for _, tc := range []struct {
		key  string
		want bool
	}{
		{"status", true},
		{"current_debt", true},
		{"email", false},
		{"custom_attributes.tier", true},
		{"custom_attributes.passport_number", false},
		{"custom_attributes.tier.x", false},
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
