package sink

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/accountwatch/accountwatch/pkg/deadletter"
	"github.com/accountwatch/accountwatch/pkg/eventbus"
)

// The retry queues of fan-out mode. A receiver's retries (and its re-driven
// dead letters) wait in its own subjects of AW_REDRIVE, read by a durable
// consumer of its own: one sick receiver's backlog never holds another's,
// and a parked one's waits unread. That consumer exists only while the
// receiver has something there. It is created when a hand-off is stored for
// the receiver (or when one is seen on a core subscription to the sink's
// re-drive subjects: another replica's hand-off, an operator's re-drive),
// and deleted once it has been empty, with nothing held, for a whole AckWait.
//
// A consumer per receiver costs the server at every receiver: on a work
// queue each new consumer's filter is checked against every other's
// (quadratic: ten thousand took minutes to create) and every stored message
// is matched against every consumer's filter, and each consumer keeps its
// state and goroutines on both sides. With consumers for the receivers that
// have something to retry only, ten thousand endpoints of which a few
// hundred fail cost a few hundred consumers.
//
// A signal can be missed (a core message is not stored: a reconnect, a slow
// subscriber): a scan of the stream's subjects, at start and every
// rescanEvery, finds every receiver with something waiting. The consumers an
// older version kept for every receiver (same names) are found by the scan
// at start, read, and deleted once empty like any other.

// rescanEvery is how often the retry queues are scanned for a receiver with
// something waiting and no consumer reading it.
const rescanEvery = 2 * time.Minute

// restartAfter is how long a retry consumer that could not be started waits
// before it is tried again.
const restartAfter = 5 * time.Second

type retries struct {
	r     *Runtime
	mu    sync.Mutex
	slots map[string]*retrySlot
}

// retrySlot is one receiver's retry queue. start serialises starting its
// worker with the receiver's activation and deactivation; the other fields
// are guarded by retries.mu.
type retrySlot struct {
	start sync.Mutex
	// rc is the receiver while it is active (added, not parked).
	rc *Receiver
	// wanted: something may wait in the queue (a signal or the scan said
	// so); cleared when an idle worker retires.
	wanted bool
	// running: a worker reads the queue, or is being started.
	running bool
	// gen counts the signals: an idle worker retires only if none came
	// while it decided.
	gen uint64
	// older: something was seen waiting under the older layout of
	// subjects (one per event), which the worker then reads too; cleared
	// when a worker reading both retires empty.
	older bool
}

func newRetries(r *Runtime) *retries { return &retries{r: r, slots: map[string]*retrySlot{}} }

func (q *retries) slot(name string) *retrySlot {
	s := q.slots[name]
	if s == nil {
		s = &retrySlot{}
		q.slots[name] = s
	}
	return s
}

// want says something may wait in name's retry queue: its worker starts
// unless it runs (or the receiver is parked or unknown: then on its Add).
// It is called for every hand-off: cheap unless it starts the worker.
func (q *retries) want(name string) {
	q.mu.Lock()
	s := q.slot(name)
	s.gen++
	s.wanted = true
	launch := s.rc != nil && !s.running
	if launch {
		s.running = true
	}
	q.mu.Unlock()
	if launch {
		go q.launch(name, s)
	}
}

// launch starts a worker that want or exited decided on (running is set).
func (q *retries) launch(name string, s *retrySlot) {
	if err := q.start(name, s); err != nil {
		if q.r.stopped() {
			return
		}
		q.r.log.Warn("retry queue not read; tried again", "sink", q.r.sink, "receiver", name, "in", restartAfter, "err", err)
		time.AfterFunc(restartAfter, func() {
			if !q.r.stopped() {
				q.want(name)
			}
		})
	}
}

// start runs the worker of s's receiver, if it is still active; running is
// set on entry and cleared on failure.
func (q *retries) start(name string, s *retrySlot) error {
	s.start.Lock()
	defer s.start.Unlock()
	q.mu.Lock()
	rc := s.rc
	q.mu.Unlock()
	var err error
	if rc != nil {
		err = q.r.startWorker(*rc, s)
	}
	if rc == nil || err != nil {
		q.mu.Lock()
		s.running = false
		q.mu.Unlock()
	}
	return err
}

// activate makes rc's retry queue read when something waits in it (Add).
func (q *retries) activate(rc Receiver) error {
	q.mu.Lock()
	s := q.slot(rc.Name)
	q.mu.Unlock()
	s.start.Lock()
	q.mu.Lock()
	s.rc = &rc
	launch := s.wanted && !s.running
	if launch {
		s.running = true
	}
	q.mu.Unlock()
	s.start.Unlock()
	if launch {
		return q.start(rc.Name, s)
	}
	return nil
}

// deactivate stops name's retry queue from being started (Park, Remove):
// the caller stops a running worker next. forget drops what is known of it
// (Remove).
func (q *retries) deactivate(name string, forget bool) {
	q.mu.Lock()
	s := q.slots[name]
	q.mu.Unlock()
	if s == nil {
		return
	}
	s.start.Lock() // waits out a start in progress
	q.mu.Lock()
	s.rc = nil
	if forget && q.slots[name] == s {
		delete(q.slots, name)
	}
	q.mu.Unlock()
	s.start.Unlock()
}

// exited is called when s's worker has stopped: it starts again if
// something came meanwhile (a signal after an idle worker decided to retire).
func (q *retries) exited(name string, s *retrySlot) {
	q.mu.Lock()
	s.running = false
	launch := s.wanted && s.rc != nil && !q.r.stopped()
	if launch {
		s.running = true
	}
	q.mu.Unlock()
	if launch {
		go q.launch(name, s)
	}
}

// signals is how many signals s has seen.
func (q *retries) signals(s *retrySlot) uint64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return s.gen
}

// retire clears s's wanted flag unless a signal came since gen: true when
// the idle worker may go. A worker that read both layouts leaves nothing of
// the older one.
func (q *retries) retire(s *retrySlot, gen uint64, readBoth bool) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if s.gen != gen {
		return false
	}
	s.wanted = false
	if readBoth {
		s.older = false
	}
	return true
}

// saw says a message is stored at subject in the sink's retry queues
// (prefix): its receiver is wanted, and one under the older layout read.
func (q *retries) saw(subject, prefix string) {
	name := receiverOf(subject, prefix)
	if name == "" {
		return
	}
	if subject != deadletter.RedriveSubject(q.r.sink, name) {
		q.mu.Lock()
		q.slot(name).older = true
		q.mu.Unlock()
	}
	q.want(name)
}

// olderLayout says whether s's worker must read the older layout too.
func (q *retries) olderLayout(s *retrySlot) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return s.older
}

// follow signals a receiver for every message stored in the sink's retry
// queues, whoever stored it, and scans them now and every rescanEvery
// until ctx ends. The first scan is done when it returns.
func (q *retries) follow(ctx context.Context) {
	prefix := eventbus.RedriveRoot + q.r.sink + "."
	sub, err := q.r.js.Conn().Subscribe(prefix+">", func(m *nats.Msg) { q.saw(m.Subject, prefix) })
	if err != nil {
		q.r.log.Warn("retry queues not followed; scanned every "+rescanEvery.String(), "sink", q.r.sink, "err", err)
	} else {
		_ = sub.SetPendingLimits(-1, 256<<20)
	}
	q.scan(ctx)
	go func() {
		if sub != nil {
			defer func() { _ = sub.Unsubscribe() }()
		}
		t := time.NewTicker(rescanEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				q.scan(ctx)
			}
		}
	}()
}

// scan signals every receiver with a message waiting in its retry queue,
// or a consumer on it (one left by an older version, which kept one for
// every receiver: read until empty, then deleted).
func (q *retries) scan(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	s, err := q.r.js.Stream(ctx, eventbus.StreamRedrive)
	if err != nil {
		if !errors.Is(err, context.Canceled) {
			q.r.log.Warn("retry queues not scanned", "sink", q.r.sink, "err", err)
		}
		return
	}
	names := s.ConsumerNames(ctx)
	for n := range names.Name() {
		if rest, ok := strings.CutPrefix(n, q.r.sink+"_"); ok {
			if name, ok := strings.CutSuffix(rest, "_redrive"); ok && name != "" {
				q.want(name)
			}
		}
	}
	if err := names.Err(); err != nil && !errors.Is(err, jetstream.ErrEndOfData) {
		q.r.log.Warn("retry consumers not listed", "sink", q.r.sink, "err", err)
	}
	prefix := eventbus.RedriveRoot + q.r.sink + "."
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(prefix+">"))
	if err != nil {
		q.r.log.Warn("retry queues not scanned", "sink", q.r.sink, "err", err)
		return
	}
	for subj := range info.State.Subjects {
		q.saw(subj, prefix)
	}
}

// receiverOf is the receiver of a retry-queue subject (prefix, receiver, rest).
func receiverOf(subject, prefix string) string {
	rest, ok := strings.CutPrefix(subject, prefix)
	if !ok {
		return ""
	}
	name, _, _ := strings.Cut(rest, ".")
	return name
}

// retireIfIdle is an idle check of a fan-out receiver's retry worker: when
// nothing was taken, held or signalled since the last check and the server
// says its consumer is empty, the consumer is deleted and the worker stops
// (true). A hand-off stored meanwhile starts it again (exited). A consumer
// deleted under it (another replica retired it, an operator deleted it)
// stops the worker too, still wanted: exited starts it again.
func (w *worker) retireIfIdle(ctx context.Context) bool {
	q, s := w.r.fan.retries, w.lazy
	took := w.took.Swap(false)
	gen := q.signals(s)
	if took || w.held.len() > 0 || len(w.in) > 0 {
		w.lastGen = gen
		return false
	}
	ictx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	info, err := w.retryCons.Info(ictx)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		w.r.log.Info("retry consumer gone; made again", "sink", w.r.sink, "receiver", w.name)
		w.stopConsuming()
		return true
	}
	idle := gen == w.lastGen
	w.lastGen = gen
	if err != nil || !idle || info.NumPending > 0 || info.NumAckPending > 0 || info.NumRedelivered > 0 ||
		!q.retire(s, gen, info.Config.FilterSubject == deadletter.RedriveFilter(w.r.sink, w.name)) {
		return false
	}
	w.stopConsuming()
	dctx, dcancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer dcancel()
	if err := w.r.js.DeleteConsumer(dctx, eventbus.StreamRedrive, info.Name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		w.r.log.Warn("idle retry consumer not deleted", "sink", w.r.sink, "receiver", w.name, "err", err)
	}
	return true
}
