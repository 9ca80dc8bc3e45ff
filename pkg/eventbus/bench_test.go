package eventbus_test

import (
	"context"
	"os"
	"runtime/pprof"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/eventbus"
	"github.com/accountwatch/accountwatch/pkg/eventbus/bustest"
)

const benchBatch = 512

// BenchmarkPublish compares publishing CloudEvents through the production
// publisher (Publisher.PublishAll: encoding, the stream check, an ack per
// event) with a raw jetstream.PublishMsgAsync of the same bytes (the same
// headers, the dedup id among them, and body, encoded beforehand) awaited
// with PublishAsyncComplete, on the same server, with the server's default
// sync and with fsync on every write. The two alternate in rounds of
// batches (paired samples on a machine whose speed drifts) over
// AW_BENCH_PUBLISH events (200,000 by default; a tenth with fsync), fresh
// ids each so that the stream stores rather than dedups. Building events
// is detection's cost, not the publisher's: it is left out of both.
// AW_BENCH_PROFILE=/tmp/p writes a CPU profile of the publisher's rounds
// (/tmp/p.sync=default): PublishAll's samples against publishRaw's.
func BenchmarkPublish(b *testing.B) {
	total := 200_000
	if v := os.Getenv("AW_BENCH_PUBLISH"); v != "" {
		total, _ = strconv.Atoi(v)
	}
	for _, sync := range []bool{false, true} {
		name := map[bool]string{false: "sync=default", true: "sync=always"}[sync]
		b.Run(name, func(b *testing.B) {
			cfg := bustest.Config(b, "")
			cfg.SyncAlways = sync
			bus := bustest.Start(b, cfg)
			n := total
			if sync {
				n = max(benchBatch, total/10)
			}
			rounds := max(1, n/(8*benchBatch))
			per := n / rounds / benchBatch * benchBatch
			ctx := context.Background()
			p := eventbus.NewPublisher(bus.JS)
			rev := uint64(0)
			build := func() []*event.Event {
				evs := make([]*event.Event, per)
				for i := range evs {
					rev++
					evs[i] = sample(b, "acct-"+strconv.Itoa(i), rev)
				}
				return evs
			}
			var events, raw time.Duration
			var prof *os.File
			if path := os.Getenv("AW_BENCH_PROFILE"); path != "" {
				prof, _ = os.Create(path + "." + name)
			}
			if prof != nil {
				pprof.StartCPUProfile(prof)
			}
			for range b.N {
				for range rounds {
					evs := build()
					t0 := time.Now()
					for i := 0; i < len(evs); i += benchBatch {
						if _, err := p.PublishAll(ctx, evs[i:i+benchBatch]); err != nil {
							b.Fatal(err)
						}
					}
					events += time.Since(t0)
					msgs := make([]*nats.Msg, 0, per)
					for _, e := range build() {
						m, err := eventbus.Encode(e)
						if err != nil {
							b.Fatal(err)
						}
						msgs = append(msgs, m)
					}
					raw += publishRaw(b, bus.JS, msgs)
				}
			}
			if prof != nil {
				pprof.StopCPUProfile()
				prof.Close()
			}
			count := float64(b.N * rounds * per)
			b.ReportMetric(count/events.Seconds(), "events/s")
			b.ReportMetric(count/raw.Seconds(), "raw-msgs/s")
			b.ReportMetric(raw.Seconds()/events.Seconds(), "ratio")
		})
	}
}

// publishRaw is the baseline: msgs published asynchronously in batches,
// each batch's acknowledgements awaited at once.
func publishRaw(b *testing.B, js jetstream.JetStream, msgs []*nats.Msg) time.Duration {
	t0 := time.Now()
	for i := 0; i < len(msgs); i += benchBatch {
		for _, m := range msgs[i:min(i+benchBatch, len(msgs))] {
			if _, err := js.PublishMsgAsync(m); err != nil {
				b.Fatal(err)
			}
		}
		select {
		case <-js.PublishAsyncComplete():
		case <-time.After(time.Minute):
			b.Fatal("raw publishes not acked")
		}
	}
	return time.Since(t0)
}
