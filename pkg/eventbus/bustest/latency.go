package bustest

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/eventbus"
)

// PublishAt publishes evs at rate a second on a fixed schedule (event i is
// due at start + i/rate): what falls due while a publish is in flight goes
// in the next batch, so a slow write does not lower the rate as a ticker
// would. It returns each event's publish time and the rate achieved.
func PublishAt(t testing.TB, b *eventbus.Bus, evs []*event.Event, rate int) (map[string]time.Time, float64) {
	t.Helper()
	sent := make(map[string]time.Time, len(evs))
	pub := eventbus.NewPublisher(b.JS)
	start := time.Now()
	for i := 0; i < len(evs); {
		if wait := time.Until(start.Add(time.Duration(i) * time.Second / time.Duration(rate))); wait > 0 {
			time.Sleep(wait)
		}
		now := time.Now()
		due := min(max(int(now.Sub(start)*time.Duration(rate)/time.Second)+1, i+1), len(evs))
		for _, e := range evs[i:due] {
			sent[e.ID()] = now
		}
		if _, err := pub.PublishAll(context.Background(), evs[i:due]); err != nil {
			t.Fatal(err)
		}
		i = due
	}
	return sent, float64(len(evs)) / time.Since(start).Seconds()
}

// Latencies are publish→delivery times, sorted.
type Latencies []time.Duration

// Sorted sorts and returns l.
func (l Latencies) Sorted() Latencies { slices.Sort(l); return l }

// P is the q-th quantile (0 < q < 1) in milliseconds; l must be sorted.
func (l Latencies) P(q float64) float64 {
	if len(l) == 0 {
		return 0
	}
	return float64(l[min(int(float64(len(l))*q), len(l)-1)].Microseconds()) / 1000
}

// RawLatency is the floor of a publish→delivery latency: n messages of size
// bytes published (async) at rate a second on PublishAt's schedule to a
// scratch stream stored as the event stream is (same storage, same sync),
// and read back by an ordered consumer. It is the bus's own share of a
// sink's latency at that rate, measured in the same run.
func RawLatency(t testing.TB, b *eventbus.Bus, n, size, rate int) Latencies {
	t.Helper()
	ctx := context.Background()
	info, err := b.JS.Stream(ctx, eventbus.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	ec := info.CachedInfo().Config
	s, err := b.JS.CreateStream(ctx, jetstream.StreamConfig{Name: "BENCH_RAW_LATENCY", Subjects: []string{"bench.rawlatency.>"}, Storage: ec.Storage, Replicas: ec.Replicas})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = b.JS.DeleteStream(ctx, "BENCH_RAW_LATENCY") }()
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	lat := make(Latencies, 0, n)
	done := make(chan struct{})
	cc, err := c.Consume(func(m jetstream.Msg) {
		at := time.Now()
		ns, _ := strconv.ParseInt(m.Headers().Get("Bench-Sent"), 10, 64)
		lat = append(lat, at.Sub(time.Unix(0, ns)))
		if len(lat) == n {
			close(done)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Stop()
	data := make([]byte, size)
	start := time.Now()
	for i := 0; i < n; i++ {
		if wait := time.Until(start.Add(time.Duration(i) * time.Second / time.Duration(rate))); wait > 0 {
			time.Sleep(wait)
		}
		m := &nats.Msg{Subject: "bench.rawlatency." + strconv.Itoa(i%1000), Data: data, Header: nats.Header{}}
		m.Header.Set("Bench-Sent", strconv.FormatInt(time.Now().UnixNano(), 10))
		m.Header.Set(jetstream.MsgIDHeader, "raw-"+strconv.Itoa(i))
		for {
			_, err := b.JS.PublishMsgAsync(m)
			if errors.Is(err, jetstream.ErrTooManyStalledMsgs) {
				<-b.JS.PublishAsyncComplete() // the disk is behind: wait, as a publisher must
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatalf("raw latency: %d of %d read back", len(lat), n)
	}
	return lat.Sorted()
}
