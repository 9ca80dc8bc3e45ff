package eventbus_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/accountwatch/accountwatch/pkg/eventbus"
	"github.com/accountwatch/accountwatch/pkg/eventbus/bustest"
)

// TestLoadKV: a load applies the revisions of the keys its filter selects,
// in order, so that each key ends at its current value (an update, a delete,
// a purge, a key put again after its delete); following, it applies later
// ones; a long load logs its progress.
func TestLoadKV(t *testing.T) {
	b := bustest.New(t)
	ctx := t.Context()
	kv, err := b.JS.KeyValue(ctx, eventbus.BucketWatch) // keeps 5 revisions a key
	if err != nil {
		t.Fatal(err)
	}
	for i := range 300 {
		if _, err := kv.Put(ctx, "acct.k"+strconv.Itoa(i), []byte("v1")); err != nil {
			t.Fatal(err)
		}
	}
	kv.Put(ctx, "acct.k1", []byte("v2"))
	kv.Delete(ctx, "acct.k2")
	kv.Purge(ctx, "acct.k3")
	kv.Delete(ctx, "acct.k4")
	kv.Put(ctx, "acct.k4", []byte("again"))
	kv.Put(ctx, "other.k0", []byte("not selected"))

	var mu sync.Mutex
	got := map[string]string{}
	var loaded, last uint64 // loaded: the last revision of the load, once it returned
	apply := func(e eventbus.KVEntry) {
		mu.Lock()
		defer mu.Unlock()
		if e.Revision == 0 {
			t.Errorf("%s: no revision", e.Key)
		}
		if e.Revision <= last {
			t.Errorf("%s: revision %d after %d (applied twice, or out of order)", e.Key, e.Revision, last)
		}
		last = e.Revision
		if loaded > 0 && e.Revision <= loaded {
			t.Errorf("%s: revision %d of the load applied again while following", e.Key, e.Revision)
		}
		if e.Deleted {
			delete(got, e.Key)
			return
		}
		got[e.Key] = string(e.Value)
	}
	logs := &syncWriter{w: &bytes.Buffer{}}
	log := slog.New(slog.NewJSONHandler(logs, nil))
	fctx, stop := context.WithCancel(ctx)
	defer stop()
	if err := eventbus.LoadKV(fctx, b.JS, eventbus.BucketWatch, "acct.>", eventbus.LoadOptions{What: "test keys", Follow: true, Log: log, ProgressEvery: time.Nanosecond}, apply); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	loaded = last
	if len(got) != 298 || got["acct.k1"] != "v2" || got["acct.k4"] != "again" || got["acct.k0"] != "v1" {
		t.Errorf("loaded %d keys, k0 %q k1 %q k4 %q", len(got), got["acct.k0"], got["acct.k1"], got["acct.k4"])
	}
	for _, k := range []string{"acct.k2", "acct.k3", "other.k0"} {
		if _, ok := got[k]; ok {
			t.Errorf("%s loaded", k)
		}
	}
	mu.Unlock()
	if !strings.Contains(logs.String(), `"msg":"loaded","what":"test keys","revisions":304`) {
		t.Errorf("no line for the load done: %s", logs.String())
	}

	kv.Put(ctx, "acct.k0", []byte("later"))
	kv.Delete(ctx, "acct.k5")
	deadline := time.Now().Add(time.Minute)
	for {
		mu.Lock()
		v, gone := got["acct.k0"], got["acct.k5"] == ""
		mu.Unlock()
		if v == "later" && gone {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("following: k0 %q, k5 deleted %v", v, gone)
		}
		time.Sleep(10 * time.Millisecond)
	}

	// An empty selection loads at once.
	n := 0
	if err := eventbus.LoadKV(ctx, b.JS, eventbus.BucketWatch, "none.>", eventbus.LoadOptions{}, func(eventbus.KVEntry) { n++ }); err != nil || n != 0 {
		t.Errorf("empty selection: %v, %d applied", err, n)
	}
}

// TestLoadKVStalls: a load that makes no progress for its Stall fails with
// ErrLoadStalled, naming how far it got, instead of hanging or failing on
// a deadline however fast it goes.
func TestLoadKVStalls(t *testing.T) {
	b := bustest.New(t)
	ctx := t.Context()
	kv, _ := b.JS.KeyValue(ctx, eventbus.BucketState)
	for i := range 3 {
		kv.Put(ctx, "k"+strconv.Itoa(i), []byte("v"))
	}
	applied := 0
	err := eventbus.LoadKV(ctx, b.JS, eventbus.BucketState, ">", eventbus.LoadOptions{What: "stuck", Stall: 50 * time.Millisecond}, func(eventbus.KVEntry) {
		applied++
		if applied == 1 {
			time.Sleep(time.Second) // an apply far slower than the stall bound
		}
	})
	if !errors.Is(err, eventbus.ErrLoadStalled) || !strings.Contains(err.Error(), "after 0 of 3 revisions") {
		t.Errorf("err = %v, want ErrLoadStalled after 0 of 3", err)
	}
}

type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func (s *syncWriter) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.String()
}
