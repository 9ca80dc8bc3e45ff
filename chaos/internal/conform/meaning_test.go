package conform

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/shopspring/decimal"

	"github.com/accountwatch/accountwatch/chaos/internal/ledger"
)

func TestCheckMeaning(t *testing.T) {
	key := ledger.Key{Provider: ProviderBSS, Instance: "bss", Account: "6210322125051645960"}
	allow := map[ledger.Key]map[string]string{key: {`custom_attributes["Tier"]`: "gold"}}
	cases := []struct {
		name     string
		field    string
		from, to string
		severity string
		attrs    map[string]string
		problem  string // a substring of the one problem; "" for none
	}{
		{"hosted again is a recovery", "HostingStatus", `"FREEZE"`, `"TRUSTEESHIP"`, "info", nil, ""},
		{"hosted again told as a warning", "HostingStatus", `"FREEZE"`, `"TRUSTEESHIP"`, "warning", nil, "want info"},
		{"thawed told as critical", "CreditLimitStatus", `"Freeze"`, `"Thaw"`, "critical", nil, "want info"},
		{"frozen is at least a warning", "CreditLimitStatus", `"Thaw"`, `"Freeze"`, "critical", nil, ""},
		{"frozen told as info", "HostingStatus", `"TRUSTEESHIP"`, `"FREEZE"`, "info", nil, "want warning or critical"},
		{"not hosted is left to policy", "CreditLimitStatus", `"Trusteeship"`, `"TrusteeshipCancel"`, "warning", nil, ""},
		{"the allow-listed attribute carried", "HostingStatus", `"FREEZE"`, `"TRUSTEESHIP"`, "info", map[string]string{`custom_attributes["Tier"]`: "gold"}, ""},
		{"the allow-listed attribute wrong", "HostingStatus", `"FREEZE"`, `"TRUSTEESHIP"`, "info", map[string]string{"mpk": "1"}, `custom_attributes["Tier"] is ""`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := Entry{Seq: 1, Op: "set", Provider: "bss", Account: key.Account, Field: tc.field, From: json.RawMessage(tc.from), To: json.RawMessage(tc.to)}
			rows := Expect([]Entry{e}, testConns, decimal.Zero, nil)
			ev := ledger.Event{Seq: 1, Key: key, Severity: tc.severity, Attrs: tc.attrs}
			got := CheckMeaning(rows, map[int]ledger.Event{1: ev}, allow)
			switch {
			case tc.problem == "" && len(got) > 0:
				t.Fatalf("unexpected problems: %v", got)
			case tc.problem != "" && (len(got) != 1 || !strings.Contains(got[0], tc.problem)):
				t.Fatalf("problems %v, want one naming %q", got, tc.problem)
			}
		})
	}
}

func TestPersonal(t *testing.T) {
	st := &State{
		ActivePlatform: []map[string]any{{"id": 431.0, "email": "test@example.com", "phone": "+375291234567", "new_owner_email": nil,
			"custom_attributes": []any{
				map[string]any{"name": "Passport number", "value": "1124111111123"},
				map[string]any{"name": "Tier", "value": "gold"},
				map[string]any{"name": "Credit score", "value": 612.0},
				map[string]any{"name": "Fax", "value": nil},
			}}},
		BSS: []map[string]any{{"uid": "6210322125051645960", "LoginEmail": "xxxx@aliyun.com"}},
	}
	needles, allowed := PersonalOf(st, "Tier", testConns)
	for _, v := range []string{"test@example.com", "+375291234567", "1124111111123", "xxxx@aliyun.com"} {
		if needles[v] == "" {
			t.Errorf("%s is not looked for", v)
		}
	}
	if len(needles) != 4 {
		t.Errorf("needles %v: the allow-listed Tier, numbers and nulls are not personal text", needles)
	}
	if got := allowed[ledger.Key{Provider: ProviderAP, Instance: "ap", Account: "431"}][`custom_attributes["Tier"]`]; got != "gold" {
		t.Errorf("allowed Tier %q", got)
	}
	p := NewPersonal(needles)
	p.Scan("the event stream", []byte(`{"attributes":{"custom_attributes[\"Tier\"]":"gold"}}`))
	if got := p.Problems(); len(got) != 0 {
		t.Fatalf("an allow-listed value flagged: %v", got)
	}
	p.Scan("emails", []byte("To: finance\nPassport: 1124111111123\n"))
	p.Scan("poller log", []byte(`{"msg":"read","passport":"1124111111123"}`))
	got := p.Problems()
	if len(got) != 1 || !strings.Contains(got[0], `custom_attributes["Passport number"]`) || !strings.Contains(got[0], "emails, poller log") {
		t.Fatalf("problems %v", got)
	}
}
