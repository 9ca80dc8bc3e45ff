package route_test

import (
	"strings"
	"testing"
	"time"

	"github.com/accountwatch/accountwatch/pkg/config"
	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/event/eventtest"
	"github.com/accountwatch/accountwatch/pkg/route"
)

const financeYAML = `
route:
  receiver: finance
  repeat_interval: 4h
  runbook:
    default: "See the finance runbook"
    account.status.changed: "https://wiki.example/credit-hold"
  routes:
    - match: {type: ["poll.*"]}
      receiver: oncall
      for: 2m
      flap: once
      runbook:
        "poll.*": "Check the provider's status page"
    - match: {labels: {team: emea}}
      receiver: finance
      report: {every: weekly, weekday: monday, at: "08:30", location: Europe/Berlin}
inhibit_rules:
  - name: provider outage
    source_matchers: [type=poll.degraded, scope=provider]
    target_matchers: [type=poll.degraded, scope=account]
    equal: [provider, instance]
  - source_matchers: ['standing=~.*credit_hold.*']
    target_matchers: [type=account.debt.changed, severity!=critical]
    equal: [provider, instance, account]
`

func financeTree(t *testing.T) *route.Tree {
	t.Helper()
	var c route.Config
	if err := config.DecodeYAML(strings.NewReader(financeYAML), &c); err != nil {
		t.Fatal(err)
	}
	tr, err := route.NewTree(c, []string{"finance", "oncall"})
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func TestRepeatForRunbook(t *testing.T) {
	tr := financeTree(t)
	hold := eventtest.Status(t, eventtest.Meta("1", nil), "active", "credit_hold")
	l := tr.LeafFor(hold, "finance")
	if l.RepeatInterval != 4*time.Hour || l.For != 0 || l.Runbook(hold) != "https://wiki.example/credit-hold" {
		t.Fatalf("%+v", l)
	}
	debt := eventtest.Debt(t, eventtest.Meta("1", nil), "0", "100", "600", "")
	if l := tr.LeafFor(debt, "finance"); l.Runbook(debt) != "See the finance runbook" {
		t.Fatalf("default runbook %q", l.Runbook(debt))
	}
	deg := eventtest.Must(t)(event.PollDegraded(eventtest.Meta("1", nil), event.Poll{ConsecutiveFailures: 3, Since: eventtest.T0}))
	l = tr.LeafFor(deg, "oncall")
	if l.For != 2*time.Minute || l.Flap != route.FlapOnce || l.RepeatInterval != 4*time.Hour || l.Runbook(deg) != "Check the provider's status page" {
		t.Fatalf("%+v", l)
	}
	if tr.LeafFor(deg, "finance") != nil {
		t.Fatal("poll events are the on-call's")
	}
}

func TestInhibitRules(t *testing.T) {
	tr := financeTree(t)
	rules := tr.Inhibitions()
	if len(rules) != 2 || rules[0].Name != "provider outage" || rules[1].Name != "inhibit_rules[1]" {
		t.Fatalf("%+v", rules)
	}
	m := eventtest.Meta("1000123", nil)
	prov := m
	prov.AccountID = event.ProviderScope
	outage := eventtest.Must(t)(event.PollDegraded(prov, event.Poll{ConsecutiveFailures: 5, Since: eventtest.T0}))
	one := eventtest.Must(t)(event.PollDegraded(m, event.Poll{ConsecutiveFailures: 3, Since: eventtest.T0}))
	other := m
	other.Instance = "ap-other"
	elsewhere := eventtest.Must(t)(event.PollDegraded(other, event.Poll{ConsecutiveFailures: 3, Since: eventtest.T0}))
	src := route.Attributes(outage)
	if !rules[0].Inhibits(src, one) {
		t.Error("a provider outage inhibits its accounts' degraded alerts")
	}
	if rules[0].Inhibits(src, elsewhere) {
		t.Error("not those of another connection")
	}
	if rules[0].Inhibits(src, outage) {
		t.Error("the outage is no target of itself")
	}

	held := m
	held.Standing = &event.Standing{Problems: []string{event.ProblemCreditHold}}
	hold := eventtest.Status(t, held, "active", "credit_hold")
	warn := eventtest.Debt(t, eventtest.Meta("1000123", nil), "100", "200", "600", "")
	crit := eventtest.Debt(t, eventtest.Meta("1000123", nil), "500", "700", "600", "above")
	other2 := eventtest.Debt(t, eventtest.Meta("1000124", nil), "100", "200", "600", "")
	if !rules[1].Inhibits(route.Attributes(hold), warn) {
		t.Error("a credit hold inhibits the account's debt warnings")
	}
	if rules[1].Inhibits(route.Attributes(hold), crit) || rules[1].Inhibits(route.Attributes(hold), other2) {
		t.Error("not a critical crossing, nor another account's")
	}
	if route.Condition(hold) != "status" || route.Condition(outage) != "poll" {
		t.Error(route.Condition(hold), route.Condition(outage))
	}
}

func TestReportSchedule(t *testing.T) {
	tr := financeTree(t)
	reps := tr.Reports()
	if len(reps) != 1 || reps[0].Leaf.Receiver != "finance" {
		t.Fatalf("%+v", reps)
	}
	s := reps[0].Schedule
	berlin, _ := time.LoadLocation("Europe/Berlin")
	// Wednesday 2026-03-25 12:00 UTC: the last report was Monday the 23rd
	// 08:30 Berlin (CET, 07:30 UTC); the next is Monday the 30th, after the
	// clocks went forward (CEST: 06:30 UTC).
	now := time.Date(2026, 3, 25, 12, 0, 0, 0, time.UTC)
	if got, want := s.Last(now), time.Date(2026, 3, 23, 8, 30, 0, 0, berlin); !got.Equal(want) || got.UTC().Hour() != 7 {
		t.Errorf("last %s, want %s", got, want)
	}
	if got := s.Next(now); got.UTC() != time.Date(2026, 3, 30, 6, 30, 0, 0, time.UTC) {
		t.Errorf("next %s", got.UTC())
	}
	if !reps[0].Takes(event.ProviderActivePlatform, "ap-main", "1", map[string]string{"team": "emea"}) || reps[0].Takes(event.ProviderActivePlatform, "ap-main", "1", nil) {
		t.Error("the report takes the accounts its route matches")
	}
	var daily route.Config
	if err := config.DecodeYAML(strings.NewReader(`route: {receiver: r, report: {every: daily, at: "18:00", location: Asia/Tokyo}}`), &daily); err != nil {
		t.Fatal(err)
	}
	dt, err := route.NewTree(daily, []string{"r"})
	if err != nil {
		t.Fatal(err)
	}
	if got := dt.Reports()[0].Schedule.Next(now); got.UTC() != time.Date(2026, 3, 26, 9, 0, 0, 0, time.UTC) {
		t.Errorf("daily next %s", got.UTC())
	}
}

func TestFinanceErrorsNameTheKey(t *testing.T) {
	for yaml, want := range map[string]string{
		`route: {receiver: r, flap: sometimes}`:                                                     "route.flap",
		`route: {receiver: r, for: -1s}`:                                                            "route.for",
		`route: {receiver: r, repeat_interval: 10ms}`:                                               "route.repeat_interval",
		`route: {receiver: r, report: {every: hourly}}`:                                             "route.report",
		`route: {receiver: r, report: {every: daily, location: Mars/Olympus}}`:                      "route.report",
		`route: {receiver: r, report: {every: daily, weekday: monday}}`:                             "route.report",
		`{route: {receiver: r}, inhibit_rules: [{source_matchers: [type=x]}]}`:                      "inhibit_rules[0]",
		`{route: {receiver: r}, inhibit_rules: [{source_matchers: ["x"], target_matchers: [a=b]}]}`: "inhibit_rules[0].source_matchers",
		`route: {receiver: r, runbook: {"[": x}}`:                                                   "route.runbook",
	} {
		var c route.Config
		if err := config.DecodeYAML(strings.NewReader(yaml), &c); err != nil {
			t.Fatal(err)
		}
		_, err := route.NewTree(c, []string{"r"})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v (want %s)", yaml, err, want)
		}
	}
}
