package audit_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"sync"
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

// BenchmarkAudit is the audit log at size: a stream of AW_BENCH_REPLAY_EVENTS
// events (10,000,000 by default) of 10,000 accounts, each a chain of
// status changes, filled once (server default sync) and then
//
//   - replay: every event replayed to JSON lines (to io.Discard), against a
//     raw ordered consumer reading the whole stream in the same run, just
//     before (events/s, raw-msgs/s);
//   - verify: every chain and the stream's continuity checked (the checks
//     audit.Verify makes of a stream on its own; AW_STATE and checkpoints
//     are tested elsewhere), against the same raw read, and the live heap
//     after a tenth of the events and after all of them, the verifier
//     still holding its chain heads (heap-MB-tenth, heap-MB): it grows
//     with accounts, not events.
func BenchmarkAudit(b *testing.B) {
	n := 10_000_000
	if v := os.Getenv("AW_BENCH_REPLAY_EVENTS"); v != "" {
		n, _ = strconv.Atoi(v)
	}
	const accounts = 10_000
	cfg := bustest.Config(b, "")
	cfg.SyncAlways = false
	bus := bustest.Start(b, cfg)
	t0 := time.Now()
	fill(b, bus, n, accounts)
	b.Logf("filled %d events in %s", n, time.Since(t0).Round(time.Second))
	b.Run("replay", func(b *testing.B) {
		for range b.N {
			raw := rawRead(b, bus, n)
			t1 := time.Now()
			w, _ := audit.NewWriter(audit.FormatJSONL, io.Discard)
			got := 0
			if err := audit.Replay(context.Background(), bus.JS, audit.Selection{}, nil, func(r *audit.Record) error { got++; return w.Write(r) }); err != nil {
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
	})
	b.Run("verify", func(b *testing.B) {
		for range b.N {
			raw := rawRead(b, bus, n)
			var tenth, all uint64
			heap := func() uint64 {
				var ms runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&ms)
				return ms.HeapAlloc
			}
			base := heap()
			progress := func(done, total uint64) {
				switch done {
				case total / 10:
					tenth = heap() - min(base, heap())
				case total:
					all = heap() - min(base, heap())
				}
			}
			t1 := time.Now()
			rep, err := audit.Verify(context.Background(), bus.JS, audit.Options{Progress: progress})
			if err != nil {
				b.Fatal(err)
			}
			verify := time.Since(t1)
			if rep.Events != uint64(n) || !rep.OK() || rep.Accounts != accounts {
				b.Fatalf("verified %d of %d, %d accounts: %+v", rep.Events, n, rep.Accounts, rep.Problems[:min(3, len(rep.Problems))])
			}
			b.ReportMetric(float64(n)/verify.Seconds(), "events/s")
			b.ReportMetric(float64(n)/raw.Seconds(), "raw-msgs/s")
			b.ReportMetric(raw.Seconds()/verify.Seconds(), "ratio")
			b.ReportMetric(float64(tenth)/(1<<20), "heap-MB-tenth")
			b.ReportMetric(float64(all)/(1<<20), "heap-MB")
		}
	})
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

// fill publishes n events of accounts accounts, each a chain of status
// changes, in rounds (an event of every account each): a round is built on
// every core while the one before is published.
func fill(b *testing.B, bus *eventbus.Bus, n, accounts int) {
	b.Helper()
	prev := make([]string, accounts)
	states := []string{"active", "credit_hold"}
	observed := time.Now().UTC()
	workers := runtime.GOMAXPROCS(0)
	build := func(k, from, to int) []*nats.Msg {
		out := make([]*nats.Msg, 0, to-from)
		for a := from; a < to && k*accounts+a < n; a++ {
			i := k*accounts + a
			m := eventtest.Meta(fmt.Sprintf("a%05d", a), map[string]string{"team": "emea"})
			m.ObservedAt = observed.Add(time.Duration(i) * time.Microsecond) // after the stream was created
			m.Revision, m.Chain = uint64(k), event.Chain{Seq: uint64(k + 1), Prev: prev[a]}
			e, err := event.StatusChanged(m, event.EnumValue(states[k%2]), event.EnumValue(states[(k+1)%2]))
			if err != nil {
				b.Error(err)
				return nil
			}
			prev[a] = e.Hash()
			msg, _ := eventbus.Encode(e)
			out = append(out, msg)
		}
		return out
	}
	rounds := make(chan []*nats.Msg, 2)
	go func() {
		defer close(rounds)
		for k := 0; k*accounts < n; k++ {
			parts := make([][]*nats.Msg, workers)
			var wg sync.WaitGroup
			for w := range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					parts[w] = build(k, w*accounts/workers, (w+1)*accounts/workers)
				}()
			}
			wg.Wait()
			var round []*nats.Msg
			for _, p := range parts {
				round = append(round, p...)
			}
			rounds <- round
		}
	}()
	pub := eventbus.NewPublisher(bus.JS)
	for round := range rounds {
		for i := 0; i < len(round); i += 4096 {
			if _, err := pub.PublishMsgs(context.Background(), round[i:min(i+4096, len(round))]); err != nil {
				b.Fatal(err)
			}
		}
	}
}
