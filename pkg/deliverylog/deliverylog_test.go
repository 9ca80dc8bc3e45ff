package deliverylog_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/accountwatch/accountwatch/pkg/deliverylog"
	"github.com/accountwatch/accountwatch/pkg/eventbus/bustest"
)

func TestAddAndList(t *testing.T) {
	ctx := context.Background()
	b := bustest.New(t)
	cfg := deliverylog.StreamConfig(b.Cfg, time.Hour)
	l, err := deliverylog.Open(ctx, b.JS, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := deliverylog.Open(ctx, b.JS, cfg); err != nil {
		t.Fatalf("opening an existing log (a restart): %v", err)
	}
	// On one server the log is stored in async persist mode (the server
	// accepted it); a replicated log cannot be, and is not asked to.
	s, _ := b.JS.Stream(ctx, deliverylog.Stream)
	if pm := s.CachedInfo().Config.PersistMode; pm != jetstream.AsyncPersistMode {
		t.Errorf("persist mode %v on one server, want async", pm)
	}
	r3 := b.Cfg
	r3.Replicas = 3
	if pm := deliverylog.StreamConfig(r3, time.Hour).PersistMode; pm != jetstream.DefaultPersistMode {
		t.Errorf("persist mode %v with 3 replicas, want the default", pm)
	}
	for i := range 5 {
		l.Add(deliverylog.Record{Sink: "webhook", Receiver: "ep_a", EventID: fmt.Sprintf("aw1-%d", i%2), Attempt: uint64(i + 1), Outcome: "failed", Status: 500, Response: string(make([]byte, 5000))})
	}
	l.Add(deliverylog.Record{Sink: "webhook", Receiver: "ep_b", EventID: "aw1-0", Attempt: 1, Outcome: "delivered", Status: 200})
	l.Add(deliverylog.Record{Sink: "slack", Receiver: "ops", EventID: "aw1-0", Attempt: 1, Outcome: "delivered"})
	var all []deliverylog.Record
	for deadline := time.Now().Add(5 * time.Second); len(all) < 7 && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		all, err = l.List(ctx, deliverylog.Query{})
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(all) != 7 {
		t.Fatalf("%d records, want 7", len(all))
	}
	cases := []struct {
		q    deliverylog.Query
		want int
	}{
		{deliverylog.Query{Sink: "webhook", Receiver: "ep_a"}, 5},
		{deliverylog.Query{Sink: "webhook", Receiver: "ep_a", Limit: 2}, 2},
		{deliverylog.Query{EventID: "aw1-0"}, 5},
		{deliverylog.Query{Sink: "webhook", EventID: "aw1-0"}, 4},
		{deliverylog.Query{Receiver: "nobody"}, 0},
		{deliverylog.Query{Since: time.Now().Add(time.Hour)}, 0},
	}
	for i, c := range cases {
		got, err := l.List(ctx, c.q)
		if err != nil || len(got) != c.want {
			t.Errorf("%d: %d records (%v), want %d", i, len(got), err, c.want)
		}
	}
	last, _ := l.List(ctx, deliverylog.Query{Sink: "webhook", Receiver: "ep_a", Limit: 2})
	if last[0].Attempt != 4 || last[1].Attempt != 5 || len(last[1].Response) > deliverylog.MaxResponse+4 {
		t.Errorf("limit keeps the newest, oldest first, responses bounded: %+v", last)
	}
}
