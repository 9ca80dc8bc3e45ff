package event_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/schemas"
)

var t0 = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

func meta(p event.Provider, acct string) event.Meta {
	return event.Meta{
		Provider: p, Instance: "ap-main", AccountID: acct, AccountName: "Acme Hosting LLC",
		Labels:     map[string]string{"team": "emea", "tier": "gold"},
		ObservedAt: t0, PreviousObservedAt: t0.Add(-15 * time.Minute),
		Evidence: event.Evidence{RequestID: "6B4D1B5E-5A1F-4F7C-9A56-1B2C3D4E5F60", ResponseSHA256: strings.Repeat("ab", 32), Endpoint: "GetAccount"},
		Revision: 7,
	}
}

func dec(s string) decimal.Decimal { return decimal.RequireFromString(s) }

// withStanding is m with a standing over its threshold since an hour ago.
func withStanding(m event.Meta) event.Meta {
	since := m.ObservedAt.Add(-time.Hour)
	m.Standing = &event.Standing{Problems: []string{event.ProblemOverThreshold}, Since: &since, Status: "active", Debt: "620", Threshold: "600", Currency: "EUR"}
	return m
}
func decp(s string) *decimal.Decimal {
	d := dec(s)
	return &d
}

// realistic builds one event of every type, including the seeds' quirks.
func realistic(t *testing.T) map[string]*event.Event {
	t.Helper()
	must := func(e *event.Event, err error) *event.Event {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	ap, bss, cams := meta(event.ProviderActivePlatform, "1000123"), meta(event.ProviderAlibabaBSS, "1234567890123456"), meta(event.ProviderAlibabaCAMS, "+8613800000000")
	chained := ap
	chained.Chain = event.Chain{Seq: 4, Prev: strings.Repeat("0f", 32)}
	provider := ap
	provider.AccountID = event.ProviderScope
	poller := ap
	poller.AccountID = event.PollerScope
	last := t0.Add(-10 * time.Minute)
	return map[string]*event.Event{
		"poll stalled, no cycle":                  must(event.PollStalled(poller, event.Stall{Reason: event.StallNoCycle, Since: last, LastCycleAt: &last, Interval: "1m", Intervals: 3, LeaseHolder: "poller-7c9d-1"})),
		"poll stalled, no lease":                  must(event.PollStalled(poller, event.Stall{Reason: event.StallNoLease, Since: last, Interval: "1m0s", Intervals: 3})),
		"poll resumed":                            must(event.PollResumed(poller, event.Stall{Reason: event.StallNoLease, Since: last, LastCycleAt: &t0, Interval: "1m", Intervals: 3, LeaseHolder: "poller-7c9d-2"})),
		"status credit hold spelled with a space": must(event.StatusChanged(ap, event.EnumValue("active"), event.EnumValue("credit hold"))),
		"status unknown value passes through":     must(event.StatusChanged(chained, event.EnumValue("credit_hold"), event.EnumValue("Suspended By Fraud"))),
		"debt crossed threshold":                  must(event.DebtChanged(ap, event.DebtChange{Previous: dec("120.50"), Current: dec("453.2"), CurrentRaw: "453.20", Threshold: decp("400"), ThresholdSource: "account", Crossed: "above", Balance: decp("-453.2"), Currency: "USD"})),
		"debt step down":                          must(event.DebtChanged(ap, event.DebtChange{Previous: dec("453.2"), Current: dec("0")})),
		"hosting freeze":                          must(event.HostingStatusChanged(bss, event.EnumValue(""), event.EnumValue("FREEZE"))),
		"hosting old spelling":                    must(event.HostingStatusChanged(bss, event.EnumValue("Trusteeship"), event.EnumValue("TrusteeshipCancel"))),
		"credit limit freeze":                     must(event.CreditLimitStatusChanged(bss, event.EnumValue("Thaw"), event.EnumValue("Freeze"))),
		"hosting back to hosted":                  must(event.HostingStatusChanged(bss, event.EnumValue("FREEZE"), event.EnumValue("TRUSTEESHIP"))),
		"credit limit thawed":                     must(event.CreditLimitStatusChanged(bss, event.EnumValue("Freeze"), event.EnumValue("Thaw"))),
		"poll degraded with its cause": must(event.PollDegraded(ap, event.Poll{ConsecutiveFailures: 3, Since: t0.Add(-time.Hour), LastError: "current_debt: not a decimal amount",
			Cause: &event.PollCause{Operation: "list accounts page 3", AccountID: "1000123", Field: "current_debt", Kind: "malformed", HTTPStatus: 200, RequestID: "r-1", Detail: "not a decimal amount"}})),
		"discovered":                           must(event.Discovered(bss, map[string]string{"account_type": "enterprise", "is_certified": "true", "login_email": "cfo@example.com"})),
		"removed":                              must(event.Removed(ap, map[string]string{"status": "deleted"})),
		"created":                              must(event.Created(bss, event.Onboarding{RelationType: "ResellerPartner", Mpk: "1111111111111111"}, nil)),
		"profile websites":                     must(event.PhoneProfileChanged(cams, "Websites", event.ListValue([]string{"https://a.example"}), event.ListValue([]string{"https://a.example", "https://b.example"}))),
		"profile email (public business data)": must(event.PhoneProfileChanged(cams, "Email", event.Value{Value: ""}, event.Value{Value: "sales@acme.example"})),
		"poll degraded account":                must(event.PollDegraded(ap, event.Poll{ConsecutiveFailures: 3, Since: t0.Add(-time.Hour), ErrorCode: "Throttling.User", LastError: "rate limited"})),
		"poll degraded provider":               must(event.PollDegraded(provider, event.Poll{ConsecutiveFailures: 5, Since: t0.Add(-time.Hour), ErrorCode: "timeout"})),
		"poll recovered":                       must(event.PollRecovered(ap, event.Poll{ConsecutiveFailures: 0, Since: t0.Add(-time.Hour)})),
		"debt crossed a ladder step": must(event.DebtChanged(withStanding(ap), event.DebtChange{Previous: dec("250"), Current: dec("490"), Threshold: decp("600"),
			ThresholdSource: "subscription_credit_limit", Crossed: "above", Step: decp("80"), Currency: "EUR"})),
		"prepaid balance below its floor": must(event.DebtChanged(ap, event.DebtChange{Previous: dec("40"), Current: dec("-12.5"), Floor: decp("0"), Crossed: "below", Currency: "EUR"})),
		"debt forecast": must(event.DebtForecast(withStanding(ap), event.Forecast{Method: "least_squares", Threshold: "600", ThresholdSource: "account", Currency: "EUR",
			Current: "465", RatePerDay: "45", ETA: t0.Add(72 * time.Hour), HorizonHours: 168,
			Observations: []event.Point{{At: t0.Add(-72 * time.Hour), Value: "330"}, {At: t0.Add(-24 * time.Hour), Value: "420"}, {At: t0, Value: "465"}}})),
	}
}

func TestEveryConstructorValidatesAgainstItsSchema(t *testing.T) {
	v, err := schemas.Default()
	if err != nil {
		t.Fatal(err)
	}
	covered := map[event.Type]bool{}
	for name, e := range realistic(t) {
		t.Run(name, func(t *testing.T) {
			covered[e.Type()] = true
			if err := v.Validate(string(e.Type()), e.Cloud.Data()); err != nil {
				t.Fatalf("%v\n%s", err, e.Cloud.Data())
			}
			if err := e.Cloud.Validate(); err != nil {
				t.Fatal(err)
			}
			if got := e.Cloud.DataSchema(); got != schemas.Base+e.Type().Tail()+".json" {
				t.Fatalf("dataschema %q", got)
			}
			if e.Cloud.Source() != event.Source(e.Data.Provider, e.Data.Instance) || e.Cloud.Subject() != e.Data.AccountID {
				t.Fatalf("source %q subject %q", e.Cloud.Source(), e.Cloud.Subject())
			}
			for _, ext := range []string{event.ExtProvider, event.ExtAccountID, event.ExtSeverity, event.ExtChainHash} {
				if _, ok := e.Cloud.Extensions()[ext]; !ok {
					t.Fatalf("extension %s missing", ext)
				}
			}
			if e.Cloud.Extensions()[event.ExtChainHash] != e.Hash() {
				t.Fatal("chainhash extension differs from Hash()")
			}
		})
	}
	for _, typ := range event.Types {
		if !covered[typ] {
			t.Errorf("no realistic case for %s", typ)
		}
	}
}

func TestDataRoundTripsAndMoneyIsNeverAFloat(t *testing.T) {
	for name, e := range realistic(t) {
		var generic map[string]any
		if err := json.Unmarshal(e.Cloud.Data(), &generic); err != nil {
			t.Fatal(err)
		}
		var walk func(path string, v any)
		walk = func(path string, v any) {
			switch x := v.(type) {
			case float64:
				if path != ".chain.seq" && path != ".poll.consecutive_failures" && path != ".poll.cause.http_status" && path != ".forecast.horizon_hours" && path != ".stall.intervals" {
					t.Errorf("%s: number at %s: money must be a decimal string", name, path)
				}
			case map[string]any:
				for k, c := range x {
					walk(path+"."+k, c)
				}
			case []any:
				for _, c := range x {
					walk(path+"[]", c)
				}
			}
		}
		walk("", generic)
		var back event.Data
		if err := json.Unmarshal(e.Cloud.Data(), &back); err != nil {
			t.Fatal(err)
		}
		again, _ := json.Marshal(back)
		if string(again) != string(e.Cloud.Data()) {
			t.Errorf("%s: data does not round-trip:\n%s\n%s", name, e.Cloud.Data(), again)
		}
	}
}

func TestSeverityPolicy(t *testing.T) {
	ev := realistic(t)
	cases := map[string]event.Severity{
		"status credit hold spelled with a space": event.SeverityCritical,
		"status unknown value passes through":     event.SeverityWarning,
		"debt crossed threshold":                  event.SeverityCritical,
		"debt step down":                          event.SeverityInfo,
		"hosting freeze":                          event.SeverityCritical,
		"credit limit freeze":                     event.SeverityCritical,
		"hosting old spelling":                    event.SeverityWarning, // TrusteeshipCancel: not hosted
		"hosting back to hosted":                  event.SeverityInfo,    // FREEZE → TRUSTEESHIP, the normal state
		"credit limit thawed":                     event.SeverityInfo,
		"poll degraded account":                   event.SeverityWarning,
		"poll degraded provider":                  event.SeverityCritical,
		"poll recovered":                          event.SeverityInfo,
	}
	for name, want := range cases {
		if got := ev[name].Severity(); got != want {
			t.Errorf("%s: severity %s, want %s", name, got, want)
		}
		if ev[name].Cloud.Extensions()[event.ExtSeverity] != string(want) {
			t.Errorf("%s: severity extension differs", name)
		}
	}
	m := meta(event.ProviderActivePlatform, "1")
	m.Severity = event.SeverityCritical
	e, err := event.StatusChanged(m, event.EnumValue("active"), event.EnumValue("deleted"))
	if err != nil || e.Severity() != event.SeverityCritical {
		t.Fatalf("override: %v %v", e, err)
	}
}

func TestUnknownStatusKeepsRaw(t *testing.T) {
	e := realistic(t)["status unknown value passes through"]
	if e.Data.Current.Value != "suspended_by_fraud" || e.Data.Current.Raw != "Suspended By Fraud" {
		t.Fatalf("current %+v", e.Data.Current)
	}
	if event.KnownStatus(e.Data.Current.Value) {
		t.Fatal("suspended_by_fraud must not be a known status")
	}
	if e := realistic(t)["status credit hold spelled with a space"]; e.Data.Current.Value != event.StatusCreditHold || e.Data.Current.Raw != "credit hold" {
		t.Fatalf("credit hold: %+v", e.Data.Current)
	}
}

func TestDeterministicIDs(t *testing.T) {
	m := meta(event.ProviderActivePlatform, "42")
	a, _ := event.StatusChanged(m, event.EnumValue("active"), event.EnumValue("credit_hold"))
	b, _ := event.StatusChanged(m, event.EnumValue("active"), event.EnumValue("credit hold"))
	if a.ID() != b.ID() {
		t.Fatal("same normalised change must have the same id")
	}
	m2 := m
	m2.ObservedAt = m.ObservedAt.Add(time.Minute) // re-detected after a crash: same change, same id
	c, _ := event.StatusChanged(m2, event.EnumValue("active"), event.EnumValue("credit_hold"))
	if c.ID() != a.ID() {
		t.Fatal("observation time must not change the id")
	}
	differs := []func(event.Meta) event.Meta{
		func(m event.Meta) event.Meta { m.Revision++; return m },
		func(m event.Meta) event.Meta { m.AccountID = "43"; return m },
		func(m event.Meta) event.Meta { m.Instance = "ap-other"; return m },
	}
	for i, f := range differs {
		d, _ := event.StatusChanged(f(m), event.EnumValue("active"), event.EnumValue("credit_hold"))
		if d.ID() == a.ID() {
			t.Errorf("variation %d kept the id", i)
		}
	}
	back, _ := event.StatusChanged(m, event.EnumValue("credit_hold"), event.EnumValue("active"))
	if back.ID() == a.ID() {
		t.Fatal("the reverse change must have its own id")
	}
	// Length-prefixing keeps ("ab","c") and ("a","bc") apart.
	if event.DeterministicID("activeplatform", "x", "ab", event.TypeStatusChanged, "c", "", "", 0) ==
		event.DeterministicID("activeplatform", "x", "a", event.TypeStatusChanged, "bc", "", "", 0) {
		t.Fatal("ambiguous id derivation")
	}
}

func TestPIINeverTravels(t *testing.T) {
	attrs := map[string]string{
		"status": "active", "custom_attributes.passport_number": "AB1234567", "contact.name": "Jane Roe",
		"contact.email": "jane@example.com", "contact.phone": "+15550100", "login_email": "cfo@example.com",
	}
	e, err := event.Discovered(meta(event.ProviderActivePlatform, "9"), attrs)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"AB1234567", "Jane Roe", "jane@example.com", "+15550100", "cfo@example.com"} {
		if strings.Contains(string(e.Cloud.Data()), secret) {
			t.Errorf("personal data %q travelled: %s", secret, e.Cloud.Data())
		}
	}
	if e.Data.Attributes["status"] != "active" {
		t.Fatal("non-personal attribute dropped")
	}
	m := meta(event.ProviderActivePlatform, "9")
	m.Allow = event.DefaultAllowList.With("custom_attributes.tier")
	e, _ = event.Discovered(m, map[string]string{"custom_attributes.tier": "gold", "custom_attributes.passport_number": "X"})
	if e.Data.Attributes["custom_attributes.tier"] != "gold" || e.Data.Attributes["custom_attributes.passport_number"] != "" {
		t.Fatalf("allow-list: %v", e.Data.Attributes)
	}
}

func TestConstructorsRejectBadInput(t *testing.T) {
	good := meta(event.ProviderActivePlatform, "1")
	cases := map[string]func() (*event.Event, error){
		"no change": func() (*event.Event, error) {
			return event.StatusChanged(good, event.EnumValue("active"), event.EnumValue("Active"))
		},
		"unknown provider": func() (*event.Event, error) { m := good; m.Provider = "aws"; return event.Discovered(m, nil) },
		"bad instance":     func() (*event.Event, error) { m := good; m.Instance = "AP.Main"; return event.Discovered(m, nil) },
		"empty account":    func() (*event.Event, error) { m := good; m.AccountID = ""; return event.Discovered(m, nil) },
		"zero time":        func() (*event.Event, error) { m := good; m.ObservedAt = time.Time{}; return event.Discovered(m, nil) },
		"bad severity":     func() (*event.Event, error) { m := good; m.Severity = "loud"; return event.Discovered(m, nil) },
		"chain without prev": func() (*event.Event, error) {
			m := good
			m.Chain = event.Chain{Seq: 3}
			return event.Discovered(m, nil)
		},
		"debt unchanged": func() (*event.Event, error) {
			return event.DebtChanged(good, event.DebtChange{Previous: dec("1.50"), Current: dec("1.5")})
		},
		"crossed without threshold": func() (*event.Event, error) {
			return event.DebtChanged(good, event.DebtChange{Previous: dec("1"), Current: dec("2"), Crossed: "above"})
		},
		"unknown profile field": func() (*event.Event, error) {
			return event.PhoneProfileChanged(good, "Passport", event.Value{}, event.Value{Value: "x"})
		},
		"provider scope mismatch": func() (*event.Event, error) {
			return event.PollDegraded(good, event.Poll{Scope: "provider", Since: t0})
		},
		"poll without since": func() (*event.Event, error) { return event.PollRecovered(good, event.Poll{}) },
		"created without type": func() (*event.Event, error) {
			return event.Created(good, event.Onboarding{}, nil)
		},
	}
	for name, f := range cases {
		if _, err := f(); !errors.Is(err, event.ErrInvalid) {
			t.Errorf("%s: want ErrInvalid, got %v", name, err)
		}
	}
}

func TestStallNamesItsScope(t *testing.T) {
	m := meta(event.ProviderActivePlatform, event.ProviderScope)
	st := event.Stall{Reason: event.StallNoCycle, Since: t0, Interval: "5s", Intervals: 3}
	cases := []struct {
		name string
		m    event.Meta
		st   event.Stall
	}{
		{"the provider scope is the poller's chain", m, st},
		{"an unknown reason", func() event.Meta { m := m; m.AccountID = event.PollerScope; return m }(), event.Stall{Reason: "tired", Since: t0, Interval: "5s", Intervals: 3}},
		{"no start", func() event.Meta { m := m; m.AccountID = event.PollerScope; return m }(), event.Stall{Reason: event.StallNoLease, Interval: "5s", Intervals: 3}},
		{"not a duration", func() event.Meta { m := m; m.AccountID = event.PollerScope; return m }(), event.Stall{Reason: event.StallNoLease, Since: t0, Interval: "often", Intervals: 3}},
	}
	for _, c := range cases {
		if _, err := event.PollStalled(c.m, c.st); !errors.Is(err, event.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", c.name, err)
		}
	}
	m.AccountID = event.PollerScope
	a, _ := event.PollStalled(m, st)
	b, _ := event.PollResumed(m, st)
	st.Since = t0.Add(time.Minute)
	c, _ := event.PollStalled(m, st)
	if a.ID() == b.ID() || a.ID() == c.ID() {
		t.Error("a stall and its end, or two stalls, share an id")
	}
}
