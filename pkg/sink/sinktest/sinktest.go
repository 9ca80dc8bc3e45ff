// Package sinktest is the conformance suite every sink.Sender passes, run
// against its real destination protocol (a Slack API capture, an SMTP
// server, an HTTP receiver) and the real runtime on an embedded JetStream
// server:
//
//   - every failure class the destination can produce is classified as the
//     sink says it is (Target.Expect), and a success says where it went;
//   - a Retry-After is honoured: no call to the receiver before it passed;
//   - no secret the sender holds appears in any error, log line, dead
//     letter or delivery-log record, whatever failed;
//   - a drain in the middle of deliveries loses nothing: the next instance
//     delivers every event the first did not;
//   - every attempt is in the delivery log.
//
// A sender's package runs it from a test with a Target factory:
//
//	func TestConformance(t *testing.T) { sinktest.Run(t, newTarget) }
package sinktest

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/accountwatch/accountwatch/pkg/config"
	"github.com/accountwatch/accountwatch/pkg/deadletter"
	"github.com/accountwatch/accountwatch/pkg/deliverylog"
	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/event/eventtest"
	"github.com/accountwatch/accountwatch/pkg/eventbus"
	"github.com/accountwatch/accountwatch/pkg/eventbus/bustest"
	"github.com/accountwatch/accountwatch/pkg/ops/opstest"
	"github.com/accountwatch/accountwatch/pkg/route"
	"github.com/accountwatch/accountwatch/pkg/sink"
)

// Failure is a class of answer a destination gives.
type Failure string

// Failure classes. A Target's Answer makes its destination answer every
// following call so.
const (
	// Accept delivers.
	Accept Failure = ""
	// Slowly delivers after about 100 ms (for the drain).
	Slowly Failure = "slowly"
	// RateLimited asks to come back after RetryAfter (HTTP 429 with
	// Retry-After, Slack's 429).
	RateLimited Failure = "rate_limited"
	// ServerError is the destination failing on its side (HTTP 5xx, SMTP 4xx).
	ServerError Failure = "server_error"
	// ClientError is the destination refusing the request (HTTP 4xx, a Slack
	// error code, SMTP 5xx): the sink says whether retrying helps.
	ClientError Failure = "client_error"
	// Timeout is no answer until the attempt's deadline (SendTimeout).
	Timeout Failure = "timeout"
	// Broken is the connection failing without an answer (refused, reset).
	Broken Failure = "broken"
)

// RetryAfter is the wait a RateLimited answer asks for.
const RetryAfter = 2 * time.Second

// SendTimeout bounds the attempt the suite expects to time out (a Timeout
// answer stalls longer); other attempts get a deadline a loaded machine
// cannot miss (runtimeSendTimeout), so that no answer is taken for a
// timeout it is not.
const SendTimeout = 700 * time.Millisecond

const (
	directSendTimeout  = 10 * time.Second
	runtimeSendTimeout = 3 * time.Second
)

// Want is how a sender classifies a failure class.
type Want struct {
	Reason    sink.Reason
	Permanent bool
	// RetryAfter: the error asks for exactly RetryAfter.
	RetryAfter bool
}

// Target is one sender under test with its destination under the suite's
// control. A factory builds a fresh one per subtest.
type Target struct {
	Sender sink.Sender
	// Receiver is the receiver name the sender was built with.
	Receiver string
	// Fanout runs the runtime in fan-out mode (the receiver takes every event
	// through its own filter), as the sink does in production.
	Fanout bool
	// Answer makes the destination answer the calls that follow with f.
	Answer func(f Failure)
	// Received lists the event ids the destination accepted, a repeat each
	// time it accepted one again.
	Received func() []string
	// Calls lists when the destination was called, accepted or not.
	Calls func() []time.Time
	// Expect is how the sender classifies each failure class its
	// destination can produce; a class missing from it is one the protocol
	// has not (SMTP has no Retry-After).
	Expect map[Failure]Want
	// Secrets are the credentials the sender was built with.
	Secrets []string
	// Logs, when set, returns what the sender logged itself.
	Logs func() string
}

// Factory builds a fresh Target on bus.
type Factory func(t *testing.T, bus *eventbus.Bus) *Target

// failures is the order the suite tries classes in.
var failures = []Failure{RateLimited, ServerError, ClientError, Timeout, Broken}

// Run runs the suite.
func Run(t *testing.T, newTarget Factory) {
	t.Run("classification", func(t *testing.T) { testClassification(t, newTarget) })
	t.Run("retry-after", func(t *testing.T) { testRetryAfter(t, newTarget) })
	t.Run("no-secret", func(t *testing.T) { testNoSecret(t, newTarget) })
	t.Run("drain", func(t *testing.T) { testDrain(t, newTarget) })
}

// Events are n distinct status changes, accounts prefix0…prefix(n-1).
func Events(t *testing.T, prefix string, n int) []*event.Event {
	out := make([]*event.Event, n)
	for i := range out {
		out[i] = eventtest.Status(t, eventtest.Meta(fmt.Sprintf("%s%d", prefix, i), nil), "active", "credit_hold")
	}
	return out
}

func testClassification(t *testing.T, newTarget Factory) {
	bus := bustest.New(t)
	tg := newTarget(t, bus)
	check := func(name string, f Failure, want *Want) {
		t.Helper()
		ev := Events(t, "class-"+name+"-", 1)[0]
		tg.Answer(f)
		n := &sink.Notification{Sink: "sinktest", Receiver: tg.Receiver, GroupKey: "event|" + ev.ID(), Events: []*event.Event{ev}, Attempt: 1}
		timeout := directSendTimeout
		if f == Timeout {
			timeout = SendTimeout
		}
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		err := tg.Sender.Send(ctx, n)
		cancel()
		if want == nil {
			if err != nil {
				t.Errorf("%s: %v", name, err)
			} else if !slices.Contains(tg.Received(), ev.ID()) {
				t.Errorf("%s: Send returned nil, and the destination has not got %s", name, ev.ID())
			}
			if n.Receipt.Destination == "" {
				t.Errorf("%s: the sender says nowhere where the notification went (Receipt.Destination)", name)
			}
			return
		}
		if err == nil {
			t.Errorf("%s: Send returned nil", name)
			return
		}
		e := sink.Classify(err)
		if e.Reason != want.Reason || e.Permanent != want.Permanent {
			t.Errorf("%s: classified %s (permanent %v), want %s (permanent %v): %v", name, e.Reason, e.Permanent, want.Reason, want.Permanent, err)
		}
		if want.RetryAfter && e.RetryAfter != RetryAfter {
			t.Errorf("%s: asks for %s, want the Retry-After %s", name, e.RetryAfter, RetryAfter)
		}
		if !want.RetryAfter && e.RetryAfter != 0 {
			t.Errorf("%s: asks for a wait of %s nobody asked for", name, e.RetryAfter)
		}
		noSecret(t, tg.Secrets, name+" error", err.Error())
	}
	check("accepted", Accept, nil)
	for _, f := range failures {
		if w, ok := tg.Expect[f]; ok {
			check(string(f), f, &w)
		}
	}
	check("accepted again", Accept, nil)
}

func testRetryAfter(t *testing.T, newTarget Factory) {
	bus := bustest.New(t)
	tg := newTarget(t, bus)
	if w, ok := tg.Expect[RateLimited]; !ok || !w.RetryAfter {
		t.Log("the destination's protocol has no Retry-After")
		return
	}
	tg.Answer(RateLimited)
	h := start(t, bus, tg)
	ev := Events(t, "retry-after-", 1)[0]
	bustest.Publish(t, bus, ev)
	bustest.Eventually(t, "the first call", func() bool { return len(tg.Calls()) >= 1 })
	tg.Answer(Accept)
	bustest.Eventually(t, "the delivery after the Retry-After", func() bool { return slices.Contains(tg.Received(), ev.ID()) })
	calls := tg.Calls()
	// The first call was answered before the runtime could pause: the next
	// one may come no sooner than RetryAfter after it.
	if gap := calls[1].Sub(calls[0]); gap < RetryAfter {
		t.Errorf("called again %s after a Retry-After of %s", gap, RetryAfter)
	}
	if len(calls) != 2 {
		t.Errorf("%d calls, want 2 (the rate-limited one and the delivery)", len(calls))
	}
	want := deliverylog.RateLimited + " " + deliverylog.Delivered
	for deadline := time.Now().Add(30 * time.Second); h.log.outcomes(ev.ID()) != want; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the delivery log says %q, want %q", h.log.outcomes(ev.ID()), want)
		}
	}
}

func testNoSecret(t *testing.T, newTarget Factory) {
	bus := bustest.New(t)
	tg := newTarget(t, bus)
	h := start(t, bus, tg)
	for _, f := range failures {
		if _, ok := tg.Expect[f]; !ok {
			continue
		}
		ev := Events(t, "secret-"+string(f)+"-", 1)[0]
		tg.Answer(f)
		bustest.Publish(t, bus, ev)
		bustest.Eventually(t, "an attempt answered "+string(f), func() bool { return h.log.attempts(ev.ID()) > 0 })
	}
	tg.Answer(Accept)
	h.stop()
	var texts []string
	for _, r := range h.log.all() {
		texts = append(texts, r.Destination+" "+r.Error+" "+r.Response+" "+r.Reason)
	}
	noSecret(t, tg.Secrets, "delivery log", strings.Join(texts, "\n"))
	noSecret(t, tg.Secrets, "runtime log", h.logs.String())
	if tg.Logs != nil {
		noSecret(t, tg.Secrets, "sender log", tg.Logs())
	}
	store, err := deadletter.Open(context.Background(), bus.JS)
	if err != nil {
		t.Fatal(err)
	}
	letters, err := store.List(context.Background(), deadletter.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range letters {
		noSecret(t, tg.Secrets, "dead letter", l.Error)
	}
}

func testDrain(t *testing.T, newTarget Factory) {
	bus := bustest.New(t)
	tg := newTarget(t, bus)
	tg.Answer(Slowly)
	evs := Events(t, "drain-", 30)
	bustest.Publish(t, bus, evs...)
	first := start(t, bus, tg)
	bustest.Eventually(t, "deliveries under way", func() bool { return len(tg.Received()) >= 3 })
	first.stop() // events in flight finish, the others are handed back
	tg.Answer(Accept)
	second := start(t, bus, tg)
	bustest.Eventually(t, "every event delivered by the next instance", func() bool {
		got := tg.Received()
		for _, e := range evs {
			if !slices.Contains(got, e.ID()) {
				return false
			}
		}
		return true
	})
	second.stop()
	for _, e := range evs {
		if out := first.log.outcomes(e.ID()) + " " + second.log.outcomes(e.ID()); !strings.Contains(out, deliverylog.Delivered) {
			t.Errorf("%s delivered, but the delivery log says %q", e.Data.AccountID, strings.TrimSpace(out))
		}
	}
}

// harness is a runtime running the target's sender.
type harness struct {
	log  *memLog
	logs *opstest.Buffer
	stop func()
}

func start(t *testing.T, bus *eventbus.Bus, tg *Target) *harness {
	t.Helper()
	s := sink.DefaultSettings()
	s.Start = "all"
	s.BackoffInitial, s.BackoffMax = 50*time.Millisecond, 200*time.Millisecond
	s.AckWait, s.SendTimeout, s.DrainTimeout = 5*time.Second, runtimeSendTimeout, 10*time.Second
	// No circuit breaker: the suite answers each failure class to one new
	// event at a time, and an open circuit would hold that event behind
	// probes of the earlier events' retries, each answered with the class
	// under test (a timeout's took 3 s apiece: no-secret waited past 30 s
	// for the timeout event's own attempt). The breaker has its own tests
	// (pkg/sink: TestBreaker, TestBreakerProbesADownReceiver).
	s.BreakAfter = 0
	h := &harness{log: &memLog{}, logs: &opstest.Buffer{}}
	opts := []sink.Option{sink.WithSettings(s), sink.WithDeliveryLog(h.log, false),
		sink.WithLogger(slog.New(slog.NewJSONHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug})))}
	var tree *route.Tree
	rcv := sink.Receiver{Name: tg.Receiver}
	if tg.Fanout {
		opts = append(opts, sink.WithFanout())
		rcv.Filter = func(*event.Event) bool { return true }
	} else {
		var c route.Config
		if err := config.DecodeYAML(strings.NewReader("route: {receiver: "+tg.Receiver+", group_by: ['...'], group_wait: 0s}"), &c); err != nil {
			t.Fatal(err)
		}
		var err error
		if tree, err = route.NewTree(c, []string{tg.Receiver}); err != nil {
			t.Fatal(err)
		}
	}
	var rcvs []sink.Receiver
	if !tg.Fanout {
		rcvs = []sink.Receiver{rcv}
	}
	rt, err := sink.New(bus.JS, "sinktest", tree, rcvs, tg.Sender, opts...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rt.Run(ctx) }()
	<-rt.Ready()
	if tg.Fanout {
		if err := rt.Add(rcv); err != nil {
			t.Fatal(err)
		}
	}
	rt.Start()
	var once sync.Once
	h.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("runtime: %v", err)
			}
		})
	}
	t.Cleanup(h.stop)
	return h
}

func noSecret(t *testing.T, secrets []string, where, text string) {
	t.Helper()
	for _, s := range secrets {
		if s != "" && strings.Contains(text, s) {
			t.Errorf("a secret appears in the %s: %.300q", where, text)
		}
	}
}

// memLog is a delivery log in memory.
type memLog struct {
	mu   sync.Mutex
	recs []deliverylog.Record
}

func (l *memLog) Add(r deliverylog.Record) error {
	l.mu.Lock()
	l.recs = append(l.recs, r)
	l.mu.Unlock()
	return nil
}

func (l *memLog) all() []deliverylog.Record {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.recs)
}

// outcomes lists an event's outcomes in order, space-separated.
func (l *memLog) outcomes(id string) string {
	var out []string
	for _, r := range l.all() {
		if r.EventID == id {
			out = append(out, r.Outcome)
		}
	}
	return strings.Join(out, " ")
}

func (l *memLog) attempts(id string) int {
	n := 0
	for _, r := range l.all() {
		if r.EventID == id && deliverylog.Attempted(r.Outcome) {
			n++
		}
	}
	return n
}
