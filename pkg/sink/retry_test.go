package sink_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/accountwatch/accountwatch/pkg/deadletter"
	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/eventbus"
	"github.com/accountwatch/accountwatch/pkg/eventbus/bustest"
	"github.com/accountwatch/accountwatch/pkg/sink"
)

// retryConsumers lists the consumers of the retry queues (AW_REDRIVE).
func retryConsumers(t *testing.T, h *harness) []string {
	t.Helper()
	s, err := h.bus.JS.Stream(context.Background(), eventbus.StreamRedrive)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	names := s.ConsumerNames(context.Background())
	for n := range names.Name() {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// retriesWaiting counts the messages of the retry queues.
func retriesWaiting(t *testing.T, h *harness) uint64 {
	t.Helper()
	s, err := h.bus.JS.Stream(context.Background(), eventbus.StreamRedrive)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

// TestFanoutSickReceiversHoldNoHealthyOne: of 60 receivers, 3 hang until
// released and 3 fail each event twice. Every healthy receiver gets every
// event while the hanging ones still hang; retry consumers exist only for
// the receivers that failed, and are gone once their retries are delivered.
func TestFanoutSickReceiversHoldNoHealthyOne(t *testing.T) {
	h := newHarness(t)
	const receivers, events = 60, 20
	role := func(name string) string {
		var i int
		fmt.Sscanf(name, "r%d", &i)
		switch i % 20 {
		case 7:
			return "hang"
		case 13:
			return "fail"
		}
		return "ok"
	}
	release := make(chan struct{})
	var mu sync.Mutex
	got := map[string]map[string][]uint64{} // receiver → event → attempts
	send := senderFunc(func(ctx context.Context, n *sink.Notification) error {
		r := role(n.Receiver)
		if r == "hang" {
			select {
			case <-release:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		mu.Lock()
		defer mu.Unlock()
		if got[n.Receiver] == nil {
			got[n.Receiver] = map[string][]uint64{}
		}
		id := n.Events[0].ID()
		got[n.Receiver][id] = append(got[n.Receiver][id], n.Attempt)
		if r == "fail" && n.Attempt < 3 {
			return sink.Transient(sink.ReasonServerError, errors.New("503"))
		}
		return nil
	})
	s := fast()
	s.RetrySchedule = "100ms,100ms,100ms,100ms"
	s.SendTimeout = 5 * time.Minute // the hanging receivers hang until released
	rt, stop := runFanout(t, h, "sick", send, s)
	defer stop()
	all := func(*event.Event) bool { return true }
	var names []string
	for i := range receivers {
		names = append(names, fmt.Sprintf("r%d", i))
		if err := rt.Add(sink.Receiver{Name: names[i], Filter: all}); err != nil {
			t.Fatal(err)
		}
	}
	rt.Start()
	h.publish(t, statuses(t, events, "sick")...)

	done := func(role_ string) bool {
		mu.Lock()
		defer mu.Unlock()
		for _, n := range names {
			if role(n) != role_ {
				continue
			}
			if len(got[n]) < events {
				return false
			}
			if role_ == "fail" {
				for _, at := range got[n] {
					if !slices.Equal(at, []uint64{1, 2, 3}) {
						return false
					}
				}
			}
		}
		return true
	}
	seen := map[string]bool{} // every retry consumer seen along the way
	watch := func() {
		for _, c := range retryConsumers(t, h) {
			seen[c] = true
		}
	}
	eventually(t, "every healthy receiver has every event, and the failing ones theirs on the third attempt", func() bool {
		watch()
		return done("ok") && done("fail")
	})
	mu.Lock()
	for _, n := range names {
		if role(n) == "hang" && len(got[n]) != 0 {
			t.Errorf("%s delivered before it was released", n)
		}
	}
	mu.Unlock()
	close(release)
	eventually(t, "the hanging receivers have every event once released", func() bool { watch(); return done("hang") })
	eventually(t, "no retry consumer left once every retry is delivered", func() bool {
		watch()
		return len(retryConsumers(t, h)) == 0 && retriesWaiting(t, h) == 0
	})
	var want []string
	for _, n := range names {
		if role(n) == "fail" {
			want = append(want, sink.ConsumerName("sick", n)+"_redrive")
		}
	}
	for c := range seen {
		if !slices.Contains(want, c) {
			t.Errorf("retry consumer %s: only failing receivers get one (%v)", c, want)
		}
	}
	mu.Lock()
	for _, n := range names {
		if role(n) == "ok" {
			for id, at := range got[n] {
				if len(at) != 1 {
					t.Errorf("%s got %s %d times", n, id, len(at))
				}
			}
		}
	}
	mu.Unlock()
}

// handedOff is a retry as an older version's hand-off stored it in
// sinkName's retry queue of receiver (the event's subject after the
// receiver's): one attempt made.
func handedOff(t *testing.T, h *harness, sinkName, receiver string, ev *event.Event) {
	t.Helper()
	m, err := eventbus.Encode(ev)
	if err != nil {
		t.Fatal(err)
	}
	m.Subject = eventbus.RedriveRoot + sinkName + "." + receiver + "." + strings.TrimPrefix(m.Subject, event.SubjectRoot)
	m.Header.Set(sink.HdrRetryAttempts, "1")
	m.Header.Set(sink.HdrRetryNotBefore, time.Now().UTC().Format(time.RFC3339Nano))
	if _, err := h.bus.JS.PublishMsg(context.Background(), m, jetstream.WithExpectStream(eventbus.StreamRedrive)); err != nil {
		t.Fatal(err)
	}
}

// TestFanoutRetryQueueOfAnOlderVersion: an older version kept a durable
// consumer on the retry queue of every receiver. What such a queue holds is
// delivered, and the consumers are deleted once empty; retries stored while
// no runtime ran (no consumer, no signal) are found by the scan at start.
func TestFanoutRetryQueueOfAnOlderVersion(t *testing.T) {
	for _, tc := range []struct {
		name     string
		consumer bool // the older version's consumer exists
		waiting  int  // retries waiting
	}{
		{"consumer with retries waiting", true, 3},
		{"empty consumer", true, 0},
		{"retries waiting, no consumer", false, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			const sinkName, receiver = "old", "ep1"
			if tc.consumer {
				// As the older version created it (sink.go before issue 20).
				if _, err := h.bus.JS.CreateOrUpdateConsumer(context.Background(), eventbus.StreamRedrive, jetstream.ConsumerConfig{
					Durable: sink.ConsumerName(sinkName, receiver) + "_redrive", FilterSubject: deadletter.RedriveFilter(sinkName, receiver),
					AckPolicy: jetstream.AckExplicitPolicy, DeliverPolicy: jetstream.DeliverAllPolicy, MaxDeliver: -1, AckWait: 3 * time.Second,
				}); err != nil {
					t.Fatal(err)
				}
			}
			evs := statuses(t, tc.waiting, "old")
			for _, ev := range evs {
				handedOff(t, h, sinkName, receiver, ev)
			}
			var mu sync.Mutex
			got := map[string][]uint64{}
			rt, stop := runFanout(t, h, sinkName, senderFunc(func(_ context.Context, n *sink.Notification) error {
				mu.Lock()
				defer mu.Unlock()
				got[n.Events[0].ID()] = append(got[n.Events[0].ID()], n.Attempt)
				return nil
			}), fast())
			defer stop()
			if err := rt.Add(sink.Receiver{Name: receiver, Filter: func(*event.Event) bool { return true }}); err != nil {
				t.Fatal(err)
			}
			rt.Start()
			eventually(t, "every waiting retry delivered, as its second attempt", func() bool {
				mu.Lock()
				defer mu.Unlock()
				for _, ev := range evs {
					if !slices.Equal(got[ev.ID()], []uint64{2}) {
						return false
					}
				}
				return len(got) == len(evs)
			})
			eventually(t, "the retry queue empty and its consumer deleted", func() bool {
				return len(retryConsumers(t, h)) == 0 && retriesWaiting(t, h) == 0
			})
		})
	}
}

// retryFilter is the filter of receiver's retry consumer, "" while it has none.
func retryFilter(t *testing.T, h *harness, sinkName, receiver string) string {
	t.Helper()
	c, err := h.bus.JS.Consumer(context.Background(), eventbus.StreamRedrive, sink.ConsumerName(sinkName, receiver)+"_redrive")
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return c.CachedInfo().Config.FilterSubject
}

// TestFanoutRetryQueueIsOneSubject: a fan-out receiver's hand-offs are
// stored on its queue's one subject with the event's subject in a header,
// and its retry consumer filters on that literal subject, so that the
// server finds the consumer's next message by its index of subjects rather
// than by reading past every other receiver's. A retry given up on is
// dead-lettered under the event's subject, and so is its re-drive given up
// on again. Retries of the older layout (a subject per event) waiting at
// start are read by a consumer of both layouts; once they are all
// delivered and it has retired, the next consumer reads the one subject.
func TestFanoutRetryQueueIsOneSubject(t *testing.T) {
	for _, older := range []int{0, 2} {
		t.Run(fmt.Sprintf("older-layout retries waiting=%d", older), func(t *testing.T) {
			h := newHarness(t)
			const sinkName, receiver = "one", "ep"
			olderEvs := statuses(t, older, "older")
			for _, ev := range olderEvs {
				handedOff(t, h, sinkName, receiver, ev)
			}
			var mu sync.Mutex
			failing := false
			got := map[string]int{}
			set := fast()
			set.RetrySchedule = "1s"
			rt, stop := runFanout(t, h, sinkName, senderFunc(func(_ context.Context, n *sink.Notification) error {
				mu.Lock()
				defer mu.Unlock()
				got[n.Events[0].ID()]++
				if failing {
					return sink.Transient(sink.ReasonServerError, errors.New("503"))
				}
				return nil
			}), set)
			defer stop()
			if err := rt.Add(sink.Receiver{Name: receiver, Filter: func(*event.Event) bool { return true }}); err != nil {
				t.Fatal(err)
			}
			rt.Start()
			queue := deadletter.RedriveSubject(sinkName, receiver)
			if older > 0 {
				eventually(t, "the older layout's retries delivered", func() bool {
					mu.Lock()
					defer mu.Unlock()
					for _, ev := range olderEvs {
						if got[ev.ID()] != 1 {
							return false
						}
					}
					return true
				})
				eventually(t, "their consumer retired", func() bool { return len(retryConsumers(t, h)) == 0 && retriesWaiting(t, h) == 0 })
			}

			mu.Lock()
			failing = true
			mu.Unlock()
			ev := statuses(t, 1, "now")[0]
			m, err := eventbus.Encode(ev)
			if err != nil {
				t.Fatal(err)
			}
			h.publish(t, ev)
			eventually(t, "the hand-off's consumer reading the queue's one subject", func() bool {
				return retryFilter(t, h, sinkName, receiver) == queue
			})
			st, err := h.bus.JS.Stream(context.Background(), eventbus.StreamRedrive)
			if err != nil {
				t.Fatal(err)
			}
			if info, err := st.Info(context.Background(), jetstream.WithSubjectFilter(">")); err == nil && len(info.State.Subjects) > 0 {
				for subj := range info.State.Subjects {
					if subj != queue {
						t.Errorf("retry queue subject %s, want only %s", subj, queue)
					}
				}
			}
			stored, err := st.GetLastMsgForSubject(context.Background(), queue)
			if err == nil {
				if got := stored.Header.Get(deadletter.HdrEventSubject); got != m.Subject {
					t.Errorf("hand-off %s = %q, want the event's subject %q", deadletter.HdrEventSubject, got, m.Subject)
				}
			} else if !errors.Is(err, jetstream.ErrMsgNotFound) { // already taken: the work queue let it go
				t.Fatal(err)
			}

			store, err := deadletter.Open(context.Background(), h.bus.JS)
			if err != nil {
				t.Fatal(err)
			}
			letterSubject := deadletter.Subject(sinkName, receiver, m.Subject)
			dead := func(n int) []deadletter.Letter {
				var letters []deadletter.Letter
				eventually(t, fmt.Sprintf("%d dead letters under %s", n, letterSubject), func() bool {
					letters, err = store.List(context.Background(), deadletter.Filter{Sink: sinkName})
					if err != nil || len(letters) != n {
						return false
					}
					dl, err := h.bus.JS.Stream(context.Background(), eventbus.StreamDeadLetter)
					if err != nil {
						t.Fatal(err)
					}
					info, err := dl.Info(context.Background(), jetstream.WithSubjectFilter(">"))
					return err == nil && info.State.Subjects[letterSubject] == uint64(n)
				})
				return letters
			}
			letters := dead(1)
			if _, err := store.Redrive(context.Background(), letters[0].Seq); err != nil {
				t.Fatal(err)
			}
			eventually(t, "the re-drive tried and given up on", func() bool {
				mu.Lock()
				defer mu.Unlock()
				return got[ev.ID()] >= 3 // the first attempt, its retry, the re-drive's
			})
			dead(1)
		})
	}
}

// TestFanoutRedriveWithoutConsumer: a receiver that never failed but
// permanently has no retry consumer; an operator's re-drive (stored by
// another process) is seen on the queue's subjects and delivered.
func TestFanoutRedriveWithoutConsumer(t *testing.T) {
	h := newHarness(t)
	var mu sync.Mutex
	broken := true
	var calls []*sink.Notification
	rt, stop := runFanout(t, h, "rd", senderFunc(func(_ context.Context, n *sink.Notification) error {
		mu.Lock()
		defer mu.Unlock()
		calls = append(calls, n)
		if broken {
			return sink.Permanent(sink.ReasonClientError, errors.New("400"))
		}
		return nil
	}), fast())
	defer stop()
	if err := rt.Add(sink.Receiver{Name: "ep", Filter: func(*event.Event) bool { return true }}); err != nil {
		t.Fatal(err)
	}
	rt.Start()
	ev := statuses(t, 1, "rd")[0]
	h.publish(t, ev)
	store, _ := deadletter.Open(context.Background(), h.bus.JS)
	var letters []deadletter.Letter
	eventually(t, "dead-lettered on its first attempt", func() bool {
		letters, _ = store.List(context.Background(), deadletter.Filter{Sink: "rd"})
		return len(letters) == 1
	})
	if cs := retryConsumers(t, h); len(cs) != 0 {
		t.Errorf("retry consumers %v for a receiver that had nothing to retry", cs)
	}
	mu.Lock()
	broken = false
	mu.Unlock()
	// As awctl redrive does it: another connection stores the re-drive.
	if _, err := store.Redrive(context.Background(), letters[0].Seq); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the re-drive delivered", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(calls) == 2 && calls[1].Redrive && calls[1].Events[0].ID() == ev.ID()
	})
	eventually(t, "its consumer deleted once the queue is empty", func() bool {
		return len(retryConsumers(t, h)) == 0 && retriesWaiting(t, h) == 0
	})
}

// TestFanoutRetryConsumerDeletedUnderIt: a retry waits in its queue when its
// consumer is deleted (by another replica retiring it, or by hand): the
// worker notices, makes it again, and the retry is delivered on its attempt.
func TestFanoutRetryConsumerDeletedUnderIt(t *testing.T) {
	h := newHarness(t)
	var mu sync.Mutex
	var attempts []uint64
	rt, stop := runFanout(t, h, "gone", senderFunc(func(_ context.Context, n *sink.Notification) error {
		mu.Lock()
		defer mu.Unlock()
		attempts = append(attempts, n.Attempt)
		if len(attempts) == 1 {
			return sink.Transient(sink.ReasonServerError, errors.New("503"))
		}
		return nil
	}), func() sink.Settings { s := fast(); s.RetrySchedule = "2s"; return s }())
	defer stop()
	if err := rt.Add(sink.Receiver{Name: "ep", Filter: func(*event.Event) bool { return true }}); err != nil {
		t.Fatal(err)
	}
	rt.Start()
	h.publish(t, statuses(t, 1, "gone")...)
	name := sink.ConsumerName("gone", "ep") + "_redrive"
	eventually(t, "the retry consumer made for the failed attempt", func() bool { return slices.Contains(retryConsumers(t, h), name) })
	if err := h.bus.JS.DeleteConsumer(context.Background(), eventbus.StreamRedrive, name); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the retry delivered as the second attempt", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return slices.Equal(attempts, []uint64{1, 2})
	})
	eventually(t, "nothing left in the retry queue", func() bool { return len(retryConsumers(t, h)) == 0 && retriesWaiting(t, h) == 0 })
}

// TestFanoutRetryAcrossAServerRestart: a fan-out receiver's retry consumer
// keeps its state in memory (no state file rewritten while busy). A retry
// waiting in its queue when the server restarts is not lost: the queue keeps
// what is unacknowledged, the consumer is made again, and the retry is
// delivered once, counted from the attempts its hand-off recorded.
func TestFanoutRetryAcrossAServerRestart(t *testing.T) {
	cfg := bustest.Config(t, "")
	reg := prometheus.NewRegistry()
	h := &harness{bus: bustest.Start(t, cfg), reg: reg, metrics: sink.NewMetrics(reg)}
	set := fast()
	set.RetrySchedule = "2s,2s,2s,2s,2s"
	rt, stop := runFanout(t, h, "rs", senderFunc(func(context.Context, *sink.Notification) error {
		return sink.Transient(sink.ReasonServerError, errors.New("503"))
	}), set)
	if err := rt.Add(sink.Receiver{Name: "ep", Filter: func(*event.Event) bool { return true }}); err != nil {
		t.Fatal(err)
	}
	rt.Start()
	ev := statuses(t, 1, "rs")[0]
	h.publish(t, ev)
	name := sink.ConsumerName("rs", "ep") + "_redrive"
	eventually(t, "the retry consumer made for the failed attempt", func() bool { return slices.Contains(retryConsumers(t, h), name) })
	c, err := h.bus.JS.Consumer(context.Background(), eventbus.StreamRedrive, name)
	if err != nil {
		t.Fatal(err)
	}
	if !c.CachedInfo().Config.MemoryStorage {
		t.Errorf("retry consumer %s is file-stored", name)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	h.bus.Close()

	h.bus = bustest.Start(t, cfg)
	var mu sync.Mutex
	var attempts []uint64
	rt, stop = runFanout(t, h, "rs", senderFunc(func(_ context.Context, n *sink.Notification) error {
		mu.Lock()
		defer mu.Unlock()
		if n.Events[0].ID() == ev.ID() {
			attempts = append(attempts, n.Attempt)
		}
		return nil
	}), set)
	defer stop()
	if err := rt.Add(sink.Receiver{Name: "ep", Filter: func(*event.Event) bool { return true }}); err != nil {
		t.Fatal(err)
	}
	rt.Start()
	eventually(t, "the retry delivered after the restart, past its first attempt", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(attempts) == 1 && attempts[0] >= 2
	})
	eventually(t, "nothing left in the retry queue", func() bool { return len(retryConsumers(t, h)) == 0 && retriesWaiting(t, h) == 0 })
	mu.Lock()
	defer mu.Unlock()
	if len(attempts) != 1 {
		t.Errorf("attempts after the restart %v, want one delivery", attempts)
	}
}

// TestFanoutRetryAfterHoldsBothPaths: after a Retry-After, a fan-out
// receiver gets no call from either path (its fast path, its retry queue's
// worker) until the pause has passed; the events that came meanwhile wait in
// its retry queue and are delivered then, once each, on their first attempt.
func TestFanoutRetryAfterHoldsBothPaths(t *testing.T) {
	for _, tc := range []struct {
		name  string
		first error
		hold  time.Duration // the least time no call may be made after the failure
	}{
		{"retry-after", sink.RateLimited(1500*time.Millisecond, errors.New("429")), 1500 * time.Millisecond},
		{"retry-after longer than the backoff", sink.RateLimited(2*time.Second, errors.New("503 with Retry-After")), 2 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			log := &recorder{fail: failFirst(1, tc.first)}
			set := fast()
			set.RetrySchedule = "1500ms,1500ms"
			rt, stop := runFanout(t, h, "hold", log, set)
			defer stop()
			if err := rt.Add(sink.Receiver{Name: "ep", Filter: func(*event.Event) bool { return true }}); err != nil {
				t.Fatal(err)
			}
			rt.Start()
			evs := statuses(t, 4, "hold")
			h.publish(t, evs[0])
			eventually(t, "the first attempt failed", func() bool { return len(log.snapshot()) == 1 })
			h.publish(t, evs[1:]...)
			eventually(t, "every event delivered", func() bool {
				ok := map[string]bool{}
				for _, c := range log.snapshot()[1:] {
					ok[c.n.Events[0].ID()] = true
				}
				return len(ok) == len(evs)
			})
			calls := log.snapshot()
			failed := calls[0].at // the pause starts once this call returned
			seen := map[string]int{}
			for _, c := range calls[1:] {
				id := c.n.Events[0].ID()
				seen[id]++
				if gap := c.at.Sub(failed); gap < tc.hold {
					t.Errorf("%s called %s after the failure (attempt %d): held for %s", id, gap.Round(time.Millisecond), c.attempt, tc.hold)
				}
				if c.attempt > 1 && id != evs[0].ID() {
					t.Errorf("%s: attempt %d, want its first (it was never tried before)", id, c.attempt)
				}
			}
			for id, n := range seen {
				if n != 1 {
					t.Errorf("%s delivered %d times", id, n)
				}
			}
		})
	}
}

// TestFanoutRateLimitIsOneBudget: a fan-out receiver's rate limit holds for
// its calls from both paths together: its retry queue's worker retrying
// while the fast path delivers new events makes no more calls than the
// limit allows (each path had a budget of its own before).
func TestFanoutRateLimitIsOneBudget(t *testing.T) {
	h := newHarness(t)
	const rate, failing, events = 4.0, 3, 12
	log := &recorder{fail: failFirst(failing, sink.Transient(sink.ReasonServerError, errors.New("503")))}
	set := fast()
	set.RetrySchedule = "100ms,100ms,100ms" // more attempts than failing calls: none is dead-lettered
	rt, stop := runFanout(t, h, "budget", log, set)
	defer stop()
	if err := rt.Add(sink.Receiver{Name: "ep", Filter: func(*event.Event) bool { return true }, RateLimit: rate, Burst: 1}); err != nil {
		t.Fatal(err)
	}
	rt.Start()
	h.publish(t, statuses(t, events, "budget")...)
	eventually(t, "every event delivered", func() bool {
		calls := log.snapshot()
		if len(calls) <= failing {
			return false
		}
		ok := map[string]bool{}
		for _, c := range calls[failing:] {
			ok[c.n.Events[0].ID()] = true
		}
		return len(ok) == events
	})
	calls := log.snapshot()
	// A token bucket of burst 1: the n-th call after the first is at least
	// n/rate after it (5% for the clock's grain).
	for i := 1; i < len(calls); i++ {
		if gap, least := calls[i].at.Sub(calls[0].at), time.Duration(float64(i)/rate*0.95*float64(time.Second)); gap < least {
			t.Fatalf("call %d of %d at %s after the first: a limit of %.0f/s allows it at %s at the earliest", i+1, len(calls), gap.Round(time.Millisecond), rate, least.Round(time.Millisecond))
		}
	}
}
