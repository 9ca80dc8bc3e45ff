package lease_test

import (
	"context"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

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
	var mu sync.Mutex
	holders := map[string]string{}
	start := func(id string) (*lease.Manager, context.CancelFunc) {
		m := lease.New(kv, id, units, 100*time.Millisecond, slog.New(slog.DiscardHandler))
		m.OnAcquire = func(u string) {
			mu.Lock()
			defer mu.Unlock()
			if h, ok := holders[u]; ok && h != id {
				t.Errorf("%s acquired %s while %s holds it", id, u, h)
			}
			holders[u] = id
		}
		m.OnLose = func(u string) {
			mu.Lock()
			defer mu.Unlock()
			if holders[u] == id {
				delete(holders, u)
			}
		}
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
