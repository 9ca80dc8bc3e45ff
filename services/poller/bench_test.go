package main_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/accountwatch/accountwatch/pkg/activeplatform"
	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/eventbus"
	"github.com/accountwatch/accountwatch/pkg/eventbus/bustest"
	"github.com/accountwatch/accountwatch/pkg/sim/simtest"
)

// BenchmarkPoller100k is the poller end to end: 100,000 watched
// ActivePlatform accounts on upstream-sim, 1% of them changing per interval,
// the simulator and the poller each its own process (built without -race),
// the embedded server fsyncing every write or at its default interval. It
// reports accounts polled per second in steady state (the median cycle, and
// the mean) next to a bare net/http loop fetching the same listing in the
// same run (the median of one listing after each measured cycle), the
// poller's CPU per 1,000 polls, its RSS, and the time from a change in the
// simulator to its event in the stream (p50, p99). It runs once.
//
// Two placements: upstream=shared-cores, everything on this machine's
// cores at once, where the poller's and its server's CPU slows the
// simulator it reads; and upstream=own-core, the simulator alone on CPU 0
// and the poller, the server and this harness on CPU 1 (taskset), the way
// a poller reads a provider on other machines: the ratio then says whether
// the poller keeps up with what the upstream serves.
func BenchmarkPoller100k(b *testing.B) {
	for _, own := range []bool{false, true} {
		for _, sync := range []bool{true, false} {
			name := map[bool]string{false: "upstream=shared-cores", true: "upstream=own-core"}[own] + map[bool]string{true: "/sync=always", false: "/sync=default"}[sync]
			b.Run(name, func(b *testing.B) { benchPoller(b, sync, own) })
		}
	}
}

func benchPoller(b *testing.B, syncAlways, ownCore bool) {
	const (
		accounts = 100_000
		perPage  = 1000
		interval = 6 * time.Second
		measured = 9 // steady-state cycles measured: medians of 9 on a noisy machine
	)
	pin := func(cpu string, cmd *exec.Cmd) *exec.Cmd { return cmd }
	if ownCore {
		taskset, err := exec.LookPath("taskset")
		if err != nil || runtime.NumCPU() < 2 {
			b.Skip("upstream=own-core needs 2 CPUs and taskset (Debian's util-linux)")
		}
		pin = func(cpu string, cmd *exec.Cmd) *exec.Cmd {
			return exec.Command(taskset, append([]string{"-c", cpu, cmd.Path}, cmd.Args[1:]...)...)
		}
		// This process (the server, the bare loop, the changes) joins the
		// poller on CPU 1, every thread of it; the next benchmark gets both back.
		self := strconv.Itoa(os.Getpid())
		if out, err := exec.Command(taskset, "-a", "-p", "-c", "1", self).CombinedOutput(); err != nil {
			b.Fatalf("taskset: %v\n%s", err, out)
		}
		procs := runtime.GOMAXPROCS(1)
		b.Cleanup(func() {
			runtime.GOMAXPROCS(procs)
			exec.Command(taskset, "-a", "-p", "-c", "0-"+strconv.Itoa(runtime.NumCPU()-1), self).Run()
		})
	}
	dir := b.TempDir()
	bin, simBin := filepath.Join(dir, "poller"), filepath.Join(dir, "upstream-sim")
	for out, src := range map[string]string{bin: ".", simBin: "../upstream-sim"} {
		build := exec.Command("go", "build", "-o", out, ".")
		build.Dir = src
		if msg, err := build.CombinedOutput(); err != nil {
			b.Fatalf("build %s: %v\n%s", src, err, msg)
		}
	}
	seedFile := filepath.Join(dir, "seed.yaml")
	os.WriteFile(seedFile, []byte(fmt.Sprintf("activeplatform:\n  tokens: [%s]\n  max_per_page: %d\n  generate: {count: %d}\n", simtest.APToken, perPage, accounts)), 0o600)
	simAddr := freeAddr(b)
	url := "http://" + simAddr
	simCmd := pin("0", exec.Command(simBin, "--seed", seedFile, "--listen", simAddr, "--log-level", "warn"))
	simCmd.Stderr = os.Stderr
	if err := simCmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { simCmd.Process.Signal(os.Interrupt); simCmd.Wait() })
	waitUntil(b, time.Minute, func() bool {
		resp, err := http.Get(url + "/admin/stats")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	})
	busCfg := bustest.Config(b, "127.0.0.1:0")
	busCfg.SyncAlways = syncAlways
	bus := bustest.Start(b, busCfg)
	opsAddr := freeAddr(b)
	cfg := filepath.Join(dir, "poller.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("connections:\n  - {name: ap, provider: activeplatform, url: %s, api_token: %s, interval: %s, jitter: 0.01, full_scan_every: 1, per_page: %d, discovery: true}\npolicy: {debt_step: \"1000000\"}\n",
		url, simtest.APToken, interval, perPage)), 0o600)

	for i := 0; i < b.N; i++ {
		if i > 0 {
			continue // one run is the measurement
		}
		cmd := pin("1", exec.Command(bin))
		cmd.Env = append(os.Environ(), "NATS_URL="+bus.ClientURL(), "AW_NATS_NKEY_SEED_FILE="+bus.SeedFile(eventbus.RolePoller), "AW_POLLER_CONFIG="+cfg, "AW_OPS_LISTEN="+opsAddr, "AW_REPLICA_ID=bench", "AW_LOG_LEVEL="+benchLogLevel(), "AW_PPROF=true")
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		pid := cmd.Process.Pid
		metric := func(name string) float64 { return scrape(b, "http://"+opsAddr+"/metrics", name) }
		// Setup: discovery of 100,000 accounts, then their baseline.
		waitUntil(b, 10*time.Minute, func() bool { return metric(`aw_poller_cycle_seconds_count{instance="ap"}`) >= 2 })

		// Changes: 1% of the accounts per interval, spread over the measured
		// cycles, through the simulator's admin API: each flips an account's
		// status as last listed. Latency is read off the stream afterwards
		// (each event's stored time against its change): a consumer running
		// alongside would load the server during the measured cycles and not
		// during the bare loop.
		status := listStatuses(b, url)
		var mu sync.Mutex
		changedAt := map[string][]time.Time{}
		changesFrom := time.Now()
		ctx, cancel := context.WithCancel(context.Background())
		generated := make(chan struct{})
		go func() {
			defer close(generated)
			rng := rand.New(rand.NewPCG(7, 7))
			perInterval := accounts / 100
			tick := interval / time.Duration(perInterval)
			hc := &http.Client{}
			due := time.Now()
			for ctx.Err() == nil { // until the bare loop, too, has been measured under it
				due = due.Add(tick) // on a schedule: a slow answer does not slow the churn
				time.Sleep(time.Until(due))
				id := strconv.Itoa(5_000_000 + rng.IntN(accounts))
				next := "credit hold"
				if status[id] == "credit hold" {
					next = "active"
				}
				status[id] = next
				mu.Lock()
				changedAt[id] = append(changedAt[id], time.Now())
				mu.Unlock()
				req, _ := http.NewRequest(http.MethodPatch, url+"/admin/activeplatform/accounts/"+id, strings.NewReader(`{"status":"`+next+`"}`))
				resp, err := hc.Do(req)
				if err != nil || resp.StatusCode != http.StatusOK {
					b.Errorf("changing account %s: %v %v", id, err, resp)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}()

		if prof := os.Getenv("AW_BENCH_PROFILE"); prof != "" { // CPU profiles of the steady state: the poller's, and this process's (server); the poller's allocations; a trace
			if f, err := os.Create(prof + ".bench"); err == nil {
				pprof.StartCPUProfile(f)
				time.AfterFunc(24*time.Second, func() { pprof.StopCPUProfile(); f.Close() })
			}
			go func() { // what the steady state allocates: pprof -base prof.allocs0 prof.allocs1
				time.Sleep(8 * time.Second) // past the setup (gc=1: a profile holds what the last GC saw)
				for i := range 2 {
					if resp, err := http.Get("http://" + opsAddr + "/debug/pprof/allocs?gc=1"); err == nil {
						f, _ := os.Create(fmt.Sprintf("%s.allocs%d", prof, i))
						io.Copy(f, resp.Body)
						f.Close()
						resp.Body.Close()
					}
					time.Sleep(15 * time.Second)
				}
			}()
			go func() {
				resp, err := http.Get("http://" + opsAddr + "/debug/pprof/profile?seconds=24")
				if err == nil {
					f, _ := os.Create(prof)
					io.Copy(f, resp.Body)
					f.Close()
					resp.Body.Close()
				}
				if resp, err := http.Get("http://" + opsAddr + "/debug/pprof/trace?seconds=7"); err == nil { // an execution trace of a cycle
					f, _ := os.Create(prof + ".trace")
					io.Copy(f, resp.Body)
					f.Close()
					resp.Body.Close()
				}
			}()
		}
		cpu0, cycles0, secs0 := cpuSeconds(b, pid), metric(`aw_poller_cycle_seconds_count{instance="ap"}`), metric(`aw_poller_cycle_seconds_sum{instance="ap"}`)
		polls0 := metric(`aw_poller_polls_total{instance="ap",outcome="ok"}`)
		// The bare loop lists the same simulator under the same churn in the
		// poller's idle time right after each measured cycle: paired samples,
		// as the machine's speed drifts over a run.
		// Each cycle's own rate is kept too: the median of both is what the
		// ratio compares, so that one cycle slowed by a neighbour on this
		// shared machine does not decide the figure.
		var bare, rates []float64
		last, lastSecs, lastPolls := cycles0, secs0, polls0
		waitUntil(b, 10*time.Minute, func() bool {
			c := metric(`aw_poller_cycle_seconds_count{instance="ap"}`)
			if c > last && c <= cycles0+measured {
				secs, polls := metric(`aw_poller_cycle_seconds_sum{instance="ap"}`), metric(`aw_poller_polls_total{instance="ap",outcome="ok"}`)
				rates = append(rates, (polls-lastPolls)/(secs-lastSecs))
				last, lastSecs, lastPolls = c, secs, polls
				bare = append(bare, bareOnce(b, url, accounts, perPage))
			}
			return c >= cycles0+measured
		})
		cpu1, cycles1, secs1 := cpuSeconds(b, pid), metric(`aw_poller_cycle_seconds_count{instance="ap"}`), metric(`aw_poller_cycle_seconds_sum{instance="ap"}`)
		polls1 := metric(`aw_poller_polls_total{instance="ap",outcome="ok"}`)
		time.Sleep(interval) // let the last changes arrive
		rss, hwm := memKB(b, pid, "VmRSS"), memKB(b, pid, "VmHWM")
		perGroup := metric("aw_poller_commits_total") / metric("aw_poller_commit_groups_total")
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
		sort.Float64s(bare)
		sort.Float64s(rates)
		bareRate, pollRate := bare[len(bare)/2], rates[len(rates)/2]
		cancel()
		<-generated
		latencies := streamLatencies(b, bus, changesFrom, changedAt)

		polls := polls1 - polls0
		meanRate := polls / (secs1 - secs0)
		sort.Slice(latencies, func(i, j int) bool { return latencies[i] < latencies[j] })
		var p50, p99 time.Duration
		if n := len(latencies); n > 0 {
			p50, p99 = latencies[n/2], latencies[n*99/100]
		}
		b.ReportMetric(pollRate, "polls/s")
		b.ReportMetric(meanRate, "polls/s-mean")
		b.ReportMetric(bareRate, "bare-accounts/s")
		b.ReportMetric(pollRate/bareRate, "ratio")
		b.ReportMetric((cpu1-cpu0)*1000/(polls/1000), "cpu-ms/1000polls")
		b.ReportMetric(float64(rss)/1024, "rss-MB")
		b.ReportMetric(float64(hwm)/1024, "peak-rss-MB")
		b.ReportMetric(float64(p50.Milliseconds()), "p50-ms")
		b.ReportMetric(float64(p99.Milliseconds()), "p99-ms")
		b.ReportMetric(perGroup, "commits/group")
		b.Logf("%d cycles, %.0f polls, %d change latencies measured, interval %s; per cycle %.0f polls/s, bare %.0f accounts/s", int(cycles1-cycles0), polls, len(latencies), interval, rates, bare)
	}
}

// listStatuses lists every account's status, as the changes start from.
func listStatuses(b *testing.B, url string) map[string]string {
	c, err := activeplatform.New(url, simtest.APToken)
	if err != nil {
		b.Fatal(err)
	}
	out := map[string]string{}
	if err := c.List(context.Background(), activeplatform.ListOptions{PerPage: 1000}, func(a *activeplatform.Account) error {
		out[a.ID] = a.Status
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	return out
}

// bareOnce fetches the same listing with plain net/http (read, not decoded)
// and returns its rate.
func bareOnce(b *testing.B, url string, accounts, perPage int) float64 {
	hc := &http.Client{}
	start := time.Now()
	for page := 1; page <= (accounts+perPage-1)/perPage; page++ {
		resp, err := hc.Get(fmt.Sprintf("%s/api/vendor/v1/accounts.json?api_token=%s&page=%d&per_page=%d&sorting%%5Bfield%%5D=id&sorting%%5Breversed%%5D=false", url, simtest.APToken, page, perPage))
		if err != nil {
			b.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("bare loop: page %d answered %s", page, resp.Status)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	return float64(accounts) / time.Since(start).Seconds()
}

// streamLatencies reads the status changes stored since from and matches each
// to the change of its account it reflects: the latest one made before the
// event was stored and after the one its previous event reflected.
func streamLatencies(b *testing.B, bus *eventbus.Bus, from time.Time, changedAt map[string][]time.Time) []time.Duration {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := bus.JS.OrderedConsumer(ctx, eventbus.StreamEvents, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverByStartTimePolicy,
		OptStartTime: &from, FilterSubjects: []string{event.FilterSubject("", "", event.TypeStatusChanged, "")}})
	if err != nil {
		b.Fatal(err)
	}
	// One long pull: an ordered consumer's Next creates its consumer anew on
	// every call.
	it, err := c.Messages()
	if err != nil {
		b.Fatal(err)
	}
	defer it.Stop()
	next := map[string]int{} // per account, its first change not yet reflected
	var out []time.Duration
	for {
		m, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			b.Fatalf("reading the events: %v", err)
		}
		md, err := m.Metadata()
		if err != nil {
			b.Fatal(err)
		}
		id := m.Headers().Get("ce-subject")
		times, i := changedAt[id], next[id]
		for i+1 < len(times) && !times[i+1].After(md.Timestamp) {
			i++
		}
		if i < len(times) && !times[i].After(md.Timestamp) {
			out = append(out, md.Timestamp.Sub(times[i]))
			next[id] = i + 1
		}
		if md.NumPending == 0 {
			return out
		}
	}
}

func scrape(b *testing.B, url, series string) float64 {
	resp, err := http.Get(url)
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if line := sc.Text(); strings.HasPrefix(line, series+" ") {
			v, _ := strconv.ParseFloat(strings.TrimPrefix(line, series+" "), 64)
			return v
		}
	}
	return 0
}

func cpuSeconds(b *testing.B, pid int) float64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+2:]))
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // clock ticks (USER_HZ = 100)
}

func memKB(b *testing.B, pid int, field string) int {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, l := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			n, _ := strconv.Atoi(strings.Fields(v)[0])
			return n
		}
	}
	return 0
}

func freeAddr(b *testing.B) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func waitUntil(b *testing.B, limit time.Duration, cond func() bool) {
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			b.Fatal("timed out")
		}
		time.Sleep(time.Second) // a scrape costs the poller CPU: not too often
	}
}

func benchLogLevel() string {
	if l := os.Getenv("AW_BENCH_LOG_LEVEL"); l != "" {
		return l
	}
	return "warn"
}
