// Package sink is the runtime every notifier stands on. Each receiver gets its
// own durable pull consumer on the event stream (so one slow or failing
// receiver never holds back another), routes each event through the routing
// tree, drops what a silence covers, defers what a mute interval covers, groups
// the rest per route (group_wait / group_interval), paces deliveries with a
// per-receiver rate limit, and settles every event by one policy:
//
//	success                      → Ack
//	permanent error              → dead letter, then Term
//	rate limited (Retry-After)   → NakWithDelay(retry-after), the receiver pauses
//	other error                  → NakWithDelay(exponential backoff with jitter)
//	attempts exhausted           → dead letter, then Term
//
// An event is acknowledged only after its side effect, and terminated only
// after its dead letter is stored, so nothing is lost; receivers use the event
// id to make at-least-once exactly-once.
package sink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/accountwatch/accountwatch/pkg/deadletter"
	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/eventbus"
	"github.com/accountwatch/accountwatch/pkg/route"
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
}

// Sender delivers notifications; it is what a notifier implements. It returns
// nil once the side effect happened, or an error classified with Permanent,
// Transient or RateLimited (anything else counts as transient).
type Sender interface {
	Send(ctx context.Context, n *Notification) error
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
}

// ErrConfig is returned for a runtime that cannot be built as asked.
var ErrConfig = errors.New("sink configuration")

// Runtime runs one consumer pipeline per receiver of a notifier.
type Runtime struct {
	js        jetstream.JetStream
	sink      string
	tree      *route.Tree
	receivers []Receiver
	sender    Sender
	set       Settings
	silences  Silencer
	log       *slog.Logger
	metrics   *Metrics
	now       func() time.Time
	dlq       *deadletter.Writer
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

// New builds the runtime of sink (a notifier's name: "slack", "email") for
// receivers, delivering through sender.
func New(js jetstream.JetStream, sink string, tree *route.Tree, receivers []Receiver, sender Sender, opts ...Option) (*Runtime, error) {
	r := &Runtime{js: js, sink: sink, tree: tree, receivers: receivers, sender: sender, set: DefaultSettings(), log: slog.New(slog.DiscardHandler), now: time.Now}
	for _, o := range opts {
		o(r)
	}
	if !route.ValidName(sink) {
		return nil, fmt.Errorf("%w: sink name %q (letters, digits, - and _)", ErrConfig, sink)
	}
	if err := r.set.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if len(receivers) == 0 {
		return nil, fmt.Errorf("%w: no receivers", ErrConfig)
	}
	seen := map[string]bool{}
	for _, rc := range receivers {
		if !route.ValidName(rc.Name) || seen[rc.Name] {
			return nil, fmt.Errorf("%w: receiver name %q (unique; letters, digits, - and _)", ErrConfig, rc.Name)
		}
		if rc.RateLimit < 0 {
			return nil, fmt.Errorf("%w: receiver %s: rate limit %v (want >= 0)", ErrConfig, rc.Name, rc.RateLimit)
		}
		seen[rc.Name] = true
	}
	if r.metrics == nil {
		r.metrics = NewMetrics(prometheus.NewRegistry())
	}
	r.dlq = deadletter.NewWriter(js)
	return r, nil
}

// ConsumerName is the durable consumer of sink's receiver on the event stream;
// its re-drive consumer adds "_redrive".
func ConsumerName(sink, receiver string) string { return sink + "_" + receiver }

// Run consumes until ctx ends, then drains: no new events are taken, held
// events are handed back (Nak) for the next instance, and deliveries in flight
// get Settings.DrainTimeout to finish and settle. It returns after the drain.
func (r *Runtime) Run(ctx context.Context) error {
	workers := make([]*worker, 0, len(r.receivers))
	for _, rc := range r.receivers {
		w, err := r.newWorker(ctx, rc)
		if err != nil {
			for _, started := range workers {
				started.stopConsuming()
			}
			return err
		}
		workers = append(workers, w)
	}
	r.log.Info("sink consuming", "sink", r.sink, "receivers", len(workers), "filter", r.set.Filter)
	done := make(chan struct{}, len(workers))
	for _, w := range workers {
		go func() {
			w.run(ctx)
			done <- struct{}{}
		}()
	}
	for range workers {
		<-done
	}
	r.log.Info("sink drained", "sink", r.sink)
	return nil
}

func (r *Runtime) newWorker(ctx context.Context, rc Receiver) (*worker, error) {
	name := ConsumerName(r.sink, rc.Name)
	main, err := r.ensureConsumer(ctx, eventbus.StreamEvents, jetstream.ConsumerConfig{
		Durable:        name,
		Description:    fmt.Sprintf("accountwatch %s receiver %s", r.sink, rc.Name),
		FilterSubjects: r.set.filters(),
		DeliverPolicy:  r.set.deliverPolicy(),
	})
	if err != nil {
		return nil, err
	}
	redrive, err := r.ensureConsumer(ctx, eventbus.StreamRedrive, jetstream.ConsumerConfig{
		Durable:       name + "_redrive",
		Description:   fmt.Sprintf("accountwatch %s receiver %s: re-driven dead letters", r.sink, rc.Name),
		FilterSubject: deadletter.RedriveFilter(r.sink, rc.Name),
		DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return nil, err
	}
	lim := rate.NewLimiter(rate.Inf, 0)
	if rc.RateLimit > 0 {
		lim = rate.NewLimiter(rate.Limit(rc.RateLimit), max(1, rc.Burst))
	}
	w := newWorker(r, rc.Name, lim)
	for _, c := range []struct {
		cons    jetstream.Consumer
		redrive bool
	}{{main, false}, {redrive, true}} {
		it, err := c.cons.Messages(jetstream.PullMaxMessages(min(r.set.MaxAckPending, 1000)))
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
	}
	c, err := r.js.CreateOrUpdateConsumer(ctx, stream, cfg)
	if err != nil {
		return nil, fmt.Errorf("consumer %s on %s: %w", cfg.Durable, stream, err)
	}
	return c, nil
}

// backoff is the wait before attempt n+1 after n failed: initial·2^(n-1),
// capped, with equal jitter (half fixed, half random) so that a burst of
// failures does not retry in lockstep.
func (r *Runtime) backoff(n uint64, jitter float64) time.Duration {
	d := r.set.BackoffInitial
	for i := uint64(1); i < n && d < r.set.BackoffMax; i++ {
		d *= 2
	}
	d = min(d, r.set.BackoffMax)
	return d/2 + time.Duration(jitter*float64(d/2))
}
