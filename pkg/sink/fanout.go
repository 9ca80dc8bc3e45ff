package sink

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/accountwatch/accountwatch/pkg/deadletter"
	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/eventbus"
	"github.com/accountwatch/accountwatch/pkg/route"
)

// Fan-out mode (WithFanout) is for sinks with many receivers that take events
// one by one, each through its own Filter: webhook endpoints. Receivers are
// added after Ready, and the shared consumer is read only once Start says the
// receivers known at start are in (an event read before its receiver exists
// is acknowledged for nobody). One shared
// durable consumer reads the stream once; each event goes to the in-memory
// queue of every receiver that accepts it, and is acknowledged once every one
// of them has it delivered or handed off. A receiver that fails, lags (its
// queue is full) or is parked gets the event handed off to its own retry queue
// in AW_REDRIVE, where its own consumer retries it on the schedule. So healthy
// receivers cost no consumer of their own, and a slow or dead one never holds
// back the others. Per-receiver consumers on the event stream would cost the
// server a persisted consumer state per receiver, about ten writes a second
// each while busy: thousands of endpoints would drown it.

// Headers of a handed-off retry.
const (
	// HdrRetryAttempts counts the attempts made before the hand-off.
	HdrRetryAttempts = "Aw-Retry-Attempts"
	// HdrRetryNotBefore is when the next attempt may be made (RFC 3339).
	HdrRetryNotBefore = "Aw-Retry-Not-Before"
)

// fanoutQueue bounds a receiver's in-memory queue; past it, events are
// handed off (the receiver lags).
const fanoutQueue = 1024

// maxHandoffs bounds the hand-offs the shared consumer has in flight: each
// is a stored publish (an fsync on the embedded default), and one at a time
// would slow every receiver to that pace whenever one lags or is parked.
const maxHandoffs = 256

// WithFanout switches the runtime to fan-out mode: receivers need a Filter.
func WithFanout() Option { return func(r *Runtime) { r.fanout = true } }

// fanMsg is one event of the shared consumer and the targets still working on it.
type fanMsg struct {
	f         *fanout
	msg       jetstream.Msg
	ev        *event.Event
	remaining atomic.Int32
	nak       atomic.Bool
}

// done settles one target's part; the last one acks (or hands the event back
// when a hand-off could not be stored, so that nothing is lost).
func (m *fanMsg) done(ok bool) {
	if !ok {
		m.nak.Store(true)
	}
	if m.remaining.Add(-1) == 0 {
		m.f.held.remove(m)
		if m.nak.Load() {
			_ = m.msg.NakWithDelay(time.Second)
			return
		}
		_ = m.msg.Ack()
	}
}

// fanTarget is a receiver's fast path: a queue and deliverers that run
// only while it holds something (Concurrency at most), so that an idle
// receiver costs no goroutine: ten thousand endpoints would otherwise keep
// forty thousand parked goroutines for the collector to scan.
type fanTarget struct {
	rc   Receiver
	ctx  context.Context
	pace *pacer
	stop context.CancelFunc
	// qmu guards the queue (fanoutQueue at most), the deliverers running
	// and closed (set as the target retires: nothing more is queued).
	qmu     sync.Mutex
	queue   []*fanMsg
	running int
	closed  bool
	// pacing ends when the target retires: a deliverer waiting on the rate
	// limit hands its event off at once instead of holding the retirement
	// (a DELETE of a webhook endpoint) until the limit allows a call.
	pacing    context.Context
	endPacing context.CancelFunc
	wg        sync.WaitGroup
	// retiring makes the deliverers hand off what is still queued.
	retiring atomic.Bool
	leaf     *route.Leaf
	// the receiver's metrics, looked up once
	received, delivered, notified prometheus.Counter
	latency                       prometheus.Observer
}

type fanout struct {
	r  *Runtime
	mu sync.RWMutex
	// targets are the active receivers; parked ones keep only their Filter,
	// so that their events are handed off to wait in their retry queue.
	targets map[string]*fanTarget
	parked  map[string]Receiver
	sendCtx context.Context
	// handoffs holds a slot per hand-off in flight from dispatch; inFlight
	// counts them for the drain.
	handoffs chan struct{}
	inFlight sync.WaitGroup
	// held are the events taken and not yet settled: an event waiting in a
	// slow receiver's queue is kept alive, or the server would deliver it
	// again, to every receiver, after AckWait.
	held *heldSet[*fanMsg]
	// retries starts and stops the receivers' retry-queue workers.
	retries *retries
	// crowded is the Sender's Crowded, if it has one.
	crowded func(receiver string) bool
}

func newFanout(r *Runtime) *fanout {
	f := &fanout{r: r, targets: map[string]*fanTarget{}, parked: map[string]Receiver{}, handoffs: make(chan struct{}, maxHandoffs),
		held: newHeldSet[*fanMsg](), retries: newRetries(r), crowded: func(string) bool { return false }}
	if c, ok := r.sender.(Crowded); ok {
		f.crowded = c.Crowded
	}
	return f
}

// activate starts a receiver's fast path.
func (f *fanout) activate(rc Receiver) {
	ctx, cancel := context.WithCancel(f.sendCtx)
	m, sk := f.r.metrics, f.r.sink
	pacing, endPacing := context.WithCancel(ctx)
	t := &fanTarget{rc: rc, ctx: ctx, pace: f.r.newPacer(rc), stop: cancel, pacing: pacing, endPacing: endPacing, leaf: ownLeaf(rc.Name),
		received: m.Received.WithLabelValues(sk, rc.Name), delivered: m.Delivered.WithLabelValues(sk, rc.Name),
		notified: m.Notifications.WithLabelValues(sk, rc.Name), latency: m.Latency.WithLabelValues(sk, rc.Name)}
	f.mu.Lock()
	old := f.targets[rc.Name]
	f.targets[rc.Name] = t
	delete(f.parked, rc.Name)
	f.mu.Unlock()
	if old != nil {
		f.retire(old)
	}
}

// deactivate stops a receiver's fast path; parked, it keeps its Filter. It
// reports whether the fast path ran.
func (f *fanout) deactivate(name string, park bool) bool {
	f.mu.Lock()
	t := f.targets[name]
	delete(f.targets, name)
	if park {
		if t != nil {
			f.parked[name] = t.rc
		}
	} else {
		delete(f.parked, name)
	}
	f.mu.Unlock()
	if t != nil {
		f.retire(t)
	}
	return t != nil
}

// pacer is the pace of name's fast path (nil when it has none): its retry
// queue's worker shares it.
func (f *fanout) pacer(name string) *pacer {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if t := f.targets[name]; t != nil {
		return t.pace
	}
	return nil
}

// retire stops a fast path: deliveries in flight finish, what waited in its
// queue is handed off to the retry queue.
func (f *fanout) retire(t *fanTarget) {
	t.retiring.Store(true)
	t.endPacing()
	t.qmu.Lock()
	t.closed = true
	t.qmu.Unlock()
	t.wg.Wait() // the deliverers hand off what is still queued
	t.stop()
}

// retireAll retires every fast path (shutdown).
func (f *fanout) retireAll() {
	f.mu.Lock()
	ts := f.targets
	f.targets = map[string]*fanTarget{}
	f.mu.Unlock()
	var wg sync.WaitGroup
	for _, t := range ts {
		wg.Add(1)
		go func() { defer wg.Done(); f.retire(t) }()
	}
	wg.Wait()
}

// run reads the shared consumer until ctx ends.
func (f *fanout) run(ctx context.Context, it jetstream.MessagesContext) {
	go func() {
		<-ctx.Done()
		it.Drain()
	}()
	defer f.inFlight.Wait() // the drain settles every hand-off
	for {
		m, err := it.Next()
		if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
			return
		}
		if err != nil {
			f.r.log.Warn("consume", "sink", f.r.sink, "err", err)
			continue
		}
		if ctx.Err() != nil {
			_ = m.Nak()
			continue
		}
		f.dispatch(m)
	}
}

func (f *fanout) dispatch(m jetstream.Msg) {
	ev, err := eventbus.DecodeMsg(m)
	if err != nil {
		if f.r.deadLetter(context.Background(), "_fanout", m, nil, &Error{Reason: ReasonInvalidEvent, Permanent: true, Err: err}, 1) {
			_ = m.TermWithReason(string(ReasonInvalidEvent))
		} else {
			_ = m.NakWithDelay(time.Second)
		}
		return
	}
	fm := &fanMsg{f: f, msg: m, ev: ev}
	f.held.add(fm, m)
	var active []*fanTarget
	var parked []Receiver
	f.mu.RLock()
	for _, t := range f.targets {
		if t.rc.Filter(ev) {
			active = append(active, t)
		}
	}
	for _, rc := range f.parked {
		if rc.Filter(ev) {
			parked = append(parked, rc)
		}
	}
	fm.remaining.Store(int32(len(active) + len(parked) + 1)) // +1: dispatch itself
	// Enqueue under the read lock: a target being retired closes its queue
	// only under the write lock.
	for _, t := range active {
		t.received.Inc()
		if !f.offer(t, fm) { // the receiver lags: its retry queue takes the event
			f.handOffAsync(fm, t.rc.Name)
		}
	}
	f.mu.RUnlock()
	for _, rc := range parked {
		f.handOffAsync(fm, rc.Name)
	}
	fm.done(true)
}

// handOffAsync hands fm to receiver's retry queue without holding up the
// shared consumer: the publish runs on a goroutine of its own (at most
// maxHandoffs at once), and settles its part of fm once stored.
func (f *fanout) handOffAsync(fm *fanMsg, receiver string) {
	f.handoffs <- struct{}{}
	f.inFlight.Add(1)
	go func() {
		defer func() { <-f.handoffs; f.inFlight.Done() }()
		fm.done(f.handoff(receiver, fm.msg, 0, time.Now()))
	}()
}

// offer queues fm for t, starting a deliverer if fewer than Concurrency
// run; false when the queue is full (or t retires).
func (f *fanout) offer(t *fanTarget, fm *fanMsg) bool {
	t.qmu.Lock()
	if t.closed || len(t.queue) >= fanoutQueue {
		t.qmu.Unlock()
		return false
	}
	t.queue = append(t.queue, fm)
	start := f.mayStart(t)
	t.qmu.Unlock()
	if start {
		f.startWork(t)
	}
	return true
}

// mayStart says whether t may run one more deliverer, and counts it if so
// (t.qmu held): fewer than Concurrency run, and either none does or its
// destination has room for more (Crowded).
func (f *fanout) mayStart(t *fanTarget) bool {
	if t.closed || t.running >= f.r.set.Concurrency || t.running > 0 && f.crowded(t.rc.Name) {
		return false
	}
	t.running++
	t.wg.Add(1)
	return true
}

func (f *fanout) startWork(t *fanTarget) {
	go func() {
		defer t.wg.Done()
		f.work(t.ctx, t)
	}()
}

// grow starts another deliverer for t while more waits in its queue than
// its deliverers hold, if mayStart allows: what a crowded destination kept
// to one deliverer regains its concurrency once there is room.
func (f *fanout) grow(t *fanTarget) {
	t.qmu.Lock()
	start := len(t.queue) > 0 && f.mayStart(t)
	t.qmu.Unlock()
	if start {
		f.startWork(t)
	}
}

// next takes the first of t's queue; false when it is empty, and the
// deliverer asking stops.
func (t *fanTarget) next() (*fanMsg, bool) {
	t.qmu.Lock()
	defer t.qmu.Unlock()
	if len(t.queue) == 0 {
		t.running--
		t.queue = nil // the backing array goes with the burst
		return nil, false
	}
	fm := t.queue[0]
	t.queue[0] = nil
	t.queue = t.queue[1:]
	return fm, true
}

// work is one of a receiver's fast-path deliverers: it runs until the
// queue is empty.
func (f *fanout) work(ctx context.Context, t *fanTarget) {
	for fm, ok := t.next(); ok; fm, ok = t.next() {
		f.grow(t)
		if ctx.Err() != nil || t.retiring.Load() {
			fm.done(f.handoff(t.rc.Name, fm.msg, 0, time.Now()))
			continue
		}
		// Paused (a Retry-After, an open circuit, its probe in flight): the
		// retry queue takes the event, not to be tried before the pause
		// ends (its worker shares the pace).
		probe, wait, ok := t.pace.admit()
		if !ok {
			fm.done(f.handoff(t.rc.Name, fm.msg, 0, time.Now().Add(wait)))
			continue
		}
		if err := t.pace.lim.Wait(t.pacing); err != nil {
			t.pace.release(probe)
			fm.done(f.handoff(t.rc.Name, fm.msg, 0, time.Now()))
			continue
		}
		n := &Notification{Sink: f.r.sink, Receiver: t.rc.Name, Leaf: t.leaf, GroupKey: "event|" + fm.ev.ID(), Events: []*event.Event{fm.ev}, Attempt: 1}
		sctx, cancel := context.WithTimeout(ctx, f.r.set.SendTimeout)
		start := time.Now()
		err := f.r.send(sctx, n)
		took := time.Since(start)
		cancel()
		d := Decide(err, 1, f.r.set)
		t.pace.attempted(d, probe)
		f.r.recordAttempt(n, fm.ev, 1, start, took, d)
		switch d.Action {
		case Ack:
			t.delivered.Inc()
			t.notified.Inc()
			t.latency.Observe(time.Since(fm.ev.Cloud.Time()).Seconds())
			fm.done(true)
		case DeadLetter:
			fm.done(f.r.deadLetter(ctx, t.rc.Name, fm.msg, fm.ev, d.Err, 1))
		case Retry:
			f.r.metrics.Retried.WithLabelValues(f.r.sink, t.rc.Name, string(d.Err.Reason)).Inc()
			fm.done(f.handoff(t.rc.Name, fm.msg, 1, time.Now().Add(d.Delay)))
		}
	}
}

// handoff puts the event in the receiver's retry queue, attempts made so
// far and the earliest next attempt attached. Its id makes a hand-off
// repeated after a crash a no-op.
func (f *fanout) handoff(receiver string, m jetstream.Msg, attempts int, notBefore time.Time) bool {
	h := make(nats.Header, len(m.Headers())+3)
	for k, v := range m.Headers() {
		if !strings.HasPrefix(k, "Nats-") {
			h[k] = v
		}
	}
	id := h.Get("ce-id")
	h.Set(HdrRetryAttempts, strconv.Itoa(attempts))
	h.Set(HdrRetryNotBefore, notBefore.UTC().Format(time.RFC3339Nano))
	h.Set(jetstream.MsgIDHeader, "retry:"+f.r.sink+":"+receiver+":"+id)
	out := deadletter.RedriveMsg(f.r.sink, receiver, m.Subject(), h, m.Data())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := f.r.js.PublishMsg(ctx, out, jetstream.WithExpectStream(eventbus.StreamRedrive))
	f.r.writes.Observe(err)
	if err != nil {
		f.r.log.Error("hand-off to the retry queue failed; the event is handed back", "sink", f.r.sink, "receiver", receiver, "err", err)
		return false
	}
	f.retries.want(receiver)
	return true
}

// retryOffset reads a handed-off retry's headers: the attempts made before
// the hand-off, and how long the first delivery from the retry queue must
// still wait. ok is false for a message that is no retry (an operator's
// re-drive).
func retryOffset(h nats.Header, now time.Time) (before int, wait time.Duration, ok bool) {
	v := h.Get(HdrRetryAttempts)
	if v == "" {
		return 0, 0, false
	}
	before, err := strconv.Atoi(v)
	if err != nil || before < 0 {
		return 0, 0, false
	}
	if nb, err := time.Parse(time.RFC3339Nano, h.Get(HdrRetryNotBefore)); err == nil {
		wait = max(nb.Sub(now), 0)
	}
	return before, wait, true
}

func (f *fanout) String() string { return fmt.Sprintf("fanout(%s)", f.r.sink) }
