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
	f   *fanout
	msg jetstream.Msg
	ev  *event.Event
	// events and group are every target's Notification.Events and
	// GroupKey, made once per event rather than once per target.
	events    []*event.Event
	group     string
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

// fanTarget is a receiver's fast path: a queue that its lane's deliverers
// take from in turn, at most Concurrency of its events at once. An idle
// receiver costs no goroutine.
type fanTarget struct {
	rc   Receiver
	pace *pacer
	lane *lane
	// qmu guards the queue (fanoutQueue at most), the deliveries in flight,
	// ready (the target is in its lane's ring, or a timer will put it
	// there), paced (waiting for its rate limit: the timer's), booked (the
	// timer's call has its token reserved) and closed (set as the target
	// retires: nothing more is queued).
	qmu      sync.Mutex
	queue    []*fanMsg
	inFlight int
	ready    bool
	paced    bool
	booked   bool
	closed   bool
	// pending counts the events queued or in flight: retiring waits for
	// them to be delivered or handed off.
	pending sync.WaitGroup
	// retiring makes the deliverers hand off what is still queued.
	retiring atomic.Bool
	leaf     *route.Leaf
	// the receiver's metrics, looked up once
	received, delivered, notified prometheus.Counter
	latency                       prometheus.Observer
}

// lane is a destination's deliverers: at most width of them run, each
// taking the next receiver of the ring, one event of it, and putting the
// receiver back at the end while more of its events wait. So receivers
// sharing a host take turns, and the deliverers stay as many as its
// connections.
type lane struct {
	key     string
	width   int
	mu      sync.Mutex
	ring    []*fanTarget
	running int
	refs    int // targets on the lane (f.mu held)
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
	// lanes are the destinations' deliverers (f.mu guards the map), laneOf
	// the Sender's Lanes, if it has one.
	lanes  map[string]*lane
	laneOf func(receiver string) (string, int)
}

func newFanout(r *Runtime) *fanout {
	f := &fanout{r: r, targets: map[string]*fanTarget{}, parked: map[string]Receiver{}, handoffs: make(chan struct{}, maxHandoffs),
		held: newHeldSet[*fanMsg](), retries: newRetries(r), lanes: map[string]*lane{}, laneOf: func(string) (string, int) { return "", 0 }}
	if l, ok := r.sender.(Lanes); ok {
		f.laneOf = l.Lane
	}
	return f
}

// activate starts a receiver's fast path.
func (f *fanout) activate(rc Receiver) {
	m, sk := f.r.metrics, f.r.sink
	t := &fanTarget{rc: rc, pace: f.r.newPacer(rc), leaf: ownLeaf(rc.Name),
		received: m.Received.WithLabelValues(sk, rc.Name), delivered: m.Delivered.WithLabelValues(sk, rc.Name),
		notified: m.Notifications.WithLabelValues(sk, rc.Name), latency: m.Latency.WithLabelValues(sk, rc.Name)}
	key, width := f.laneOf(rc.Name)
	if key == "" || width <= 0 { // a lane of its own
		key, width = "receiver:"+rc.Name, f.r.set.Concurrency
	}
	f.mu.Lock()
	t.lane = f.lanes[key]
	if t.lane == nil {
		t.lane = &lane{key: key, width: width}
		f.lanes[key] = t.lane
	}
	t.lane.refs++
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
// queue is handed off to the retry queue here, at once, not as the lane's
// deliverers come to it, one event a turn behind its neighbours' calls.
func (f *fanout) retire(t *fanTarget) {
	t.retiring.Store(true)
	t.qmu.Lock()
	t.closed = true
	t.paced = false
	t.qmu.Unlock()
	f.handOffQueue(t, time.Now(), true)
	f.push(t)        // what a paced delivery put back since
	t.pending.Wait() // and what is in flight
	f.mu.Lock()
	if t.lane.refs--; t.lane.refs == 0 {
		delete(f.lanes, t.lane.key)
	}
	f.mu.Unlock()
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
	fm := &fanMsg{f: f, msg: m, ev: ev, events: []*event.Event{ev}, group: "event|" + ev.ID()}
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

// offer queues fm for t and puts t in its lane's ring; false when the
// queue is full (or t retires).
func (f *fanout) offer(t *fanTarget, fm *fanMsg) bool {
	t.qmu.Lock()
	if t.closed || len(t.queue) >= fanoutQueue {
		t.qmu.Unlock()
		return false
	}
	t.queue = append(t.queue, fm)
	t.pending.Add(1)
	t.qmu.Unlock()
	f.push(t)
	return true
}

// push puts t at the end of its lane's ring, unless it is there already or
// has nothing it may take now, and starts a deliverer if fewer than the
// lane's width run. t being in the ring twice is harmless (take finds
// nothing for it, or another event).
func (f *fanout) push(t *fanTarget) {
	t.qmu.Lock()
	if t.ready || t.paced || len(t.queue) == 0 || t.inFlight >= f.r.set.Concurrency {
		t.qmu.Unlock()
		return
	}
	t.ready = true
	t.qmu.Unlock()
	l := t.lane
	l.mu.Lock()
	l.ring = append(l.ring, t)
	start := l.running < l.width
	if start {
		l.running++
	}
	l.mu.Unlock()
	if start {
		go f.work(l)
	}
}

// pop takes the first target of l's ring; nil when the ring is empty, and
// the deliverer asking stops.
func (l *lane) pop() *fanTarget {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.ring) == 0 {
		l.running--
		l.ring = nil // the backing array goes with the burst
		return nil
	}
	t := l.ring[0]
	l.ring[0] = nil
	l.ring = l.ring[1:]
	return t
}

// take is the first event of t's queue for a deliverer, t put back at the
// end of the ring while more of it may go at once; nil when there is none
// or Concurrency of t's are in flight (settle puts it back then).
func (f *fanout) take(t *fanTarget) *fanMsg {
	t.qmu.Lock()
	t.ready = false
	if len(t.queue) == 0 || t.paced || t.inFlight >= f.r.set.Concurrency {
		t.qmu.Unlock()
		return nil
	}
	fm := t.queue[0]
	t.queue[0] = nil
	t.queue = t.queue[1:]
	if len(t.queue) == 0 {
		t.queue = nil // the backing array goes with the burst
	}
	t.inFlight++
	t.qmu.Unlock()
	f.push(t)
	return fm
}

// drain takes every event queued for t.
func (t *fanTarget) drain() []*fanMsg {
	t.qmu.Lock()
	defer t.qmu.Unlock()
	q := t.queue
	t.queue = nil
	return q
}

// settle ends a delivery of t's: done says the event was settled (else it
// went back to the queue, to wait for the rate limit).
func (f *fanout) settle(t *fanTarget, done bool) {
	t.qmu.Lock()
	t.inFlight--
	t.qmu.Unlock()
	if done {
		t.pending.Done()
	}
	f.push(t)
}

// pace puts fm back first in t's queue until its rate limit allows the
// next call, in wait: the lane's deliverers serve the other receivers
// meanwhile. It reports whether the caller's reservation of that call's
// token stands (the timer's; else the caller cancels it): a reservation
// cancelled and made again on the timer would lose its turn to the retry
// queue's worker, whose Wait books the limiter's next token ahead.
func (f *fanout) pace(t *fanTarget, fm *fanMsg, wait time.Duration) bool {
	t.qmu.Lock()
	t.queue = append([]*fanMsg{fm}, t.queue...)
	first := !t.paced && !t.closed
	if first {
		t.paced, t.booked = true, true
	}
	t.qmu.Unlock()
	if first {
		time.AfterFunc(wait, func() {
			t.qmu.Lock()
			t.paced = false
			t.qmu.Unlock()
			f.push(t)
		})
	}
	return first
}

// useBooking takes the token the last pace reserved, once its timer has
// fired (before, the token is not due: another of t's calls in flight
// meanwhile reserves its own).
func (t *fanTarget) useBooking() bool {
	t.qmu.Lock()
	defer t.qmu.Unlock()
	if !t.booked || t.paced {
		return false
	}
	t.booked = false
	return true
}

// work is one of a lane's deliverers: it runs until the ring is empty.
func (f *fanout) work(l *lane) {
	// The deliverer's attempts' contexts are children of one of its own:
	// each registers there, in a map no other deliverer locks, rather than
	// in the runtime's, which every deliverer of every lane shares.
	ctx, cancel := context.WithCancel(f.sendCtx)
	defer cancel()
	for t := l.pop(); t != nil; t = l.pop() {
		if fm := f.take(t); fm != nil {
			f.settle(t, f.deliver(ctx, t, fm))
		}
	}
}

// deliver makes one attempt of fm to t, and settles fm's part for t: false
// when fm went back to t's queue, to wait for the rate limit.
func (f *fanout) deliver(ctx context.Context, t *fanTarget, fm *fanMsg) bool {
	// Every attempt's context is the runtime's (through its deliverer's): a
	// retiring target has none in flight once it is retired, and one
	// context of its own per target would cost each attempt a registration
	// in a map gone cold.
	if ctx.Err() != nil || t.retiring.Load() {
		fm.done(f.handoff(t.rc.Name, fm.msg, 0, time.Now()))
		return true
	}
	// Paused (a Retry-After, an open circuit, its probe in flight): the
	// retry queue takes the event, not to be tried before the pause ends
	// (its worker shares the pace), and with it every other event queued
	// for t, one after another. Stored together, they cost the retry
	// queue's consumer a step each: its server looks for each next message
	// of the receiver by a walk of the stream from the last one, and
	// hand-offs made turn by turn lie between those of every other paused
	// receiver of the lane.
	probe, wait, ok := t.pace.admit()
	if !ok {
		notBefore := time.Now().Add(wait)
		stored := f.handoff(t.rc.Name, fm.msg, 0, notBefore)
		fm.done(stored)
		f.handOffQueue(t, notBefore, stored)
		return true
	}
	// The rate limit: not waited for here, where the lane's other
	// receivers would wait too.
	// Allow takes a token without the Reservation Reserve allocates:
	// only a receiver out of tokens books one.
	if !t.useBooking() && !t.pace.lim.Allow() {
		if res := t.pace.lim.Reserve(); res.Delay() > 0 {
			t.pace.release(probe)
			if !f.pace(t, fm, res.Delay()) {
				res.Cancel()
			}
			return false
		}
	}
	n := &Notification{Sink: f.r.sink, Receiver: t.rc.Name, Leaf: t.leaf, GroupKey: fm.group, Events: fm.events, Attempt: 1}
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
		stored := f.handoff(t.rc.Name, fm.msg, 1, time.Now().Add(d.Delay))
		fm.done(stored)
		// The failure paused t (a Retry-After, its circuit opened): what
		// waits for it follows this retry into the queue at once.
		if left, paused := t.pace.paused(); paused {
			f.handOffQueue(t, time.Now().Add(left), stored)
		}
	}
	return true
}

// handOffQueue hands every event queued for t to its retry queue, not to
// be tried before notBefore; stored says whether the hand-off the caller
// just made was stored. Once a hand-off fails, the rest are handed back at
// once (as a failed hand-off is): each waiting out a failure of its own
// would hold the lane's deliverer, or a retiring receiver's removal, for
// as many timeouts.
func (f *fanout) handOffQueue(t *fanTarget, notBefore time.Time, stored bool) {
	for _, queued := range t.drain() {
		if stored {
			stored = f.handoff(t.rc.Name, queued.msg, 0, notBefore)
		}
		queued.done(stored)
		t.pending.Done()
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
