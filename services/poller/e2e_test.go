package main_test

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/eventbus"
	"github.com/accountwatch/accountwatch/pkg/eventbus/bustest"
	"github.com/accountwatch/accountwatch/pkg/sim"
	"github.com/accountwatch/accountwatch/pkg/sim/simtest"
)

var pollerBin string

func TestMain(m *testing.M) {
	flag.Parse()
	if flag.Lookup("test.run").Value.String() == "^$" { // benchmarks only: they build their own
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "poller-bin")
	if err != nil {
		panic(err)
	}
	pollerBin = filepath.Join(dir, "poller")
	if out, err := exec.Command("go", "build", "-race", "-o", pollerBin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building the poller: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type proc struct {
	cmd *exec.Cmd
	log *os.File
}

func startPoller(t *testing.T, bus *eventbus.Bus, configPath, replica string) *proc {
	t.Helper()
	logf, _ := os.OpenFile(filepath.Join(t.TempDir(), replica+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	cmd := exec.Command(pollerBin)
	cmd.Env = append(os.Environ(), "NATS_URL="+bus.ClientURL(), "AW_NATS_NKEY_SEED_FILE="+bus.SeedFile(eventbus.RolePoller), "AW_POLLER_CONFIG="+configPath, "AW_OPS_LISTEN=127.0.0.1:0",
		"AW_REPLICA_ID="+replica, "AW_LEASE_RENEW=200ms", "AW_LOG_LEVEL=warn")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return &proc{cmd: cmd, log: logf}
}

func (p *proc) kill() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	p.cmd.Wait()
}

func (p *proc) stop(t *testing.T) {
	p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("poller exited with %v", err)
		}
	case <-time.After(30 * time.Second):
		p.kill()
		t.Error("poller did not drain on SIGTERM")
	}
}

// TestSIGKILLLosesNoChangeAndDuplicatesNone kills the poller (a real process)
// at random points while account statuses change, restarts it each time, and
// then checks that every account's events are exactly the changes applied, in
// order, each once, with an intact hash chain.
func TestSIGKILLLosesNoChangeAndDuplicatesNone(t *testing.T) {
	// 40 accounts changed in turn, 110 ms apart: one account changes every 4.4 s,
	// far longer than a restart, so every change is observable.
	const accounts, rounds, kills = 40, 2, 22
	seed := simtest.Seed()
	seed.ActivePlatform.Accounts = nil
	for i := range accounts {
		zero := "0"
		seed.ActivePlatform.Accounts = append(seed.ActivePlatform.Accounts, sim.APAccount{ID: int64(3000 + i), Name: "Chaos " + strconv.Itoa(i), Status: "active", Balance: &zero})
	}
	vary := uint64(time.Now().UnixNano())
	t.Logf("upstream-sim variation seed %d", vary)
	s, url := simtest.Start(t, seed, sim.WithVariation(vary))
	bus := bustest.Start(t, bustest.Config(t, "127.0.0.1:0"))
	var watch strings.Builder
	for i := range accounts {
		fmt.Fprintf(&watch, "  - {connection: ap, account: \"%d\"}\n", 3000+i)
	}
	cfgPath := filepath.Join(t.TempDir(), "poller.yaml")
	os.WriteFile(cfgPath, []byte(fmt.Sprintf("connections:\n  - {name: ap, provider: activeplatform, url: %s, api_token: %s, interval: 150ms, jitter: 0.01, full_scan_every: 1}\nwatch:\n%s",
		url, simtest.APToken, watch.String())), 0o600)

	p := startPoller(t, bus, cfgPath, "chaos-1")
	// Baseline first.
	deadline := time.Now().Add(60 * time.Second)
	for s.Stats()["ap.list"] < 3 {
		if time.Now().After(deadline) {
			t.Fatal("poller never listed")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Apply the script while a killer restarts the poller at random moments.
	statuses := []string{"credit hold", "administrative_hold", "active"}
	want := map[string][]string{}
	scriptDone := make(chan struct{})
	scriptErr := make(chan error, 1)
	go func() {
		defer close(scriptDone)
		prev := map[int]string{}
		for r := range rounds {
			// A poller sees states, not transitions: a change undone before any
			// incarnation listed it is rightly never reported. On a starved
			// machine the restarts can outlast a round, so the next change to
			// an account waits until the last one is stored.
			if r > 0 && !storedAtLeast(bus, uint64(r*accounts), time.Minute) {
				scriptErr <- fmt.Errorf("round %d was not stored within a minute", r)
				return
			}
			for i := range accounts {
				cur := statuses[(r+i)%len(statuses)]
				if cur == prev[i] || (prev[i] == "" && cur == "active") {
					cur = statuses[(r+i+1)%len(statuses)]
				}
				from := prev[i]
				if from == "" {
					from = "active"
				}
				s.State.SetAP(int64(3000+i), map[string]any{"status": cur})
				want[strconv.Itoa(3000+i)] = append(want[strconv.Itoa(3000+i)], event.NormalizeEnum(from)+">"+event.NormalizeEnum(cur))
				prev[i] = cur
				time.Sleep(110 * time.Millisecond)
			}
		}
	}()
	// Each incarnation is killed at a random moment after it started listing:
	// mid-scan, mid-commit, between the outbox write and the publish, or idle.
	rng := rand.New(rand.NewPCG(1, uint64(time.Now().UnixNano())))
	for range kills {
		base := s.Stats()["ap.list"]
		deadline := time.Now().Add(60 * time.Second)
		for s.Stats()["ap.list"] == base {
			if time.Now().After(deadline) {
				t.Fatal("restarted poller never listed")
			}
			time.Sleep(5 * time.Millisecond)
		}
		time.Sleep(time.Duration(rng.IntN(300)) * time.Millisecond)
		p.kill()
		p = startPoller(t, bus, cfgPath, "chaos-1")
	}
	<-scriptDone
	select {
	case err := <-scriptErr:
		t.Fatal(err)
	default:
	}
	total := 0
	for _, w := range want {
		total += len(w)
	}
	deadline = time.Now().Add(60 * time.Second)
	var evs []*event.Event
	for {
		evs = bustest.Events(t, bus)
		if len(evs) >= total || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(time.Second) // a few more cycles: nothing more may come
	evs = bustest.Events(t, bus)
	p.stop(t)

	got := map[string][]string{}
	ids := map[string]bool{}
	last := map[string]*event.Event{}
	for _, e := range evs {
		if e.Type() != event.TypeStatusChanged {
			t.Errorf("unexpected %s %s", e.Type(), e.Data.AccountID)
			continue
		}
		if ids[e.ID()] {
			t.Errorf("duplicate event %s", e.ID())
		}
		ids[e.ID()] = true
		a := e.Data.AccountID
		got[a] = append(got[a], e.Data.Previous.Value+">"+e.Data.Current.Value)
		if p := last[a]; p != nil && (e.Data.Chain.Seq != p.Data.Chain.Seq+1 || e.Data.Chain.Prev != p.Hash()) {
			t.Errorf("account %s: chain broken at seq %d", a, e.Data.Chain.Seq)
		}
		last[a] = e
	}
	for a, w := range want {
		if strings.Join(got[a], ",") != strings.Join(w, ",") {
			t.Errorf("account %s: events %v, want %v", a, got[a], w)
		}
	}
	t.Logf("%d kills, %d changes, %d events", kills, total, len(evs))
}

// TestTwoReplicasOneKilled: two replicas share two connections, one each;
// each connection is polled by one replica at a time, once per interval;
// when one replica is killed, the other takes its connection over and no
// account is forgotten.
//
// Slowness cannot fail it, only a double poll or a missed read can. A double
// poll is not told from the reads' times (on a loaded machine a cycle's
// reads spread out, and one account's two reads may be any distance apart)
// but from the cycles: every cycle a connection completes is recorded in its
// progress (AW_WATCH), and one replica's cycles, or its successor's, are
// numbered one after the other and start an interval apart at least (a
// cycle never starts before its due time, interval × (1 − jitter) after the
// last one started, however late it runs). Two replicas polling one
// connection would repeat numbers or start cycles closer together.
func TestTwoReplicasOneKilled(t *testing.T) {
	seed := simtest.Seed()
	seed.Alibaba.Customers = nil
	var watch strings.Builder
	for i := range 12 {
		uid := strconv.Itoa(4000 + i)
		seed.Alibaba.Customers = append(seed.Alibaba.Customers, sim.BSSCustomer{UID: uid, HostingStatus: "TRUSTEESHIP", CreditLimitStatus: "Thaw"})
		fmt.Fprintf(&watch, "  - {connection: %s, account: \"%s\"}\n", connOf(i), uid)
	}
	s, url := simtest.Start(t, seed, sim.WithPollLog(), sim.WithVariation(uint64(time.Now().UnixNano())))
	host := strings.TrimPrefix(url, "http://")
	bus := bustest.Start(t, bustest.Config(t, "127.0.0.1:0"))
	const interval, jitter = 500 * time.Millisecond, 0.05
	conn := func(name string) string {
		return fmt.Sprintf("  - {name: %s, provider: alibaba-bss, endpoint: \"%s\", protocol: http, access_key_id: %s, access_key_secret: %s, interval: %s, jitter: %v}\n",
			name, host, simtest.AccessKeyID, simtest.AccessSecret, interval, jitter)
	}
	cfgPath := filepath.Join(t.TempDir(), "poller.yaml")
	os.WriteFile(cfgPath, []byte("connections:\n"+conn("bss-a")+conn("bss-b")+"watch:\n"+watch.String()), 0o600)

	ctx := context.Background()
	progress := watchProgress(t, bus)
	a := startPoller(t, bus, cfgPath, "replica-a")
	b := startPoller(t, bus, cfgPath, "replica-b")
	leases, _ := bus.JS.KeyValue(ctx, eventbus.BucketLeases)
	owner := func(unit string) string {
		e, err := leases.Get(ctx, "lease."+unit)
		if err != nil {
			return ""
		}
		v := string(e.Value())
		return v[strings.Index(v, `"owner":"`)+9 : strings.Index(v, `","at"`)]
	}
	waitFor(t, "the connections spread over the replicas", func() bool {
		return owner("bss-a") != "" && owner("bss-b") != "" && owner("bss-a") != owner("bss-b")
	})
	waitFor(t, "three cycles of each connection", func() bool { return len(progress.of("bss-a")) >= 3 && len(progress.of("bss-b")) >= 3 })
	victim, survivor := a, b
	victimName, survivorName, taken := "replica-a", "replica-b", "bss-a"
	if owner("bss-a") == "replica-b" {
		victim, survivor, victimName, survivorName = b, a, "replica-b", "replica-a"
	}
	victim.kill()
	waitFor(t, survivorName+" taking "+taken+" over from "+victimName, func() bool { return owner(taken) == survivorName })
	takenAt := time.Now()
	before := len(progress.of(taken))
	// Every account of both connections read after the takeover, by cycles
	// the survivor completed.
	waitFor(t, "every account read after the takeover", func() bool {
		if len(progress.of(taken)) < before+2 {
			return false
		}
		for i := range 12 {
			times := s.PollTimes("bss/" + strconv.Itoa(4000+i))
			if len(times) == 0 || !times[len(times)-1].After(takenAt) {
				return false
			}
		}
		return true
	})
	survivor.stop(t)

	minGap := time.Duration(float64(interval) * (1 - jitter))
	for _, c := range []string{"bss-a", "bss-b"} {
		cycles := progress.of(c)
		for i := 1; i < len(cycles); i++ {
			p, q := cycles[i-1], cycles[i]
			if q.Cycles != p.Cycles+1 {
				t.Errorf("%s: cycle %d recorded after cycle %d: two replicas polled it", c, q.Cycles, p.Cycles)
			}
			if gap := q.LastStart.Sub(p.LastStart); gap < minGap {
				t.Errorf("%s: cycle %d started %s after cycle %d (interval %s): two replicas polled it", c, q.Cycles, gap, p.Cycles, interval)
			}
		}
		// Within a connection every cycle reads every account: equal counts,
		// up to 3 apart (the rebalance at start, the kill and the stop can
		// each cut a cycle), and never more reads than cycles begun.
		var counts []int
		for i := range 12 {
			if connOf(i) == c {
				counts = append(counts, len(s.PollTimes("bss/"+strconv.Itoa(4000+i))))
			}
		}
		sort.Ints(counts)
		if counts[len(counts)-1]-counts[0] > 3 {
			t.Errorf("%s: read counts per account %v: a cycle skipped an account", c, counts)
		}
		if counts[len(counts)-1] > len(cycles)+3 {
			t.Errorf("%s: an account read %d times in %d cycles", c, counts[len(counts)-1], len(cycles))
		}
	}
}

func connOf(i int) string {
	if i%2 == 1 {
		return "bss-b"
	}
	return "bss-a"
}

// cycleRecord is a connection's progress as the poller records it after
// each cycle.
type cycleRecord struct {
	LastStart time.Time `json:"last_start"`
	Cycles    int       `json:"cycles"`
}

type progressLog struct {
	mu sync.Mutex
	m  map[string][]cycleRecord
}

func (p *progressLog) of(conn string) []cycleRecord {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]cycleRecord(nil), p.m[conn]...)
}

// watchProgress records every progress update of every connection.
func watchProgress(t *testing.T, bus *eventbus.Bus) *progressLog {
	t.Helper()
	kv, err := bus.JS.KeyValue(context.Background(), eventbus.BucketWatch)
	if err != nil {
		t.Fatal(err)
	}
	w, err := kv.Watch(context.Background(), "progress.*", jetstream.UpdatesOnly())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Stop() })
	p := &progressLog{m: map[string][]cycleRecord{}}
	go func() {
		for u := range w.Updates() {
			if u == nil || u.Operation() != jetstream.KeyValuePut {
				continue
			}
			var c cycleRecord
			if json.Unmarshal(u.Value(), &c) == nil {
				p.mu.Lock()
				conn := strings.TrimPrefix(u.Key(), "progress.")
				p.m[conn] = append(p.m[conn], c)
				p.mu.Unlock()
			}
		}
	}()
	return p
}

// waitFor waits until cond holds; the deadline is only a stop for a hang.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 2 minutes: %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// storedAtLeast waits until the event stream holds n messages.
func storedAtLeast(bus *eventbus.Bus, n uint64, within time.Duration) bool {
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	for {
		if st, err := bus.JS.Stream(ctx, eventbus.StreamEvents); err == nil {
			if info, err := st.Info(ctx); err == nil && info.State.Msgs >= n {
				return true
			}
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(50 * time.Millisecond):
		}
	}
}
