package eventbus_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/eventbus"
	"github.com/accountwatch/accountwatch/pkg/eventbus/bustest"
)

const benchBatch = 512

// BenchmarkPublish compares encoding + publishing events with dedup ids through
// Publisher.PublishAll against raw jetstream.PublishMsgAsync of messages of the same
// size (no encoding, no msg id) on the same server, with fsync per write and the
// server default. Report the ratio events/raw of the same run.
func BenchmarkPublish(b *testing.B) {
	for _, sync := range []bool{true, false} {
		cfg := bustest.Config(b, "")
		cfg.SyncAlways = sync
		bus := bustest.Start(b, cfg)
		name := "sync=always"
		if !sync {
			name = "sync=default"
		}
		// The baseline carries as many bytes as an encoded event: headers and body.
		m, err := eventbus.Encode(sample(b, "acct-0", 0))
		if err != nil {
			b.Fatal(err)
		}
		size := len(m.Data)
		for k, v := range m.Header {
			size += len(k) + len(v[0]) + 4
		}
		rev := uint64(0)
		b.Run(name+"/events", func(b *testing.B) {
			p := eventbus.NewPublisher(bus.JS)
			ctx := context.Background()
			batch := make([]*event.Event, benchBatch)
			b.ReportAllocs()
			b.ResetTimer()
			for done := 0; done < b.N; done += benchBatch {
				n := min(benchBatch, b.N-done)
				// Fresh ids every run so the stream stores rather than dedups;
				// building events is detection's cost, not the publisher's.
				b.StopTimer()
				for i := range n {
					rev++
					batch[i] = sample(b, "acct-"+strconv.Itoa(i), rev)
				}
				b.StartTimer()
				if _, err := p.PublishAll(ctx, batch[:n]); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
		b.Run(name+"/raw", func(b *testing.B) {
			payload := make([]byte, size)
			b.ReportAllocs()
			b.ResetTimer()
			for done := 0; done < b.N; done += benchBatch {
				n := min(benchBatch, b.N-done)
				for i := 0; i < n; i++ {
					if _, err := bus.JS.PublishMsgAsync(&nats.Msg{Subject: "aw.events.activeplatform.ap-main.account-status-changed.raw", Data: payload}); err != nil {
						b.Fatal(err)
					}
				}
				select {
				case <-bus.JS.PublishAsyncComplete():
				case <-time.After(time.Minute):
					b.Fatal("raw publishes not acked")
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}
