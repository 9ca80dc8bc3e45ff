package deploy_test

import (
	"encoding/json"
	"log/slog"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
)

type rule struct{ name, expr string }

func parseRules() (*rulefmt.RuleGroups, []error) {
	return rulefmt.ParseFile("prometheus/accountwatch.rules.yml", false, model.UTF8Validation, parser.NewParser(parser.Options{}), slog.New(slog.DiscardHandler))
}

// loadRules parses the alert rules with Prometheus' own rule parser (what
// `promtool check rules` runs): syntax, PromQL, templates.
func loadRules(t *testing.T) []rule {
	t.Helper()
	groups, errs := parseRules()
	if len(errs) > 0 {
		t.Fatalf("accountwatch.rules.yml: %v", errs)
	}
	var out []rule
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			out = append(out, rule{name: r.Alert + r.Record, expr: r.Expr})
		}
	}
	return out
}

func TestAlertRules(t *testing.T) {
	groups, errs := parseRules()
	if len(errs) > 0 {
		t.Fatalf("accountwatch.rules.yml: %v", errs)
	}
	// What the issue asks to be told about, each by at least one rule.
	want := map[string]string{
		"aw_auditor_connection_stalled":  "no cycle / no lease",
		"aw_auditor_connection_degraded": "a degraded provider",
		"aw_nats_connected":              "NATS disconnected",
	}
	seen := map[string]bool{}
	n := 0
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			n++
			for _, m := range exprMetrics(t, r.Expr) {
				seen[m] = true
			}
			if strings.TrimSpace(r.Annotations["runbook"]) == "" {
				t.Errorf("%s: no runbook", r.Alert)
			}
			if s := r.Labels["severity"]; s != "critical" && s != "warning" {
				t.Errorf("%s: severity %q", r.Alert, s)
			}
			if r.Annotations["summary"] == "" {
				t.Errorf("%s: no summary", r.Alert)
			}
		}
	}
	for m, why := range want {
		if !seen[m] {
			t.Errorf("no rule over %s (%s)", m, why)
		}
	}
	for _, pattern := range []string{"consumer", "dead_letter", "publish", "webhook"} {
		found := false
		for m := range seen {
			found = found || strings.Contains(m, pattern)
		}
		if !found {
			t.Errorf("no rule over a %s metric", pattern)
		}
	}
	if n < 7 {
		t.Errorf("%d alert rules", n)
	}
}

func TestDashboardQueriesParse(t *testing.T) {
	qs := dashboardQueries(t)
	if len(qs) < 10 {
		t.Fatalf("%d queries", len(qs))
	}
	for _, q := range qs {
		if len(exprMetrics(t, q.expr)) == 0 {
			t.Errorf("panel %q: query %q uses no metric", q.panel, q.expr)
		}
	}
}

// exprMetrics are the metric names a PromQL expression selects.
func exprMetrics(t *testing.T, expr string) []string {
	t.Helper()
	e, err := parser.NewParser(parser.Options{}).ParseExpr(expr)
	if err != nil {
		t.Fatalf("%q: %v", expr, err)
	}
	var out []string
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			for _, m := range vs.LabelMatchers {
				if m.Name == model.MetricNameLabel && m.Type == labels.MatchEqual {
					out = append(out, m.Value)
				}
			}
		}
		return nil
	})
	return out
}

type query struct{ panel, expr string }

// grafanaVar is a dashboard variable in a query; $__rate_interval and the
// like are Grafana's own.
var grafanaVar = regexp.MustCompile(`\$\{?(__rate_interval|__interval|__range)\}?`)
var userVar = regexp.MustCompile(`\$\{?[a-z_]+\}?`)

// dashboardQueries are the Prometheus queries of every panel, with
// Grafana's variables given a value so that Prometheus' parser reads them.
func dashboardQueries(t *testing.T) []query {
	t.Helper()
	b, err := os.ReadFile("grafana/accountwatch.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []panel `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	var out []query
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			for _, tg := range p.Targets {
				e := grafanaVar.ReplaceAllString(tg.Expr, "5m")
				e = userVar.ReplaceAllString(e, ".*")
				out = append(out, query{panel: p.Title, expr: e})
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return out
}

type panel struct {
	Title   string  `json:"title"`
	Panels  []panel `json:"panels"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
}
