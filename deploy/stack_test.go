package deploy_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// The local stack of `make run` (devstack and every service binary, built
// from this tree), started once for the tests that need services running:
// the rules' and the dashboard's metrics are checked against what the
// services really export, and a stopped poller is told by the dead-man.

// opsPorts are `make run`'s ops ports (devstack's AW_OPS_PORT_BASE 9101 on).
var opsPorts = map[string]int{"upstream-sim": 9101, "poller": 9102, "slack-notifier": 9103, "email-notifier": 9104, "webhook-dispatcher": 9105, "auditor": 9106}

type stack struct {
	// work is where a user stands: data/ (the stack's, as `make run`
	// makes it) is in it, and README examples run from it.
	root, bin, work, data string
	cmd                   *exec.Cmd

	mu    sync.Mutex
	lines []string
	grew  chan struct{}
}

// startStack builds the binaries and runs devstack on a fresh data directory.
// `make run`'s ports are fixed: the stack holds /tmp/aw-makerun.lock (as
// every `make run` on a shared machine should) while it runs.
func startStack(t *testing.T) *stack {
	t.Helper()
	if testing.Short() {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI runs the local stack: -short must not skip it")
		}
		t.Skip("-short: no local stack")
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	s := &stack{root: root, bin: t.TempDir(), work: work, data: filepath.Join(work, "data"), grew: make(chan struct{}, 1)}
	dirs, _ := filepath.Glob(filepath.Join(root, "services", "*", "main.go"))
	for _, m := range dirs {
		name := filepath.Base(filepath.Dir(m))
		cmd := exec.Command("go", "build", "-o", filepath.Join(s.bin, name), ".")
		cmd.Dir = filepath.Dir(m)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", name, err, out)
		}
	}
	lock, err := os.OpenFile("/tmp/aw-makerun.lock", os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		t.Fatal(err)
	}
	t.Log("waiting for /tmp/aw-makerun.lock (make run's fixed ports)")
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lock.Close() })
	s.cmd = exec.Command(filepath.Join(s.bin, "devstack"), "--bin", s.bin, "--root", root)
	s.cmd.Env = append(os.Environ(), "AW_DATA_DIR="+s.data, "NATS_URL=", "AW_SLACK_TOKEN=", "AW_SMTP_HOST=")
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// Its output through a pipe Wait copies to the end: every line is
	// collected, and Wait returns only once it is.
	pr, pw := io.Pipe()
	s.cmd.Stdout, s.cmd.Stderr = pw, pw
	go s.collect(pr)
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		defer pw.Close()
		// Continue anything a test stopped, then drain as Ctrl-C does.
		for _, pid := range s.pids() {
			_ = syscall.Kill(pid, syscall.SIGCONT)
		}
		_ = s.cmd.Process.Signal(os.Interrupt)
		done := make(chan error, 1)
		go func() { done <- s.cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(60 * time.Second):
			_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		// The services run in process groups of their own: none outlives
		// the test, whatever became of devstack.
		for _, pid := range s.pids() {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		if t.Failed() {
			s.mu.Lock()
			t.Logf("devstack output (last 200 lines):\n%s", strings.Join(s.lines[max(0, len(s.lines)-200):], "\n"))
			s.mu.Unlock()
		}
	})
	s.waitLine(t, "accountwatch is running", 3*time.Minute)
	for name := range opsPorts {
		s.waitReady(t, name, 2*time.Minute)
	}
	return s
}

func (s *stack) collect(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		s.mu.Lock()
		s.lines = append(s.lines, sc.Text())
		s.mu.Unlock()
		select {
		case s.grew <- struct{}{}:
		default:
		}
	}
}

// waitLineFrom waits for an output line that starts with want[0] and
// contains the rest, printed after line from (an index of s.lines); it
// returns the line's index.
func (s *stack) waitLineFrom(t *testing.T, from int, within time.Duration, want ...string) int {
	t.Helper()
	deadline := time.After(within)
	for {
		s.mu.Lock()
		for i := from; i < len(s.lines); i++ {
			ok := strings.HasPrefix(s.lines[i], want[0])
			for _, w := range want[1:] {
				ok = ok && strings.Contains(s.lines[i], w)
			}
			if ok {
				s.mu.Unlock()
				return i
			}
		}
		s.mu.Unlock()
		select {
		case <-s.grew:
		case <-time.After(time.Second):
		case <-deadline:
			t.Fatalf("no line with %q within %s", want, within)
		}
	}
}

func (s *stack) waitLine(t *testing.T, want string, within time.Duration) int {
	return s.waitLineFrom(t, 0, within, want)
}

// line is output line i (an index waitLineFrom returned): the collector
// appends to lines while the test reads them.
func (s *stack) line(i int) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lines[i]
}

func (s *stack) mark() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.lines)
}

// readyz is a service's /readyz: its status code and JSON body.
func readyz(name string) (int, map[string]any, error) {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/readyz", opsPorts[name]))
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	var body map[string]any
	err = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body, err
}

func (s *stack) waitReady(t *testing.T, name string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		code, body, err := readyz(name)
		if err == nil && code == http.StatusOK {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready within %s: %d %v %v", name, within, code, body, err)
		}
		select {
		case <-s.grew:
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// metricNames scrapes every service's /metrics: the names of every series
// they export (a histogram's _bucket, _sum and _count with it).
func metricNames(t *testing.T) map[string]string {
	t.Helper()
	names := map[string]string{}
	for svc, port := range opsPorts {
		resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(port) + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		tp := expfmt.NewTextParser(model.UTF8Validation)
		fams, err := tp.TextToMetricFamilies(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("%s /metrics: %v", svc, err)
		}
		for n, f := range fams {
			if len(f.GetMetric()) == 0 {
				continue // declared, no series: a query over it finds nothing
			}
			names[n] = svc
			switch f.GetType().String() {
			case "HISTOGRAM", "SUMMARY":
				names[n+"_bucket"], names[n+"_sum"], names[n+"_count"] = svc, svc, svc
			}
		}
	}
	return names
}

// procs are the running processes of this stack's binaries, by binary.
func (s *stack) procs() map[string]int {
	out := map[string]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if exe, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe")); err == nil && filepath.Dir(exe) == s.bin {
			out[filepath.Base(exe)] = pid
		}
	}
	return out
}

// pids are the stack's service processes (devstack's children).
func (s *stack) pids() []int {
	var out []int
	for name, pid := range s.procs() {
		if name != "devstack" {
			out = append(out, pid)
		}
	}
	return out
}

// pidOf is the running process of a service binary of this stack.
func (s *stack) pidOf(t *testing.T, name string) int {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		if pid, ok := s.procs()[name]; ok {
			return pid
		}
		if time.Now().After(deadline) {
			t.Fatalf("no running %s", name)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func TestLocalStack(t *testing.T) {
	s := startStack(t)
	t.Run("a stopped poller is told as poll.stalled, and recovery as poll.resumed", func(t *testing.T) {
		from := s.mark()
		pid := s.pidOf(t, "poller")
		// SIGSTOP: the process is there and answers nothing, as a hung
		// poller does (a killed one devstack would restart).
		if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		defer syscall.Kill(pid, syscall.SIGCONT)
		// devstack's dead-man: no lease for 15 s, checked every 5 s.
		i := s.waitLineFrom(t, from, 2*time.Minute, "[events]", "poll.stalled")
		t.Logf("alerted: %s", s.line(i))
		// Alerted like any critical event: the Slack notifier's local sink.
		s.waitLineFrom(t, from, time.Minute, "[slack-notifier]", "stalled")
		if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
		s.waitLineFrom(t, i, 2*time.Minute, "[events]", "poll.resumed")
	})

	t.Run("a poller whose cycles stop says why on /readyz", func(t *testing.T) {
		s.waitReady(t, "poller", 2*time.Minute)
		pid := s.pidOf(t, "upstream-sim")
		if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		defer syscall.Kill(pid, syscall.SIGCONT)
		deadline := time.Now().Add(2 * time.Minute)
		for {
			code, body, err := readyz("poller")
			if err == nil && code == http.StatusServiceUnavailable {
				failing, _ := body["failing"].(map[string]any)
				why, _ := failing["cycles"].(string)
				named := strings.Contains(why, "ap-main") || strings.Contains(why, "bss-main") || strings.Contains(why, "cams-sg")
				if !strings.Contains(why, "without a recent cycle") || !named {
					t.Fatalf("/readyz 503 without naming a late connection: %v", body)
				}
				t.Logf("/readyz: %v", body)
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("poller still ready with its upstream stopped: %d %v %v", code, body, err)
			}
			time.Sleep(time.Second)
		}
		_ = syscall.Kill(pid, syscall.SIGCONT)
		s.waitReady(t, "poller", 2*time.Minute)
	})
	t.Run("rules and dashboard use only exported metrics", func(t *testing.T) {
		// The poller has run, hit upstream errors (the stopped upstream)
		// and the sinks have delivered; what appears only at a first
		// increment is waited for below.
		s.waitLine(t, "[events]", 2*time.Minute)
		// An upstream error, through the simulator's documented fault API.
		for _, ep := range []string{"ap.list", "ap.get"} {
			req, _ := http.NewRequest(http.MethodPut, "http://127.0.0.1:8480/admin/faults/"+ep, strings.NewReader(`{"status":503,"times":6}`))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode/100 != 2 {
				t.Fatalf("PUT /admin/faults/%s: %s", ep, resp.Status)
			}
		}
		used := map[string][]string{}
		for _, r := range loadRules(t) {
			for _, m := range exprMetrics(t, r.expr) {
				used[m] = append(used[m], "rule "+r.name)
			}
		}
		for _, q := range dashboardQueries(t) {
			for _, m := range exprMetrics(t, q.expr) {
				used[m] = append(used[m], "panel "+q.panel)
			}
		}
		if len(used) < 10 {
			t.Fatalf("only %d metrics used: %v", len(used), used)
		}
		// A series appears at its first increment: the upstream error's
		// once the fault is polled, the poller's changes once it has
		// published one (the subtest before stopped it, so the first
		// [events] line may be the dead-man's).
		have := metricNames(t)
		for deadline := time.Now().Add(time.Minute); !exportsAll(have, used) && time.Now().Before(deadline); {
			time.Sleep(time.Second)
			have = metricNames(t)
		}
		for m, by := range used {
			if _, ok := have[m]; !ok {
				t.Errorf("%s (used by %s) is exported by no running service", m, strings.Join(by, ", "))
			}
		}
	})

	t.Run("every README example runs as written", func(t *testing.T) {
		for _, tool := range []string{"bash", "curl", "jq"} {
			if _, err := exec.LookPath(tool); err != nil {
				if os.Getenv("CI") == "true" {
					t.Fatalf("%s is needed by the README examples (.ci/run installs it)", tool)
				}
				t.Skipf("%s not installed (Debian package %s)", tool, tool)
			}
		}
		// The ops port each README documents is the one `make run` serves
		// it on (the metrics above were scraped there).
		for svc, port := range opsPorts {
			b, err := os.ReadFile(filepath.Join(s.root, "services", svc, "README.md"))
			if err != nil {
				t.Fatal(err)
			}
			if svc != "upstream-sim" && !strings.Contains(string(b), fmt.Sprintf("| `AW_OPS_LISTEN` | `127.0.0.1:%d` |", port)) {
				t.Errorf("services/%s/README.md does not document make run's ops port %d", svc, port)
			}
		}
		blocks := readmeBlocks(t, s.root)
		if len(blocks) < 8 {
			t.Fatalf("%d shell blocks", len(blocks))
		}
		for _, b := range blocks {
			if why, ok := notRun[command(b.code)]; ok {
				t.Logf("%s not run: %s", b.where, why)
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			cmd := exec.CommandContext(ctx, "bash", "-euo", "pipefail", "-c", b.code)
			cmd.Dir = s.work
			cmd.Env = append(os.Environ(), "PATH="+s.bin+string(os.PathListSeparator)+os.Getenv("PATH"), "NATS_URL=")
			out, err := cmd.CombinedOutput()
			cancel()
			if err != nil {
				t.Errorf("%s: %v\n%s\n--- output:\n%s", b.where, err, b.code, out)
			}
		}
	})
}

// notRun are the shell blocks this test does not run, by their first
// command, and why.
var notRun = map[string]string{
	"make run":   "make run is the stack these examples run against, make test runs this test",
	"make chaos": "the chaos run takes minutes and root; .ci/run runs make chaos-short",
}

// command is a block's first command and its first argument ("make run").
func command(code string) string {
	first, _, _ := strings.Cut(code, "\n")
	f := strings.Fields(first)
	return strings.Join(f[:min(2, len(f))], " ")
}

type block struct{ where, code string }

// readmeBlocks are the ```sh blocks of every README of the repository.
func readmeBlocks(t *testing.T, root string) []block {
	t.Helper()
	var out []block
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "data" || d.Name() == "node_modules" || d.Name() == "bin") {
			return filepath.SkipDir
		}
		if d.IsDir() || d.Name() != "README.md" {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		var cur []string
		start, in := 0, false
		for i, l := range strings.Split(string(b), "\n") {
			switch {
			case !in && (l == "```sh" || l == "```bash" || l == "```shell"):
				in, start, cur = true, i+1, nil
			case in && l == "```":
				in = false
				out = append(out, block{where: fmt.Sprintf("%s:%d", rel, start), code: strings.Join(cur, "\n")})
			case in:
				cur = append(cur, l)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// exportsAll reports whether every metric used is among those exported.
func exportsAll(have map[string]string, used map[string][]string) bool {
	for m := range used {
		if _, ok := have[m]; !ok {
			return false
		}
	}
	return true
}
