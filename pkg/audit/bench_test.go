package audit_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/accountwatch/accountwatch/pkg/audit"
	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/event/eventtest"
	"github.com/accountwatch/accountwatch/pkg/eventbus"
	"github.com/accountwatch/accountwatch/pkg/eventbus/bustest"
)

// BenchmarkReplay: a stream of AW_BENCH_REPLAY_EVENTS events (default
// 1,000,000) replayed to JSON lines (to io.Discard), next to a raw ordered
// consumer reading the same stream in the same run.
func BenchmarkReplay(b *testing.B) {
	bus, n := benchLog(b)
	b.ResetTimer()
	for range b.N {
		ctx := context.Background()
		raw := rawRead(b, bus, n)

		t1 := time.Now()
		w, _ := audit.NewWriter(audit.FormatJSONL, io.Discard)
		got := 0
		if err := audit.Replay(ctx, bus.JS, audit.Selection{}, nil, func(r *audit.Record) error { got++; return w.Write(r) }); err != nil {
			b.Fatal(err)
		}
		w.Close()
		replay := time.Since(t1)
		if got != n {
			b.Fatalf("replayed %d of %d", got, n)
		}
		b.ReportMetric(float64(n)/replay.Seconds(), "events/s")
		b.ReportMetric(float64(n)/raw.Seconds(), "raw-msgs/s")
		b.ReportMetric(raw.Seconds()/replay.Seconds(), "ratio")
	}
}

// BenchmarkVerify: the same stream verified (every account's chain, the
// stream's continuity), next to a raw ordered consumer reading it in the same run.
func BenchmarkVerify(b *testing.B) {
	bus, n := benchLog(b)
	b.ResetTimer()
	for range b.N {
		ctx := context.Background()
		raw := rawRead(b, bus, n)
		t1 := time.Now()
		rep, err := audit.Verify(ctx, bus.JS, audit.Options{})
		if err != nil {
			b.Fatal(err)
		}
		verify := time.Since(t1)
		if rep.Events != uint64(n) || !rep.OK() {
			b.Fatalf("verified %d of %d: %+v", rep.Events, n, rep.Problems[:min(3, len(rep.Problems))])
		}
		b.ReportMetric(float64(n)/verify.Seconds(), "events/s")
		b.ReportMetric(float64(n)/raw.Seconds(), "raw-msgs/s")
		b.ReportMetric(raw.Seconds()/verify.Seconds(), "ratio")
	}
}

// benchLog is a stream of AW_BENCH_REPLAY_EVENTS events (1,000,000 by default).
func benchLog(b *testing.B) (*eventbus.Bus, int) {
	n := 1_000_000
	if v := os.Getenv("AW_BENCH_REPLAY_EVENTS"); v != "" {
		n, _ = strconv.Atoi(v)
	}
	cfg := bustest.Config(b, "")
	cfg.SyncAlways = false
	bus := bustest.Start(b, cfg)
	fill(b, bus, n)
	return bus, n
}

// rawRead is the baseline: an ordered consumer reading the whole stream.
func rawRead(b *testing.B, bus *eventbus.Bus, n int) time.Duration {
	ctx := context.Background()
	s, _ := bus.JS.Stream(ctx, eventbus.StreamEvents)
	t0 := time.Now()
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		b.Fatal(err)
	}
	it, _ := c.Messages(jetstream.PullMaxMessages(4096))
	for i := 0; i < n; i++ {
		if _, err := it.Next(); err != nil {
			b.Fatal(err)
		}
	}
	it.Stop()
	return time.Since(t0)
}

// fill publishes n events: 1,000 accounts, each a chain of status changes.
func fill(b *testing.B, bus *eventbus.Bus, n int) {
	b.Helper()
	const accounts = 1000
	prev := make([]string, accounts)
	pub := eventbus.NewPublisher(bus.JS)
	batch := make([]*nats.Msg, 0, 4096)
	states := []string{"active", "credit_hold"}
	observed := time.Now().UTC()
	for i := 0; i < n; i++ {
		a := i % accounts
		k := i / accounts
		m := eventtest.Meta(fmt.Sprintf("a%04d", a), nil)
		m.ObservedAt = observed.Add(time.Duration(i) * time.Millisecond) // after the stream was created
		m.Revision, m.Chain = uint64(k), event.Chain{Seq: uint64(k + 1), Prev: prev[a]}
		e, err := event.StatusChanged(m, event.EnumValue(states[k%2]), event.EnumValue(states[(k+1)%2]))
		if err != nil {
			b.Fatal(err)
		}
		prev[a] = e.Hash()
		msg, _ := eventbus.Encode(e)
		batch = append(batch, msg)
		if len(batch) == cap(batch) || i == n-1 {
			if _, err := pub.PublishMsgs(context.Background(), batch); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
}
