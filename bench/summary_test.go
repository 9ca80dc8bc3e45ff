package main

import (
	"strings"
	"testing"
	"time"
)

// TestSummary: each suite's seconds against its budget (over marked), the
// total against the run's budget, and the targets met and not met, named
// with their targets; figures without a target are in neither list.
func TestSummary(t *testing.T) {
	yes, no := true, false
	cases := []struct {
		name  string
		rep   Report
		lines []string
	}{
		{"within", Report{Seconds: 800, Budget: 900,
			Suites:  []SuiteTime{{Name: "publish", Seconds: 25, Budget: 30, Load: [2]float64{1, 1.5}}, {Name: "audit", Seconds: 260, Budget: 250, Load: [2]float64{1.5, 2}}},
			Figures: []Figure{{Name: "audit.replay", Target: "ratio >= 0.8", Met: &yes}, {Name: "audit.verify"}, {Name: "publish.cloudevent", Target: "ratio >= 0.6", Met: &no}}},
			[]string{
				"# publish 25 30 1.0-1.5",
				"# audit 260 250 1.5-2.0 over",
				"# total 800 s (13.3 min): within the 15 min budget",
				"# targets met (1): audit.replay (ratio >= 0.8)",
				"# targets NOT met (1): publish.cloudevent (ratio >= 0.6)",
			}},
		{"a target bounded by a limit", Report{Seconds: 800, Budget: 900,
			Figures: []Figure{
				{Name: "poller.scan", Target: "ratio >= 0.7", Met: &no, Limit: "poller.scan.limit", Ceiling: "poller.scan.ceiling"},
				{Name: "poller.scan.limit", Ratio: fptr(0.62)},
				{Name: "poller.scan.ceiling", Ratio: fptr(0.71)},
				{Name: "webhook10k.throughput", Target: "ratio >= 0.5", Met: &no, Limit: "webhook10k.throughput.limit", Ceiling: "webhook10k.limit"},
				{Name: "audit.replay", Target: "ratio >= 0.8", Met: &yes, Limit: "audit.limit", Ceiling: "audit.ceiling"},
			}},
			[]string{
				"# targets NOT met (2): poller.scan (ratio >= 0.7), webhook10k.throughput (ratio >= 0.5)",
				"# poller.scan: the limit measured in the same run is 0.710 of its baseline (poller.scan.ceiling); the figure is 0.620 of the limit (poller.scan.limit)",
				"# webhook10k.throughput: its limit (webhook10k.throughput.limit, webhook10k.limit) not measured",
			}},
		{"over, a suite failed", Report{Seconds: 1000, Budget: 900,
			Suites: []SuiteTime{{Name: "poller", Seconds: 700, Budget: 300, Failed: true}}},
			[]string{
				"# poller 700 300 0.0-0.0 over failed",
				"# total 1000 s (16.7 min): OVER the 15 min budget",
				"# targets met (0): -",
				"# targets NOT met (0): -",
			}},
		{"short", Report{Seconds: 150, Budget: 180, Short: true},
			[]string{
				"# total 150 s (2.5 min): within the 3 min budget of the short form (the full form's is 15 min)",
				"# (short form: sizes too small for issue 20's targets; read the full form's)",
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out strings.Builder
			summary(&out, &c.rep)
			var got []string
			for _, l := range strings.Split(out.String(), "\n") {
				got = append(got, strings.Join(strings.Fields(l), " "))
			}
			for _, want := range c.lines {
				found := false
				for _, g := range got {
					found = found || g == want
				}
				if !found {
					t.Errorf("no line %q in\n%s", want, out.String())
				}
			}
		})
	}
}

// TestOrder: every suite runs once, in order's order, each with a share of
// the budget; the shares fit the full form's 15 minutes, and the short
// form's shares its 3.
func TestOrder(t *testing.T) {
	got := ordered(suites)
	if len(got) != len(suites) {
		t.Fatalf("%d suites ordered of %d", len(got), len(suites))
	}
	seen := map[string]bool{}
	var full, short time.Duration
	for i, s := range got {
		if seen[s.Name] {
			t.Errorf("%s twice", s.Name)
		}
		seen[s.Name] = true
		if i < len(order) && order[i] != s.Name {
			t.Errorf("suite %d is %s, want %s", i, s.Name, order[i])
		}
		if s.budget(false) <= 0 || s.budget(true) <= 0 || s.budget(true) >= s.budget(false) {
			t.Errorf("%s has budgets %s (full) and %s (short)", s.Name, s.budget(false), s.budget(true))
		}
		full, short = full+s.budget(false), short+s.budget(true)
	}
	if full > FullBudget || short > ShortBudget {
		t.Errorf("the suites' budgets add up to %s (full) and %s (short), over %s and %s", full, short, FullBudget, ShortBudget)
	}
	// A suite order does not name still runs, last.
	extra := ordered(append(suites[:len(suites):len(suites)], Suite{Name: "new"}))
	if extra[len(extra)-1].Name != "new" {
		t.Error("a suite missing from order was dropped or not put last")
	}
}
