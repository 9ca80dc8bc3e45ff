// Package sink is the runtime every notifier stands on. Each receiver gets its
// own durable pull consumer on the event stream (so one slow or failing
// receiver never holds back another), routes each event through the routing
// tree, drops what a silence covers, defers what a mute interval covers, groups
// the rest per route (group_wait / group_interval), paces deliveries with a
// per-receiver rate limit, and settles every event by one policy (Decide):
//
//	success                      → Ack
//	permanent error              → dead letter, then Term
//	rate limited (Retry-After)   → NakWithDelay(retry-after), the receiver pauses
//	other error                  → NakWithDelay(exponential backoff with jitter)
//	attempts exhausted           → dead letter, then Term
//
// An event is acknowledged only after its side effect, and terminated only
// after its dead letter is stored, so nothing is lost; receivers use the event
// id to make at-least-once exactly-once. Every outcome of every receiver (each
// attempt, and each event silenced, muted, grouped, dead-lettered or
// re-driven) is recorded in the delivery log (WithDeliveryLog). Serve holds
// the wiring every notifier shares; a notifier brings its Sender.
package sink

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/accountwatch/accountwatch/pkg/deadletter"
	"github.com/accountwatch/accountwatch/pkg/deliverylog"
	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/eventbus"
	"github.com/accountwatch/accountwatch/pkg/ops"
	"github.com/accountwatch/accountwatch/pkg/route"
	"github.com/accountwatch/accountwatch/pkg/standing"
)

// Notification is what a receiver delivers: one or more events one route
// grouped together, or one re-driven event.
type Notification struct {
	Sink     string
	Receiver string
	// Leaf is the route the events ended on (nil for a re-drive).
	Leaf     *route.Leaf
	GroupKey string
	Events   []*event.Event
	// Redrive is set when an operator re-drove the event from the dead letters.
	Redrive bool
	// Attempt counts this delivery's attempts, this one included (the most of
	// its events').
	Attempt uint64
	// RedriveTo is the ad-hoc destination of a re-drive to
	// deadletter.AdhocReceiver (a Slack channel, an email address).
	RedriveTo string
	// Receipt is what the Sender tells the delivery log about this attempt.
	Receipt Receipt
	// Kind is KindEvents (the events' own notification), KindReminder (the
	// accounts of Events are still in bad standing: repeat_interval) or
	// KindReport (a standing report: Report, no Events).
	Kind   string
	Report *standing.Report

	id string // ID, once computed
}

// Kinds of a notification.
const (
	KindEvents   = ""
	KindReminder = deliverylog.KindReminder
	KindReport   = deliverylog.KindReport
)

// Worst is the notification's most severe event, the latest of those; what
// a notification's title and colour say (nil for a report).
func (n *Notification) Worst() *event.Event {
	var w *event.Event
	for _, e := range n.Events {
		if w == nil || e.Data.Severity.Rank() >= w.Data.Severity.Rank() {
			w = e
		}
	}
	return w
}

// Latest is the newest event of each account of the notification, in the
// order the accounts first appear: where each account stands now.
func (n *Notification) Latest() []*event.Event {
	idx := map[string]int{}
	var out []*event.Event
	for _, e := range n.Events {
		k := accountToken(e)
		if i, ok := idx[k]; ok {
			if e.Data.Chain.Seq >= out[i].Data.Chain.Seq {
				out[i] = e
			}
			continue
		}
		idx[k] = len(out)
		out = append(out, e)
	}
	return out
}

// Receipt is what a Sender knows about an attempt that the runtime cannot:
// it fills in what applies, success or not.
type Receipt struct {
	// Destination is where the attempt went: a channel, addresses, a URL (the
	// runtime redacts any secret in it before it is logged).
	Destination string
	// Status is the remote's answer code (an HTTP status, an SMTP reply code).
	Status int
	// Response is the start of the remote's answer.
	Response string
	// Outcome, when set, replaces deliverylog.Failed for a failure with a
	// consequence of its own (deliverylog.Disabled).
	Outcome string
}

// ID names a notification of several events in the delivery log: the same
// events of the same group to the same receiver have the same id.
func (n *Notification) ID() string {
	if n.id != "" {
		return n.id
	}
	h := sha256.New()
	h.Write([]byte(n.Sink + "\x00" + n.Receiver + "\x00" + n.GroupKey))
	for _, e := range n.Events {
		h.Write([]byte("\x00" + e.ID()))
	}
	n.id = "n_" + hex.EncodeToString(h.Sum(nil)[:8])
	return n.id
}

// Sender delivers notifications; it is what a notifier implements. It returns
// nil once the side effect happened, or an error classified with Permanent,
// Transient or RateLimited (anything else counts as transient).
type Sender interface {
	Send(ctx context.Context, n *Notification) error
}

// Lanes is what a Sender may also tell the fan-out: which destination a
// receiver's deliveries share with others (a webhook host) and how many may
// run at once to it (its connections). The fan-out then runs that many
// deliverers per lane, taking the lane's receivers in turn, rather than a
// deliverer per receiver all waiting for the destination: ten thousand
// endpoints on a few hosts made ten thousand parked goroutines, each
// resumed cold for one delivery. A receiver with no lane (an empty key) is a
// lane of its own, Concurrency wide.
type Lanes interface {
	Lane(receiver string) (key string, width int)
}

// Silencer answers whether a silence covers an event; *silence.Store is one.
type Silencer interface {
	Silenced(e *event.Event, t time.Time) (string, bool)
}

// Receiver is one destination of a notifier with its own consumer and pace.
type Receiver struct {
	Name string
	// RateLimit is the most notifications per second (0: unlimited), Burst the
	// most sent back to back.
	RateLimit float64
	Burst     int
	// Filter, when set, replaces the routing tree for this receiver: it takes
	// the events Filter accepts, each on its own at once (a webhook endpoint's
	// subscription). Silences and mute intervals do not apply to it.
	Filter func(*event.Event) bool
	// RedriveOnly receivers take only re-drives (deadletter.AdhocReceiver):
	// they read no event stream.
	RedriveOnly bool
}

// ownLeaf is the route of a receiver with its own Filter: every event alone, at once.
func ownLeaf(name string) *route.Leaf {
	return &route.Leaf{ID: "filter", Receiver: name, GroupBy: []string{"..."}}
}

// ErrConfig is returned for a runtime that cannot be built as asked.
var ErrConfig = errors.New("sink configuration")

// Runtime runs one consumer pipeline per receiver of a notifier.
type Runtime struct {
	mu      sync.Mutex
	running context.Context // set by Run; Add starts workers under it
	ready   chan struct{}
	// start gates a fan-out runtime's shared consumer (Start)
	start     chan struct{}
	startOnce sync.Once
	workers   map[string]*handle
	wg        sync.WaitGroup

	fanout bool
	fan    *fanout

	js           jetstream.JetStream
	sink         string
	tree         *route.Tree
	receivers    []Receiver
	sender       Sender
	set          Settings
	silences     Silencer
	log          *slog.Logger
	metrics      *Metrics
	now          func() time.Time
	dlq          *deadletter.Writer
	deliveries   DeliveryLog
	failuresOnly bool
	// alert is the alerting state (inhibition, reminders, reports), when
	// the routing tree has any of those.
	alert  *alerting
	writes *ops.Outcomes // dead letters and hand-offs stored, for readiness
}

// Option configures a Runtime.
type Option func(*Runtime)

// WithSettings replaces DefaultSettings.
func WithSettings(s Settings) Option { return func(r *Runtime) { r.set = s } }

// WithSilences checks each event against s.
func WithSilences(s Silencer) Option { return func(r *Runtime) { r.silences = s } }

// WithLogger logs to l.
func WithLogger(l *slog.Logger) Option { return func(r *Runtime) { r.log = l } }

// WithMetrics records to m (shared by the runtimes of one process).
func WithMetrics(m *Metrics) Option { return func(r *Runtime) { r.metrics = m } }

// WithClock replaces time.Now for routing decisions (mute intervals, silences).
func WithClock(now func() time.Time) Option { return func(r *Runtime) { r.now = now } }

// DeliveryLog is where the runtime records outcomes; *deliverylog.Log is one.
type DeliveryLog interface {
	Add(deliverylog.Record) error
}

// WithDeliveryLog records every outcome in l. failuresOnly leaves out the
// first-attempt successes that are no re-drive (high webhook volumes): a
// failed attempt, the success that ends a run of them and every non-delivery
// are still recorded.
func WithDeliveryLog(l DeliveryLog, failuresOnly bool) Option {
	return func(r *Runtime) { r.deliveries, r.failuresOnly = l, failuresOnly }
}

// New builds the runtime of sink (a notifier's name: "slack", "email") for
// receivers, delivering through sender.
func New(js jetstream.JetStream, sink string, tree *route.Tree, receivers []Receiver, sender Sender, opts ...Option) (*Runtime, error) {
	r := &Runtime{ready: make(chan struct{}), start: make(chan struct{}), writes: ops.NewOutcomes("storing dead letters and retries"), js: js, sink: sink, tree: tree, receivers: receivers, sender: sender, set: DefaultSettings(), log: slog.New(slog.DiscardHandler), now: time.Now}
	for _, o := range opts {
		o(r)
	}
	if !route.ValidName(sink) {
		return nil, fmt.Errorf("%w: sink name %q (letters, digits, - and _)", ErrConfig, sink)
	}
	if err := r.set.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if err := r.set.prepare(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if len(receivers) == 0 && tree != nil {
		return nil, fmt.Errorf("%w: no receivers", ErrConfig)
	}
	seen := map[string]bool{}
	for _, rc := range receivers {
		if err := checkReceiver(rc, tree); err != nil || seen[rc.Name] {
			return nil, fmt.Errorf("%w: receiver name %q (unique; letters, digits, - and _)%s", ErrConfig, rc.Name, errSuffix(err))
		}
		seen[rc.Name] = true
	}
	if r.metrics == nil {
		r.metrics = NewMetrics(prometheus.NewRegistry())
	}
	r.dlq = deadletter.NewWriter(js)
	if r.fanout {
		if tree != nil {
			return nil, fmt.Errorf("%w: fan-out receivers route by their own filters, not a tree", ErrConfig)
		}
		r.fan = newFanout(r)
	}
	return r, nil
}

func checkReceiver(rc Receiver, tree *route.Tree) error {
	switch {
	case !route.ValidName(rc.Name):
		return errors.New("bad name")
	case rc.RateLimit < 0:
		return fmt.Errorf("rate limit %v (want >= 0)", rc.RateLimit)
	case rc.Filter == nil && tree == nil && !rc.RedriveOnly:
		return errors.New("no routing tree and no filter")
	}
	return nil
}

func errSuffix(err error) string {
	if err == nil {
		return ""
	}
	return ": " + err.Error()
}

// ConsumerName is the durable consumer of sink's receiver on the event stream;
// its re-drive consumer adds "_redrive".
func ConsumerName(sink, receiver string) string { return sink + "_" + receiver }

// handle is a running receiver.
type handle struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// Run consumes until ctx ends, then drains: no new events are taken, held
// events are handed back (Nak) for the next instance, and deliveries in flight
// get Settings.DrainTimeout to finish and settle. It returns after the drain.
func (r *Runtime) Run(ctx context.Context) error {
	var (
		sharedCons jetstream.Consumer
		runErr     error
	)
	if r.fan != nil {
		c, err := r.ensureConsumer(ctx, eventbus.StreamEvents, jetstream.ConsumerConfig{
			Durable:        r.sink + "_fanout",
			Description:    fmt.Sprintf("accountwatch %s: every receiver's events, read once", r.sink),
			FilterSubjects: r.set.filters(),
			DeliverPolicy:  r.set.deliverPolicy(),
		})
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		sharedCons = c
	}
	if r.tree != nil && (len(r.tree.Inhibitions()) > 0 || r.tree.Repeats() || len(r.tree.Reports()) > 0) {
		a, err := openAlerting(ctx, r.js, r.sink, r.tree.Inhibitions(), r.log)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		r.alert = a
	}
	r.mu.Lock()
	r.running, r.workers = ctx, map[string]*handle{}
	r.mu.Unlock()
	var sendCancel context.CancelFunc
	if r.fan != nil {
		r.fan.sendCtx, sendCancel = context.WithCancel(context.WithoutCancel(ctx))
		defer sendCancel()
	}
	if r.fan != nil {
		// Before any receiver is added: Add reads the retry queues the
		// scan found something in. Followed until Run returns.
		fctx, stopFollowing := context.WithCancel(ctx)
		defer stopFollowing()
		r.fan.retries.follow(fctx)
	}
	close(r.ready)
	for _, rc := range r.receivers {
		if err := r.Add(rc); err != nil {
			r.stopAll()
			if ctx.Err() != nil {
				return nil // stopped while starting: nothing was taken, nothing to report
			}
			return err
		}
	}
	r.log.Info("sink consuming", "sink", r.sink, "receivers", len(r.receivers), "filter", r.set.Filter, "fanout", r.fan != nil)
	if r.fan != nil {
		// Not one event is read before the receivers known at start are in:
		// an event read for which no receiver exists yet is acknowledged for
		// nobody, and a restart would lose it for every one of them.
		select {
		case <-r.start:
		case <-ctx.Done():
		}
		stopKeepAlive := make(chan struct{})
		go r.fan.held.keepAlive(r.set.AckWait/3, stopKeepAlive)
		if ctx.Err() == nil {
			if shared, err := sharedCons.Messages(r.set.pullOpts()...); err != nil {
				runErr = fmt.Errorf("consume %s_fanout: %w", r.sink, err)
			} else {
				r.fan.run(ctx, shared) // returns once ctx ended and the shared consumer drained
			}
		}
		done := make(chan struct{})
		go func() { r.fan.retireAll(); close(done) }()
		select {
		case <-done:
		case <-time.After(r.set.DrainTimeout):
			sendCancel()
			<-done
		}
		close(stopKeepAlive)
	} else {
		<-ctx.Done()
	}
	r.stopAll()
	// Acks are fire-and-forget: have the server read every one before Run
	// returns, so that the process ending next cannot leave them unsent.
	_ = r.js.Conn().FlushTimeout(5 * time.Second)
	r.log.Info("sink drained", "sink", r.sink)
	return runErr
}

// Ready is closed once Run runs, when Add can be called.
func (r *Runtime) Ready() <-chan struct{} { return r.ready }

// Start lets a fan-out runtime read events, once the receivers known at
// start are added (Add after Ready): until then Run holds the shared
// consumer, so that no event is read before its receivers exist. Receivers
// added later get the events read after them. Other runtimes ignore it:
// each receiver has a durable consumer of its own. Start may be called more
// than once.
func (r *Runtime) Start() { r.startOnce.Do(func() { close(r.start) }) }

// ErrNotRunning is returned by Add and Remove outside Run.
var ErrNotRunning = errors.New("sink runtime not running")

// Add starts consuming for a receiver while Run runs (a webhook endpoint
// created or resumed); adding a running receiver replaces it.
func (r *Runtime) Add(rc Receiver) error {
	if err := checkReceiver(rc, r.tree); err != nil {
		return fmt.Errorf("%w: receiver %q: %w", ErrConfig, rc.Name, err)
	}
	r.mu.Lock()
	ctx := r.running
	r.mu.Unlock()
	if ctx == nil {
		return ErrNotRunning
	}
	if r.fan != nil && rc.Filter == nil && !rc.RedriveOnly {
		return fmt.Errorf("%w: receiver %q: a fan-out receiver needs a filter", ErrConfig, rc.Name)
	}
	fanned := r.fan != nil && !rc.RedriveOnly
	if fanned {
		r.fan.retries.deactivate(rc.Name, false) // its old worker, if any, does not start again
	}
	r.stopWorker(rc.Name)
	if fanned {
		// First: once it is in (what callers may wait for), every event read
		// is taken for it, delivered or handed to its retry queue. The retry
		// queue is read only while something waits there (retry.go).
		r.fan.activate(rc)
		if err := r.fan.retries.activate(rc); err != nil {
			r.fan.retries.deactivate(rc.Name, false)
			r.fan.deactivate(rc.Name, true) // what it was handed waits for the next Add
			return err
		}
		return nil
	}
	return r.startWorker(rc, nil)
}

// startWorker runs rc's worker; lazy is set for a fan-out receiver's retry
// queue, whose worker stops once the queue is idle and empty.
func (r *Runtime) startWorker(rc Receiver, lazy *retrySlot) error {
	r.mu.Lock()
	ctx := r.running
	r.mu.Unlock()
	if ctx == nil || ctx.Err() != nil {
		return ErrNotRunning
	}
	w, err := r.newWorker(ctx, rc, lazy)
	if err != nil {
		return err
	}
	w.lazy = lazy
	if lazy != nil {
		if p := r.fan.pacer(rc.Name); p != nil {
			w.pace = p // one pace for both of the receiver's paths
		}
	}
	wctx, cancel := context.WithCancel(ctx)
	h := &handle{cancel: cancel, done: make(chan struct{})}
	r.mu.Lock()
	r.workers[rc.Name] = h
	r.mu.Unlock()
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer close(h.done)
		w.run(wctx)
		if lazy != nil {
			r.mu.Lock()
			if r.workers[rc.Name] == h {
				delete(r.workers, rc.Name)
			}
			r.mu.Unlock()
			r.fan.retries.exited(rc.Name, lazy)
		}
	}()
	return nil
}

// stopped reports whether Run has ended (or is ending).
func (r *Runtime) stopped() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.running != nil && r.running.Err() != nil
}

// Remove stops a receiver and forgets it (a webhook endpoint deleted): what
// it held is handed back and stays in its durable consumer. It waits for the
// drain and reports whether the receiver was running.
func (r *Runtime) Remove(name string) bool {
	// The worker first: it would otherwise deliver what the fast path hands
	// to the retry queue as it retires.
	if r.fan != nil {
		r.fan.retries.deactivate(name, true)
	}
	stopped := r.stopWorker(name)
	if r.fan != nil {
		stopped = r.fan.deactivate(name, false) || stopped
	}
	return stopped
}

// Park stops delivering to a receiver (a webhook endpoint paused or
// disabled) but keeps taking its events: they wait for it (in its durable
// consumer, or in fan-out mode its retry queue) until it is added again.
func (r *Runtime) Park(name string) bool {
	if r.fan != nil {
		r.fan.retries.deactivate(name, false)
	}
	stopped := r.stopWorker(name) // first, as in Remove
	if r.fan != nil {
		stopped = r.fan.deactivate(name, true) || stopped
	}
	return stopped
}

func (r *Runtime) stopWorker(name string) bool {
	r.mu.Lock()
	h := r.workers[name]
	delete(r.workers, name)
	r.mu.Unlock()
	if h == nil {
		return false
	}
	h.cancel()
	<-h.done
	return true
}

// Running lists the receivers being consumed.
func (r *Runtime) Running() []string {
	r.mu.Lock()
	out := make([]string, 0, len(r.workers))
	for n := range r.workers {
		out = append(out, n)
	}
	r.mu.Unlock()
	if r.fan != nil { // receivers whose retry queue is not being read
		r.fan.mu.RLock()
		for n := range r.fan.targets {
			out = append(out, n)
		}
		r.fan.mu.RUnlock()
		slices.Sort(out)
		out = slices.Compact(out)
	}
	return out
}

// DeleteConsumers removes a stopped receiver's durable consumers and what its
// retry queue held: gone for this receiver (a deleted webhook endpoint).
func (r *Runtime) DeleteConsumers(ctx context.Context, name string) error {
	r.Remove(name)
	if s, err := r.js.Stream(ctx, eventbus.StreamRedrive); err == nil {
		if err := s.Purge(ctx, jetstream.WithPurgeSubject(deadletter.RedriveFilter(r.sink, name))); err != nil {
			return fmt.Errorf("purge the retry queue of %s: %w", name, err)
		}
	}
	cn := ConsumerName(r.sink, name)
	for stream, c := range map[string]string{eventbus.StreamEvents: cn, eventbus.StreamRedrive: cn + "_redrive"} {
		if err := r.js.DeleteConsumer(ctx, stream, c); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return fmt.Errorf("delete consumer %s: %w", c, err)
		}
	}
	return nil
}

func (r *Runtime) stopAll() {
	r.mu.Lock()
	hs := r.workers
	r.workers = map[string]*handle{}
	r.mu.Unlock()
	for _, h := range hs {
		h.cancel()
	}
	r.wg.Wait()
}

func (r *Runtime) newWorker(ctx context.Context, rc Receiver, lazy *retrySlot) (*worker, error) {
	name := ConsumerName(r.sink, rc.Name)
	var main jetstream.Consumer
	if r.fan == nil && !rc.RedriveOnly { // in fan-out mode the shared consumer reads the stream
		var err error
		main, err = r.ensureConsumer(ctx, eventbus.StreamEvents, jetstream.ConsumerConfig{
			Durable:        name,
			Description:    fmt.Sprintf("accountwatch %s receiver %s", r.sink, rc.Name),
			FilterSubjects: r.set.filters(),
			DeliverPolicy:  r.set.deliverPolicy(),
		})
		if err != nil {
			return nil, err
		}
	}
	redrive, err := r.ensureConsumer(ctx, eventbus.StreamRedrive, jetstream.ConsumerConfig{
		Durable:       name + "_redrive",
		Description:   fmt.Sprintf("accountwatch %s receiver %s: retries and re-driven dead letters", r.sink, rc.Name),
		FilterSubject: r.redriveFilter(rc.Name, lazy),
		DeliverPolicy: jetstream.DeliverAllPolicy,
		// A fan-out receiver's retry consumer keeps its state in memory: a
		// file-stored one rewrites its state file up to ten times a second
		// while busy, and a few thousand sick endpoints' consumers doing so
		// were the largest cost of a day with a tenth of them down. Nothing
		// is lost when the server restarts: the queue is a work queue (what
		// is not acknowledged stays stored), the scan at start and the idle
		// check make the consumer again, and the attempts made before the
		// hand-off travel in its header; only the count of attempts made
		// from the queue since starts again. Not a re-drive-only receiver's
		// (the ad-hoc one): its consumer is kept, not made again on demand.
		MemoryStorage: r.fan != nil && !rc.RedriveOnly,
	})
	if err != nil {
		return nil, err
	}
	w := newWorker(r, rc)
	w.retryCons = redrive
	if main != nil {
		w.main = main
		// A consumer with events pending at start: the last instance held
		// them (killed), or another replica does; newer ones wait for them.
		info := main.CachedInfo()
		w.gate = newGate(info.NumAckPending, info.Delivered.Stream, r.set.AckWait)
	}
	for _, c := range []struct {
		cons    jetstream.Consumer
		redrive bool
	}{{main, false}, {redrive, true}} {
		if c.cons == nil {
			continue
		}
		it, err := c.cons.Messages(r.set.pullOpts()...)
		if err != nil {
			w.stopConsuming()
			return nil, fmt.Errorf("consume %s: %w", name, err)
		}
		w.iters = append(w.iters, iter{it: it, redrive: c.redrive})
	}
	return w, nil
}

// ensureConsumer creates the durable consumer, or updates an existing one while
// keeping where it starts (JetStream cannot change that, and must not: an
// existing consumer resumes from its ack floor).
// redriveFilter is what name's retry consumer reads. A fan-out receiver's
// (lazy) reads its queue's one subject, which the server finds by its index
// of subjects, unless messages of the older layout wait for it (a subject
// per event, RedriveFilter reads both) until they are read. The other
// receivers are few, and keep their consumers: they read both layouts
// always, an older replica's re-drive may come at any time.
func (r *Runtime) redriveFilter(name string, lazy *retrySlot) string {
	if lazy != nil && !r.fan.retries.olderLayout(lazy) {
		return deadletter.RedriveSubject(r.sink, name)
	}
	return deadletter.RedriveFilter(r.sink, name)
}

func (r *Runtime) ensureConsumer(ctx context.Context, stream string, cfg jetstream.ConsumerConfig) (jetstream.Consumer, error) {
	cfg.AckPolicy = jetstream.AckExplicitPolicy
	cfg.AckWait = r.set.AckWait
	// The runtime counts attempts itself and dead-letters the last one; the
	// server never drops an event on its own (MaxDeliver -1), so an instance
	// that dies during a last attempt cannot lose it.
	cfg.MaxDeliver = -1
	cfg.MaxAckPending = r.set.MaxAckPending
	if existing, err := r.js.Consumer(ctx, stream, cfg.Durable); err == nil {
		info := existing.CachedInfo()
		cfg.DeliverPolicy, cfg.OptStartSeq, cfg.OptStartTime = info.Config.DeliverPolicy, info.Config.OptStartSeq, info.Config.OptStartTime
		cfg.MemoryStorage = info.Config.MemoryStorage // nor its storage (an older version's retry consumer is file-stored until retired)
	}
	c, err := r.js.CreateOrUpdateConsumer(ctx, stream, cfg)
	if err != nil {
		return nil, fmt.Errorf("consumer %s on %s: %w", cfg.Durable, stream, err)
	}
	return c, nil
}
