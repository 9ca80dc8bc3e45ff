// Package bustest starts real embedded JetStream servers for tests.
package bustest

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/eventbus"
)

// Config is a test configuration: a fresh data directory, in-process only unless
// listen is given ("127.0.0.1:0" for a random port).
func Config(t testing.TB, listen string) eventbus.Config {
	t.Helper()
	cfg := eventbus.DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.Listen = "none"
	// A loaded test machine is not a dead server: the production 5 s wait
	// for a publish's ack fails big batches on a starved fsync. Tests of the
	// timeout itself set their own.
	cfg.PublishTimeout = time.Minute
	if listen != "" {
		cfg.Listen = listen
	}
	return cfg
}

// New connects a provisioned bus to a new embedded server, closed at cleanup.
func New(t testing.TB) *eventbus.Bus {
	t.Helper()
	return Start(t, Config(t, ""))
}

// Start connects and provisions with cfg, closing at cleanup.
func Start(t testing.TB, cfg eventbus.Config) *eventbus.Bus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := eventbus.Connect(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	if err := b.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	return b
}

// Events reads and decodes the whole event stream, in order.
func Events(t testing.TB, b *eventbus.Bus) []*event.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := b.JS.Stream(ctx, eventbus.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs == 0 {
		return nil
	}
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	it, err := c.Messages()
	if err != nil {
		t.Fatal(err)
	}
	defer it.Stop()
	out := make([]*event.Event, 0, info.State.Msgs)
	for uint64(len(out)) < info.State.Msgs {
		m, err := it.Next(jetstream.NextMaxWait(5 * time.Second))
		if err != nil {
			t.Fatal(err)
		}
		e, err := eventbus.DecodeMsg(m)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

// Publish publishes events to the stream, failing the test on any error.
func Publish(t testing.TB, b *eventbus.Bus, evs ...*event.Event) {
	t.Helper()
	if _, err := eventbus.NewPublisher(b.JS).PublishAll(context.Background(), evs); err != nil {
		t.Fatal(err)
	}
}

// PublishPaced publishes evs one at a time, rate a second (a latency
// benchmark's load), and returns when each was sent.
func PublishPaced(t testing.TB, b *eventbus.Bus, evs []*event.Event, rate int) map[string]time.Time {
	t.Helper()
	sent := make(map[string]time.Time, len(evs))
	pub := eventbus.NewPublisher(b.JS)
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	for _, e := range evs {
		<-tick.C
		sent[e.ID()] = time.Now()
		if _, err := pub.Publish(context.Background(), e); err != nil {
			t.Fatal(err)
		}
	}
	return sent
}

// Eventually waits up to 30 s for cond, what a bus's consumers do taking its
// time; the test fails naming what did not happen.
func Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("not within 30s: %s", what)
}

// Provision creates extra streams (such as the delivery log) as the admin
// does before a service starts: services never create streams.
func Provision(t testing.TB, b *eventbus.Bus, extra ...jetstream.StreamConfig) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := b.Provision(ctx, extra...); err != nil {
		t.Fatal(err)
	}
}
