// Command bench is `make bench`: it runs the benchmarks of the pipeline, each
// in its own package, and prints one line per figure,
//
//	name value unit baseline baseline_unit ratio
//
// every figure next to the raw baseline its benchmark measured in the same
// run (ratio is value/baseline; "-" where a figure has none), and writes the
// same, with the targets and the machine's load, as JSON for comparison
// across runs. -short runs the small form CI runs (figures printed, never
// asserted). Each benchmark's own output goes to the log (-log).
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

func main() {
	short := flag.Bool("short", false, "the short form (CI): small sizes, a couple of minutes")
	root := flag.String("root", ".", "the repository")
	jsonOut := flag.String("json", "bench.json", "where the figures go as JSON")
	logOut := flag.String("log", "bench.log", "where the benchmarks' output goes")
	only := flag.String("run", "", "run only the suites whose name contains this")
	flag.Parse()
	if err := run(*root, *short, *only, *jsonOut, *logOut, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// Report is the JSON form of a run.
type Report struct {
	Started  time.Time `json:"started"`
	Seconds  float64   `json:"seconds"`
	Short    bool      `json:"short"`
	Go       string    `json:"go"`
	CPUs     int       `json:"cpus"`
	Commit   string    `json:"commit,omitempty"`
	Figures  []Figure  `json:"figures"`
	Failures []string  `json:"failures,omitempty"`
}

// Figure is one line of the output.
type Figure struct {
	Name         string   `json:"name"`
	Value        float64  `json:"value"`
	Unit         string   `json:"unit"`
	Baseline     *float64 `json:"baseline,omitempty"`
	BaselineUnit string   `json:"baseline_unit,omitempty"`
	Ratio        *float64 `json:"ratio,omitempty"`
	Target       string   `json:"target,omitempty"`
	Met          *bool    `json:"met,omitempty"`
	// Load is the machine's 1-minute load average when its suite started
	// and ended: the other work that ran beside it.
	Load [2]float64 `json:"load"`
	Note string     `json:"note,omitempty"`
}

func run(root string, short bool, only, jsonOut, logOut string, stdout io.Writer) error {
	logf, err := os.Create(logOut)
	if err != nil {
		return err
	}
	defer logf.Close()
	rep := Report{Started: time.Now().UTC(), Short: short, Go: runtime.Version(), CPUs: runtime.NumCPU(), Figures: []Figure{}}
	if out, err := exec.Command("git", "-C", root, "rev-parse", "--short", "HEAD").Output(); err == nil {
		rep.Commit = strings.TrimSpace(string(out))
	}
	fmt.Fprintf(stdout, "# accountwatch benchmarks %s, %s, %d CPUs, short=%v (ratio = value/baseline; details in %s)\n", rep.Started.Format(time.RFC3339), rep.Go, rep.CPUs, short, logOut)
	for _, s := range suites {
		if only != "" && !strings.Contains(s.Name, only) {
			continue
		}
		load0 := loadAvg()
		results, err := s.run(root, short, logf)
		load := [2]float64{load0, loadAvg()}
		if err != nil {
			rep.Failures = append(rep.Failures, fmt.Sprintf("%s: %v", s.Name, err))
			fmt.Fprintf(stdout, "# %s failed: %v (see %s)\n", s.Name, err, logOut)
		}
		for _, f := range s.Figures {
			fig, ok := f.from(results)
			if !ok {
				if err == nil {
					rep.Failures = append(rep.Failures, fmt.Sprintf("%s: no %s in %s's output", f.Name, f.Metric, f.Bench))
					fmt.Fprintf(stdout, "# %s: no %s in %s's output\n", f.Name, f.Metric, f.Bench)
				}
				continue
			}
			fig.Load = load
			rep.Figures = append(rep.Figures, fig)
			fmt.Fprintln(stdout, fig.line())
		}
	}
	rep.Seconds = time.Since(rep.Started).Seconds()
	fmt.Fprintf(stdout, "# %.0f s; targets:", rep.Seconds)
	for _, f := range rep.Figures {
		if f.Met != nil {
			fmt.Fprintf(stdout, " %s %s", f.Name, map[bool]string{true: "met", false: "NOT met"}[*f.Met])
		}
	}
	fmt.Fprintln(stdout)
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(jsonOut, append(b, '\n'), 0o644); err != nil {
		return err
	}
	if len(rep.Failures) > 0 {
		return fmt.Errorf("%d failures: %s", len(rep.Failures), strings.Join(rep.Failures, "; "))
	}
	return nil
}

// line is the stable form: name value unit baseline baseline_unit ratio.
func (f Figure) line() string {
	base, unit, ratio := "-", "-", "-"
	if f.Baseline != nil {
		base, unit = num(*f.Baseline), f.BaselineUnit
	}
	if f.Ratio != nil {
		ratio = strconv.FormatFloat(*f.Ratio, 'f', 3, 64)
	}
	return fmt.Sprintf("%-34s %12s %-10s %12s %-14s %7s", f.Name, num(f.Value), f.Unit, base, unit, ratio)
}

// num prints a figure with the digits that mean something.
func num(v float64) string {
	switch a := math.Abs(v); {
	case a >= 1000:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'f', 3, 64)
	}
}

// loadAvg is the machine's 1-minute load average (0 where unknown).
func loadAvg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

// Suite is one `go test -bench` run: a package's benchmarks and the figures
// read from them.
type Suite struct {
	Name string
	Dir  string // the module, from the repository root
	Pkg  string // the package, in the module
	// Bench selects the benchmarks (go test -bench).
	Bench   string
	Timeout time.Duration
	// Env is set for the benchmarks; ShortEnv in the short form, on top.
	Env, ShortEnv map[string]string
	Figures       []Spec
}

func (s Suite) run(root string, short bool, log io.Writer) (map[string]result, error) {
	args := []string{"test", "-run", "^$", "-bench", s.Bench, "-benchtime", "1x", "-count", "1", "-timeout", s.Timeout.String(), s.Pkg}
	cmd := exec.Command("go", args...)
	cmd.Dir = filepath.Join(root, s.Dir)
	cmd.Env = os.Environ()
	for k, v := range s.Env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	if short {
		for k, v := range s.ShortEnv {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
	}
	fmt.Fprintf(log, "== %s: (cd %s && go %s)\n", s.Name, s.Dir, strings.Join(args, " "))
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	results, perr := parse(out, log)
	if err := cmd.Wait(); err != nil {
		return results, fmt.Errorf("go test: %w", err)
	}
	return results, perr
}

// Spec says how a figure is read off a suite's results.
type Spec struct {
	Name  string
	Bench string // the benchmark's full name, without the -N suffix
	// Metric is the figure's unit as the benchmark reports it, Unit how it
	// is printed (Metric when empty).
	Metric, Unit string
	// Baseline is the raw baseline's metric in the same benchmark
	// (BaseBench, when another benchmark of the suite measured it).
	Baseline, BaseBench, BaseUnit string
	// Target, if the issue sets one: on the ratio or the value.
	Target *Target
	Note   string
}

// Target is a figure's goal: Of ("ratio" or "value") Op ("<=", ">=") X.
type Target struct {
	Of string
	Op string
	X  float64
}

func (t Target) String() string { return fmt.Sprintf("%s %s %g", t.Of, t.Op, t.X) }

func (t Target) met(value, ratio float64) bool {
	v := value
	if t.Of == "ratio" {
		v = ratio
	}
	if t.Op == "<=" {
		return v <= t.X
	}
	return v >= t.X
}

func (s Spec) from(results map[string]result) (Figure, bool) {
	r, ok := results[s.Bench]
	if !ok {
		return Figure{}, false
	}
	v, ok := r.Metrics[s.Metric]
	if !ok {
		return Figure{}, false
	}
	f := Figure{Name: s.Name, Value: v, Unit: s.Unit, Note: s.Note}
	if f.Unit == "" {
		f.Unit = s.Metric
	}
	if s.Baseline != "" {
		br := r
		if s.BaseBench != "" {
			if br, ok = results[s.BaseBench]; !ok {
				return Figure{}, false
			}
		}
		b, ok := br.Metrics[s.Baseline]
		if !ok {
			return Figure{}, false
		}
		f.Baseline, f.BaselineUnit = &b, s.BaseUnit
		if f.BaselineUnit == "" {
			f.BaselineUnit = s.Baseline
		}
		if b != 0 {
			ratio := v / b
			f.Ratio = &ratio
		}
	}
	if s.Target != nil {
		f.Target = s.Target.String()
		ratio := math.NaN()
		if f.Ratio != nil {
			ratio = *f.Ratio
		}
		met := s.Target.met(v, ratio)
		f.Met = &met
	}
	return f, true
}
