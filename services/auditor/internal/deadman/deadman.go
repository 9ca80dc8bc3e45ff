// Package deadman watches the pollers from outside: every connection the
// pollers announced must have a replica holding its lease and complete a
// cycle every interval. When one does not — no cycle within Intervals
// intervals (of its interval, or of its last cycle's duration when that is
// longer), or no replica holding the lease for LeaseGrace — it emits
// poll.stalled, and poll.resumed once a cycle completes again. The events
// are the auditor's own, in the connection's poller scope
// (event.PollerScope), committed with their state record like the
// poller's (pkg/state: an outbox, compare-and-swap), so that several
// auditors emit one stall, and verification finds their chain whole.
package deadman

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/accountwatch/accountwatch/pkg/detect"
	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/lease"
	"github.com/accountwatch/accountwatch/pkg/state"
	"github.com/accountwatch/accountwatch/pkg/telemetry"
	"github.com/accountwatch/accountwatch/pkg/watch"
)

// Status is what the dead-man knows of one connection.
type Status struct {
	Connection watch.Connection `json:"connection"`
	// LastCycle is when the last cycle completed (zero: none yet), Took how
	// long it ran, Cycles how many there were.
	LastCycle time.Time     `json:"last_cycle,omitzero"`
	Took      time.Duration `json:"took"`
	Cycles    int           `json:"cycles"`
	// Holder is the replica holding the lease ("" none), NoLeaseSince since
	// when none has.
	Holder       string    `json:"lease_holder,omitempty"`
	NoLeaseSince time.Time `json:"no_lease_since,omitzero"`
	// Stalled is set while a stall is recorded: Reason and Since are its.
	Stalled bool      `json:"stalled"`
	Reason  string    `json:"reason,omitempty"`
	Since   time.Time `json:"since,omitzero"`
	// Deadline is when the connection counts as stalled without a cycle.
	Deadline time.Time `json:"deadline"`
}

// Watcher is the dead-man.
type Watcher struct {
	Watch  *watch.Store
	Leases jetstream.KeyValue
	State  *state.Store
	// Intervals is how many intervals pass without a cycle before a stall;
	// LeaseGrace how long no replica may hold a lease; Every how often the
	// connections are checked.
	Intervals  int
	LeaseGrace time.Duration
	Every      time.Duration
	Log        *slog.Logger
	Now        func() time.Time
	// Degraded, when set, tells whether a connection as a whole cannot be
	// read (its provider scope degraded), for the metric beside the stall.
	Degraded func(p event.Provider, instance string) bool

	mu      sync.Mutex
	status  map[string]Status
	noLease map[string]time.Time
	checked time.Time
	err     error
	stalls  *prometheus.CounterVec
	checks  prometheus.Counter
	errs    prometheus.Counter
}

// ErrCheck is the readiness error of a dead-man whose last round failed.
var ErrCheck = errors.New("dead-man")

func (w *Watcher) init() {
	if w.Now == nil {
		w.Now = time.Now
	}
	if w.Log == nil {
		w.Log = slog.New(slog.DiscardHandler)
	}
	w.status, w.noLease = map[string]Status{}, map[string]time.Time{}
	w.stalls = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "aw_auditor_stalls_total", Help: "poll.stalled events the dead-man emitted, by connection."}, []string{"instance"})
	w.checks = prometheus.NewCounter(prometheus.CounterOpts{Name: "aw_auditor_deadman_checks_total", Help: "Rounds of the dead-man over every announced connection."})
	w.errs = prometheus.NewCounter(prometheus.CounterOpts{Name: "aw_auditor_deadman_errors_total", Help: "Dead-man rounds that could not read a connection's progress or lease, or record its stall."})
}

// Register adds the dead-man's metrics to reg; call before Run.
func (w *Watcher) Register(reg prometheus.Registerer) {
	if w.status == nil {
		w.init()
	}
	reg.MustRegister(w.stalls, w.checks, w.errs, &collector{w})
}

// Run checks every Every until ctx ends.
func (w *Watcher) Run(ctx context.Context) {
	if w.status == nil {
		w.init()
	}
	t := time.NewTicker(w.Every)
	defer t.Stop()
	for {
		err := w.Check(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			w.Log.Warn("dead-man round failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Ready is a readiness check: an error while the last round failed, or
// when none ran for three periods.
func (w *Watcher) Ready(context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case w.err != nil:
		return fmt.Errorf("%w: %v", ErrCheck, w.err)
	case w.checked.IsZero():
		return fmt.Errorf("%w: no round yet", ErrCheck)
	case w.Now().Sub(w.checked) > 3*w.Every+10*time.Second:
		return fmt.Errorf("%w: no round since %s", ErrCheck, w.checked.UTC().Format(time.RFC3339))
	}
	return nil
}

// Statuses lists every announced connection's status, by name.
func (w *Watcher) Statuses() []Status {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]Status, 0, len(w.status))
	for _, s := range w.status {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Connection.Name < out[j].Connection.Name })
	return out
}

// Check runs one round over every announced connection.
func (w *Watcher) Check(ctx context.Context) error {
	if w.status == nil {
		w.init()
	}
	w.checks.Inc()
	conns, err := w.Watch.Connections(ctx)
	if err != nil {
		return w.done(err)
	}
	seen := map[string]Status{}
	var errs []error
	for _, c := range conns {
		st, err := w.checkOne(ctx, c)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", c.Name, err))
		}
		seen[c.Name] = st
	}
	w.mu.Lock()
	w.status = seen
	for name := range w.noLease {
		if _, ok := seen[name]; !ok {
			delete(w.noLease, name)
		}
	}
	w.mu.Unlock()
	return w.done(errors.Join(errs...))
}

func (w *Watcher) done(err error) error {
	if err != nil {
		w.errs.Inc()
	}
	w.mu.Lock()
	w.err = err
	if err == nil {
		w.checked = w.Now()
	}
	w.mu.Unlock()
	return err
}

func (w *Watcher) checkOne(ctx context.Context, c watch.Connection) (Status, error) {
	now := w.Now()
	st := Status{Connection: c}
	prog, written, err := w.Watch.LoadProgress(ctx, c.Name)
	if err != nil {
		return st, err
	}
	if !written.IsZero() {
		st.LastCycle, st.Cycles = written, prog.Cycles
		if !prog.LastStart.IsZero() && written.After(prog.LastStart) {
			st.Took = written.Sub(prog.LastStart)
		}
	}
	holder, _, err := lease.Holder(ctx, w.Leases, c.Name)
	if err != nil {
		return st, err
	}
	st.Holder = holder
	w.mu.Lock()
	if holder == "" {
		if w.noLease[c.Name].IsZero() {
			w.noLease[c.Name] = now
		}
		st.NoLeaseSince = w.noLease[c.Name]
	} else {
		delete(w.noLease, c.Name)
	}
	w.mu.Unlock()

	// The last known good moment: the last cycle, or, with none, when the
	// connection was announced.
	since := st.LastCycle
	if since.IsZero() {
		since = c.AnnouncedAt
	}
	period := max(c.Interval, st.Took)
	st.Deadline = since.Add(time.Duration(w.Intervals) * period)
	reason := ""
	switch {
	case holder == "" && now.Sub(st.NoLeaseSince) >= w.LeaseGrace:
		reason = event.StallNoLease
	case now.After(st.Deadline):
		reason = event.StallNoCycle
	}

	key := state.Key(c.Provider, c.Name, event.PollerScope)
	cur, err := w.State.Get(ctx, key)
	if err != nil {
		return st, err
	}
	rec := cur.Record
	st.Stalled, st.Reason, st.Since = rec.Degraded, rec.LastError, rec.FailingSince
	stall := event.Stall{Reason: reason, Since: since, Interval: c.Interval.String(), Intervals: w.Intervals, LeaseHolder: holder}
	if !st.LastCycle.IsZero() {
		lc := st.LastCycle.UTC()
		stall.LastCycleAt = &lc
	}
	switch {
	case reason != "" && !rec.Degraded:
		next := w.record(rec, c)
		next.Degraded, next.FailingSince, next.LastError = true, since.UTC(), reason
		if err := w.emit(ctx, key, cur, next, c, now, event.PollStalled, stall); err != nil {
			return st, err
		}
		w.stalls.WithLabelValues(c.Name).Inc()
		w.Log.Warn("poll stalled", "instance", c.Name, "reason", reason, "last_cycle", st.LastCycle, "lease_holder", holder)
		st.Stalled, st.Reason, st.Since = true, reason, since.UTC()
	case rec.Degraded && holder != "" && st.LastCycle.After(rec.FailingSince) && reason == "":
		stall.Reason, stall.Since = rec.LastError, rec.FailingSince
		if stall.Reason != event.StallNoCycle && stall.Reason != event.StallNoLease {
			stall.Reason = event.StallNoCycle
		}
		next := w.record(rec, c)
		next.Degraded, next.FailingSince, next.LastError = false, time.Time{}, ""
		if err := w.emit(ctx, key, cur, next, c, now, event.PollResumed, stall); err != nil {
			return st, err
		}
		w.Log.Info("poll resumed", "instance", c.Name, "stalled_since", rec.FailingSince, "last_cycle", st.LastCycle)
		st.Stalled, st.Reason, st.Since = false, "", time.Time{}
	}
	return st, nil
}

// record is the dead-man's state record of a connection, as it stands.
func (w *Watcher) record(rec detect.Record, c watch.Connection) detect.Record {
	rec.Version, rec.Provider, rec.Instance, rec.AccountID, rec.Baseline = 1, c.Provider, c.Name, event.PollerScope, true
	return rec
}

// emit commits one stall event with the record, chained after the scope's
// last event. A record another auditor changed meanwhile (state.ErrConflict)
// is no error: the next round reads what it wrote.
func (w *Watcher) emit(ctx context.Context, key string, cur *state.Entry, next detect.Record, c watch.Connection, now time.Time,
	build func(event.Meta, event.Stall) (*event.Event, error), st event.Stall) error {
	ctx, span := telemetry.Start(ctx, "dead-man "+c.Name, trace.SpanKindProducer)
	defer span.End()
	m := event.Meta{Provider: c.Provider, Instance: c.Name, AccountID: event.PollerScope, Labels: c.Labels, ObservedAt: now.UTC(),
		PreviousObservedAt: cur.Record.ChangedAt, Revision: cur.Rev, Chain: event.Chain{Seq: cur.Record.Chain.Seq + 1, Prev: cur.Record.Chain.Prev}}
	ev, err := build(m, st)
	if err != nil {
		return err
	}
	telemetry.Inject(ctx, ev)
	next.Chain = event.Chain{Seq: ev.Data.Chain.Seq, Prev: ev.Hash()}
	next.ChangedAt = m.ObservedAt
	err = w.State.Commit(ctx, key, cur, next, []*event.Event{ev})
	if errors.Is(err, state.ErrConflict) {
		return nil
	}
	return err
}

// collector exports each connection's status as the dead-man saw it last.
type collector struct{ w *Watcher }

var (
	descStalled   = prometheus.NewDesc("aw_auditor_connection_stalled", "1 while the dead-man records the connection stalled (poll.stalled emitted, no poll.resumed yet).", []string{"instance", "reason"}, nil)
	descLastCycle = prometheus.NewDesc("aw_auditor_connection_last_cycle_timestamp_seconds", "When the connection's last poll cycle completed, as its progress record says (0: none yet).", []string{"instance"}, nil)
	descLeaseHeld = prometheus.NewDesc("aw_auditor_connection_lease_held", "1 while a poller replica holds the connection's lease.", []string{"instance"}, nil)
	descDeadline  = prometheus.NewDesc("aw_auditor_connection_stall_deadline_timestamp_seconds", "When the connection counts as stalled if no cycle completes before.", []string{"instance"}, nil)
	descDegraded  = prometheus.NewDesc("aw_auditor_connection_degraded", "1 while the connection as a whole cannot be read (poll.degraded of its provider scope, no poll.recovered yet).", []string{"instance", "provider"}, nil)
)

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descStalled
	ch <- descLastCycle
	ch <- descLeaseHeld
	ch <- descDeadline
	ch <- descDegraded
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range c.w.Statuses() {
		name := s.Connection.Name
		stalled := 0.0
		if s.Stalled {
			stalled = 1
		}
		ch <- prometheus.MustNewConstMetric(descStalled, prometheus.GaugeValue, stalled, name, s.Reason)
		last := 0.0
		if !s.LastCycle.IsZero() {
			last = float64(s.LastCycle.UnixMilli()) / 1000
		}
		ch <- prometheus.MustNewConstMetric(descLastCycle, prometheus.GaugeValue, last, name)
		held := 0.0
		if s.Holder != "" {
			held = 1
		}
		ch <- prometheus.MustNewConstMetric(descLeaseHeld, prometheus.GaugeValue, held, name)
		ch <- prometheus.MustNewConstMetric(descDeadline, prometheus.GaugeValue, float64(s.Deadline.UnixMilli())/1000, name)
		if c.w.Degraded != nil {
			d := 0.0
			if c.w.Degraded(s.Connection.Provider, name) {
				d = 1
			}
			ch <- prometheus.MustNewConstMetric(descDegraded, prometheus.GaugeValue, d, name, string(s.Connection.Provider))
		}
	}
}
