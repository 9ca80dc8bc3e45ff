package deadman_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/accountwatch/accountwatch/pkg/audit"
	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/eventbus"
	"github.com/accountwatch/accountwatch/pkg/eventbus/bustest"
	"github.com/accountwatch/accountwatch/pkg/schemas"
	"github.com/accountwatch/accountwatch/pkg/state"
	"github.com/accountwatch/accountwatch/pkg/watch"
	"github.com/accountwatch/accountwatch/services/auditor/internal/deadman"
)

// fixture is a provisioned server with one announced connection, and the
// poller's side of it written with the poller's own credentials.
type fixture struct {
	admin  *eventbus.Bus
	poller *watch.Store
	leases jetstream.KeyValue
	now    time.Time
	mu     sync.Mutex
}

func (f *fixture) clock() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fixture) advance(d time.Duration) {
	f.mu.Lock()
	f.now = f.now.Add(d)
	f.mu.Unlock()
}

func join(t *testing.T, admin *eventbus.Bus, r eventbus.Role) *eventbus.Bus {
	t.Helper()
	cfg := admin.Cfg
	cfg.URL, cfg.NKeySeedFile, cfg.Role = admin.ClientURL(), admin.SeedFile(r), r
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	b, err := eventbus.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	admin := bustest.Start(t, bustest.Config(t, "127.0.0.1:0"))
	pb := join(t, admin, eventbus.RolePoller)
	ctx := context.Background()
	ws, err := watch.Open(ctx, pb.JS)
	if err != nil {
		t.Fatal(err)
	}
	if err := ws.Announce(ctx, []watch.Connection{{Name: "ap-main", Provider: event.ProviderActivePlatform, Interval: time.Minute, Labels: map[string]string{"team": "emea"}}}); err != nil {
		t.Fatal(err)
	}
	leases, err := pb.JS.KeyValue(ctx, eventbus.BucketLeases)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{admin: admin, poller: ws, leases: leases, now: time.Now()}
	f.cycle(t)
	f.hold(t, "poller-a")
	return f
}

// cycle is a cycle of the poller completing now.
func (f *fixture) cycle(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	p, _, _ := f.poller.LoadProgress(ctx, "ap-main")
	p.LastStart, p.Cycles = time.Now().Add(-time.Second), p.Cycles+1
	if err := f.poller.SaveProgress(ctx, "ap-main", p); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	f.now = time.Now()
	f.mu.Unlock()
}

func (f *fixture) hold(t *testing.T, owner string) {
	t.Helper()
	b, _ := json.Marshal(map[string]any{"owner": owner, "at": time.Now().UTC()})
	if _, err := f.leases.Put(context.Background(), "lease.ap-main", b); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) release(t *testing.T) {
	t.Helper()
	if err := f.leases.Delete(context.Background(), "lease.ap-main"); err != nil {
		t.Fatal(err)
	}
}

// auditor is a dead-man connected as the auditor role.
func (f *fixture) auditor(t *testing.T, reg prometheus.Registerer) *deadman.Watcher {
	t.Helper()
	b := join(t, f.admin, eventbus.RoleAuditor)
	ctx := context.Background()
	ws, err := watch.Open(ctx, b.JS)
	if err != nil {
		t.Fatal(err)
	}
	leases, err := b.JS.KeyValue(ctx, eventbus.BucketLeases)
	if err != nil {
		t.Fatal(err)
	}
	st, err := state.Open(ctx, b.JS)
	if err != nil {
		t.Fatal(err)
	}
	w := &deadman.Watcher{Watch: ws, Leases: leases, State: st, Intervals: 3, LeaseGrace: 30 * time.Second, Every: time.Second, Now: f.clock}
	if reg != nil {
		w.Register(reg)
	}
	return w
}

func check(t *testing.T, w *deadman.Watcher) {
	t.Helper()
	if err := w.Check(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// stalls are the stall events in the stream, in order.
func stalls(t *testing.T, b *eventbus.Bus) []*event.Event {
	t.Helper()
	var out []*event.Event
	for _, e := range bustest.Events(t, b) {
		if e.Data.AccountID == event.PollerScope {
			out = append(out, e)
		}
	}
	return out
}

func TestStallAndResume(t *testing.T) {
	f := newFixture(t)
	reg := prometheus.NewRegistry()
	w := f.auditor(t, reg)
	check(t, w)
	if got := stalls(t, f.admin); len(got) != 0 {
		t.Fatalf("a connection cycling on time stalled: %v", got)
	}
	if err := w.Ready(context.Background()); err != nil {
		t.Errorf("not ready after a round: %v", err)
	}

	// Three intervals and a second without a cycle.
	f.advance(3*time.Minute + time.Second)
	check(t, w)
	check(t, w) // once per stall, however many rounds see it
	got := stalls(t, f.admin)
	if len(got) != 1 || got[0].Type() != event.TypePollStalled || got[0].Severity() != event.SeverityCritical {
		t.Fatalf("stall events %v, want one critical poll.stalled", got)
	}
	st := got[0].Data.Stall
	if st.Reason != event.StallNoCycle || st.Intervals != 3 || st.Interval != "1m0s" || st.LeaseHolder != "poller-a" || st.LastCycleAt == nil || got[0].Data.Labels["team"] != "emea" {
		t.Errorf("stall %+v labels %v", st, got[0].Data.Labels)
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`# HELP aw_auditor_connection_stalled 1 while the dead-man records the connection stalled (poll.stalled emitted, no poll.resumed yet).
# TYPE aw_auditor_connection_stalled gauge
aw_auditor_connection_stalled{instance="ap-main",reason="no_cycle"} 1
`), "aw_auditor_connection_stalled"); err != nil {
		t.Error(err)
	}

	// The poller cycles again.
	f.cycle(t)
	check(t, w)
	got = stalls(t, f.admin)
	if len(got) != 2 || got[1].Type() != event.TypePollResumed || !got[1].Data.Stall.Since.Equal(st.Since) || got[1].Data.Chain.Prev != got[0].Hash() {
		t.Fatalf("after a cycle: %v, want poll.resumed chained to the stall", got)
	}

	// No replica holds the lease: a stall once the grace passed, however
	// recent the last cycle.
	f.release(t)
	check(t, w)
	f.advance(31 * time.Second)
	check(t, w)
	got = stalls(t, f.admin)
	if len(got) != 3 || got[2].Type() != event.TypePollStalled || got[2].Data.Stall.Reason != event.StallNoLease || got[2].Data.Stall.LeaseHolder != "" {
		t.Fatalf("without a lease: %v", got)
	}
	// A replica takes the lease: still stalled until it completes a cycle.
	f.hold(t, "poller-b")
	check(t, w)
	if n := len(stalls(t, f.admin)); n != 3 {
		t.Fatalf("resumed before a cycle: %d events", n)
	}
	f.cycle(t)
	check(t, w)
	got = stalls(t, f.admin)
	if len(got) != 4 || got[3].Type() != event.TypePollResumed || got[3].Data.Stall.Reason != event.StallNoLease || got[3].Data.Stall.LeaseHolder != "poller-b" {
		t.Fatalf("after the new holder's cycle: %v", got)
	}

	// Every event is the contract's, and the audit log verifies whole: the
	// dead-man's chain agrees with its record in AW_STATE.
	v, err := schemas.Default()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range got {
		if err := v.Validate(string(e.Type()), e.Cloud.Data()); err != nil {
			t.Errorf("%s: %v", e.Type(), err)
		}
	}
	rep, err := audit.Verify(context.Background(), f.admin.JS, audit.Options{Stream: eventbus.StreamEvents, State: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Problems) != 0 {
		t.Errorf("verify: %+v", rep.Problems)
	}
	if n := testutil.CollectAndCount(reg, "aw_auditor_stalls_total"); n != 1 {
		t.Errorf("aw_auditor_stalls_total series: %d", n)
	}
}

// TestTwoAuditorsEmitOneStall: replicas of the auditor race for the same
// stall; the record's compare-and-swap lets one event through.
func TestTwoAuditorsEmitOneStall(t *testing.T) {
	f := newFixture(t)
	a, b := f.auditor(t, nil), f.auditor(t, nil)
	f.advance(4 * time.Minute)
	var wg sync.WaitGroup
	for _, w := range []*deadman.Watcher{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 3 {
				if err := w.Check(context.Background()); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	if got := stalls(t, f.admin); len(got) != 1 {
		t.Fatalf("%d stall events from two auditors, want 1", len(got))
	}
}

// TestNeverCycled: a connection announced whose poller never completes a
// cycle stalls counted from the announcement.
func TestNeverCycled(t *testing.T) {
	admin := bustest.Start(t, bustest.Config(t, "127.0.0.1:0"))
	f := &fixture{admin: admin, now: time.Now()}
	pb := join(t, admin, eventbus.RolePoller)
	ws, _ := watch.Open(context.Background(), pb.JS)
	if err := ws.Announce(context.Background(), []watch.Connection{{Name: "ap-main", Provider: event.ProviderActivePlatform, Interval: time.Second}}); err != nil {
		t.Fatal(err)
	}
	f.poller = ws
	f.leases, _ = pb.JS.KeyValue(context.Background(), eventbus.BucketLeases)
	f.hold(t, "poller-a")
	w := f.auditor(t, nil)
	check(t, w)
	f.advance(4 * time.Second)
	check(t, w)
	got := stalls(t, admin)
	if len(got) != 1 || got[0].Data.Stall.LastCycleAt != nil || got[0].Data.Stall.Reason != event.StallNoCycle {
		t.Fatalf("%v", got)
	}
	if s := w.Statuses(); len(s) != 1 || !s[0].Stalled || !strings.Contains(s[0].Reason, "no_cycle") {
		t.Errorf("statuses %+v", s)
	}
}
