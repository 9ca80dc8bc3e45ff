package main_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/eventbus"
	"github.com/accountwatch/accountwatch/pkg/eventbus/bustest"
	"github.com/accountwatch/accountwatch/pkg/sim"
	"github.com/accountwatch/accountwatch/pkg/sim/simtest"
)

var pollerBin string

func TestMain(m *testing.M) {
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
		seed.ActivePlatform.Accounts = append(seed.ActivePlatform.Accounts, sim.APAccount{ID: int64(3000 + i), Name: "Chaos " + strconv.Itoa(i), Status: "active", Balance: "0"})
	}
	s, url := simtest.Start(t, seed)
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
	go func() {
		defer close(scriptDone)
		prev := map[int]string{}
		for r := range rounds {
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

// TestTwoReplicasOneKilled: two replicas share two connections, one each; each
// account is read once per interval; when one replica is killed, the other
// takes its connection over and no account is forgotten.
func TestTwoReplicasOneKilled(t *testing.T) {
	seed := simtest.Seed()
	seed.Alibaba.Customers = nil
	var watch strings.Builder
	for i := range 12 {
		uid := strconv.Itoa(4000 + i)
		seed.Alibaba.Customers = append(seed.Alibaba.Customers, sim.BSSCustomer{UID: uid, HostingStatus: "TRUSTEESHIP", CreditLimitStatus: "Thaw"})
		conn := "bss-a"
		if i%2 == 1 {
			conn = "bss-b"
		}
		fmt.Fprintf(&watch, "  - {connection: %s, account: \"%s\"}\n", conn, uid)
	}
	s, url := simtest.Start(t, seed, sim.WithPollLog())
	host := strings.TrimPrefix(url, "http://")
	bus := bustest.Start(t, bustest.Config(t, "127.0.0.1:0"))
	const interval = 500 * time.Millisecond
	conn := func(name string) string {
		return fmt.Sprintf("  - {name: %s, provider: alibaba-bss, endpoint: \"%s\", protocol: http, access_key_id: %s, access_key_secret: %s, interval: 500ms, jitter: 0.05}\n",
			name, host, simtest.AccessKeyID, simtest.AccessSecret)
	}
	cfgPath := filepath.Join(t.TempDir(), "poller.yaml")
	os.WriteFile(cfgPath, []byte("connections:\n"+conn("bss-a")+conn("bss-b")+"watch:\n"+watch.String()), 0o600)

	a := startPoller(t, bus, cfgPath, "replica-a")
	b := startPoller(t, bus, cfgPath, "replica-b")
	leases, _ := bus.JS.KeyValue(context.Background(), eventbus.BucketLeases)
	owner := func(unit string) string {
		e, err := leases.Get(context.Background(), "lease."+unit)
		if err != nil {
			return ""
		}
		v := string(e.Value())
		return v[strings.Index(v, `"owner":"`)+9 : strings.Index(v, `","at"`)]
	}
	deadline := time.Now().Add(60 * time.Second)
	for owner("bss-a") == "" || owner("bss-b") == "" || owner("bss-a") == owner("bss-b") {
		if time.Now().After(deadline) {
			t.Fatalf("connections not spread: %q %q", owner("bss-a"), owner("bss-b"))
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(3 * time.Second)
	victim, survivor := a, b
	victimName := "replica-a"
	if owner("bss-a") == "replica-b" {
		victim, survivor, victimName = b, a, "replica-b"
	}
	killedAt := time.Now()
	victim.kill()
	time.Sleep(eventbus.LeaseTTL + 5*time.Second)
	end := time.Now() // the window ends here: the survivor's drain below is not an outage
	survivor.stop(t)

	// Slowness cannot fail these checks, only a double or a missed read can:
	// no account is read twice within an interval; within a connection every
	// cycle reads every account (equal counts, up to 2 apart: the kill and the
	// stop can each cut a cycle); and every account is read again after its
	// connection was taken over.
	minGap := time.Duration(float64(interval) * 0.8)
	counts := map[string][]int{}
	for i := range 12 {
		uid := strconv.Itoa(4000 + i)
		conn := "bss-a"
		if i%2 == 1 {
			conn = "bss-b"
		}
		times := s.PollTimes("bss/" + uid)
		counts[conn] = append(counts[conn], len(times))
		for j := 1; j < len(times); j++ {
			if gap := times[j].Sub(times[j-1]); gap < minGap {
				t.Errorf("%s read twice within %s (interval %s)", uid, gap, interval)
			}
		}
		after := 0
		for _, at := range times {
			if at.After(killedAt.Add(eventbus.LeaseTTL)) && at.Before(end) {
				after++
			}
		}
		if after == 0 {
			t.Errorf("%s (%s) not read after %s took over from %s", uid, conn, "the survivor", victimName)
		}
	}
	for conn, c := range counts {
		sort.Ints(c)
		if c[len(c)-1]-c[0] > 2 {
			t.Errorf("%s: read counts per account %v: a cycle skipped an account", conn, c)
		}
	}
}
