package main

import (
	"bufio"
	"io"
	"regexp"
	"strconv"
	"strings"
)

// result is one benchmark's line of `go test -bench` output: its metrics
// (b.ReportMetric's and the standard ones) by unit.
type result struct {
	Name    string
	Metrics map[string]float64
}

// procs is the -GOMAXPROCS suffix go test puts on a benchmark's name.
var procs = regexp.MustCompile(`-\d+$`)

// parse reads benchmark result lines from go test's output, copying every
// line to echo as it goes (nil: none). A line is "BenchmarkName-N <iterations>"
// then value-unit pairs; anything else (logs, PASS, ok) is passed over.
func parse(r io.Reader, echo io.Writer) (map[string]result, error) {
	out := map[string]result{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if echo != nil {
			io.WriteString(echo, line+"\n")
		}
		if res, ok := parseLine(line); ok {
			out[res.Name] = res
		}
	}
	return out, sc.Err()
}

func parseLine(line string) (result, bool) {
	f := strings.Fields(line)
	if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") || len(f)%2 != 0 {
		return result{}, false
	}
	if _, err := strconv.Atoi(f[1]); err != nil {
		return result{}, false
	}
	res := result{Name: procs.ReplaceAllString(f[0], ""), Metrics: map[string]float64{}}
	for i := 2; i+1 < len(f); i += 2 {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil {
			return result{}, false
		}
		res.Metrics[f[i+1]] = v
	}
	return res, true
}
