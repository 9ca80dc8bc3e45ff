package subscription_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/accountwatch/accountwatch/pkg/event/eventtest"
	"github.com/accountwatch/accountwatch/services/webhook-dispatcher/internal/subscription"
)

func TestFilters(t *testing.T) {
	ev := eventtest.Status(t, eventtest.Meta("1000123", nil), "active", "credit_hold") // critical, activeplatform
	cases := []struct {
		filter string
		want   bool
	}{
		{`{"exact": {"type": "com.accountwatch.account.status.changed"}}`, true},
		{`{"exact": {"type": "com.accountwatch.account.debt.changed"}}`, false},
		{`{"exact": {"severity": "critical", "provider": "activeplatform"}}`, true},
		{`{"exact": {"severity": "critical", "provider": "alibaba-bss"}}`, false},
		{`{"prefix": {"type": "com.accountwatch.account."}}`, true},
		{`{"prefix": {"source": "urn:accountwatch:alibaba"}}`, false},
		{`{"suffix": {"subject": "123"}}`, true},
		{`{"suffix": {"subject": "999"}}`, false},
		{`{"exact": {"nosuchattr": "x"}}`, false},
		{`{"all": [{"exact": {"accountid": "1000123"}}, {"prefix": {"type": "com.accountwatch.account"}}]}`, true},
		{`{"all": [{"exact": {"accountid": "1000123"}}, {"exact": {"severity": "info"}}]}`, false},
		{`{"any": [{"exact": {"severity": "info"}}, {"exact": {"severity": "critical"}}]}`, true},
		{`{"any": [{"exact": {"severity": "info"}}, {"exact": {"severity": "warning"}}]}`, false},
		{`{"not": {"exact": {"severity": "info"}}}`, true},
		{`{"not": {"prefix": {"type": "com.accountwatch.account"}}}`, false},
		{`{"not": {"any": [{"suffix": {"type": ".changed"}}]}}`, false},
	}
	for _, c := range cases {
		var f subscription.Filter
		if err := json.Unmarshal([]byte(c.filter), &f); err != nil {
			t.Fatal(err)
		}
		if err := f.Validate("filters[0]"); err != nil {
			t.Fatalf("%s: %v", c.filter, err)
		}
		if got := f.Match(&ev.Cloud); got != c.want {
			t.Errorf("%s: %v, want %v", c.filter, got, c.want)
		}
	}
}

func TestFilterValidation(t *testing.T) {
	cases := map[string]string{
		`{}`: "exactly one",
		`{"exact": {"type": "x"}, "prefix": {"type": "y"}}`: "exactly one",
		`{"exact": {}}`:                    "empty",
		`{"exact": {"Type": "x"}}`:         "attribute",
		`{"all": []}`:                      "at least one",
		`{"not": {"suffix": {"A-B": ""}}}`: "filters[0].not.suffix",
	}
	for in, want := range cases {
		var f subscription.Filter
		json.Unmarshal([]byte(in), &f)
		if err := f.Validate("filters[0]"); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", in, err, want)
		}
	}
}

func TestEndpointValidation(t *testing.T) {
	cases := []struct {
		e    subscription.Endpoint
		want string
	}{
		{subscription.Endpoint{}, "url: required"},
		{subscription.Endpoint{URL: "https://x.example", Types: []string{"account.nope"}}, "types[0]"},
		{subscription.Endpoint{URL: "https://x.example", Headers: map[string]string{"Webhook-Signature": "x"}}, "set by the dispatcher"},
		{subscription.Endpoint{URL: "https://x.example", Headers: map[string]string{"ce-id": "x"}}, "set by the dispatcher"},
		{subscription.Endpoint{URL: "https://x.example", Headers: map[string]string{"X-A": "b\r\nInjected: 1"}}, "headers"},
		{subscription.Endpoint{URL: "https://x.example", ContentMode: "batch"}, "content_mode"},
	}
	for _, c := range cases {
		if err := c.e.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.e, err, c.want)
		}
	}
	ok := subscription.Endpoint{URL: "https://x.example", Types: []string{"account.status.changed"}}
	if err := ok.Validate(); err != nil || ok.Types[0] != "com.accountwatch.account.status.changed" || ok.ContentMode != "structured" {
		t.Errorf("%v %+v", err, ok)
	}
	if s := subscription.NewSecret(); !strings.HasPrefix(s, "whsec_") {
		t.Errorf("secret %q", s)
	} else if k, err := subscription.SecretKey(s); err != nil || len(k) != 24 {
		t.Errorf("key %d bytes, %v", len(k), err)
	}
}
