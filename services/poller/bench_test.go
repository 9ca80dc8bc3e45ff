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
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/accountwatch/accountwatch/pkg/activeplatform"
	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/eventbus"
	"github.com/accountwatch/accountwatch/pkg/eventbus/bustest"
	"github.com/accountwatch/accountwatch/pkg/sim/simtest"
	"github.com/accountwatch/accountwatch/pkg/state"
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
			b.Run(name, func(b *testing.B) {
				for i := range b.N {
					if i > 0 {
						continue // one run is the measurement
					}
					r := newPollerRig(b, rigOptions{accounts: 100_000, interval: 6 * time.Second, ownCore: own, syncAlways: sync})
					p := r.startPoller("bench")
					p.waitCycles(2, 10*time.Minute) // discovery, then the baseline
					s := r.steady(p, 9, "", r.accounts/100)
					p.stop()
					s.report(b, "")
					b.ReportMetric(float64(p.hwm)/1024, "peak-rss-MB")
				}
			})
		}
	}
}

// BenchmarkPoller1M is one poller replica watching a million ActivePlatform
// accounts (AW_BENCH_ACCOUNTS overrides the number) on upstream-sim, 1% of
// them changing per interval, the simulator on its own core where the
// machine has two (see BenchmarkPoller100k). In one run:
//
//   - discovery: the first scan of an empty state, which writes every
//     account's watch-list entry and baseline record, against a raw
//     asynchronous publish of as many messages of those sizes to the same
//     server afterwards (discovery-s, raw-writes-s);
//   - steady state with the server's default sync: full scans while 1% of
//     the accounts change per interval, against the bare listing after
//     each (polls/s, bare-accounts/s), the poller's CPU and peak RSS;
//   - no churn: the same poller while nothing changes, against the bare
//     listing (quiet-polls/s), and so what a change costs a cycle beyond
//     it (change-µs) against what 0.7 of the bare listing leaves a change
//     (budget-µs/change, negative when the quiet cycle alone is slower);
//   - the shared core's limit: the bare listing with a raw client beside it
//     doing the server's work for as many changes (limit-accounts/s, the
//     bare listing beside it limit-bare-accounts/s; see limit);
//   - startup: the poller restarted on a million stored records, the time
//     until it polls (startup-s) and until its first scan is done
//     (restart-scan-s), against a raw ordered consumer reading the state
//     and watch-list streams (raw-load-s);
//   - with fsync on every write (the server restarted on the same store):
//     full scans under the same churn, against the bare listing and
//     against the disk's limit, the commits of a cycle's changes written as
//     raw synced messages (two per change, groups pipelined as pkg/state
//     writes them: fsync-limit-accounts/s).
func BenchmarkPoller1M(b *testing.B) {
	accounts, cycles, fsyncCycles := 1_000_000, 5, 2
	if v := os.Getenv("AW_BENCH_ACCOUNTS"); v != "" {
		accounts, _ = strconv.Atoi(v)
	}
	if v := os.Getenv("AW_BENCH_CYCLES"); v != "" {
		cycles, _ = strconv.Atoi(v)
		fsyncCycles = min(fsyncCycles, cycles)
	}
	for i := range b.N {
		if i > 0 {
			continue // one run is the measurement
		}
		began := time.Now()
		phase := func(name string) {
			b.Logf("phase %s done at %.0f s", name, time.Since(began).Seconds())
		}
		// The interval leaves a cycle (2–3 s a million accounts here) and
		// the bare listing after it (~1 s) room.
		interval := max(2*time.Second, time.Duration(accounts)*6*time.Microsecond)
		own := runtime.NumCPU() >= 2 && os.Getenv("AW_BENCH_PLACEMENT") != "shared-cores"
		r := newPollerRig(b, rigOptions{accounts: accounts, interval: interval, ownCore: own, info: true})
		phase("setup")

		p := r.startPoller("bench-1")
		stopProfile := r.profileDiscovery(p)
		p.waitCycles(1, 10*time.Minute)
		stopProfile()
		discovery := p.metric(`aw_poller_cycle_seconds_sum{instance="ap"}`)
		if n := p.metric(`aw_poller_watchlist_size{instance="ap"}`); int(n) != accounts {
			b.Fatalf("discovery watches %v accounts, want %d", n, accounts)
		}
		phase("discovery")
		p.waitCycles(2, 10*time.Minute)
		def := r.steady(p, cycles, "", accounts/100)
		phase("steady state")
		// The same poller without churn: what the listing, fingerprints
		// and watch list cost alone, and so what the changes cost (the
		// cycle's time with them less without, a change): the figure
		// against the time a change may take for poller.scan to reach
		// 0.7 of the bare listing.
		p.waitCycles(int(p.metric(`aw_poller_cycle_seconds_count{instance="ap"}`))+2, 10*time.Minute) // past the last changes
		quiet := r.steady(p, 2, ".quiet", 0)
		p.stop()
		phase("no churn")
		// The server's memory through discovery and the steady state: with
		// GOGC and GOMEMLIMIT given to the benchmark (see childEnv), what
		// keeping its blocks cached costs.
		b.ReportMetric(float64(memKB(b, os.Getpid(), "VmHWM"))/1024, "server-peak-rss-MB")
		b.ReportMetric(float64(r.storedBytes(eventbus.BucketState))/1e6, "state-MB") // what the server's block caches would hold
		quiet.report(b, "quiet-")
		changeCost := func(rate float64) float64 { // µs of a cycle per change at that rate, beyond the quiet cycle's
			return (float64(accounts)/rate - float64(accounts)/quiet.rate) / float64(def.changesPerCycle) * 1e6
		}
		b.ReportMetric(changeCost(def.rate), "change-µs")
		b.ReportMetric(changeCost(0.7*def.bare), "budget-µs/change")
		b.ReportMetric(discovery, "discovery-s")
		b.ReportMetric(r.rawDiscovery(), "raw-writes-s")
		def.report(b, "")
		hwm := p.hwm
		b.ReportMetric(float64(accounts)/def.bare, "bare-listing-s")
		b.ReportMetric(float64(interval.Milliseconds()), "interval-ms")

		// The shared core's limit: the bare listing with the server's
		// work for the same changes done by a raw client beside it.
		var limits, limitBares []float64
		lim := r.newLimit()
		lim.once(def.changesPerCycle, 0) // a warm-up: the quiet cycles read no record
		// Two rounds, not three: make bench's 15 minutes.
		for round := range 2 {
			limitBares = append(limitBares, bareOnce(b, r.url, r.accounts, r.perPage))
			limits = append(limits, lim.once(def.changesPerCycle, round+1))
		}
		b.Logf("limit (a commit's record %d bytes, an event's data %d): %.0f accounts/s, bare beside them %.0f accounts/s", lim.commitSize, len(lim.sample.Data), limits, limitBares)
		b.ReportMetric(median(limits), "limit-accounts/s")
		b.ReportMetric(median(limitBares), "limit-bare-accounts/s")
		phase("limit")

		// Startup on a million stored records: the raw read of the
		// streams a start reads, then the poller.
		rawLoad := r.rawLoad()
		p = r.startPoller("bench-2")
		p.waitCycles(1, 10*time.Minute)
		b.ReportMetric(p.startup().Seconds(), "startup-s")
		b.ReportMetric(p.metric(`aw_poller_cycle_seconds_sum{instance="ap"}`), "restart-scan-s")
		b.ReportMetric(rawLoad, "raw-load-s")
		p.stop()
		b.ReportMetric(float64(max(hwm, p.hwm))/1024, "peak-rss-MB") // discovery, steady state, start on a million records
		phase("restart")
		if os.Getenv("AW_BENCH_AGED") != "" {
			// The state a day on (opt-in: a minute more than make bench's
			// budget has): every record as large as a commit's, as each
			// keeps its last change's outbox until its next.
			r.age(lim.commitSize)
			b.ReportMetric(float64(r.storedBytes(eventbus.BucketState))/1e6, "aged-state-MB")
			b.ReportMetric(r.rawLoad(), "aged-raw-load-s")
			p = r.startPoller("bench-aged")
			p.waitCycles(1, 10*time.Minute)
			b.ReportMetric(p.startup().Seconds(), "aged-startup-s")
			p.stop()
			b.ReportMetric(float64(p.hwm)/1024, "aged-peak-rss-MB")
			phase("aged restart")
		}

		// fsync on every write, the embedded default. The disk's limit is
		// measured first: the interval must leave a cycle's synced writes
		// (about three times the raw writes of its changes here) and the
		// bare listing room, or the bare listing would run beside the
		// next cycle.
		r.restartBus(true)
		perChange := r.rawSyncedPerChange()
		fsyncInterval := min(30*time.Second, max(interval, 3*time.Duration(accounts/100)*perChange+2*time.Duration(float64(time.Second)*float64(accounts)/def.bare)))
		r.setInterval(fsyncInterval)
		p = r.startPoller("bench-3")
		p.waitCycles(1, 10*time.Minute) // the first scan of a start; the next is steady
		fs := r.steady(p, fsyncCycles, ".fsync", accounts/100)
		p.stop()
		fs.report(b, "fsync-")
		b.ReportMetric(float64(fsyncInterval.Milliseconds()), "fsync-interval-ms")
		writes := time.Duration(float64(fs.changesPerCycle) * float64(perChange))
		limit := min(fs.bare, float64(accounts)/writes.Seconds())
		b.ReportMetric(float64(perChange.Microseconds()), "raw-synced-µs/change")
		b.ReportMetric(limit, "fsync-limit-accounts/s")
		b.ReportMetric(fs.rate/limit, "fsync-limit-ratio")
		b.ReportMetric(float64(p.hwm)/1024, "fsync-peak-rss-MB")
		phase("fsync")
		b.ReportMetric(time.Since(began).Seconds(), "suite-s")
	}
}

type rigOptions struct {
	accounts   int
	interval   time.Duration
	ownCore    bool // the simulator alone on CPU 0, the rest on CPU 1
	syncAlways bool
	info       bool // the poller logs at info (its start line is awaited)
}

// pollerRig is upstream-sim serving synthetic ActivePlatform accounts, the
// embedded JetStream server in this process, and a configuration for
// poller processes (built without -race) that poll one connection of all
// the accounts with discovery.
type pollerRig struct {
	b *testing.B
	rigOptions
	perPage  int
	dir, bin string
	url      string // the simulator
	pin      func(cpu string, cmd *exec.Cmd) *exec.Cmd
	busCfg   eventbus.Config
	bus      *eventbus.Bus
	cfgFile  string
	onHold   []bool // each account's status as last set (credit hold), by id less 5,000,000: a map of a million strings would be this process's garbage on CPU 1
	rng      *rand.Rand
}

// childEnv is this environment without the collector's settings: GOGC and
// GOMEMLIMIT given to the benchmark tune the process that hosts the server
// (and the harness), as a deployment tunes its nats-server's; the poller and
// the simulator run at Go's defaults, as a poller is deployed.
func childEnv() []string {
	return slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, "GOGC=") || strings.HasPrefix(kv, "GOMEMLIMIT=")
	})
}

func newPollerRig(b *testing.B, o rigOptions) *pollerRig {
	r := &pollerRig{b: b, rigOptions: o, perPage: 1000, dir: b.TempDir(), rng: rand.New(rand.NewPCG(7, 7))}
	r.pin = func(cpu string, cmd *exec.Cmd) *exec.Cmd { return cmd }
	if o.ownCore {
		r.pinToOwnCore()
	}
	r.bin = filepath.Join(r.dir, "poller")
	simBin := filepath.Join(r.dir, "upstream-sim")
	for out, src := range map[string]string{r.bin: ".", simBin: "../upstream-sim"} {
		build := exec.Command("go", "build", "-o", out, ".")
		build.Dir = src
		if msg, err := build.CombinedOutput(); err != nil {
			b.Fatalf("build %s: %v\n%s", src, err, msg)
		}
	}
	seedFile := filepath.Join(r.dir, "seed.yaml")
	os.WriteFile(seedFile, []byte(fmt.Sprintf("activeplatform:\n  tokens: [%s]\n  max_per_page: %d\n  generate: {count: %d}\n", simtest.APToken, r.perPage, o.accounts)), 0o600)
	simAddr := freeAddr(b)
	r.url = "http://" + simAddr
	simCmd := r.pin("0", exec.Command(simBin, "--seed", seedFile, "--listen", simAddr, "--log-level", "warn"))
	simCmd.Env = childEnv()
	simCmd.Stderr = os.Stderr
	if err := simCmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { simCmd.Process.Signal(os.Interrupt); simCmd.Wait() })
	waitUntil(b, 5*time.Minute, func() bool {
		resp, err := http.Get(r.url + "/admin/stats")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	})
	r.busCfg = bustest.Config(b, "127.0.0.1:0")
	r.busCfg.SyncAlways = o.syncAlways
	r.bus = bustest.Start(b, r.busCfg)
	r.cfgFile = filepath.Join(r.dir, "poller.yaml")
	r.writeConfig()
	r.onHold = listHeld(b, r.url, o.accounts)
	return r
}

// writeConfig writes the pollers' configuration: one connection of every
// account, listed whole each cycle, with discovery.
func (r *pollerRig) writeConfig() {
	os.WriteFile(r.cfgFile, []byte(fmt.Sprintf("connections:\n  - {name: ap, provider: activeplatform, url: %s, api_token: %s, interval: %s, jitter: 0.01, full_scan_every: 1, per_page: %d, discovery: true}\npolicy: {debt_step: \"1000000\"}\n",
		r.url, simtest.APToken, r.interval, r.perPage)), 0o600)
}

// setInterval changes the interval of the pollers started next (and of the
// changes, 1% of the accounts per interval).
func (r *pollerRig) setInterval(d time.Duration) {
	r.interval = d
	r.writeConfig()
}

// pinToOwnCore leaves CPU 0 to the simulator: this process (the server, the
// bare loop, the changes) joins the poller on CPU 1, every thread of it;
// the next benchmark gets both back.
func (r *pollerRig) pinToOwnCore() {
	b := r.b
	taskset, err := exec.LookPath("taskset")
	if err != nil || runtime.NumCPU() < 2 {
		b.Skip("upstream=own-core needs 2 CPUs and taskset (Debian's util-linux)")
	}
	r.pin = func(cpu string, cmd *exec.Cmd) *exec.Cmd {
		return exec.Command(taskset, append([]string{"-c", cpu, cmd.Path}, cmd.Args[1:]...)...)
	}
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

// restartBus stops the server and starts it again on the same store.
func (r *pollerRig) restartBus(syncAlways bool) {
	r.bus.Close()
	r.busCfg.SyncAlways = syncAlways
	r.bus = bustest.Start(r.b, r.busCfg)
}

// pollerProc is a running poller.
type pollerProc struct {
	b                  *testing.B
	cmd                *exec.Cmd
	pid                int
	ops                string
	startedAt, readyAt time.Time // started; its runner loaded the state (the "polling" line)
	ready              chan struct{}
	hwm                int // peak RSS, kB (once stopped)
}

func (r *pollerRig) startPoller(replica string) *pollerProc {
	b := r.b
	p := &pollerProc{b: b, ops: freeAddr(b), ready: make(chan struct{})}
	level := benchLogLevel()
	if r.info && level == "warn" {
		level = "info"
	}
	p.cmd = r.pin("1", exec.Command(r.bin))
	p.cmd.Env = append(childEnv(), "NATS_URL="+r.bus.ClientURL(), "AW_NATS_NKEY_SEED_FILE="+r.bus.SeedFile(eventbus.RolePoller), "AW_POLLER_CONFIG="+r.cfgFile,
		"AW_OPS_LISTEN="+p.ops, "AW_REPLICA_ID="+replica, "AW_LOG_LEVEL="+level, "AW_PPROF=true")
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		b.Fatal(err)
	}
	p.startedAt = time.Now()
	if err := p.cmd.Start(); err != nil {
		b.Fatal(err)
	}
	p.pid = p.cmd.Process.Pid
	go func() {
		// Warnings and errors pass through; info lines are read for the start.
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<16), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if p.readyAt.IsZero() && strings.Contains(line, `"msg":"polling"`) {
				p.readyAt = time.Now()
				close(p.ready)
			}
			if benchLogLevel() != "warn" || !strings.Contains(line, `"level":"INFO"`) {
				fmt.Fprintln(os.Stderr, line)
			}
		}
	}()
	b.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			p.cmd.Process.Kill()
			p.cmd.Wait()
		}
	})
	return p
}

// startup is the time from the poller's start to its runner's "polling"
// line: the state and the watch list loaded, any outbox flushed.
func (p *pollerProc) startup() time.Duration {
	select {
	case <-p.ready:
		return p.readyAt.Sub(p.startedAt)
	case <-time.After(time.Minute):
		p.b.Fatal("the poller did not log its start (\"polling\")")
		return 0
	}
}

func (p *pollerProc) metric(name string) float64 {
	return scrape(p.b, "http://"+p.ops+"/metrics", name)
}

// waitCycles waits for the poller's n-th cycle to end.
func (p *pollerProc) waitCycles(n int, limit time.Duration) {
	waitUntil(p.b, limit, func() bool { return p.metric(`aw_poller_cycle_seconds_count{instance="ap"}`) >= float64(n) })
}

func (p *pollerProc) stop() {
	p.hwm = memKB(p.b, p.pid, "VmHWM")
	p.cmd.Process.Signal(os.Interrupt)
	p.cmd.Wait()
}

// steadyState is what measured cycles showed.
type steadyState struct {
	rate, mean, bare float64 // median cycle's polls/s, their mean, the median bare listing's accounts/s
	cpuPer1000       float64 // ms of the poller's CPU per 1,000 polls
	rss              int     // kB, after the cycles
	p50, p99         time.Duration
	perGroup         float64
	changesPerCycle  int
	cycles           []float64
	bares            []float64
}

// steady measures cycles full scans of the running poller while
// perInterval accounts change per interval (1%: the churn the figures
// name), with a bare listing right after each.
func (r *pollerRig) steady(p *pollerProc, cycles int, profile string, perInterval int) steadyState {
	b := r.b
	metric := p.metric
	// Changes: 1% of the accounts per interval, spread over the measured
	// cycles, through the simulator's admin API: each flips an account's
	// status as last set. Latency is read off the stream afterwards (each
	// event's stored time against its change): a consumer running
	// alongside would load the server during the measured cycles and not
	// during the bare loop.
	var mu sync.Mutex
	changedAt := map[string][]time.Time{}
	changes := 0
	changesFrom := time.Now()
	ctx, cancel := context.WithCancel(context.Background())
	generated := make(chan struct{})
	go func() {
		defer close(generated)
		if perInterval == 0 {
			<-ctx.Done()
			return
		}
		tick := r.interval / time.Duration(perInterval)
		hc := &http.Client{}
		due := time.Now()
		for ctx.Err() == nil { // until the bare loop, too, has been measured under it
			due = due.Add(tick) // on a schedule: a slow answer does not slow the churn
			time.Sleep(time.Until(due))
			n := r.rng.IntN(r.accounts)
			id := strconv.Itoa(5_000_000 + n)
			next := "credit hold"
			if r.onHold[n] {
				next = "active"
			}
			r.onHold[n] = !r.onHold[n]
			mu.Lock()
			changedAt[id] = append(changedAt[id], time.Now())
			changes++
			mu.Unlock()
			req, _ := http.NewRequest(http.MethodPatch, r.url+"/admin/activeplatform/accounts/"+id, strings.NewReader(`{"status":"`+next+`"}`))
			resp, err := hc.Do(req)
			if err != nil || resp.StatusCode != http.StatusOK {
				b.Errorf("changing account %s: %v %v", id, err, resp)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}()
	stopProfiles := r.profile(p, profile)
	cpu0, secs0 := cpuSeconds(p.b, p.pid), metric(`aw_poller_cycle_seconds_sum{instance="ap"}`)
	cycles0 := metric(`aw_poller_cycle_seconds_count{instance="ap"}`)
	polls0 := metric(`aw_poller_polls_total{instance="ap",outcome="ok"}`)
	// The bare loop lists the same simulator under the same churn in the
	// poller's idle time right after each measured cycle: paired samples,
	// as the machine's speed drifts over a run. Each cycle's own rate is
	// kept too: the median of both is what the ratio compares, so that one
	// cycle slowed by a neighbour on this shared machine does not decide
	// the figure.
	var s steadyState
	last, lastSecs, lastPolls := cycles0, secs0, polls0
	waitUntil(b, time.Duration(cycles+2)*(r.interval+time.Minute), func() bool {
		c := metric(`aw_poller_cycle_seconds_count{instance="ap"}`)
		if c > last && c <= cycles0+float64(cycles) {
			secs, polls := metric(`aw_poller_cycle_seconds_sum{instance="ap"}`), metric(`aw_poller_polls_total{instance="ap",outcome="ok"}`)
			s.cycles = append(s.cycles, (polls-lastPolls)/(secs-lastSecs))
			last, lastSecs, lastPolls = c, secs, polls
			s.bares = append(s.bares, bareOnce(b, r.url, r.accounts, r.perPage))
		}
		return c >= cycles0+float64(cycles)
	})
	cpu1, secs1 := cpuSeconds(p.b, p.pid), metric(`aw_poller_cycle_seconds_sum{instance="ap"}`)
	polls1 := metric(`aw_poller_polls_total{instance="ap",outcome="ok"}`)
	stopProfiles()
	time.Sleep(r.interval) // let the last changes arrive
	s.rss = memKB(b, p.pid, "VmRSS")
	s.perGroup = metric("aw_poller_commits_total") / metric("aw_poller_commit_groups_total")
	cancel()
	<-generated
	s.rate, s.bare = median(s.cycles), median(s.bares)
	polls := polls1 - polls0
	s.mean = polls / (secs1 - secs0)
	s.cpuPer1000 = (cpu1 - cpu0) * 1000 / (polls / 1000)
	s.changesPerCycle = perInterval
	var latencies []time.Duration
	if changes > 0 {
		latencies = streamLatencies(b, r.bus, changesFrom, changedAt)
	}
	slices.Sort(latencies)
	if n := len(latencies); n > 0 {
		s.p50, s.p99 = latencies[n/2], latencies[n*99/100]
	}
	b.Logf("%d cycles, %.0f polls, %d changes, %d change latencies measured, interval %s; per cycle %.0f polls/s, bare %.0f accounts/s", cycles, polls, changes, len(latencies), r.interval, s.cycles, s.bares)
	return s
}

func (s steadyState) report(b *testing.B, prefix string) {
	b.ReportMetric(s.rate, prefix+"polls/s")
	b.ReportMetric(s.mean, prefix+"polls/s-mean")
	b.ReportMetric(s.bare, prefix+"bare-accounts/s")
	b.ReportMetric(s.rate/s.bare, prefix+"ratio")
	b.ReportMetric(s.cpuPer1000, prefix+"cpu-ms/1000polls")
	b.ReportMetric(float64(s.rss)/1024, prefix+"rss-MB")
	b.ReportMetric(float64(s.p50.Milliseconds()), prefix+"p50-ms")
	b.ReportMetric(float64(s.p99.Milliseconds()), prefix+"p99-ms")
	b.ReportMetric(s.perGroup, prefix+"commits/group")
}

// profile writes, with AW_BENCH_PROFILE=/tmp/p (and suffix), CPU profiles of the steady
// state (the poller's, and this process's: server and harness), the
// poller's allocations and a trace of a cycle; it returns what stops them.
func (r *pollerRig) profile(p *pollerProc, suffix string) func() {
	prof := os.Getenv("AW_BENCH_PROFILE")
	if prof == "" {
		return func() {}
	}
	prof += suffix
	secs := int(3 * r.interval / time.Second)
	f, err := os.Create(prof + ".bench")
	if err == nil {
		pprof.StartCPUProfile(f)
	}
	go func() { // what the steady state allocates: pprof -base prof.allocs0 prof.allocs1
		for i := range 2 {
			if resp, err := http.Get("http://" + p.ops + "/debug/pprof/allocs?gc=1"); err == nil {
				f, _ := os.Create(fmt.Sprintf("%s.allocs%d", prof, i))
				io.Copy(f, resp.Body)
				f.Close()
				resp.Body.Close()
			}
			time.Sleep(time.Duration(secs) * time.Second / 2)
		}
	}()
	done := make(chan struct{})
	go func() {
		defer close(done)
		resp, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", p.ops, secs))
		if err == nil {
			f, _ := os.Create(prof)
			io.Copy(f, resp.Body)
			f.Close()
			resp.Body.Close()
		}
		if resp, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/trace?seconds=%d", p.ops, int(r.interval/time.Second)+1)); err == nil { // a cycle
			f, _ := os.Create(prof + ".trace")
			io.Copy(f, resp.Body)
			f.Close()
			resp.Body.Close()
		}
	}()
	return func() {
		<-done
		if f != nil {
			pprof.StopCPUProfile()
			f.Close()
		}
	}
}

// profileDiscovery writes, with AW_BENCH_PROFILE=/tmp/p, CPU profiles of
// the poller's first 30 seconds of discovery (/tmp/p.discovery) and of this
// process's (/tmp/p.discovery.bench: the server); it returns what stops them.
func (r *pollerRig) profileDiscovery(p *pollerProc) func() {
	prof := os.Getenv("AW_BENCH_PROFILE")
	if prof == "" {
		return func() {}
	}
	prof += ".discovery"
	f, err := os.Create(prof + ".bench")
	if err == nil {
		pprof.StartCPUProfile(f)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		time.Sleep(2 * time.Second) // its ops endpoint up
		if resp, err := http.Get("http://" + p.ops + "/debug/pprof/profile?seconds=30"); err == nil {
			f, _ := os.Create(prof)
			io.Copy(f, resp.Body)
			f.Close()
			resp.Body.Close()
		}
	}()
	return func() {
		<-done
		if f != nil {
			pprof.StopCPUProfile()
			f.Close()
		}
	}
}

// rawDiscovery is the baseline of discovery: as many messages as it writes
// (an entry and a baseline record per account, of their stored sizes),
// published asynchronously to a scratch stream of the same server, and
// their acknowledgements awaited. It returns the seconds taken.
func (r *pollerRig) rawDiscovery() float64 {
	ctx := context.Background()
	js := r.bus.JS
	entry, record := r.storedSize(eventbus.BucketWatch, "acct."), r.storedSize(eventbus.BucketState, "activeplatform.")
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "BENCH_RAW", Subjects: []string{"bench.raw.>"}, Storage: jetstream.FileStorage}); err != nil {
		r.b.Fatal(err)
	}
	defer js.DeleteStream(ctx, "BENCH_RAW")
	took := rawPublish(r.b, js, r.accounts, func(i int) *nats.Msg {
		return &nats.Msg{Subject: "bench.raw.w." + strconv.Itoa(i), Data: make([]byte, entry)}
	}, func(i int) *nats.Msg {
		return &nats.Msg{Subject: "bench.raw.s." + strconv.Itoa(i), Data: make([]byte, record)}
	})
	return took.Seconds()
}

// rawPublish publishes n pairs of messages asynchronously, as many in
// flight as the client allows, and awaits them all.
func rawPublish(b *testing.B, js jetstream.JetStream, n int, first, second func(int) *nats.Msg) time.Duration {
	t0 := time.Now()
	if err := bustest.PublishWindow(js, n, 2048, func(i int) []*nats.Msg { return []*nats.Msg{first(i), second(i)} }); err != nil {
		b.Fatal(err)
	}
	return time.Since(t0)
}

// storedSize is the size of the first value under prefix in a bucket.
func (r *pollerRig) storedSize(bucket, prefix string) int {
	ctx := context.Background()
	m, err := r.bucketStream(bucket).GetLastMsgForSubject(ctx, "$KV."+bucket+"."+prefix+">")
	if err != nil {
		r.b.Fatal(err)
	}
	return len(m.Data)
}

// storedBytes is the bytes a bucket's stream stores.
func (r *pollerRig) storedBytes(bucket string) uint64 {
	info, err := r.bucketStream(bucket).Info(context.Background())
	if err != nil {
		r.b.Fatal(err)
	}
	return info.State.Bytes
}

// bucketStream is the stream a KV bucket keeps its entries in.
func (r *pollerRig) bucketStream(bucket string) jetstream.Stream {
	s, err := r.bus.JS.Stream(context.Background(), "KV_"+bucket)
	if err != nil {
		r.b.Fatal(err)
	}
	return s
}

// rawLoad is the baseline of a start: a raw ordered consumer reading the
// state's and the watch list's streams, every message. Seconds.
func (r *pollerRig) rawLoad() float64 {
	t0 := time.Now()
	for _, stream := range []string{"KV_" + eventbus.BucketState, "KV_" + eventbus.BucketWatch} {
		rawRead(r.b, r.bus.JS, stream)
	}
	return time.Since(t0).Seconds()
}

// rawRead reads every message of a stream with an ordered consumer.
func rawRead(b *testing.B, js jetstream.JetStream, stream string) int {
	ctx := context.Background()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		b.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		b.Fatal(err)
	}
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		b.Fatal(err)
	}
	it, err := c.Messages(jetstream.PullMaxMessages(4096))
	if err != nil {
		b.Fatal(err)
	}
	defer it.Stop()
	n := 0
	for n < int(info.State.Msgs) {
		if _, err := it.Next(); err != nil {
			b.Fatal(err)
		}
		n++
	}
	return n
}

// limit measures what the shared core allows a cycle with changes: the bare
// listing of bareOnce and, beside it, the server's work for as many changes
// (random accounts, each handed on as its page is read) done by a raw
// client. A change's work is what the poller cannot avoid asking of the
// server: reading the account's stored record (it keeps a fingerprint in
// memory, not the record), storing the next one with its compare-and-swap,
// and publishing an event with its dedup id. Here the record is the one
// read, led by whitespace to a commit's stored size (the same entry to a
// decoder, so the state the restart reads is unchanged), and the event a
// stored event's headers and data under an account of its own. Reads on
// 16 workers, as the poller's; writes asynchronous, their acknowledgements
// awaited beside. once returns the accounts listed per second.
type limit struct {
	*pollerRig
	kv         jetstream.KeyValue
	commitSize int
	sample     *jetstream.RawStreamMsg
}

func (r *pollerRig) newLimit() *limit {
	ctx := context.Background()
	kv, err := r.bus.JS.KeyValue(ctx, eventbus.BucketState)
	if err != nil {
		r.b.Fatal(err)
	}
	events, err := r.bus.JS.Stream(ctx, eventbus.StreamEvents)
	if err != nil {
		r.b.Fatal(err)
	}
	sample, err := events.GetLastMsgForSubject(ctx, event.FilterSubject(event.ProviderActivePlatform, "ap", event.TypeStatusChanged, ""))
	if err != nil {
		r.b.Fatal(err)
	}
	return &limit{pollerRig: r, kv: kv, sample: sample, commitSize: r.storedSize(eventbus.BucketState, "activeplatform.")}
}

func (l *limit) once(changes, round int) float64 {
	r, b, kv, commitSize, sample := l.pollerRig, l.b, l.kv, l.commitSize, l.sample
	ctx := context.Background()
	js := r.bus.JS
	rng := rand.New(rand.NewPCG(uint64(round), 11))
	picked := make([]bool, r.accounts)
	for n := 0; n < min(changes, r.accounts); {
		if i := rng.IntN(r.accounts); !picked[i] {
			picked[i], n = true, n+1
		}
	}
	work := make(chan int, changes)
	acks := make(chan jetstream.PubAckFuture, 4096)
	var workers sync.WaitGroup
	for range 16 {
		workers.Add(1)
		go func() {
			defer workers.Done()
			for i := range work {
				id := strconv.Itoa(5_000_000 + i)
				key := state.Key(event.ProviderActivePlatform, "ap", id)
				rec, err := rewritePadded(ctx, kv, js, key, commitSize)
				if err != nil {
					b.Error(err)
					return
				}
				h := nats.Header{}
				for k, v := range sample.Header {
					h[k] = v
				}
				h.Set(jetstream.MsgIDHeader, fmt.Sprintf("limit-%d-%d", round, i))
				subject, err := event.Subject(event.ProviderActivePlatform, "ap", event.TypeStatusChanged, "limit-"+id)
				if err != nil {
					b.Error(err)
					return
				}
				ev, err := js.PublishMsgAsync(&nats.Msg{Subject: subject, Header: h, Data: sample.Data}, jetstream.WithExpectStream(eventbus.StreamEvents))
				if err != nil {
					b.Error(err)
					return
				}
				acks <- rec
				acks <- ev
			}
		}()
	}
	awaited := make(chan struct{})
	go func() {
		defer close(awaited)
		awaitAcks(b, acks, "raw change writes")
	}()
	start := time.Now()
	listBare(b, r.url, r.accounts, r.perPage, func(from, to int) {
		for i := from; i < to; i++ {
			if picked[i] {
				work <- i
			}
		}
	})
	close(work)
	workers.Wait()
	close(acks)
	<-awaited
	if b.Failed() {
		b.FailNow()
	}
	return float64(r.accounts) / time.Since(start).Seconds()
}

// rewritePadded reads a record and stores it again, led by whitespace to
// size bytes (the same entry to a decoder), with its compare-and-swap; the
// caller awaits the acknowledgement.
func rewritePadded(ctx context.Context, kv jetstream.KeyValue, js jetstream.JetStream, key string, size int) (jetstream.PubAckFuture, error) {
	e, err := kv.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	data := e.Value()
	if pad := size - len(data); pad > 0 {
		data = append([]byte(strings.Repeat(" ", pad)), data...)
	}
	return js.PublishMsgAsync(&nats.Msg{Subject: "$KV." + eventbus.BucketState + "." + e.Key(), Data: data,
		Header: nats.Header{jetstream.ExpectedLastSubjSeqHeader: {strconv.FormatUint(e.Revision(), 10)}}}, jetstream.WithExpectStream("KV_"+eventbus.BucketState))
}

// awaitAcks awaits every acknowledgement sent on acks until it is closed.
func awaitAcks(b *testing.B, acks <-chan jetstream.PubAckFuture, what string) {
	for f := range acks {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			b.Error(err)
		case <-time.After(time.Minute):
			b.Error(what + " not acknowledged")
		}
	}
}

// age rewrites every account's record to size bytes (rewritePadded), on 16
// workers, and awaits the writes.
func (r *pollerRig) age(size int) {
	b, ctx, js := r.b, context.Background(), r.bus.JS
	kv, err := js.KeyValue(ctx, eventbus.BucketState)
	if err != nil {
		b.Fatal(err)
	}
	t0 := time.Now()
	next := make(chan int)
	acks := make(chan jetstream.PubAckFuture, 4096)
	var workers sync.WaitGroup
	for range 16 {
		workers.Go(func() {
			for i := range next {
				f, err := rewritePadded(ctx, kv, js, state.Key(event.ProviderActivePlatform, "ap", strconv.Itoa(5_000_000+i)), size)
				if err != nil {
					b.Error(err)
					continue
				}
				acks <- f
			}
		})
	}
	go func() {
		for i := range r.accounts {
			next <- i
		}
		close(next)
		workers.Wait()
		close(acks)
	}()
	awaitAcks(b, acks, "aged records' writes")
	if b.Failed() {
		b.FailNow()
	}
	b.Logf("aged %d records to %d bytes in %s", r.accounts, size, time.Since(t0).Round(time.Second))
}

// rawSyncedPerChange is the disk's limit with fsync on every write: the
// time per change of raw messages of a record's and an event's stored size
// written as pkg/state writes them, groups of records then their events,
// the next group's records sent while this group's events are stored.
func (r *pollerRig) rawSyncedPerChange() time.Duration {
	const group, groups = 8, 64
	js := r.bus.JS
	record := r.storedSize(eventbus.BucketState, "activeplatform.")
	ev := 900
	send := func(subject string, size, n int) []jetstream.PubAckFuture {
		fs := make([]jetstream.PubAckFuture, n)
		for i := range fs {
			f, err := js.PublishMsgAsync(&nats.Msg{Subject: subject + strconv.Itoa(i), Data: make([]byte, size)})
			if err != nil {
				r.b.Fatal(err)
			}
			fs[i] = f
		}
		return fs
	}
	await := func(fs []jetstream.PubAckFuture) {
		for _, f := range fs {
			select {
			case <-f.Ok():
			case err := <-f.Err():
				r.b.Fatal(err)
			case <-time.After(time.Minute):
				r.b.Fatal("no acknowledgement")
			}
		}
	}
	t0 := time.Now()
	var inFlight []jetstream.PubAckFuture
	for range groups {
		await(send("$KV."+eventbus.BucketState+".bench.raw.", record, group))
		await(inFlight)
		inFlight = send("aw.events.activeplatform.bench.account-status-changed.", ev, group)
	}
	await(inFlight)
	return time.Since(t0) / (group * groups)
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

// listHeld lists which accounts are on credit hold, as the changes start
// from (the generated ids run from 5,000,000).
func listHeld(b *testing.B, url string, accounts int) []bool {
	c, err := activeplatform.New(url, simtest.APToken)
	if err != nil {
		b.Fatal(err)
	}
	out := make([]bool, accounts)
	if err := c.List(context.Background(), activeplatform.ListOptions{PerPage: 1000}, func(a *activeplatform.Account) error {
		n, err := strconv.Atoi(a.ID)
		if err != nil || n < 5_000_000 || n >= 5_000_000+accounts {
			return fmt.Errorf("account id %q outside the generated range", a.ID)
		}
		out[n-5_000_000] = a.Status == "credit hold"
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	return out
}

// bareOnce fetches the same listing with plain net/http (read, not decoded)
// and returns its rate.
func bareOnce(b *testing.B, url string, accounts, perPage int) float64 {
	start := time.Now()
	listBare(b, url, accounts, perPage, nil)
	return float64(accounts) / time.Since(start).Seconds()
}

// listBare is bareOnce's listing; after each page is read it calls page
// (if not nil) with the indexes of the page's accounts, [from, to).
func listBare(b *testing.B, url string, accounts, perPage int, page func(from, to int)) {
	hc := &http.Client{}
	for p := 1; p <= (accounts+perPage-1)/perPage; p++ {
		resp, err := hc.Get(fmt.Sprintf("%s/api/vendor/v1/accounts.json?api_token=%s&page=%d&per_page=%d&sorting%%5Bfield%%5D=id&sorting%%5Breversed%%5D=false", url, simtest.APToken, p, perPage))
		if err != nil {
			b.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("bare loop: page %d answered %s", p, resp.Status)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if page != nil {
			page((p-1)*perPage, min(p*perPage, accounts))
		}
	}
}

// streamLatencies reads the status changes stored since from and matches each
// to the change of its account it reflects: the latest one made before the
// event was stored and after the one its previous event reflected.
func streamLatencies(b *testing.B, bus *eventbus.Bus, from time.Time, changedAt map[string][]time.Time) []time.Duration {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
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
