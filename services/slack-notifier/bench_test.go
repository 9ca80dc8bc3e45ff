package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/accountwatch/accountwatch/pkg/config"
	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/event/eventtest"
	"github.com/accountwatch/accountwatch/pkg/eventbus"
	"github.com/accountwatch/accountwatch/pkg/eventbus/bustest"
	"github.com/accountwatch/accountwatch/pkg/route"
	"github.com/accountwatch/accountwatch/pkg/sink"
	"github.com/accountwatch/accountwatch/services/slack-notifier/internal/slackcapture"
	"github.com/accountwatch/accountwatch/services/slack-notifier/internal/slacksink"
)

// benchEvents is accounts × perAccount status changes, an account's in order.
func benchEvents(b *testing.B, accounts, perAccount int) []*event.Event {
	out := make([]*event.Event, 0, accounts*perAccount)
	states := []string{"active", "credit_hold"}
	for a := range accounts {
		m := eventtest.Meta(fmt.Sprintf("b%06d", a), map[string]string{"team": "bench"})
		for k := range perAccount {
			m.Revision = uint64(k)
			out = append(out, eventtest.Status(b, m, states[k%2], states[(k+1)%2]))
		}
	}
	return out
}

// startNotifier runs the sink runtime with the Slack sender (bot mode) against
// the capture server, every event routed on its own at once (no group wait).
func startNotifier(b *testing.B, bus *eventbus.Bus, apiURL string) context.CancelFunc {
	var rc route.Config
	if err := config.DecodeYAML(strings.NewReader("route: {receiver: ops, group_wait: 0s, group_interval: 0s}"), &rc); err != nil {
		b.Fatal(err)
	}
	tree, err := route.NewTree(rc, []string{"ops"})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	sender, err := slacksink.New(ctx, bus.JS, []slacksink.Receiver{{Name: "ops", Channel: "#ops"}}, slacksink.Options{Token: "xoxb-bench", APIURL: apiURL})
	if err != nil {
		b.Fatal(err)
	}
	set := sink.DefaultSettings()
	set.Start = "all"
	set.Concurrency = 8
	rt, err := sink.New(bus.JS, "slack", tree, []sink.Receiver{{Name: "ops"}}, sender, sink.WithSettings(set))
	if err != nil {
		b.Fatal(err)
	}
	go rt.Run(ctx)
	return cancel
}

func delivered(s *slackcapture.Server) int { return s.Events() }

// BenchmarkThroughput: events consumed, routed, rendered and posted to a local
// Slack capture server per second (one thread per account: each account's
// first event opens it, the rest reply), next to a raw JetStream pull-consume
// (Messages + Ack) of the same messages in the same run.
func BenchmarkThroughput(b *testing.B) {
	const accounts, perAccount = 500, 10
	n := accounts * perAccount
	for range b.N {
		cfg := bustest.Config(b, "")
		cfg.SyncAlways = false
		bus := bustest.Start(b, cfg)
		evs := benchEvents(b, accounts, perAccount)
		if _, err := eventbus.NewPublisher(bus.JS).PublishAll(context.Background(), evs); err != nil {
			b.Fatal(err)
		}

		// Raw: a durable pull consumer reading and acking every message.
		ctx := context.Background()
		cons, err := bus.JS.CreateOrUpdateConsumer(ctx, eventbus.StreamEvents, jetstream.ConsumerConfig{Durable: "raw", AckPolicy: jetstream.AckExplicitPolicy, MaxAckPending: 20000})
		if err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		it, err := cons.Messages(jetstream.PullMaxMessages(1000))
		if err != nil {
			b.Fatal(err)
		}
		for range n {
			m, err := it.Next()
			if err != nil {
				b.Fatal(err)
			}
			_ = m.Ack()
		}
		raw := time.Since(t0)
		it.Stop()

		capture := slackcapture.Start(nil)
		t1 := time.Now()
		stop := startNotifier(b, bus, capture.URL())
		for deadline := time.Now().Add(5 * time.Minute); delivered(capture) < n; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				b.Fatalf("%d of %d delivered", delivered(capture), n)
			}
		}
		notifier := time.Since(t1)
		stop()
		capture.Stop()

		rawRate, rate := float64(n)/raw.Seconds(), float64(n)/notifier.Seconds()
		b.ReportMetric(rate, "events/s")
		b.ReportMetric(rawRate, "raw-events/s")
		b.ReportMetric(rate/rawRate, "ratio")
	}
}

// BenchmarkLatency200: events published at 200/s for 10 s; the time from each
// publish to the Slack API call that carries it (p50, p99), with no group wait.
func BenchmarkLatency200(b *testing.B) {
	const rate, seconds = 200, 10
	for range b.N {
		bus := bustest.New(b) // fsync every write, the embedded default
		capture := slackcapture.Start(nil)
		stop := startNotifier(b, bus, capture.URL())
		evs := benchEvents(b, rate*seconds/4, 4)
		sent := bustest.PublishPaced(b, bus, evs, rate)
		for deadline := time.Now().Add(time.Minute); delivered(capture) < len(evs); time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				b.Fatalf("%d of %d delivered", delivered(capture), len(evs))
			}
		}
		stop()
		capture.Stop()
		var lat []time.Duration
		for _, c := range capture.Posted("chat.postMessage") {
			for _, id := range c.EventIDs {
				lat = append(lat, c.At.Sub(sent[id]))
			}
		}
		slices.Sort(lat)
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	}
}
