package route_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/accountwatch/accountwatch/pkg/config"
	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/event/eventtest"
	"github.com/accountwatch/accountwatch/pkg/route"
)

const treeYAML = `
route:
  receiver: default
  group_wait: 5s
  mute_time_intervals: [nights]
  routes:
    - match: {type: ["account.status.*"], labels: {team: "emea*"}}
      receiver: emea
      continue: true
      critical_bypasses_mute: true
    - match: {type: ["com.accountwatch.account.*"], provider: [activeplatform]}
      min_severity: critical
      receiver: oncall
      group_by: [provider, instance, type]
      group_wait: 0s
      routes:
        - matchers: ["account=~9.*"]
          receiver: vip
    - match: {provider: [alibaba-*]}
      receiver: alibaba
      mute_time_intervals: []
receivers_for_test: ignored
time_intervals:
  - name: nights
    time_intervals:
      - times: [{start_time: "22:00", end_time: "07:00"}]
        location: Europe/Berlin
  - name: weekend
    time_intervals:
      - weekdays: ["saturday:sunday"]
`

type fileWithExtra struct {
	route.Config `yaml:",inline"`
	Extra        string `yaml:"receivers_for_test"`
}

func tree(t *testing.T) *route.Tree {
	t.Helper()
	var f fileWithExtra
	if err := config.DecodeYAML(strings.NewReader(treeYAML), &f); err != nil {
		t.Fatal(err)
	}
	tr, err := route.NewTree(f.Config, []string{"default", "emea", "oncall", "vip", "alibaba"})
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func TestMatch(t *testing.T) {
	tr := tree(t)
	emea := map[string]string{"team": "emea-north"}
	cases := []struct {
		name string
		ev   *event.Event
		want string // receivers of the leaves, in order
	}{
		{"status, emea label, critical: emea continues to oncall", eventtest.Status(t, eventtest.Meta("100", emea), "active", "credit hold"), "emea,oncall"},
		{"status, emea label, info: emea continues, oncall wants critical; a matched child means no root leaf", eventtest.Status(t, eventtest.Meta("100", emea), "credit_hold", "active"), "emea"},
		{"status without label, critical", eventtest.Status(t, eventtest.Meta("100", nil), "active", "credit_hold"), "oncall"},
		{"critical vip account goes to the deepest route", eventtest.Status(t, eventtest.Meta("900", nil), "active", "credit_hold"), "vip"},
		{"warning debt goes to root", eventtest.Debt(t, eventtest.Meta("100", nil), "1", "50", "500", ""), "default"},
		{"alibaba glob", eventtest.Hosting(t, "123", "", "FREEZE"), "alibaba"},
	}
	for _, c := range cases {
		var got []string
		for _, l := range tr.Match(c.ev) {
			got = append(got, l.Receiver)
		}
		if strings.Join(got, ",") != c.want {
			t.Errorf("%s: receivers %v, want %s", c.name, got, c.want)
		}
	}
}

func TestInheritance(t *testing.T) {
	tr := tree(t)
	leaves := tr.Match(eventtest.Status(t, eventtest.Meta("900", nil), "active", "credit_hold"))
	if len(leaves) != 1 {
		t.Fatalf("leaves %d", len(leaves))
	}
	l := leaves[0]
	if l.ID != "0.1.0" || l.GroupWait != 0 || l.GroupInterval != route.DefaultGroupInterval || strings.Join(l.GroupBy, ",") != "provider,instance,type" || len(l.Mute) != 1 {
		t.Errorf("vip leaf did not inherit: %+v", l)
	}
	ali := tr.Match(eventtest.Hosting(t, "1", "", "FREEZE"))[0]
	if len(ali.Mute) != 0 || ali.GroupWait != 5*time.Second {
		t.Errorf("alibaba leaf: mute %d wait %s", len(ali.Mute), ali.GroupWait)
	}
}

func TestGroupKey(t *testing.T) {
	tr := tree(t)
	a := tr.Match(eventtest.Hosting(t, "1", "", "FREEZE"))[0]
	k1 := a.GroupKey(eventtest.Hosting(t, "1", "", "FREEZE"))
	k2 := a.GroupKey(eventtest.CreditLimit(t, "1", "thaw", "freeze"))
	k3 := a.GroupKey(eventtest.Hosting(t, "2", "", "FREEZE"))
	if k1 != k2 || k1 == k3 {
		t.Errorf("default group_by is per account: %q %q %q", k1, k2, k3)
	}
	oc := tr.Match(eventtest.Status(t, eventtest.Meta("100", nil), "active", "credit_hold"))[0]
	if oc.GroupKey(eventtest.Status(t, eventtest.Meta("100", nil), "active", "credit_hold")) != oc.GroupKey(eventtest.Status(t, eventtest.Meta("101", nil), "active", "credit_hold")) {
		t.Error("group_by provider,instance,type put two accounts in different groups")
	}
}

func TestMute(t *testing.T) {
	tr := tree(t)
	berlin, _ := time.LoadLocation("Europe/Berlin")
	night := time.Date(2026, 11, 23, 23, 30, 0, 0, berlin)
	day := time.Date(2026, 11, 23, 12, 0, 0, 0, berlin)
	warn := eventtest.Status(t, eventtest.Meta("100", map[string]string{"team": "emea"}), "active", "administrative_hold")
	crit := eventtest.Status(t, eventtest.Meta("100", map[string]string{"team": "emea"}), "active", "credit_hold")
	l := tr.Match(warn)[0]
	if l.Receiver != "emea" {
		t.Fatalf("leaf %s", l.Receiver)
	}
	until, muted := l.Muted(warn, night)
	if want := time.Date(2026, 11, 24, 7, 0, 0, 0, berlin); !muted || !until.Equal(want) {
		t.Errorf("night: muted %v until %s, want until %s", muted, until, want)
	}
	if _, muted := l.Muted(warn, day); muted {
		t.Error("muted at noon")
	}
	if _, muted := l.Muted(crit, night); muted {
		t.Error("critical did not bypass the mute interval")
	}
	if _, name, muted := tr.Match(crit)[1].MutedBy(crit, night); !muted || name != "nights" {
		t.Error("oncall route has no bypass, yet critical passed")
	}
}

func TestIntervals(t *testing.T) {
	mk := func(p route.Period) *route.Tree {
		t.Helper()
		tr, err := route.NewTree(route.Config{
			Route:         &route.Route{Receiver: "r", MuteTimeIntervals: []string{"x"}},
			TimeIntervals: []route.TimeInterval{{Name: "x", Periods: []route.Period{p}}},
		}, []string{"r"})
		if err != nil {
			t.Fatal(err)
		}
		return tr
	}
	ev := eventtest.Status(t, eventtest.Meta("1", nil), "active", "deleted")
	cases := []struct {
		name string
		p    route.Period
		at   time.Time
		want bool
	}{
		{"weekday range in", route.Period{Weekdays: []string{"monday:friday"}}, time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC), true}, // a Monday
		{"weekday range out", route.Period{Weekdays: []string{"monday:friday"}}, time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC), false},
		{"last day of month", route.Period{DaysOfMonth: []string{"-1"}}, time.Date(2026, 11, 30, 1, 0, 0, 0, time.UTC), true},
		{"not last day", route.Period{DaysOfMonth: []string{"-1"}}, time.Date(2026, 11, 29, 1, 0, 0, 0, time.UTC), false},
		{"month by name", route.Period{Months: []string{"december"}}, time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), true},
		{"times end exclusive", route.Period{Times: []route.TimeRange{{"09:00", "17:00"}}}, time.Date(2026, 11, 23, 17, 0, 0, 0, time.UTC), false},
		{"times wrap midnight", route.Period{Times: []route.TimeRange{{"22:00", "06:00"}}}, time.Date(2026, 11, 23, 3, 0, 0, 0, time.UTC), true},
	}
	for _, c := range cases {
		l := mk(c.p).Match(ev)[0]
		if _, got := l.Muted(ev, c.at); got != c.want {
			t.Errorf("%s: muted %v, want %v", c.name, got, c.want)
		}
	}
}

func TestInvalid(t *testing.T) {
	cases := []struct {
		name, yaml, want string
	}{
		{"no root", "time_intervals: []", "route: missing"},
		{"undefined receiver", "route: {receiver: nobody}", `route.receiver: "nobody" is not defined`},
		{"child receiver", "route: {receiver: r, routes: [{receiver: x}]}", "route.routes[0].receiver"},
		{"root match", "route: {receiver: r, match: {type: [a]}}", "root route matches every event"},
		{"bad glob", "route: {receiver: r, routes: [{match: {account: ['[']}}]}", "route.routes[0].match"},
		{"bad severity", "route: {receiver: r, routes: [{min_severity: loud}]}", "min_severity"},
		{"bad matcher", "route: {receiver: r, routes: [{matchers: ['account~1']}]}", "route.routes[0].matchers"},
		{"bad regex", "route: {receiver: r, routes: [{matchers: ['account=~(']}]}", "route.routes[0].matchers"},
		{"unknown interval", "route: {receiver: r, mute_time_intervals: [x]}", `"x" is not defined in time_intervals`},
		{"bad time", "route: {receiver: r}\ntime_intervals: [{name: n, time_intervals: [{times: [{start_time: '25:00', end_time: '26:00'}]}]}]", "time_intervals[0]"},
		{"bad weekday", "route: {receiver: r}\ntime_intervals: [{name: n, time_intervals: [{weekdays: [funday]}]}]", "weekdays"},
		{"bad location", "route: {receiver: r}\ntime_intervals: [{name: n, time_intervals: [{location: Mars/Olympus}]}]", "location"},
		{"negative wait", "route: {receiver: r, group_wait: -1s}", "group_wait"},
	}
	for _, c := range cases {
		var cfg route.Config
		err := config.DecodeYAML(strings.NewReader(c.yaml), &cfg)
		if err == nil {
			_, err = route.NewTree(cfg, []string{"r"})
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want it to say %q", c.name, err, c.want)
		}
	}
	var cfg route.Config
	if err := config.DecodeYAML(strings.NewReader("route: {receiver: r, recever: x}"), &cfg); err == nil {
		t.Error("a misspelt key was accepted")
	}
}

func TestMatchers(t *testing.T) {
	ev := eventtest.Status(t, eventtest.Meta("1000123", map[string]string{"team": "emea"}), "active", "credit_hold")
	cases := []struct {
		m    string
		want bool
	}{
		{"account=1000123", true},
		{"account!=1000123", false},
		{"account=~1000.*", true},
		{"account=~000", false}, // anchored
		{"account!~9.*", true},
		{"team=emea", true},
		{"labels.team=emea", true},
		{"manager=", true}, // an absent label is ""
		{"type=account.status.changed", true},
		{"type=com.accountwatch.account.status.changed", true},
		{"severity=critical", true},
		{"provider=alibaba-bss", false},
		{`instance="ap-main"`, true},
	}
	for _, c := range cases {
		m, err := route.ParseMatcher(c.m)
		if err != nil {
			t.Fatalf("%s: %v", c.m, err)
		}
		if got := m.Matches(ev); got != c.want {
			t.Errorf("%s: %v, want %v", c.m, got, c.want)
		}
	}
	for _, bad := range []string{"", "=x", "account", "a b=c", "account=~[", "account~x"} {
		if _, err := route.ParseMatcher(bad); !errors.Is(err, route.ErrInvalid) {
			t.Errorf("%q: error %v, want ErrInvalid", bad, err)
		}
	}
}
