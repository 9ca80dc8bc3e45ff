package sink_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/accountwatch/accountwatch/pkg/config"
	"github.com/accountwatch/accountwatch/pkg/deadletter"
	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/event/eventtest"
	"github.com/accountwatch/accountwatch/pkg/eventbus"
	"github.com/accountwatch/accountwatch/pkg/eventbus/bustest"
	"github.com/accountwatch/accountwatch/pkg/route"
	"github.com/accountwatch/accountwatch/pkg/silence"
	"github.com/accountwatch/accountwatch/pkg/sink"
)

// recorder is a Sender that records calls and answers with fail(call number).
type recorder struct {
	mu    sync.Mutex
	calls []call
	fail  func(n int, no *sink.Notification) error
}

type call struct {
	at time.Time
	n  *sink.Notification
	// attempt is n.Attempt when the call was made: a worker's batch is
	// sent again with its count raised.
	attempt uint64
}

func (r *recorder) Send(ctx context.Context, n *sink.Notification) error {
	r.mu.Lock()
	r.calls = append(r.calls, call{time.Now(), n, n.Attempt})
	k := len(r.calls)
	f := r.fail
	r.mu.Unlock()
	if f != nil {
		return f(k, n)
	}
	return nil
}

func (r *recorder) snapshot() []call {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]call(nil), r.calls...)
}

// failFirst makes a recorder's first n calls answer err.
func failFirst(n int, err error) func(int, *sink.Notification) error {
	return func(k int, _ *sink.Notification) error {
		if k <= n {
			return err
		}
		return nil
	}
}

// delivered counts the events of successful calls (fail returned nil).
func (r *recorder) events() map[string]int {
	out := map[string]int{}
	for _, c := range r.snapshot() {
		for _, e := range c.n.Events {
			out[e.ID()]++
		}
	}
	return out
}

func tree(t *testing.T, yaml string, receivers ...string) *route.Tree {
	t.Helper()
	var c route.Config
	if err := config.DecodeYAML(strings.NewReader(yaml), &c); err != nil {
		t.Fatal(err)
	}
	tr, err := route.NewTree(c, receivers)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func fast() sink.Settings {
	s := sink.DefaultSettings()
	s.Start = "all"
	s.BackoffInitial, s.BackoffMax = 50*time.Millisecond, 200*time.Millisecond
	s.AckWait = 3 * time.Second
	s.DrainTimeout = 5 * time.Second
	return s
}

type harness struct {
	bus     *eventbus.Bus
	reg     *prometheus.Registry
	metrics *sink.Metrics
}

func newHarness(t *testing.T) *harness {
	reg := prometheus.NewRegistry()
	return &harness{bus: bustest.New(t), reg: reg, metrics: sink.NewMetrics(reg)}
}

func (h *harness) publish(t *testing.T, evs ...*event.Event) {
	t.Helper()
	if _, err := eventbus.NewPublisher(h.bus.JS).PublishAll(context.Background(), evs); err != nil {
		t.Fatal(err)
	}
}

// start runs a runtime until the test ends (or stop is called); stop waits for the drain.
func (h *harness) start(t *testing.T, tr *route.Tree, rcv []sink.Receiver, s sink.Sender, opts ...sink.Option) (stop func()) {
	t.Helper()
	opts = append([]sink.Option{sink.WithSettings(fast()), sink.WithMetrics(h.metrics)}, opts...)
	rt, err := sink.New(h.bus.JS, "test", tr, rcv, s, opts...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rt.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Error(err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// eventually waits for cond: a deadline for what must happen, not a measure
// of how fast it does (1,200 events through the race detector beside two
// CPU burners take tens of seconds).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("not within a minute: %s", what)
}

func consumerInfo(t *testing.T, h *harness, receiver string) *jetstream.ConsumerInfo {
	t.Helper()
	c, err := h.bus.JS.Consumer(context.Background(), eventbus.StreamEvents, sink.ConsumerName("test", receiver))
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		return &jetstream.ConsumerInfo{} // not created yet
	}
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info
}

func statuses(t *testing.T, n int, prefix string) []*event.Event {
	out := make([]*event.Event, n)
	for i := range out {
		out[i] = eventtest.Status(t, eventtest.Meta(fmt.Sprintf("%s%d", prefix, i), nil), "active", "credit_hold")
	}
	return out
}

const oneRoute = "route: {receiver: r, group_wait: 0s}"

func TestDeliverAndAck(t *testing.T) {
	h := newHarness(t)
	rec := &recorder{}
	evs := statuses(t, 5, "a")
	h.publish(t, evs...)
	h.start(t, tree(t, oneRoute, "r"), []sink.Receiver{{Name: "r"}}, rec)
	eventually(t, "5 events acked", func() bool { return consumerInfo(t, h, "r").AckFloor.Stream == 5 })
	got := rec.events()
	for _, e := range evs {
		if got[e.ID()] != 1 {
			t.Errorf("%s delivered %d times", e.Data.AccountID, got[e.ID()])
		}
	}
	if v := testutil.ToFloat64(h.metrics.Delivered.WithLabelValues("test", "r")); v != 5 {
		t.Errorf("delivered metric %v", v)
	}
}

func TestGrouping(t *testing.T) {
	h := newHarness(t)
	rec := &recorder{}
	frozen := make([]*event.Event, 500)
	for i := range frozen {
		frozen[i] = eventtest.Hosting(t, fmt.Sprintf("15%014d", i), "", "FREEZE")
	}
	h.publish(t, frozen...)
	h.publish(t, statuses(t, 3, "ap")...)
	tr := tree(t, `
route:
  receiver: r
  group_wait: 2s
  routes:
    - match: {provider: [alibaba-bss]}
      group_by: [provider, instance, type]
`, "r")
	h.start(t, tr, []sink.Receiver{{Name: "r"}}, rec)
	eventually(t, "503 events acked", func() bool { return consumerInfo(t, h, "r").AckFloor.Stream == 503 })
	calls := rec.snapshot()
	sizes := map[int]int{}
	for _, c := range calls {
		sizes[len(c.n.Events)]++
	}
	if len(calls) != 4 || sizes[500] != 1 || sizes[1] != 3 {
		t.Errorf("notifications by size %v (calls %d), want one of 500 and three of 1 (grouped per account)", sizes, len(calls))
	}
}

func TestCriticalBypassesGrouping(t *testing.T) {
	h := newHarness(t)
	rec := &recorder{}
	tr := tree(t, "route: {receiver: r, group_wait: 1h, group_by: [], critical_bypasses_grouping: true}", "r")
	crit := eventtest.Status(t, eventtest.Meta("c1", nil), "active", "credit_hold")
	info := eventtest.Status(t, eventtest.Meta("c2", nil), "credit_hold", "active")
	h.publish(t, info, crit)
	h.start(t, tr, []sink.Receiver{{Name: "r"}}, rec)
	eventually(t, "the critical event at once", func() bool { return len(rec.snapshot()) == 1 })
	time.Sleep(300 * time.Millisecond)
	calls := rec.snapshot()
	if len(calls) != 1 || len(calls[0].n.Events) != 1 || calls[0].n.Events[0].ID() != crit.ID() {
		t.Errorf("calls %d; want only the critical event, alone, while the info one waits for its group", len(calls))
	}
}

func TestGroupInterval(t *testing.T) {
	h := newHarness(t)
	rec := &recorder{}
	tr := tree(t, "route: {receiver: r, group_wait: 0s, group_interval: 1s}", "r")
	h.start(t, tr, []sink.Receiver{{Name: "r"}}, rec)
	m := eventtest.Meta("g1", nil)
	h.publish(t, eventtest.Status(t, m, "active", "credit_hold"))
	eventually(t, "first sent at once", func() bool { return len(rec.snapshot()) == 1 })
	m.Revision = 1
	h.publish(t, eventtest.Status(t, m, "credit_hold", "active"))
	m.Revision = 2
	h.publish(t, eventtest.Status(t, m, "active", "deleted"))
	eventually(t, "the next two as one, an interval later", func() bool { return len(rec.snapshot()) == 2 })
	calls := rec.snapshot()
	if len(calls[1].n.Events) != 2 {
		t.Errorf("second notification has %d events, want 2", len(calls[1].n.Events))
	}
	if gap := calls[1].at.Sub(calls[0].at); gap < time.Second {
		t.Errorf("second notification %s after the first, before group_interval", gap)
	}
}

func TestPermanentFailureDeadLetters(t *testing.T) {
	h := newHarness(t)
	rec := &recorder{fail: func(int, *sink.Notification) error {
		return sink.Permanent(sink.ReasonClientError, errors.New("channel_not_found"))
	}}
	evs := statuses(t, 2, "p")
	h.publish(t, evs...)
	h.start(t, tree(t, oneRoute, "r"), []sink.Receiver{{Name: "r"}}, rec)
	store, err := deadletter.Open(context.Background(), h.bus.JS)
	if err != nil {
		t.Fatal(err)
	}
	var letters []deadletter.Letter
	eventually(t, "2 dead letters", func() bool {
		letters, _ = store.List(context.Background(), deadletter.Filter{Sink: "test"})
		return len(letters) == 2
	})
	l := letters[0]
	if l.EventID != evs[0].ID() {
		l = letters[1]
	}
	if l.Sink != "test" || l.Receiver != "r" || l.Reason != "client_error" || !strings.Contains(l.Error, "channel_not_found") || l.Attempts != 1 || l.EventID != evs[0].ID() || l.OriginSeq != 1 {
		t.Errorf("letter %+v", l)
	}
	if len(rec.snapshot()) != 2 {
		t.Errorf("a permanent failure was retried: %d calls", len(rec.snapshot()))
	}
	eventually(t, "terminated, not pending", func() bool {
		i := consumerInfo(t, h, "r")
		return i.NumAckPending == 0 && i.NumPending == 0 && i.NumRedelivered == 0
	})
	if v := testutil.ToFloat64(h.metrics.DeadLettered.WithLabelValues("test", "r", "client_error")); v != 2 {
		t.Errorf("dead-lettered metric %v", v)
	}
}

func TestTransientRetriedThenDelivered(t *testing.T) {
	h := newHarness(t)
	rec := &recorder{fail: failFirst(2, sink.Transient(sink.ReasonServerError, errors.New("502")))}
	h.publish(t, statuses(t, 1, "t")...)
	h.start(t, tree(t, oneRoute, "r"), []sink.Receiver{{Name: "r"}}, rec)
	eventually(t, "acked", func() bool { return consumerInfo(t, h, "r").AckFloor.Stream == 1 })
	if n := len(rec.snapshot()); n != 3 {
		t.Errorf("%d calls, want 3", n)
	}
	if v := testutil.ToFloat64(h.metrics.Retried.WithLabelValues("test", "r", "server_error")); v != 2 {
		t.Errorf("retried metric %v", v)
	}
}

func TestExhaustedDeadLetters(t *testing.T) {
	h := newHarness(t)
	rec := &recorder{fail: func(int, *sink.Notification) error { return context.DeadlineExceeded }}
	h.publish(t, statuses(t, 1, "x")...)
	s := fast()
	s.MaxDeliver = 3
	h.start(t, tree(t, oneRoute, "r"), []sink.Receiver{{Name: "r"}}, rec, sink.WithSettings(s))
	store, _ := deadletter.Open(context.Background(), h.bus.JS)
	var letters []deadletter.Letter
	eventually(t, "dead letter", func() bool {
		letters, _ = store.List(context.Background(), deadletter.Filter{})
		return len(letters) == 1
	})
	if l := letters[0]; l.Reason != "timeout" || l.Attempts != 3 || !strings.Contains(l.Error, "gave up after 3 attempts") {
		t.Errorf("letter %+v", l)
	}
	if n := len(rec.snapshot()); n != 3 {
		t.Errorf("%d attempts, want 3", n)
	}
}

func TestRetryAfterHonoured(t *testing.T) {
	h := newHarness(t)
	rec := &recorder{fail: failFirst(1, sink.RateLimited(1500*time.Millisecond, errors.New("429")))}
	h.publish(t, statuses(t, 3, "ra")...)
	h.start(t, tree(t, oneRoute, "r"), []sink.Receiver{{Name: "r"}}, rec, sink.WithSettings(func() sink.Settings { s := fast(); s.Concurrency = 1; return s }()))
	eventually(t, "all acked", func() bool { return consumerInfo(t, h, "r").AckFloor.Stream == 3 })
	calls := rec.snapshot()
	for _, c := range calls[1:] {
		if gap := c.at.Sub(calls[0].at); gap < 1500*time.Millisecond {
			t.Errorf("a call %s after the 429, before its Retry-After of 1.5s", gap)
		}
	}
	if got := rec.events(); len(got) != 3 {
		t.Errorf("delivered %d distinct events, want 3", len(got))
	}
}

func TestRateLimitPerReceiver(t *testing.T) {
	h := newHarness(t)
	slow, quick := &recorder{}, &recorder{}
	both := &multi{m: map[string]sink.Sender{"slow": slow, "quick": quick}}
	h.publish(t, statuses(t, 6, "rl")...)
	tr := tree(t, "route: {receiver: slow, group_wait: 0s, routes: [{receiver: quick, continue: true}, {receiver: slow}]}", "slow", "quick")
	h.start(t, tr, []sink.Receiver{{Name: "slow", RateLimit: 4, Burst: 1}, {Name: "quick"}}, both)
	eventually(t, "both delivered", func() bool { return len(slow.snapshot()) == 6 && len(quick.snapshot()) == 6 })
	calls := slow.snapshot()
	if span := calls[5].at.Sub(calls[0].at); span < 1200*time.Millisecond {
		t.Errorf("6 notifications at 4/s with burst 1 took %s, want >= 1.25s", span)
	}
}

type multi struct{ m map[string]sink.Sender }

func (m *multi) Send(ctx context.Context, n *sink.Notification) error {
	return m.m[n.Receiver].Send(ctx, n)
}

func TestSlowReceiverDoesNotDelayAnother(t *testing.T) {
	h := newHarness(t)
	release := make(chan struct{})
	blocked := &blockingSender{release: release}
	quick := &recorder{}
	both := &multi{m: map[string]sink.Sender{"stuck": blocked, "quick": quick}}
	h.publish(t, statuses(t, 20, "iso")...)
	tr := tree(t, "route: {receiver: stuck, group_wait: 0s, routes: [{receiver: quick, continue: true}, {receiver: stuck}]}", "stuck", "quick")
	h.start(t, tr, []sink.Receiver{{Name: "stuck"}, {Name: "quick"}}, both)
	eventually(t, "quick receiver got all while the other is stuck", func() bool { return len(quick.snapshot()) == 20 })
	close(release)
}

type blockingSender struct {
	release chan struct{}
	entered atomic.Int32 // calls that began
}

func (b *blockingSender) Send(ctx context.Context, _ *sink.Notification) error {
	b.entered.Add(1)
	select {
	case <-b.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func TestSilenceAndMute(t *testing.T) {
	h := newHarness(t)
	store, err := silence.Open(context.Background(), h.bus.JS)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := store.Follow(ctx); err != nil {
		t.Fatal(err)
	}
	ms, _ := route.ParseMatchers([]string{"account=quiet0"})
	if _, err := store.Add(ctx, silence.Silence{Matchers: ms, EndsAt: time.Now().Add(time.Hour), CreatedBy: "t", Comment: "test"}); err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	tr := tree(t, `
route:
  receiver: r
  group_wait: 0s
  routes:
    - match: {account: ["night*"]}
      mute_time_intervals: [always]
time_intervals:
  - name: always
    time_intervals: [{weekdays: ["sunday:saturday"]}]
`, "r")
	quiet := statuses(t, 1, "quiet")
	night := statuses(t, 1, "night")
	loud := statuses(t, 1, "loud")
	h.publish(t, quiet[0], night[0], loud[0])
	h.start(t, tr, []sink.Receiver{{Name: "r"}}, rec, sink.WithSilences(store))
	eventually(t, "loud delivered", func() bool { return len(rec.snapshot()) == 1 })
	eventually(t, "silenced acked, muted deferred", func() bool {
		return testutil.ToFloat64(h.metrics.Suppressed.WithLabelValues("test", "r", "silenced")) == 1 &&
			testutil.ToFloat64(h.metrics.Suppressed.WithLabelValues("test", "r", "muted")) == 1
	})
	if got := rec.snapshot()[0].n.Events[0].Data.AccountID; got != "loud0" {
		t.Errorf("delivered %s", got)
	}
	info := consumerInfo(t, h, "r")
	if info.AckFloor.Stream != 1 { // quiet (1) acked; night (2) waits for the interval's end; loud (3) acked
		t.Errorf("ack floor %d, want 1: the muted event must stay unacknowledged", info.AckFloor.Stream)
	}
}

func TestDrainLosesNothing(t *testing.T) {
	h := newHarness(t)
	release := make(chan struct{})
	first := &blockingSender{release: release}
	tr := tree(t, `
route:
  receiver: r
  group_wait: 0s
  routes:
    - match: {account: ["held*"]}
      group_wait: 1h
`, "r")
	inflight := statuses(t, 1, "inflight")
	held := statuses(t, 3, "held")
	h.publish(t, inflight...)
	h.publish(t, held...)
	stop := h.start(t, tr, []sink.Receiver{{Name: "r"}}, first)
	eventually(t, "all taken", func() bool { return consumerInfo(t, h, "r").NumAckPending == 4 })
	// Only a delivery that began is in flight; one still queued is handed back.
	eventually(t, "the delivery in flight", func() bool { return first.entered.Load() == 1 })
	go func() { time.Sleep(300 * time.Millisecond); close(release) }()
	stop() // returns after the in-flight delivery finished and the held were handed back
	// The ack is on the server once stop returns (Run flushes), but the
	// server applies acks to the consumer on its own time: wait for it.
	eventually(t, "the in-flight delivery acked after the drain", func() bool {
		info := consumerInfo(t, h, "r")
		return info.AckFloor.Stream == 1
	})
	rec := &recorder{}
	h.start(t, tree(t, oneRoute, "r"), []sink.Receiver{{Name: "r"}}, rec)
	eventually(t, "held events delivered by the next instance", func() bool { return len(rec.events()) == 3 })
	for _, e := range held {
		if rec.events()[e.ID()] != 1 {
			t.Errorf("%s delivered %d times after restart", e.Data.AccountID, rec.events()[e.ID()])
		}
	}
	if rec.events()[inflight[0].ID()] != 0 {
		t.Error("the acked in-flight event was sent again after restart")
	}
}

func TestRedrive(t *testing.T) {
	h := newHarness(t)
	broken := true
	var mu sync.Mutex
	rec := &recorder{fail: func(int, *sink.Notification) error {
		mu.Lock()
		defer mu.Unlock()
		if broken {
			return sink.Permanent(sink.ReasonClientError, errors.New("invalid_auth"))
		}
		return nil
	}}
	evs := statuses(t, 1, "rd")
	h.publish(t, evs...)
	h.start(t, tree(t, oneRoute, "r"), []sink.Receiver{{Name: "r"}}, rec)
	store, _ := deadletter.Open(context.Background(), h.bus.JS)
	var letters []deadletter.Letter
	eventually(t, "dead letter", func() bool {
		letters, _ = store.List(context.Background(), deadletter.Filter{Sink: "test", Receiver: "r"})
		return len(letters) == 1
	})
	mu.Lock()
	broken = false
	mu.Unlock()
	if _, err := store.Redrive(context.Background(), letters[0].Seq); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Redrive(context.Background(), letters[0].Seq); !errors.Is(err, deadletter.ErrNotFound) {
		t.Errorf("second re-drive of the same letter: %v, want ErrNotFound", err)
	}
	eventually(t, "re-driven delivery", func() bool { return len(rec.snapshot()) == 2 })
	last := rec.snapshot()[1].n
	if !last.Redrive || last.Events[0].ID() != evs[0].ID() {
		t.Errorf("re-drive notification %+v", last)
	}
	if left, _ := store.List(context.Background(), deadletter.Filter{}); len(left) != 0 {
		t.Errorf("%d letters left after re-drive", len(left))
	}
	all := bustest.Events(t, h.bus)
	if len(all) != 1 || all[0].ID() != evs[0].ID() || all[0].Hash() != evs[0].Hash() {
		t.Error("re-drive touched the audit log")
	}
}

func TestInvalidEventDeadLettered(t *testing.T) {
	h := newHarness(t)
	rec := &recorder{}
	if _, err := h.bus.JS.Publish(context.Background(), "aw.events.activeplatform.ap-main.account-status-changed.junk", []byte("not a cloudevent")); err != nil {
		t.Fatal(err)
	}
	h.start(t, tree(t, oneRoute, "r"), []sink.Receiver{{Name: "r"}}, rec)
	store, _ := deadletter.Open(context.Background(), h.bus.JS)
	eventually(t, "dead letter", func() bool {
		l, _ := store.List(context.Background(), deadletter.Filter{})
		return len(l) == 1 && l[0].Reason == "invalid_event"
	})
	if len(rec.snapshot()) != 0 {
		t.Error("an undecodable message reached the sender")
	}
}

func TestSettingsAndNew(t *testing.T) {
	h := newHarness(t)
	tr := tree(t, oneRoute, "r")
	bad := []struct {
		name string
		mod  func(*sink.Settings)
		rcv  []sink.Receiver
		want string
	}{
		{"max deliver", func(s *sink.Settings) { s.MaxDeliver = 0 }, nil, "AW_SINK_MAX_DELIVER"},
		{"backoff", func(s *sink.Settings) { s.BackoffMax = time.Millisecond }, nil, "AW_SINK_BACKOFF"},
		{"start", func(s *sink.Settings) { s.Start = "yesterday" }, nil, "AW_SINK_START"},
		{"filter", func(s *sink.Settings) { s.Filter = "other.>" }, nil, "AW_SINK_FILTER"},
		{"receiver name", nil, []sink.Receiver{{Name: "a.b"}}, "receiver name"},
		{"duplicate receiver", nil, []sink.Receiver{{Name: "r"}, {Name: "r"}}, "receiver name"},
		{"no receivers", nil, []sink.Receiver{}, "no receivers"},
	}
	for _, c := range bad {
		s := sink.DefaultSettings()
		if c.mod != nil {
			c.mod(&s)
		}
		rcv := c.rcv
		if rcv == nil {
			rcv = []sink.Receiver{{Name: "r"}}
		}
		_, err := sink.New(h.bus.JS, "test", tr, rcv, &recorder{}, sink.WithSettings(s))
		if !errors.Is(err, sink.ErrConfig) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want ErrConfig naming %s", c.name, err, c.want)
		}
	}
}

func TestClassify(t *testing.T) {
	now := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	ra := func(v string) http.Header { return http.Header{"Retry-After": {v}} }
	webhook := sink.HTTPOptions{RetryClientErrors: true}
	cases := []struct {
		name      string
		err       error
		reason    sink.Reason
		permanent bool
		after     time.Duration
	}{
		{"429 with seconds", sink.HTTPStatus(429, ra("3"), now, errors.New("x"), sink.HTTPOptions{}), sink.ReasonRateLimited, false, 3 * time.Second},
		{"429 with a date", sink.HTTPStatus(429, ra("Mon, 23 Nov 2026 09:00:07 GMT"), now, errors.New("x"), sink.HTTPOptions{}), sink.ReasonRateLimited, false, 7 * time.Second},
		{"429 with zero", sink.HTTPStatus(429, ra("0"), now, errors.New("x"), sink.HTTPOptions{}), sink.ReasonRateLimited, false, time.Second},
		{"429 without", sink.HTTPStatus(429, nil, now, errors.New("x"), sink.HTTPOptions{}), sink.ReasonRateLimited, false, 0},
		{"503 with", sink.HTTPStatus(503, ra("2"), now, errors.New("x"), sink.HTTPOptions{}), sink.ReasonRateLimited, false, 2 * time.Second},
		{"503 without", sink.HTTPStatus(503, nil, now, errors.New("x"), sink.HTTPOptions{}), sink.ReasonServerError, false, 0},
		{"503 unreadable", sink.HTTPStatus(503, ra("soon"), now, errors.New("x"), sink.HTTPOptions{}), sink.ReasonServerError, false, 0},
		{"404", sink.HTTPStatus(404, nil, now, errors.New("x"), sink.HTTPOptions{}), sink.ReasonClientError, true, 0},
		{"404 retried", sink.HTTPStatus(404, nil, now, errors.New("x"), webhook), sink.ReasonClientError, false, 0},
		{"302", sink.HTTPStatus(302, nil, now, errors.New("x"), sink.HTTPOptions{}), sink.ReasonClientError, true, 0},
		{"302 retried", sink.HTTPStatus(302, nil, now, errors.New("x"), webhook), sink.ReasonClientError, false, 0},
		{"408", sink.HTTPStatus(408, nil, now, errors.New("x"), sink.HTTPOptions{}), sink.ReasonTimeout, false, 0},
		{"500", sink.HTTPStatus(500, nil, now, errors.New("x"), sink.HTTPOptions{}), sink.ReasonServerError, false, 0},
		{"deadline", fmt.Errorf("post: %w", context.DeadlineExceeded), sink.ReasonTimeout, false, 0},
		{"other", errors.New("connection refused"), sink.ReasonOther, false, 0},
	}
	for _, c := range cases {
		e := sink.Classify(c.err)
		if e.Reason != c.reason || e.Permanent != c.permanent || e.RetryAfter != c.after {
			t.Errorf("%s: %+v", c.name, e)
		}
	}
	if sink.HTTPStatus(204, nil, now, nil, sink.HTTPOptions{}) != nil {
		t.Error("2xx is an error")
	}
}

func TestDecide(t *testing.T) {
	s := sink.DefaultSettings() // 10 attempts, 2s doubling to 10m, Retry-After at most 1h
	sched := s
	sched.RetrySchedule = "1m,1h"
	long := s
	long.MaxDeliver = 20
	cases := []struct {
		name     string
		err      error
		attempts uint64
		set      sink.Settings
		action   sink.Action
		lo, hi   time.Duration // the delay's range (jitter)
		pause    time.Duration
	}{
		{"success", nil, 3, s, sink.Ack, 0, 0, 0},
		{"permanent", sink.Permanent(sink.ReasonClientError, errors.New("x")), 1, s, sink.DeadLetter, 0, 0, 0},
		{"first failure", errors.New("x"), 1, s, sink.Retry, time.Second, 2 * time.Second, 0},
		{"third failure", errors.New("x"), 3, s, sink.Retry, 4 * time.Second, 8 * time.Second, 0},
		{"capped", errors.New("x"), 15, long, sink.Retry, 5 * time.Minute, 10 * time.Minute, 0},
		{"exhausted", errors.New("x"), 10, s, sink.DeadLetter, 0, 0, 0},
		{"rate limited", sink.RateLimited(30*time.Second, errors.New("x")), 2, s, sink.Retry, 30 * time.Second, 30 * time.Second, 30 * time.Second},
		{"rate limited too long", sink.RateLimited(5*time.Hour, errors.New("x")), 2, s, sink.Retry, time.Hour, time.Hour, time.Hour},
		{"rate limited, exhausted", sink.RateLimited(time.Second, errors.New("x")), 10, s, sink.DeadLetter, 0, 0, time.Second},
		{"schedule first", errors.New("x"), 1, sched, sink.Retry, 54 * time.Second, 66 * time.Second, 0},
		{"schedule second", errors.New("x"), 2, sched, sink.Retry, 54 * time.Minute, 66 * time.Minute, 0},
		{"schedule exhausted", errors.New("x"), 3, sched, sink.DeadLetter, 0, 0, 0},
	}
	for _, c := range cases {
		for range 20 { // the jitter stays in range
			d := sink.Decide(c.err, c.attempts, c.set)
			if d.Action != c.action || d.Delay < c.lo || d.Delay > c.hi || d.Pause != c.pause {
				t.Fatalf("%s: %v after %s (pause %s), want %v after %s to %s (pause %s)", c.name, d.Action, d.Delay, d.Pause, c.action, c.lo, c.hi, c.pause)
			}
			if c.err != nil && d.Err == nil || c.err == nil && d.Err != nil {
				t.Fatalf("%s: error %v", c.name, d.Err)
			}
		}
	}
	if d := sink.Decide(errors.New("x"), 10, s); !strings.Contains(d.Err.Error(), "gave up after 10 attempts") {
		t.Errorf("an exhausted event's error says so: %v", d.Err)
	}
}

func TestRetryKeepsGroupOrder(t *testing.T) {
	h := newHarness(t)
	var okCalls [][]string
	var mu sync.Mutex
	rec := &recorder{fail: func(n int, no *sink.Notification) error {
		if n == 1 {
			return sink.Transient(sink.ReasonServerError, errors.New("502"))
		}
		mu.Lock()
		defer mu.Unlock()
		var ids []string
		for _, e := range no.Events {
			ids = append(ids, e.ID())
		}
		okCalls = append(okCalls, ids)
		return nil
	}}
	s := fast()
	s.BackoffInitial, s.BackoffMax = 400*time.Millisecond, 400*time.Millisecond
	h.start(t, tree(t, "route: {receiver: r, group_wait: 0s, group_interval: 0s}", "r"), []sink.Receiver{{Name: "r"}}, rec, sink.WithSettings(s))
	m := eventtest.Meta("ord", nil)
	first := eventtest.Status(t, m, "active", "credit_hold")
	h.publish(t, first)
	eventually(t, "first attempt failed", func() bool { return len(rec.snapshot()) == 1 })
	m.Revision = 1
	second := eventtest.Status(t, m, "credit_hold", "active")
	h.publish(t, second) // arrives while the first waits for its retry
	eventually(t, "both delivered", func() bool { return len(rec.events()) == 2 && consumerInfo(t, h, "r").AckFloor.Stream == 2 })
	mu.Lock()
	defer mu.Unlock()
	var order []string
	for _, c := range okCalls {
		order = append(order, c...)
	}
	if len(order) != 2 || order[0] != first.ID() || order[1] != second.ID() {
		t.Errorf("delivered in order %v, want the retried change first", order)
	}
}

func TestFilterReceiversAddedAndRemoved(t *testing.T) {
	h := newHarness(t)
	rec := &recorder{}
	rt, err := sink.New(h.bus.JS, "test", nil, nil, rec, sink.WithSettings(fast()), sink.WithMetrics(h.metrics))
	if err != nil {
		t.Fatal(err)
	}
	if err := rt.Add(sink.Receiver{Name: "ep1", Filter: func(*event.Event) bool { return true }}); !errors.Is(err, sink.ErrNotRunning) {
		t.Errorf("Add before Run: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rt.Run(ctx) }()
	defer func() { cancel(); <-done }()
	onlyF := func(e *event.Event) bool { return strings.HasPrefix(e.Data.AccountID, "f") }
	eventually(t, "running", func() bool { return rt.Add(sink.Receiver{Name: "ep1", Filter: onlyF}) == nil })
	if err := rt.Add(sink.Receiver{Name: "nofilter"}); !errors.Is(err, sink.ErrConfig) {
		t.Errorf("a receiver with neither tree nor filter: %v", err)
	}
	f1 := eventtest.Status(t, eventtest.Meta("f1", nil), "active", "credit_hold")
	g1 := eventtest.Status(t, eventtest.Meta("g1", nil), "active", "credit_hold")
	h.publish(t, f1, g1)
	eventually(t, "f1 delivered, g1 filtered out", func() bool { return consumerInfo(t, h, "ep1").AckFloor.Stream == 2 })
	if got := rec.events(); len(got) != 1 || got[f1.ID()] != 1 {
		t.Errorf("delivered %v", got)
	}
	if !rt.Remove("ep1") || rt.Remove("ep1") {
		t.Error("Remove does not report whether the receiver ran")
	}
	f2 := eventtest.Status(t, eventtest.Meta("f2", nil), "active", "credit_hold")
	h.publish(t, f2)
	time.Sleep(300 * time.Millisecond)
	if rec.events()[f2.ID()] != 0 {
		t.Error("a removed receiver still delivers")
	}
	if err := rt.Add(sink.Receiver{Name: "ep1", Filter: onlyF}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the durable consumer resumes with what waited", func() bool { return rec.events()[f2.ID()] == 1 })
	if err := rt.DeleteConsumers(context.Background(), "ep1"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.bus.JS.Consumer(context.Background(), eventbus.StreamEvents, sink.ConsumerName("test", "ep1")); !errors.Is(err, jetstream.ErrConsumerNotFound) {
		t.Errorf("consumer after delete: %v", err)
	}
}

func TestRetrySchedule(t *testing.T) {
	h := newHarness(t)
	rec := &recorder{fail: func(int, *sink.Notification) error { return sink.Transient(sink.ReasonServerError, errors.New("503")) }}
	s := fast()
	s.RetrySchedule = "300ms, 600ms"
	h.publish(t, statuses(t, 1, "sched")...)
	h.start(t, tree(t, oneRoute, "r"), []sink.Receiver{{Name: "r"}}, rec, sink.WithSettings(s))
	store, _ := deadletter.Open(context.Background(), h.bus.JS)
	eventually(t, "dead letter after the schedule", func() bool { l, _ := store.List(context.Background(), deadletter.Filter{}); return len(l) == 1 })
	calls := rec.snapshot()
	if len(calls) != 3 {
		t.Fatalf("%d attempts, want 3 (a schedule of two waits)", len(calls))
	}
	if g1, g2 := calls[1].at.Sub(calls[0].at), calls[2].at.Sub(calls[1].at); g1 < 270*time.Millisecond || g2 < 540*time.Millisecond {
		t.Errorf("waits %s and %s, want at least the schedule's 300ms and 600ms less 10%% jitter", g1, g2)
	}
	bad := sink.DefaultSettings()
	bad.RetrySchedule = "5s,soon"
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "AW_SINK_RETRY_SCHEDULE") {
		t.Errorf("bad schedule: %v", err)
	}
}

func TestFanout(t *testing.T) {
	h := newHarness(t)
	var mu sync.Mutex
	calls := map[string][]uint64{} // receiver → attempts seen
	failFlaky := 2
	send := senderFunc(func(_ context.Context, n *sink.Notification) error {
		mu.Lock()
		defer mu.Unlock()
		calls[n.Receiver] = append(calls[n.Receiver], n.Attempt)
		switch n.Receiver {
		case "flaky":
			if failFlaky > 0 {
				failFlaky--
				return sink.Transient(sink.ReasonServerError, errors.New("502"))
			}
		case "dead":
			return sink.Transient(sink.ReasonServerError, errors.New("503"))
		}
		return nil
	})
	s := fast()
	s.RetrySchedule = "100ms,100ms,100ms"
	rt, stop := runFanout(t, h, "fan", send, s, sink.WithMetrics(h.metrics))
	defer stop()
	all := func(*event.Event) bool { return true }
	for _, name := range []string{"ok", "flaky", "dead", "paused"} {
		if err := rt.Add(sink.Receiver{Name: name, Filter: all}); err != nil {
			t.Fatal(err)
		}
	}
	rt.Park("paused")
	rt.Start()
	ev := statuses(t, 1, "fan")[0]
	h.publish(t, ev)
	count := func(r string) int { mu.Lock(); defer mu.Unlock(); return len(calls[r]) }
	eventually(t, "ok once, flaky on its third attempt, dead exhausted", func() bool {
		return count("ok") == 1 && count("flaky") == 3 && count("dead") == 4
	})
	mu.Lock()
	if fmt.Sprint(calls["flaky"]) != "[1 2 3]" || fmt.Sprint(calls["dead"]) != "[1 2 3 4]" {
		t.Errorf("attempts seen: flaky %v dead %v (hand-offs must keep counting)", calls["flaky"], calls["dead"])
	}
	mu.Unlock()
	store, _ := deadletter.Open(context.Background(), h.bus.JS)
	var letters []deadletter.Letter
	eventually(t, "dead letter for dead", func() bool {
		letters, _ = store.List(context.Background(), deadletter.Filter{Sink: "fan"})
		return len(letters) == 1
	})
	if l := letters[0]; l.Receiver != "dead" || l.Attempts != 4 || l.EventID != ev.ID() {
		t.Errorf("letter %+v", l)
	}
	time.Sleep(200 * time.Millisecond)
	if count("paused") != 0 {
		t.Error("a parked receiver got a delivery")
	}
	if err := rt.Add(sink.Receiver{Name: "paused", Filter: all}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the parked receiver gets what waited", func() bool { return count("paused") == 1 })
	c, err := h.bus.JS.Consumer(context.Background(), eventbus.StreamEvents, "fan_fanout")
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the shared consumer acked", func() bool {
		info, _ := c.Info(context.Background())
		return info.AckFloor.Stream == 1
	})
	if _, err := h.bus.JS.Consumer(context.Background(), eventbus.StreamEvents, sink.ConsumerName("fan", "ok")); !errors.Is(err, jetstream.ErrConsumerNotFound) {
		t.Errorf("a fan-out receiver has its own consumer on the event stream: %v", err)
	}
	if err := rt.DeleteConsumers(context.Background(), "dead"); err != nil {
		t.Fatal(err)
	}
}

func TestFanoutLaggingReceiverDoesNotHoldOthers(t *testing.T) {
	h := newHarness(t)
	release := make(chan struct{})
	var mu sync.Mutex
	quick, stuck := map[string]int{}, map[string]int{}
	var stuckSince time.Time
	send := senderFunc(func(ctx context.Context, n *sink.Notification) error {
		if n.Receiver == "stuck" {
			mu.Lock()
			if stuckSince.IsZero() {
				stuckSince = time.Now()
			}
			mu.Unlock()
			select {
			case <-release:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		mu.Lock()
		defer mu.Unlock()
		got := quick
		if n.Receiver == "stuck" {
			got = stuck
		}
		got[n.Events[0].ID()]++
		return nil
	})
	set := fast()
	// Long enough that a process starved by a loaded machine still keeps
	// what it holds alive in time (every third of it); the events are then
	// held past it.
	set.AckWait = 10 * time.Second
	rt, stop := runFanout(t, h, "lag", send, set)
	all := func(*event.Event) bool { return true }
	rt.Add(sink.Receiver{Name: "stuck", Filter: all})
	rt.Add(sink.Receiver{Name: "quick", Filter: all})
	rt.Start()
	evs := statuses(t, 1200, "lag")
	h.publish(t, evs...)
	eventually(t, "the quick receiver got everything while the other is stuck", func() bool { mu.Lock(); defer mu.Unlock(); return len(quick) == 1200 })
	// The stuck receiver holds its 1,024 queued events for longer than
	// AckWait: they are kept alive, not delivered again to everyone.
	mu.Lock()
	holdUntil := stuckSince.Add(set.AckWait * 6 / 5)
	mu.Unlock()
	time.Sleep(time.Until(holdUntil))
	close(release)
	eventually(t, "the stuck receiver got everything once released", func() bool { mu.Lock(); defer mu.Unlock(); return len(stuck) == 1200 })
	eventually(t, "every event settled", func() bool {
		c, err := h.bus.JS.Consumer(context.Background(), eventbus.StreamEvents, "lag_fanout")
		if err != nil {
			return false
		}
		info, err := c.Info(context.Background())
		return err == nil && info.NumAckPending == 0 && info.NumPending == 0
	})
	mu.Lock()
	for _, e := range evs {
		if quick[e.ID()] != 1 {
			t.Errorf("the quick receiver got %s %d times (redelivered while the other was stuck)", e.Data.AccountID, quick[e.ID()])
			break
		}
	}
	mu.Unlock()
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

func TestFanoutReadsNothingBeforeStart(t *testing.T) {
	h := newHarness(t)
	var mu sync.Mutex
	got := map[string]int{}
	send := senderFunc(func(_ context.Context, n *sink.Notification) error {
		mu.Lock()
		defer mu.Unlock()
		got[n.Events[0].ID()]++
		return nil
	})
	// The shared consumer exists from an earlier run; events arrive while no
	// runtime runs.
	if _, stop := runFanout(t, h, "gate", send, fast()); stop() != nil {
		t.Fatal("the first run failed")
	}
	evs := statuses(t, 50, "gate")
	h.publish(t, evs...)

	rt, stop := runFanout(t, h, "gate", send, fast())
	defer stop()
	// Loading the receivers takes a while (an endpoint store's replay): a
	// runtime that read events meanwhile would settle them for nobody.
	time.Sleep(300 * time.Millisecond)
	if err := rt.Add(sink.Receiver{Name: "late", Filter: func(*event.Event) bool { return true }}); err != nil {
		t.Fatal(err)
	}
	rt.Start()
	eventually(t, "every event delivered to the receiver added before Start", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) == len(evs)
	})
}

// runFanout runs a fan-out runtime of sink until stop, which returns Run's error.
func runFanout(t *testing.T, h *harness, sinkName string, send sink.Sender, set sink.Settings, opts ...sink.Option) (rt *sink.Runtime, stop func() error) {
	t.Helper()
	rt, err := sink.New(h.bus.JS, sinkName, nil, nil, send, append([]sink.Option{sink.WithSettings(set), sink.WithFanout()}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rt.Run(ctx) }()
	<-rt.Ready()
	return rt, func() error { cancel(); return <-done }
}

type senderFunc func(context.Context, *sink.Notification) error

func (f senderFunc) Send(ctx context.Context, n *sink.Notification) error { return f(ctx, n) }

func TestStoppedWhileStartingIsNoError(t *testing.T) {
	h := newHarness(t)
	var receivers []sink.Receiver
	for i := range 30 {
		receivers = append(receivers, sink.Receiver{Name: fmt.Sprintf("r%d", i)})
	}
	names := make([]string, len(receivers))
	for i, r := range receivers {
		names[i] = r.Name
	}
	rt, err := sink.New(h.bus.JS, "test", tree(t, "route: {receiver: r0}", names...), receivers, &recorder{}, sink.WithSettings(fast()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rt.Run(ctx) }()
	<-rt.Ready()
	cancel() // while thirty receivers' consumers are being created
	if err := <-done; err != nil {
		t.Errorf("Run returned %v for a stop during start", err)
	}
}

func TestRoutingNames(t *testing.T) {
	c := route.Config{Route: &route.Route{Receiver: "ops"}}
	for _, names := range [][]string{{"ops", "adhoc"}, {"ops", "ops"}, {"ops", "a.b"}} {
		if _, err := sink.Routing("x.yaml", c, names); err == nil || !strings.Contains(err.Error(), "x.yaml: receivers[1].name") {
			t.Errorf("%v: %v", names, err)
		}
	}
	if _, err := sink.Routing("x.yaml", route.Config{Route: &route.Route{Receiver: "nobody"}}, []string{"ops"}); err == nil || !strings.Contains(err.Error(), "x.yaml") {
		t.Errorf("undefined receiver: %v", err)
	}
	if _, err := sink.Routing("x.yaml", c, []string{"ops"}); err != nil {
		t.Error(err)
	}
}

// TestRemoveWhileWaitingOnTheRateLimit: a receiver removed (a webhook
// endpoint deleted) while its deliverer waits for the rate limit to allow
// the next call is gone at once; what waited goes to its retry queue.
func TestRemoveWhileWaitingOnTheRateLimit(t *testing.T) {
	h := newHarness(t)
	var mu sync.Mutex
	got := 0
	send := senderFunc(func(_ context.Context, n *sink.Notification) error {
		mu.Lock()
		defer mu.Unlock()
		got++
		return nil
	})
	rt, stop := runFanout(t, h, "slow", send, fast())
	defer stop()
	// One call an hour: the second event waits on the limiter.
	if err := rt.Add(sink.Receiver{Name: "slow", RateLimit: 1.0 / 3600, Burst: 1, Filter: func(*event.Event) bool { return true }}); err != nil {
		t.Fatal(err)
	}
	rt.Start()
	h.publish(t, statuses(t, 2, "slow")...)
	eventually(t, "the first delivered", func() bool { mu.Lock(); defer mu.Unlock(); return got == 1 })
	eventually(t, "the second taken", func() bool {
		c, err := h.bus.JS.Consumer(context.Background(), eventbus.StreamEvents, "slow_fanout")
		if err != nil {
			return false
		}
		info, err := c.Info(context.Background())
		return err == nil && info.Delivered.Stream == 2
	})
	removed := make(chan error, 1)
	go func() { removed <- rt.DeleteConsumers(context.Background(), "slow") }()
	select {
	case err := <-removed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Minute):
		t.Fatal("removing the receiver waits on its rate limit")
	}
	mu.Lock()
	defer mu.Unlock()
	if got != 1 {
		t.Fatalf("%d deliveries", got)
	}
}

// laneSender holds every call until its receiver's release channel lets
// it go (none: at once), puts receivers in the lanes of lanes
// (sink.Lanes), and counts the calls in flight at once of each receiver
// and of each lane.
type laneSender struct {
	mu       sync.Mutex
	release  map[string]chan struct{}
	lanes    map[string]string
	width    int
	inFlight map[string]int
	most     map[string]int
	done     map[string]int
	calls    int
	// free is how many calls go at once before a held receiver's are held.
	free int
}

func newLaneSender(width int, lanes map[string]string, held ...string) *laneSender {
	s := &laneSender{release: map[string]chan struct{}{}, lanes: lanes, width: width, inFlight: map[string]int{}, most: map[string]int{}, done: map[string]int{}}
	for _, r := range held {
		s.release[r] = make(chan struct{})
	}
	return s
}

func (s *laneSender) Lane(receiver string) (string, int) {
	if l, ok := s.lanes[receiver]; ok {
		return l, s.width
	}
	return "", 0
}

func (s *laneSender) Send(ctx context.Context, n *sink.Notification) error {
	s.mu.Lock()
	keys := []string{n.Receiver}
	if l, ok := s.lanes[n.Receiver]; ok {
		keys = append(keys, "lane:"+l)
	}
	for _, k := range keys {
		s.inFlight[k]++
		s.most[k] = max(s.most[k], s.inFlight[k])
	}
	release := s.release[n.Receiver]
	if s.calls++; s.calls <= s.free {
		release = nil
	}
	s.mu.Unlock()
	if release != nil {
		select {
		case <-release:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	s.mu.Lock()
	for _, k := range keys {
		s.inFlight[k]--
	}
	s.done[n.Receiver]++
	s.mu.Unlock()
	return nil
}

func (s *laneSender) count(m map[string]int, k string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return m[k]
}

// TestFanoutLanes: receivers the Sender puts in one lane share its width
// (3 deliveries at once in all) and take turns, neither waiting for the
// other's queue to empty; a receiver with no lane runs Concurrency (4)
// deliveries at once on its own. Every event reaches every receiver.
func TestFanoutLanes(t *testing.T) {
	h := newHarness(t)
	s := newLaneSender(3, map[string]string{"a": "host", "b": "host"}, "a", "b", "own")
	set := fast()
	set.SendTimeout = time.Minute
	rt, stop := runFanout(t, h, "lanes", s, set)
	defer stop()
	addAll(t, rt, "a", "b", "own")
	rt.Start()
	const events = 40
	h.publish(t, statuses(t, events, "lanes")...)
	eventually(t, "the lane's three deliveries, both of its receivers served; four to the receiver of its own", func() bool {
		return s.count(s.inFlight, "lane:host") == 3 && s.count(s.inFlight, "a") >= 1 && s.count(s.inFlight, "b") >= 1 &&
			s.count(s.inFlight, "own") == set.Concurrency
	})
	for _, c := range s.release {
		close(c)
	}
	eventually(t, "every event delivered to every receiver", func() bool {
		return s.count(s.done, "a") == events && s.count(s.done, "b") == events && s.count(s.done, "own") == events
	})
	if most := s.count(s.most, "lane:host"); most > 3 {
		t.Errorf("%d deliveries at once on a lane 3 wide", most)
	}
	if most := s.count(s.most, "own"); most > set.Concurrency {
		t.Errorf("%d deliveries at once to one receiver, want at most Concurrency (%d)", most, set.Concurrency)
	}
}

// TestFanoutPacedReceiverKeepsConcurrency: a receiver waiting for its rate
// limit (20 a second) on a lane 8 wide still has at most Concurrency (1)
// calls in flight: each paced attempt is settled once. (One settled twice
// let every pace add a call in flight, up to the lane's width.)
func TestFanoutPacedReceiverKeepsConcurrency(t *testing.T) {
	h := newHarness(t)
	s := newLaneSender(8, map[string]string{"limited": "host"}, "limited")
	s.free = 10 // then held: what is in flight stays there
	set := fast()
	set.Concurrency, set.SendTimeout = 1, time.Minute
	rt, stop := runFanout(t, h, "conc", s, set)
	defer stop()
	if err := rt.Add(sink.Receiver{Name: "limited", RateLimit: 20, Burst: 1, Filter: func(*event.Event) bool { return true }}); err != nil {
		t.Fatal(err)
	}
	rt.Start()
	h.publish(t, statuses(t, 40, "conc")...)
	eventually(t, "the first held call", func() bool { return s.count(s.inFlight, "limited") == 1 && s.count(s.done, "limited") == s.free })
	time.Sleep(500 * time.Millisecond) // ten tokens' time for more calls, which must not come
	if most := s.count(s.most, "limited"); most > set.Concurrency {
		t.Errorf("%d calls in flight at once to one receiver, Concurrency %d", most, set.Concurrency)
	}
	close(s.release["limited"])
	eventually(t, "every event delivered", func() bool { return s.count(s.done, "limited") == 40 })
}

// TestFanoutRetireHandsOffAtOnce: removing a receiver hands off what it has
// queued at once, while its lane's only deliverer is held by a neighbour's
// call: it does not wait for the lane to come to it event by event.
func TestFanoutRetireHandsOffAtOnce(t *testing.T) {
	h := newHarness(t)
	s := newLaneSender(1, map[string]string{"slow": "host", "gone": "host"}, "slow")
	set := fast()
	set.SendTimeout = time.Minute
	rt, stop := runFanout(t, h, "retire", s, set)
	defer stop()
	addAll(t, rt, "slow", "gone")
	rt.Start()
	const events = 20
	h.publish(t, statuses(t, events, "retire")...)
	eventually(t, "the lane's deliverer held by the slow receiver", func() bool { return s.count(s.inFlight, "slow") == 1 })
	if n := s.count(s.done, "gone"); n >= events {
		t.Fatalf("%d of %d delivered to the receiver to remove: nothing left queued", n, events)
	}
	removed := make(chan struct{})
	go func() { rt.Remove("gone"); close(removed) }()
	eventually(t, "the receiver removed while the neighbour's call is held", func() bool {
		select {
		case <-removed:
			return true
		default:
			return false
		}
	})
	close(s.release["slow"])
	eventually(t, "every event delivered to the neighbour", func() bool { return s.count(s.done, "slow") == events })
}

// TestFanoutRateLimitHoldsNoLane: a receiver waiting for its rate limit (5
// a second) does not hold its lane's one deliverer: the other receiver of
// the lane gets all its events while most of the limited one's still wait,
// and those arrive after, none lost.
func TestFanoutRateLimitHoldsNoLane(t *testing.T) {
	h := newHarness(t)
	s := newLaneSender(1, map[string]string{"limited": "host", "free": "host"})
	rt, stop := runFanout(t, h, "paced", s, fast())
	defer stop()
	if err := rt.Add(sink.Receiver{Name: "limited", RateLimit: 5, Burst: 1, Filter: func(*event.Event) bool { return true }}); err != nil {
		t.Fatal(err)
	}
	if err := rt.Add(sink.Receiver{Name: "free", Filter: func(*event.Event) bool { return true }}); err != nil {
		t.Fatal(err)
	}
	rt.Start()
	const events = 20
	h.publish(t, statuses(t, events, "paced")...)
	eventually(t, "every event delivered to the unlimited receiver", func() bool { return s.count(s.done, "free") == events })
	if n := s.count(s.done, "limited"); n >= events/2 {
		t.Errorf("%d of %d events already delivered at 5 a second to the limited receiver: it held the lane", n, events)
	}
	eventually(t, "every event delivered to the limited receiver", func() bool { return s.count(s.done, "limited") == events })
}

// pausingSender answers every call, once released, with a 429 asking for
// an hour's pause, its receivers all on one lane of one deliverer.
type pausingSender struct{ release chan struct{} }

func (s pausingSender) Send(ctx context.Context, _ *sink.Notification) error {
	select {
	case <-s.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	return sink.RateLimited(time.Hour, errors.New("429 Too Many Requests"))
}

func (pausingSender) Lane(string) (string, int) { return "host", 1 }

// runPausing runs sinkName's fan-out with a pausingSender (no breaker) for
// receivers, publishes events to all of them, and releases the first
// attempt once every event is queued for every receiver.
func runPausing(t *testing.T, h *harness, sinkName string, events int, receivers ...string) (*sink.Runtime, func() error) {
	t.Helper()
	set := fast()
	set.BreakAfter = 0
	send := pausingSender{release: make(chan struct{})}
	rt, stop := runFanout(t, h, sinkName, send, set, sink.WithMetrics(h.metrics))
	addAll(t, rt, receivers...)
	rt.Start()
	h.publish(t, statuses(t, events, sinkName)...)
	eventually(t, "every event queued for every receiver", func() bool {
		for _, r := range receivers {
			if testutil.ToFloat64(h.metrics.Received.WithLabelValues(sinkName, r)) != float64(events) {
				return false
			}
		}
		return true
	})
	close(send.release)
	return rt, stop
}

// addAll adds receivers that take every event.
func addAll(t *testing.T, rt *sink.Runtime, names ...string) {
	t.Helper()
	for _, name := range names {
		if err := rt.Add(sink.Receiver{Name: name, Filter: func(*event.Event) bool { return true }}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestFanoutPausedReceiverHandsOffItsQueue: two receivers of one lane both
// pause (a Retry-After of an hour) on their first attempt. Each one's other
// events follow that attempt's retry into its retry queue at once, in one
// run of the retry stream, not turn by turn between the other's (which
// costs the retry consumer's server a step for every message between two
// of its receiver's); none is attempted during the pause, none is lost.
func TestFanoutPausedReceiverHandsOffItsQueue(t *testing.T) {
	h := newHarness(t)
	const events = 20
	_, stop := runPausing(t, h, "pausing", events, "a", "b")
	defer stop()
	eventually(t, "every event of both receivers in their retry queues", func() bool { return retriesWaiting(t, h) == 2*events })
	s, err := h.bus.JS.Stream(context.Background(), eventbus.StreamRedrive)
	if err != nil {
		t.Fatal(err)
	}
	runs, last := map[string]int{}, ""
	for seq := uint64(1); seq <= 2*events; seq++ {
		m, err := s.GetMsg(context.Background(), seq)
		if err != nil {
			t.Fatalf("retry %d: %v", seq, err)
		}
		var receiver string
		for _, r := range []string{"a", "b"} {
			if m.Subject == deadletter.RedriveSubject("pausing", r) {
				receiver = r
			}
		}
		if receiver == "" {
			t.Fatalf("retry %d under %s, no receiver's", seq, m.Subject)
		}
		if receiver != last {
			runs[receiver]++
			last = receiver
		}
	}
	// The failed attempt's retry, and at once the rest behind it.
	for _, r := range []string{"a", "b"} {
		if runs[r] != 1 {
			t.Errorf("receiver %s's %d retries lie in %d runs of the retry stream, want 1", r, events, runs[r])
		}
	}
}

// TestFanoutPausedQueueHandedBackAfterAFailedHandOff: the retry stream
// refuses a second message. A receiver that pauses on its first attempt
// stores that event's retry; the first of its queued events the stream
// refuses, and the other 18 are handed back without a publish each (every
// one would otherwise wait out a failure of its own, holding the lane's
// deliverer).
func TestFanoutPausedQueueHandedBackAfterAFailedHandOff(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	s, err := h.bus.JS.Stream(ctx, eventbus.StreamRedrive)
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.CachedInfo().Config
	cfg.MaxMsgs, cfg.Discard = 1, jetstream.DiscardNew
	if _, err := h.bus.JS.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	var publishes atomic.Int64
	sub, err := h.bus.NC.Subscribe(deadletter.RedriveSubject("refused", "a"), func(*nats.Msg) { publishes.Add(1) })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	rt, stop := runPausing(t, h, "refused", 20, "a")
	defer stop()
	eventually(t, "a hand-off refused", func() bool { return rt.Writes().Check(ctx) != nil })
	// The events handed back come again after a second, and are handed
	// off (and refused) again: only the first round is counted here.
	if n := publishes.Load(); n > 6 {
		t.Errorf("%d hand-offs published for a receiver whose second was refused, want 2 (the stored one and the refused one)", n)
	}
}
