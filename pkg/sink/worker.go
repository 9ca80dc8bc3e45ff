package sink

import (
	"cmp"
	"container/heap"
	"context"
	"errors"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/accountwatch/accountwatch/pkg/deadletter"
	"github.com/accountwatch/accountwatch/pkg/deliverylog"
	"github.com/accountwatch/accountwatch/pkg/describe"
	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/eventbus"
	"github.com/accountwatch/accountwatch/pkg/route"
)

// queueDepth bounds each deliverer's queue.
const queueDepth = 256

// pending is one taken, not yet settled message.
type pending struct {
	msg     jetstream.Msg
	ev      *event.Event
	redrive bool
	// offset corrects the server's delivery count of a handed-off retry: the
	// attempts made before the hand-off, less the deferred first delivery.
	offset int64
	// flap: a change undone inside its route's `for`, sent with its
	// undoing in one notification (flap: once).
	flap bool
}

// attempts counts the delivery attempts of the event, this one included.
func (p *pending) attempts() uint64 {
	n := int64(1)
	if md, err := p.msg.Metadata(); err == nil {
		n = int64(md.NumDelivered)
	}
	return uint64(max(n+p.offset, 1))
}

func (p *pending) streamSeq() uint64 {
	if md, err := p.msg.Metadata(); err == nil {
		return md.Sequence.Stream
	}
	return 0
}

type iter struct {
	it      jetstream.MessagesContext
	redrive bool
}

type inbound struct {
	msg     jetstream.Msg
	redrive bool
}

// group collects the events of one group key between flushes.
type group struct {
	key       string
	leaf      *route.Leaf
	items     []*pending
	due       time.Time
	lastFlush time.Time
	// awaiting holds the stream sequences of events handed back for a retry:
	// the group is not sent again until they are back (or blockedUntil passes,
	// should another replica have taken them), so that a retried change is
	// never overtaken by a later change of the same group.
	awaiting     map[uint64]bool
	blockedUntil time.Time
	// inFlight: a notification of the group is being delivered; the group
	// is not sent again until that one is settled, so a change arriving
	// meanwhile cannot overtake one that fails and goes back for a retry.
	inFlight bool
}

func (g *group) blocked(now time.Time) bool {
	return len(g.awaiting) > 0 && now.Before(g.blockedUntil)
}

// settlement tells the loop that a group's notification is settled, and which of
// its events went back for a later attempt.
type settlement struct {
	key   string
	leaf  *route.Leaf
	seqs  []uint64
	until time.Time
}

// batch is a notification with the messages it settles.
type batch struct {
	n     *Notification
	items []*pending
	// group is set for a group's notification: its settlement is reported.
	group bool
	// more are the parts of the group's notification that follow this one
	// (a critical change is never merged into the recovery after it): each
	// is sent once the one before it is delivered, in order.
	more []*batch
	// queue, when set, picks the deliverer instead of the group key: a
	// reminder goes the way of its account's notifications.
	queue string
	// claims are the reminders this notification sends (KindReminder), or
	// the report run it is (KindReport), handed back should it fail.
	claims []reminderClaim
	report *reportClaim
}

// worker is one receiver's pipeline: two iterators (events and re-drives)
// feeding one loop that owns the groups, and Concurrency deliverers.
type worker struct {
	r     *Runtime
	name  string
	rc    Receiver
	pace  *pacer
	iters []iter

	in     chan inbound
	groups map[string]*group
	// settlements are reported by deliverers without blocking: a note wakes the
	// loop, which takes the list (the loop may itself wait on a full queue).
	settledMu   sync.Mutex
	settledList []settlement
	settledNote chan struct{}
	due         dueHeap
	queues      []chan *batch

	held *heldSet[*pending]

	// forHeld are the changes waiting out their route's `for`, per leaf,
	// account and condition.
	forHeld map[string]*forGroup
	// gate holds new events back after a restart until those the last
	// instance held are handed back (see gate.go); main is the receiver's
	// consumer on the event stream.
	gate *gate
	main jetstream.Consumer

	draining chan struct{}

	// A fan-out receiver's retry queue (lazy set) is read only while
	// something waits in it: retryCons is its consumer, took says a message
	// came since the last idle check, lastGen the signals seen at it.
	lazy      *retrySlot
	retryCons jetstream.Consumer
	took      atomic.Bool
	lastGen   uint64
}

func newWorker(r *Runtime, rc Receiver) *worker {
	w := &worker{
		r: r, name: rc.Name, rc: rc, pace: r.newPacer(rc),
		in:          make(chan inbound, 256),
		settledNote: make(chan struct{}, 1),
		groups:      map[string]*group{},
		forHeld:     map[string]*forGroup{},
		held:        newHeldSet[*pending](),
		draining:    make(chan struct{}),
	}
	// A full queue makes the loop wait for its deliverer: backpressure, which
	// the keep-alive (its own goroutine) makes harmless to held messages.
	for range r.set.Concurrency {
		w.queues = append(w.queues, make(chan *batch, min(r.set.MaxAckPending, queueDepth)))
	}
	// Each receiver's series exist from the start (at 0), so dashboards and
	// rules over them answer before the first event.
	r.metrics.Received.WithLabelValues(r.sink, rc.Name)
	r.metrics.Delivered.WithLabelValues(r.sink, rc.Name)
	r.metrics.Notifications.WithLabelValues(r.sink, rc.Name)
	r.metrics.Latency.WithLabelValues(r.sink, rc.Name)
	r.metrics.Held.WithLabelValues(r.sink, rc.Name)
	return w
}

func (w *worker) stopConsuming() {
	for _, it := range w.iters {
		it.it.Drain()
	}
}

func (w *worker) run(ctx context.Context) {
	var readers sync.WaitGroup
	for _, it := range w.iters {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for {
				m, err := it.it.Next()
				if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
					return
				}
				if err != nil {
					w.r.log.Warn("consume", "sink", w.r.sink, "receiver", w.name, "err", err)
					continue
				}
				w.took.Store(true)
				w.in <- inbound{msg: m, redrive: it.redrive}
			}
		}()
	}
	readersDone := make(chan struct{})
	go func() { readers.Wait(); close(readersDone) }()

	// Deliveries in flight at shutdown finish on this context, which outlives
	// ctx by DrainTimeout.
	sendCtx, cancelSend := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelSend()
	var deliverers sync.WaitGroup
	for _, q := range w.queues {
		deliverers.Add(1)
		go func() {
			defer deliverers.Done()
			w.deliver(ctx, sendCtx, q)
		}()
	}

	keepAliveDone := make(chan struct{})
	defer close(keepAliveDone)
	go w.held.keepAlive(w.r.set.AckWait/3, keepAliveDone)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	sweep := time.NewTicker(time.Minute)
	defer sweep.Stop()
	// Reminders and reports are looked for on their own tick (none
	// without repeat_interval or report in the routing file).
	var looks <-chan time.Time
	if p := w.r.lookEvery(); p > 0 {
		t := time.NewTicker(p)
		defer t.Stop()
		looks = t.C
	}
	if looks != nil {
		w.look(ctx) // a report due at start goes out now, not a tick later
	}
	var idleCheck <-chan time.Time
	if w.lazy != nil {
		t := time.NewTicker(w.r.set.AckWait)
		defer t.Stop()
		idleCheck = t.C
	}
	var gateCheck <-chan time.Time
	if w.gate != nil {
		t := time.NewTicker(w.gate.every)
		defer t.Stop()
		gateCheck = t.C
	}
	for retired := false; ctx.Err() == nil && !retired; {
		w.resetTimer(timer)
		select {
		case m := <-w.in:
			w.accept(m)
		case <-w.settledNote:
			w.settledMu.Lock()
			list := w.settledList
			w.settledList = nil
			w.settledMu.Unlock()
			for _, rt := range list {
				w.settled(rt)
			}
		case <-timer.C:
			w.flushDue(time.Now())
		case <-sweep.C:
			w.sweepGroups(time.Now())
		case <-looks:
			w.look(ctx)
		case <-gateCheck:
			if w.openGate(ctx) {
				gateCheck = nil
			}
		case <-idleCheck:
			retired = w.retireIfIdle(ctx)
		case <-ctx.Done():
		}
	}

	// Drain: stop taking, hand back what waits, let what is in flight finish.
	close(w.draining)
	w.stopConsuming()
	for open := true; open; {
		select {
		case m := <-w.in:
			_ = m.msg.Nak()
		case <-readersDone:
			open = false
		}
	}
	for len(w.in) > 0 {
		_ = (<-w.in).msg.Nak()
	}
	for _, g := range w.groups {
		w.handBack(g.items)
	}
	for _, fg := range w.forHeld {
		w.handBack(fg.items)
	}
	w.handBack(w.gateHeld())
	for _, q := range w.queues {
		close(q)
	}
	finished := make(chan struct{})
	go func() { deliverers.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-time.After(w.r.set.DrainTimeout):
		cancelSend()
		<-finished
	}
}

// accept routes one message: to a group, or settled at once.
func (w *worker) accept(in inbound) {
	p := &pending{msg: in.msg, redrive: in.redrive}
	if !in.redrive && w.gateHolds(p) {
		return // newer than what the last instance held: after those
	}
	w.r.metrics.Received.WithLabelValues(w.r.sink, w.name).Inc()
	if in.redrive && p.attempts() == 1 {
		if _, wait, retry := retryOffset(in.msg.Headers(), time.Now()); retry {
			// A hand-off of the fan-out path: its first delivery here only
			// waits out the backoff (not decoded: it is seen again when due).
			_ = in.msg.NakWithDelay(wait)
			return
		}
	}
	ev, err := eventbus.DecodeMsg(in.msg)
	if err != nil {
		w.hold(p)
		w.deadLetter(p, &Error{Reason: ReasonInvalidEvent, Permanent: true, Err: err})
		return
	}
	p.ev = ev
	now := w.r.now()
	if in.redrive {
		if before, _, retry := retryOffset(in.msg.Headers(), time.Now()); retry {
			// A hand-off's later deliveries are attempts.
			p.offset = int64(before) - 1
			w.hold(p)
			w.enqueue(&batch{n: &Notification{Sink: w.r.sink, Receiver: w.name, Leaf: ownLeaf(w.name), GroupKey: "retry|" + ev.ID(), Events: []*event.Event{ev}}, items: []*pending{p}})
			return
		}
		// An operator asked for this one: no routing, silences or mute windows.
		w.hold(p)
		to := in.msg.Headers().Get(deadletter.HdrRedriveTo)
		why := "re-driven by an operator"
		if of := in.msg.Headers().Get(deadletter.HdrRedriveOf); of != "" {
			why = "re-drive of dead letter " + of
		}
		if p.attempts() == 1 { // once per re-drive, not per attempt of it
			w.r.record(deliverylog.Record{Receiver: w.name, EventID: ev.ID(), Outcome: deliverylog.Redriven, Destination: to, Reason: why, Redrive: true})
		}
		w.enqueue(&batch{n: &Notification{Sink: w.r.sink, Receiver: w.name, GroupKey: "redrive|" + ev.ID(), Events: []*event.Event{ev}, Redrive: true,
			RedriveTo: to}, items: []*pending{p}})
		return
	}
	if w.rc.Filter != nil {
		if !w.rc.Filter(ev) {
			_ = in.msg.Ack() // not for this receiver
			return
		}
		w.hold(p)
		w.enqueue(&batch{n: &Notification{Sink: w.r.sink, Receiver: w.name, Leaf: ownLeaf(w.name), GroupKey: "event|" + ev.ID(), Events: []*event.Event{ev}}, items: []*pending{p}})
		return
	}
	if w.r.alert != nil {
		// Every receiver reads every event: the first keeps the
		// inhibition sources current, for every receiver and replica.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		w.r.alert.observe(ctx, ev, describe.Headline(ev))
		cancel()
		if w.r.remembers() {
			// Its own deadline: a slow inhibition write must not cost the
			// reminder where the account stands now.
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			w.r.alert.seen(ctx, w.name, ev)
			cancel()
		}
	}
	leaf := w.r.tree.LeafFor(ev, w.name)
	if leaf == nil {
		_ = in.msg.Ack() // not for this receiver
		return
	}
	if w.r.silences != nil {
		if id, ok := w.r.silences.Silenced(ev, now); ok {
			w.r.metrics.Suppressed.WithLabelValues(w.r.sink, w.name, "silenced").Inc()
			w.r.log.Debug("silenced", "sink", w.r.sink, "receiver", w.name, "event", ev.ID(), "silence", id)
			w.r.record(deliverylog.Record{Receiver: w.name, EventID: ev.ID(), Outcome: deliverylog.Silenced, Reason: id})
			_ = in.msg.Ack()
			return
		}
	}
	if until, interval, muted := leaf.MutedBy(ev, now); muted {
		w.r.metrics.Suppressed.WithLabelValues(w.r.sink, w.name, "muted").Inc()
		u := until.UTC()
		w.r.record(deliverylog.Record{Receiver: w.name, EventID: ev.ID(), Outcome: deliverylog.Muted, Reason: interval, Until: &u})
		_ = in.msg.NakWithDelay(until.Sub(now))
		return
	}
	w.hold(p)
	if leaf.For > 0 && w.pendingFor(p, leaf) {
		return // waits out the route's pending period
	}
	if w.group(p, leaf) {
		w.flushDue(time.Now())
	}
}

// group puts p in its group on leaf; true when the group is due now.
func (w *worker) group(p *pending, leaf *route.Leaf) bool {
	ev := p.ev
	key, wait := leaf.GroupKey(ev), leaf.GroupWait
	if leaf.Immediate(ev) {
		// Critical: no digest window, but the account's critical changes
		// of critical_group_wait go together (a BSS freeze is two).
		key, wait = leaf.ID+"|critical|"+string(ev.Data.Provider)+"|"+ev.Data.Instance+"|"+ev.Data.AccountID, leaf.CriticalGroupWait
	}
	g := w.groups[key]
	t := time.Now()
	if g == nil {
		g = &group{key: key, leaf: leaf, due: t.Add(wait)}
		w.groups[key] = g
		heap.Push(&w.due, dueEntry{at: g.due, key: key})
	} else if len(g.items) == 0 {
		g.due = g.lastFlush.Add(leaf.GroupInterval)
		if g.due.Before(t) {
			g.due = t
		}
		heap.Push(&w.due, dueEntry{at: g.due, key: key})
	}
	if p.attempts() > 1 && g.due.After(t) {
		// A retry already waited its backoff (or its Retry-After); it does not
		// wait a group interval on top.
		g.due = t
		heap.Push(&w.due, dueEntry{at: g.due, key: key})
	}
	g.items = append(g.items, p)
	if g.awaiting[p.streamSeq()] {
		delete(g.awaiting, p.streamSeq())
		if len(g.awaiting) == 0 && g.due.After(t) {
			g.due = t
			heap.Push(&w.due, dueEntry{at: g.due, key: key})
		}
	}
	return !g.due.After(t)
}

// settled is a group's notification settled: the group may be sent again,
// after the events it handed back for a retry have returned.
func (w *worker) settled(rt settlement) {
	g := w.groups[rt.key]
	if g == nil {
		return
	}
	g.inFlight = false
	if len(rt.seqs) > 0 {
		if g.awaiting == nil {
			g.awaiting = map[uint64]bool{}
		}
		for _, s := range rt.seqs {
			g.awaiting[s] = true
		}
		// Past this, a retry taken by another replica no longer holds the group.
		g.blockedUntil = rt.until.Add(w.r.set.AckWait)
	}
	if len(g.items) > 0 {
		g.due = g.lastFlush.Add(g.leaf.GroupInterval)
		if now := time.Now(); g.due.Before(now) {
			g.due = now
		}
		heap.Push(&w.due, dueEntry{at: g.due, key: g.key})
	}
}

func (w *worker) resetTimer(t *time.Timer) {
	next := time.Hour
	if len(w.due) > 0 {
		next = max(time.Until(w.due[0].at), 0)
	}
	t.Reset(next)
}

// flushDue sends every group whose time has come.
func (w *worker) flushDue(now time.Time) {
	for len(w.due) > 0 && !w.due[0].at.After(now) {
		e := heap.Pop(&w.due).(dueEntry)
		if k, ok := strings.CutPrefix(e.key, forPrefix); ok {
			w.forDue(k, e.at)
			continue
		}
		g := w.groups[e.key]
		if g == nil || !g.due.Equal(e.at) || len(g.items) == 0 || g.inFlight {
			continue // stale entry, or one its settlement will push again
		}
		if g.blocked(now) {
			g.due = g.blockedUntil
			heap.Push(&w.due, dueEntry{at: g.due, key: g.key})
			continue
		}
		g.awaiting = nil
		// Stream order is the order changes happened in; retried events may
		// have come back after later ones.
		slices.SortStableFunc(g.items, func(a, b *pending) int { return cmp.Compare(a.streamSeq(), b.streamSeq()) })
		items := w.inhibit(g.items)
		if len(items) == 0 {
			g.items = nil // nothing sent: the group's interval does not start
			continue
		}
		// A group of one event ("...") gathers no other: nothing to serialise.
		tracked := !slices.Contains(g.leaf.GroupBy, "...")
		var first *batch
		for i, part := range parts(items) {
			evs := make([]*event.Event, len(part))
			for i, p := range part {
				evs[i] = p.ev
			}
			n := &Notification{Sink: w.r.sink, Receiver: w.name, Leaf: g.leaf, GroupKey: g.key, Events: evs}
			if len(evs) > 1 {
				id := n.ID()
				for _, e := range evs {
					w.r.record(deliverylog.Record{Receiver: w.name, EventID: e.ID(), Outcome: deliverylog.Grouped, Notification: id, Events: len(evs), Reason: "route " + g.leaf.ID})
				}
			}
			b := &batch{n: n, items: part, group: tracked}
			if i == 0 {
				first = b
			} else {
				first.more = append(first.more, b)
			}
		}
		w.enqueue(first)
		// The interval runs from when the flush was due, not from when a
		// busy machine woke the worker: counted from the wake-up, every
		// late timer pushed the group's schedule back for good (Slack's
		// 1 msg/s a channel fell to 0.92 under load). Later than an
		// interval, it starts again from now.
		start := now
		if late := now.Sub(e.at); late >= 0 && late < g.leaf.GroupInterval {
			start = e.at
		}
		g.items, g.lastFlush, g.inFlight = nil, start, tracked
	}
}

// inhibit settles the events an inhibit rule holds back (recorded
// "inhibited", acknowledged: a source holds) and returns the others.
func (w *worker) inhibit(items []*pending) []*pending {
	if w.r.alert == nil {
		return items
	}
	kept := items[:0:0]
	for _, p := range items {
		in, ok := w.r.alert.inhibitedBy(p.ev)
		if !ok {
			kept = append(kept, p)
			continue
		}
		w.r.metrics.Suppressed.WithLabelValues(w.r.sink, w.name, "inhibited").Inc()
		w.r.record(deliverylog.Record{Receiver: w.name, EventID: p.ev.ID(), Outcome: deliverylog.Inhibited, Reason: in.String()})
		_ = p.msg.Ack()
		w.release(p)
	}
	return kept
}

// parts splits a group's events (in order) so that a critical change never
// goes out merged into the recovery after it: the recovery starts a
// notification of its own, sent after the critical one.
func parts(items []*pending) [][]*pending {
	var out [][]*pending
	var cur []*pending
	critical := false
	for _, p := range items {
		if critical && describe.IsRecovery(p.ev) && !p.flap {
			out, cur, critical = append(out, cur), nil, false
		}
		cur = append(cur, p)
		critical = critical || p.ev.Data.Severity == event.SeverityCritical
	}
	return append(out, cur)
}

// sweepGroups forgets groups that have been empty for a whole interval, so
// the next event of such a group waits group_wait again, as a new one.
func (w *worker) sweepGroups(now time.Time) {
	for k, g := range w.groups {
		if len(g.items) == 0 && !g.inFlight && !g.blocked(now) && now.Sub(g.lastFlush) > g.leaf.GroupInterval {
			delete(w.groups, k)
		}
	}
}

func (w *worker) enqueue(b *batch) {
	h := fnv.New32a()
	if b.queue != "" {
		h.Write([]byte(b.queue))
	} else {
		h.Write([]byte(b.n.GroupKey))
	}
	w.queues[h.Sum32()%uint32(len(w.queues))] <- b
}

func (w *worker) hold(p *pending) {
	w.r.metrics.Held.WithLabelValues(w.r.sink, w.name).Set(float64(w.held.add(p, p.msg)))
}

func (w *worker) release(p *pending) {
	w.r.metrics.Held.WithLabelValues(w.r.sink, w.name).Set(float64(w.held.remove(p)))
}

func (w *worker) handBack(items []*pending) {
	for _, p := range items {
		_ = p.msg.Nak()
		w.release(p)
	}
}

// deliver sends the batches of one queue, in order.
func (w *worker) deliver(ctx, sendCtx context.Context, q chan *batch) {
	for b := range q {
		rt := settlement{key: b.n.GroupKey, leaf: b.n.Leaf}
		var sent bool
		for i, part := range append([]*batch{b}, b.more...) {
			if i > 0 && !sent {
				// An earlier part failed: the rest follow it back, in order.
				w.handBackLater(part.items, &rt)
				continue
			}
			sent = w.deliverOne(ctx, sendCtx, part, &rt)
		}
		if b.group {
			w.report(rt)
		}
	}
}

// deliverOne sends one notification and settles it; true when it was delivered.
func (w *worker) deliverOne(ctx, sendCtx context.Context, b *batch, rt *settlement) bool {
	select {
	case <-w.draining:
		w.handBack(b.items)
		w.unclaim(b)
		return false
	default:
	}
	probe, err := w.pace.wait(ctx)
	if err != nil {
		w.handBack(b.items)
		w.unclaim(b)
		return false
	}
	for _, p := range b.items {
		b.n.Attempt = max(b.n.Attempt, p.attempts())
	}
	sctx, cancel := context.WithTimeout(sendCtx, w.r.set.SendTimeout)
	start := time.Now()
	err = w.r.send(sctx, b.n)
	took := time.Since(start)
	cancel()
	if b.n.Kind != KindEvents {
		w.settleClaims(b, err, start, took, probe)
		return err == nil
	}
	w.settle(b, err, start, took, rt, probe)
	if err == nil && w.r.remembers() {
		w.notified(b.n)
	}
	return err == nil
}

// handBackLater returns the parts of a notification that were not sent
// because an earlier part failed: they wait as long as it does.
func (w *worker) handBackLater(items []*pending, rt *settlement) {
	wait := max(time.Until(rt.until), time.Second)
	for _, p := range items {
		_ = p.msg.NakWithDelay(wait)
		rt.seqs = append(rt.seqs, p.streamSeq())
		w.release(p)
	}
	if u := time.Now().Add(wait); u.After(rt.until) {
		rt.until = u
	}
}

// report tells the loop that a group's notification is settled.
func (w *worker) report(rt settlement) {
	w.settledMu.Lock()
	w.settledList = append(w.settledList, rt)
	w.settledMu.Unlock()
	select {
	case w.settledNote <- struct{}{}:
	default:
	}
}

// settle applies the acknowledgement policy to every message of a batch and
// records each one's attempt; what goes back for a retry is noted in rt. The
// pace learns of the attempt once (probe: it was an open circuit's probe).
func (w *worker) settle(b *batch, err error, start time.Time, took time.Duration, rt *settlement, probe bool) {
	if err != nil {
		e := Classify(err)
		w.r.log.Warn("delivery failed", "sink", w.r.sink, "receiver", w.name, "group", b.n.GroupKey, "events", len(b.items), "reason", e.Reason, "permanent", e.Permanent, "err", err)
	}
	now := time.Now()
	delivered := 0
	if len(b.items) == 0 {
		w.pace.release(probe) // nothing to learn from
	}
	for i, p := range b.items {
		d := Decide(err, p.attempts(), w.r.set)
		if i == 0 {
			w.pace.attempted(d, probe)
		}
		w.r.recordAttempt(b.n, p.ev, p.attempts(), start, took, d)
		switch d.Action {
		case Ack:
			_ = p.msg.Ack()
			w.release(p)
			w.r.metrics.Latency.WithLabelValues(w.r.sink, w.name).Observe(now.Sub(p.ev.Cloud.Time()).Seconds())
			delivered++
		case DeadLetter:
			w.deadLetter(p, d.Err)
		case Retry:
			_ = p.msg.NakWithDelay(d.Delay)
			rt.seqs = append(rt.seqs, p.streamSeq())
			if until := now.Add(d.Delay); until.After(rt.until) {
				rt.until = until
			}
			w.release(p)
			w.r.metrics.Retried.WithLabelValues(w.r.sink, w.name, string(d.Err.Reason)).Inc()
		}
	}
	if delivered > 0 {
		w.r.metrics.Delivered.WithLabelValues(w.r.sink, w.name).Add(float64(delivered))
		w.r.metrics.Notifications.WithLabelValues(w.r.sink, w.name).Inc()
	}
}

// deadLetter stores p with its error, then terminates it; when the dead letter
// cannot be stored, p is handed back for a later attempt instead: never both
// lost and terminated.
func (w *worker) deadLetter(p *pending, e *Error) {
	defer w.release(p)
	if !w.r.deadLetter(context.Background(), w.name, p.msg, p.ev, e, p.attempts()) {
		_ = p.msg.NakWithDelay(w.r.set.backoff(p.attempts(), rand.Float64()))
		return
	}
	_ = p.msg.TermWithReason(string(e.Reason))
}

// dueHeap orders groups by when they are due; entries of a group whose due
// time moved are left in and skipped when popped.
type dueEntry struct {
	at  time.Time
	key string
}

type dueHeap []dueEntry

func (h dueHeap) Len() int           { return len(h) }
func (h dueHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h dueHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *dueHeap) Push(x any)        { *h = append(*h, x.(dueEntry)) }
func (h *dueHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}
