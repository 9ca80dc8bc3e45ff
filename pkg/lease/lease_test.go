package lease_test

import (
	"context"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/accountwatch/accountwatch/pkg/eventbus"
	"github.com/accountwatch/accountwatch/pkg/eventbus/bustest"
	"github.com/accountwatch/accountwatch/pkg/lease"
)

func TestLeasesSpreadAndSurviveAReplica(t *testing.T) {
	b := bustest.New(t)
	ctx := context.Background()
	kv, err := b.JS.KeyValue(ctx, eventbus.BucketLeases)
	if err != nil {
		t.Fatal(err)
	}
	units := []string{"ap-main", "bss", "cams", "ap-eu"}
	holders := newHolders(t)
	start := func(id string) (*lease.Manager, context.CancelFunc) {
		m := lease.New(kv, id, units, 100*time.Millisecond, slog.New(slog.DiscardHandler))
		holders.watch(m, id)
		c, cancel := context.WithCancel(ctx)
		go m.Run(c)
		return m, cancel
	}
	a, stopA := start("replica-a")
	waitFor(t, func() bool { return len(a.Owned()) == 4 })
	bm, stopB := start("replica-b")
	waitFor(t, func() bool { return len(a.Owned()) == 2 && len(bm.Owned()) == 2 })
	all := append(a.Owned(), bm.Owned()...)
	sort.Strings(all)
	if strings.Join(all, ",") != "ap-eu,ap-main,bss,cams" {
		t.Fatalf("units held: %v", all)
	}
	// A graceful stop hands its units over at once.
	stopA()
	waitFor(t, func() bool { return len(bm.Owned()) == 4 })
	stopB()
}

// holders records which replica works on each unit, and fails the test
// when a unit is acquired while another replica still works on it.
type holders struct {
	t      *testing.T
	mu     sync.Mutex
	by     map[string]string
	lostAt map[string]time.Time // when each replica last stopped working on a unit
}

func newHolders(t *testing.T) *holders {
	return &holders{t: t, by: map[string]string{}, lostAt: map[string]time.Time{}}
}

func (h *holders) watch(m *lease.Manager, id string) {
	m.OnAcquire = func(u string) {
		h.mu.Lock()
		defer h.mu.Unlock()
		if o, ok := h.by[u]; ok && o != id {
			h.t.Errorf("%s acquired %s while %s still works on it", id, u, o)
		}
		h.by[u] = id
	}
	m.OnLose = func(u string) {
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.by[u] == id {
			delete(h.by, u)
			h.lostAt[id] = time.Now()
		}
	}
}

func (h *holders) of(u string) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.by[u]
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestRestartedReplicaReclaimsItsOwnLeases(t *testing.T) {
	b := bustest.New(t)
	ctx := context.Background()
	kv, _ := b.JS.KeyValue(ctx, eventbus.BucketLeases)
	// A lease left behind by "replica-a" before it was killed, and one of someone else.
	kv.Create(ctx, "lease.ap-main", []byte(`{"owner":"replica-a"}`))
	kv.Create(ctx, "lease.bss", []byte(`{"owner":"replica-z"}`))
	m := lease.New(kv, "replica-a", []string{"ap-main", "bss"}, 50*time.Millisecond, slog.New(slog.DiscardHandler))
	c, cancel := context.WithCancel(ctx)
	defer cancel()
	go m.Run(c)
	waitFor(t, func() bool { return len(m.Owned()) == 1 })
	time.Sleep(300 * time.Millisecond)
	if got := m.Owned(); len(got) != 1 || got[0] != "ap-main" {
		t.Fatalf("owned %v: must reclaim its own lease and leave replica-z's", got)
	}
}

// unreachable is a bucket whose writes hang until their context ends, as
// they do when the bucket's leader is frozen or cut off; reads still answer.
type unreachable struct {
	jetstream.KeyValue
	down atomic.Bool
}

func (u *unreachable) hang(ctx context.Context) error {
	<-ctx.Done()
	return ctx.Err()
}

func (u *unreachable) Put(ctx context.Context, k string, v []byte) (uint64, error) {
	if u.down.Load() {
		return 0, u.hang(ctx)
	}
	return u.KeyValue.Put(ctx, k, v)
}

func (u *unreachable) Create(ctx context.Context, k string, v []byte, o ...jetstream.KVCreateOpt) (uint64, error) {
	if u.down.Load() {
		return 0, u.hang(ctx)
	}
	return u.KeyValue.Create(ctx, k, v, o...)
}

func (u *unreachable) Update(ctx context.Context, k string, v []byte, rev uint64) (uint64, error) {
	if u.down.Load() {
		return 0, u.hang(ctx)
	}
	return u.KeyValue.Update(ctx, k, v, rev)
}

func (u *unreachable) Delete(ctx context.Context, k string, o ...jetstream.KVDeleteOpt) error {
	if u.down.Load() {
		return u.hang(ctx)
	}
	return u.KeyValue.Delete(ctx, k, o...)
}

// TestAReplicaThatCannotRenewStopsBeforeItsLeaseExpires: a replica whose
// bucket writes hang (its server frozen or partitioned away) must stop
// working on its units before their leases expire on the server, so that
// the replica that takes them over never works beside it. The chaos run
// found a replica whose heartbeat failed skipping its renewals and working
// on past the lease, while the other one had taken the unit.
func TestAReplicaThatCannotRenewStopsBeforeItsLeaseExpires(t *testing.T) {
	b := bustest.New(t)
	ctx := context.Background()
	const ttl, every = 3 * time.Second, 200 * time.Millisecond
	kv, err := b.JS.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "LEASE_TEST", History: 1, TTL: ttl})
	if err != nil {
		t.Fatal(err)
	}
	holders := newHolders(t)
	start := func(id string, kv jetstream.KeyValue) (*lease.Manager, context.CancelFunc) {
		m := lease.New(kv, id, []string{"ap-main"}, every, slog.New(slog.DiscardHandler))
		holders.watch(m, id)
		c, cancel := context.WithCancel(ctx)
		go m.Run(c)
		return m, cancel
	}
	cut := &unreachable{KeyValue: kv}
	a, stopA := start("replica-a", cut)
	defer stopA()
	waitFor(t, func() bool { return len(a.Owned()) == 1 })
	bm, stopB := start("replica-b", kv)
	defer stopB()

	cut.down.Store(true)
	e, err := kv.Get(ctx, "lease.ap-main")
	if err != nil {
		t.Fatal(err)
	}
	expires := e.Created().Add(ttl) // the last write replica-a made, as the server stored it
	waitFor(t, func() bool { return len(bm.Owned()) == 1 })
	holders.mu.Lock()
	lostAt := holders.lostAt["replica-a"]
	holders.mu.Unlock()
	if lostAt.IsZero() || !lostAt.Before(expires) {
		t.Fatalf("replica-a stopped at %v; its lease expired at %v: it must stop first", lostAt, expires)
	}
	if len(a.Owned()) != 0 || holders.of("ap-main") != "replica-b" {
		t.Fatalf("a owns %v, ap-main is with %q", a.Owned(), holders.of("ap-main"))
	}
}
