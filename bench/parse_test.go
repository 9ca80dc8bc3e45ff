package main

import (
	"strings"
	"testing"
)

// TestParse reads go test -bench output as it is printed: a sub-benchmark
// with its GOMAXPROCS suffix, metrics of b.ReportMetric beside ns/op, and
// the lines around them passed over.
func TestParse(t *testing.T) {
	out := `goos: linux
goarch: amd64
pkg: github.com/accountwatch/accountwatch/pkg/eventbus
BenchmarkPublish/sync=default/events-2         	  200000	      9123 ns/op	     45123 events/s	    1200 B/op	      14 allocs/op
BenchmarkPublish/sync=default/raw-2            	  200000	      5012 ns/op	     80001 msgs/s
    bench_test.go:88: a log line 1 2 3
BenchmarkPoller1M 	       1	123456789012 ns/op	         0.8100 ratio	    350000 polls/s
BenchmarkBroken-2   x   1 ns/op
PASS
ok  	github.com/accountwatch/accountwatch/pkg/eventbus	12.3s
`
	var echo strings.Builder
	got, err := parse(strings.NewReader(out), &echo)
	if err != nil {
		t.Fatal(err)
	}
	if echo.String() != out {
		t.Error("the output is not copied to the log as it is")
	}
	want := map[string]map[string]float64{
		"BenchmarkPublish/sync=default/events": {"ns/op": 9123, "events/s": 45123, "B/op": 1200, "allocs/op": 14},
		"BenchmarkPublish/sync=default/raw":    {"ns/op": 5012, "msgs/s": 80001},
		"BenchmarkPoller1M":                    {"ns/op": 123456789012, "ratio": 0.81, "polls/s": 350000},
	}
	if len(got) != len(want) {
		t.Fatalf("parsed %v", got)
	}
	for name, metrics := range want {
		for unit, v := range metrics {
			if got[name].Metrics[unit] != v {
				t.Errorf("%s %s: %v, want %v", name, unit, got[name].Metrics[unit], v)
			}
		}
	}
}

// TestFigure: a figure takes its value and its baseline (from its own
// benchmark or another) and the ratio of the two; its target is judged on
// the ratio or the value; the line has the six fields, "-" for what a
// figure lacks.
func TestFigure(t *testing.T) {
	results := map[string]result{
		"BenchmarkA":     {Name: "BenchmarkA", Metrics: map[string]float64{"events/s": 30000, "raw/s": 60000, "heap-MB": 12.5}},
		"BenchmarkA/raw": {Name: "BenchmarkA/raw", Metrics: map[string]float64{"msgs/s": 40000}},
	}
	cases := []struct {
		name string
		spec Spec
		line string
		met  *bool
	}{
		{"same benchmark", Spec{Name: "a", Bench: "BenchmarkA", Metric: "events/s", Baseline: "raw/s", Target: at("ratio", ">=", 0.6)},
			"a 30000 events/s 60000 raw/s 0.500", ptr(false)},
		{"another benchmark", Spec{Name: "b", Bench: "BenchmarkA", Metric: "events/s", Baseline: "msgs/s", BaseBench: "BenchmarkA/raw", BaseUnit: "raw-msgs/s", Target: at("ratio", ">=", 0.6)},
			"b 30000 events/s 40000 raw-msgs/s 0.750", ptr(true)},
		{"no baseline, a target on the value", Spec{Name: "c", Bench: "BenchmarkA", Metric: "heap-MB", Unit: "MB", Target: at("value", "<=", 1500)},
			"c 12.5 MB - - -", ptr(true)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, ok := c.spec.from(results)
			if !ok {
				t.Fatal("not found")
			}
			if got := strings.Join(strings.Fields(f.line()), " "); got != c.line {
				t.Errorf("line %q, want %q", got, c.line)
			}
			if (f.Met == nil) != (c.met == nil) || f.Met != nil && *f.Met != *c.met {
				t.Errorf("met %v, want %v", f.Met, c.met)
			}
		})
	}
	if _, ok := (Spec{Name: "d", Bench: "BenchmarkA", Metric: "events/s", Baseline: "nope"}).from(results); ok {
		t.Error("a figure without its baseline was read")
	}
}

func ptr(b bool) *bool { return &b }

func fptr(x float64) *float64 { return &x }
