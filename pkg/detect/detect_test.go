package detect_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/accountwatch/accountwatch/pkg/detect"
	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/schemas"
)

var t0 = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

func d(s string) decimal.Decimal   { return decimal.RequireFromString(s) }
func dp(s string) *decimal.Decimal { v := d(s); return &v }

func ap(status, debt string) detect.Observation {
	o := detect.Observation{Name: "Acme", Enums: map[string]event.Value{detect.FieldStatus: event.EnumValue(status)}, At: t0}
	if debt != "" {
		o.Debt = &detect.Debt{Current: d(debt), Raw: debt, Threshold: dp("500")}
	}
	return o
}

func bss(hosting, credit string) detect.Observation {
	return detect.Observation{Enums: map[string]event.Value{detect.FieldHostingStatus: event.EnumValue(hosting), detect.FieldCreditLimitStatus: event.EnumValue(credit)}}
}

// run feeds observations in order and returns the types (with field) of all changes.
func run(pol detect.Policy, obs ...detect.Observation) ([]string, detect.Record) {
	var rec detect.Record
	var out []string
	for _, o := range obs {
		var ch []detect.Change
		ch, rec = detect.Observe(rec, o, pol)
		for _, c := range ch {
			s := c.Type.Tail()
			if c.Field != "" {
				s += ":" + c.Previous.Value + ">" + c.Current.Value
			}
			if c.Debt != nil && c.Debt.Crossed != "" {
				s += ":" + c.Debt.Crossed
			}
			out = append(out, s)
		}
	}
	return out, rec
}

func TestObserve(t *testing.T) {
	pol := detect.DefaultPolicy()
	pol.DebtStep = d("100")
	cases := []struct {
		name string
		obs  []detect.Observation
		want string
	}{
		{"first observation is a baseline", []detect.Observation{ap("credit hold", "900")}, ""},
		{"nothing changed", []detect.Observation{ap("active", "0"), ap("active", "0")}, ""},
		{"status change", []detect.Observation{ap("active", "0"), ap("credit hold", "0")}, "account.status.changed:active>credit_hold"},
		{"spelling only", []detect.Observation{ap("credit hold", "0"), ap("credit_hold", "0")}, ""},
		{"status back and forth", []detect.Observation{ap("active", "0"), ap("credit_hold", "0"), ap("active", "0")}, "account.status.changed:active>credit_hold,account.status.changed:credit_hold>active"},
		{"debt below step", []detect.Observation{ap("active", "0"), ap("active", "50")}, ""},
		{"small moves accumulate", []detect.Observation{ap("active", "0"), ap("active", "60"), ap("active", "120")}, "account.debt.changed:0>120"},
		{"crossing above", []detect.Observation{ap("active", "450"), ap("active", "505")}, "account.debt.changed:450>505:above"},
		{"hovering at the line does not flap", []detect.Observation{ap("active", "450"), ap("active", "505"), ap("active", "499"), ap("active", "501"), ap("active", "495")}, "account.debt.changed:450>505:above"},
		{"falling clearly below", []detect.Observation{ap("active", "450"), ap("active", "505"), ap("active", "480")}, "account.debt.changed:450>505:above,account.debt.changed:505>480:below"},
		{"status and debt in one poll", []detect.Observation{ap("active", "0"), ap("credit hold", "600")}, "account.status.changed:active>credit_hold,account.debt.changed:0>600:above"},
		{"hosting and credit limit", []detect.Observation{bss("TRUSTEESHIP", "Thaw"), bss("FREEZE", "Freeze")}, "account.credit_limit_status.changed:thaw>freeze,account.hosting_status.changed:trusteeship>freeze"},
		{"old hosting spelling", []detect.Observation{bss("Trusteeship", "Thaw"), bss("TrusteeshipCancel", "Thaw")}, "account.hosting_status.changed:trusteeship>trusteeshipcancel"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, _ := run(pol, c.obs...)
			if strings.Join(got, ",") != c.want {
				t.Fatalf("got  %s\nwant %s", strings.Join(got, ","), c.want)
			}
		})
	}
}

func TestConfiguredThresholdWhenTheAccountHasNone(t *testing.T) {
	pol := detect.DefaultPolicy()
	pol.DebtThreshold = dp("1000")
	a, b := ap("active", "900"), ap("active", "1200")
	a.Debt.Threshold, b.Debt.Threshold = nil, nil
	var rec detect.Record
	_, rec = detect.Observe(rec, a, pol)
	ch, _ := detect.Observe(rec, b, pol)
	if len(ch) != 1 || ch[0].Debt.Crossed != "above" || ch[0].Debt.ThresholdSource != "config" {
		t.Fatalf("%+v", ch)
	}
}

func TestUnknownValuesPassThrough(t *testing.T) {
	var rec detect.Record
	_, rec = detect.Observe(rec, ap("active", ""), detect.DefaultPolicy())
	ch, _ := detect.Observe(rec, ap("Suspended By Fraud", ""), detect.DefaultPolicy())
	if len(ch) != 1 || !ch[0].Unknown || ch[0].Current.Value != "suspended_by_fraud" || ch[0].Current.Raw != "Suspended By Fraud" {
		t.Fatalf("%+v", ch)
	}
}

func TestProfileChanges(t *testing.T) {
	o := func(desc string, sites ...string) detect.Observation {
		return detect.Observation{Profile: map[string]event.Value{"Description": {Value: desc}, "Websites": event.ListValue(sites)}}
	}
	got, _ := run(detect.DefaultPolicy(), o("a", "https://x"), o("a", "https://x"), o("b", "https://x", "https://y"))
	if strings.Join(got, ",") != "phone_profile.changed:a>b,phone_profile.changed:https://x>https://x, https://y" {
		t.Fatalf("%v", got)
	}
}

func TestFailuresNeverChangeStateAndDegradeOnce(t *testing.T) {
	pol := detect.DefaultPolicy()
	var rec detect.Record
	_, rec = detect.Observe(rec, ap("active", "10"), pol)
	var types []string
	for i := range 5 {
		var ch []detect.Change
		ch, rec = detect.Fail(rec, t0.Add(time.Duration(i)*time.Minute), "Throttling.User", "rate limited", nil, pol)
		for _, c := range ch {
			types = append(types, c.Type.Tail())
		}
	}
	if strings.Join(types, ",") != "poll.degraded" || !rec.Degraded || rec.Failures != 5 || !rec.FailingSince.Equal(t0) {
		t.Fatalf("%v %+v", types, rec)
	}
	if rec.Enums[detect.FieldStatus].Value != "active" {
		t.Fatal("a failure changed state")
	}
	ch, rec := detect.Observe(rec, ap("active", "10"), pol)
	if len(ch) != 1 || ch[0].Type != event.TypePollRecovered || !ch[0].Poll.Since.Equal(t0) || rec.Degraded || rec.Failures != 0 {
		t.Fatalf("recovery: %+v %+v", ch, rec)
	}
	// A failure streak shorter than the limit says nothing.
	_, rec = detect.Fail(rec, t0, "InternalError", "500", nil, pol)
	ch, _ = detect.Observe(rec, ap("active", "10"), pol)
	if len(ch) != 0 {
		t.Fatalf("%+v", ch)
	}
}

func TestProviderScope(t *testing.T) {
	rec := detect.Record{Provider: event.ProviderAlibabaBSS, Instance: "bss", AccountID: event.ProviderScope}
	var ch []detect.Change
	for range 3 {
		ch, rec = detect.Fail(rec, t0, "timeout", "dial", nil, detect.DefaultPolicy())
	}
	if len(ch) != 1 || ch[0].Poll.Scope != "provider" {
		t.Fatalf("%+v", ch)
	}
	ch, _ = detect.Recover(rec)
	if len(ch) != 1 || ch[0].Type != event.TypePollRecovered || ch[0].Poll.Scope != "provider" {
		t.Fatalf("%+v", ch)
	}
}

// TestChangesBuildValidEvents: every change kind becomes an event that
// validates against its schema.
func TestChangesBuildValidEvents(t *testing.T) {
	v, err := schemas.Default()
	if err != nil {
		t.Fatal(err)
	}
	pol := detect.DefaultPolicy()
	var all []detect.Change
	collect := func(obs ...detect.Observation) {
		var rec detect.Record
		for _, o := range obs {
			var ch []detect.Change
			ch, rec = detect.Observe(rec, o, pol)
			all = append(all, ch...)
		}
	}
	collect(ap("active", "450"), ap("credit hold", "520"))
	collect(bss("TRUSTEESHIP", "Thaw"), bss("FREEZE", "Freeze"))
	collect(detect.Observation{Profile: map[string]event.Value{"About": {Value: "a"}}}, detect.Observation{Profile: map[string]event.Value{"About": {Value: "b"}}})
	rec := detect.Record{AccountID: "1"}
	for range 3 {
		var ch []detect.Change
		ch, rec = detect.Fail(rec, t0, "x", "y", nil, pol)
		all = append(all, ch...)
	}
	ch, _ := detect.Observe(rec, ap("active", ""), pol)
	all = append(all, ch...)
	all = append(all, detect.Change{Type: event.TypeDiscovered, Attrs: map[string]string{"status": "active"}}, detect.Change{Type: event.TypeRemoved})
	if len(all) != 9 {
		t.Fatalf("%d changes", len(all))
	}
	for _, c := range all {
		e, err := c.Event(event.Meta{Provider: event.ProviderActivePlatform, Instance: "ap-main", AccountID: "1", ObservedAt: t0})
		if err != nil {
			t.Fatalf("%s: %v", c.Type, err)
		}
		if err := v.Validate(string(e.Type()), e.Cloud.Data()); err != nil {
			t.Fatalf("%s: %v", c.Type, err)
		}
	}
}

// A record baselined without profile fields or enums takes them later without
// a panic: enums first seen are baseline, profile fields compare with empty.
func TestFieldsFirstSeenAfterTheBaseline(t *testing.T) {
	var rec detect.Record
	_, rec = detect.Observe(rec, detect.Observation{Name: "x"}, detect.DefaultPolicy())
	ch, rec := detect.Observe(rec, ap("active", ""), detect.DefaultPolicy())
	if len(ch) != 0 || rec.Enums[detect.FieldStatus].Value != "active" {
		t.Fatalf("%+v %+v", ch, rec.Enums)
	}
	ch, _ = detect.Observe(rec, detect.Observation{Profile: map[string]event.Value{"About": {Value: "hi"}}}, detect.DefaultPolicy())
	if len(ch) != 1 || ch[0].Field != "About" {
		t.Fatalf("%+v", ch)
	}
}

// TestDetectionTable: every watched enum field has a row (its event type and
// documented values), and a field without one is stored, never an event.
func TestDetectionTable(t *testing.T) {
	prev := detect.Record{Baseline: true, Enums: map[string]event.Value{
		detect.FieldStatus: event.EnumValue("active"), detect.FieldHostingStatus: event.EnumValue("TRUSTEESHIP"),
		detect.FieldCreditLimitStatus: event.EnumValue("Thaw"), "colour": event.EnumValue("red")}}
	obs := detect.Observation{Enums: map[string]event.Value{
		detect.FieldStatus: event.EnumValue("paused"), detect.FieldHostingStatus: event.EnumValue("FREEZE"),
		detect.FieldCreditLimitStatus: event.EnumValue("Freeze"), "colour": event.EnumValue("blue")}}
	changes, next := detect.Observe(prev, obs, detect.DefaultPolicy())
	got := map[string]string{}
	for _, c := range changes {
		got[c.Field] = fmt.Sprintf("%s unknown=%v", c.Type.Tail(), c.Unknown)
	}
	want := map[string]string{
		detect.FieldStatus:            "account.status.changed unknown=true",
		detect.FieldHostingStatus:     "account.hosting_status.changed unknown=false",
		detect.FieldCreditLimitStatus: "account.credit_limit_status.changed unknown=false",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) || next.Enums["colour"].Value != "blue" {
		t.Fatalf("changes %v (want %v); colour %v", got, want, next.Enums["colour"])
	}
}
