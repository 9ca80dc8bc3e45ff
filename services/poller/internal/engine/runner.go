// Package engine runs the poll cycles of the connections this replica leases.
package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"reflect"
	"sync"
	"time"

	"github.com/accountwatch/accountwatch/pkg/detect"
	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/state"
	"github.com/accountwatch/accountwatch/pkg/upstream"
	"github.com/accountwatch/accountwatch/pkg/watch"
	"github.com/accountwatch/accountwatch/services/poller/internal/config"
	"github.com/accountwatch/accountwatch/services/poller/internal/source"
)

// Deps are what every runner shares.
type Deps struct {
	State   *state.Store
	Watch   *watch.Store
	Live    *watch.Live
	Policy  detect.Policy
	Allow   *event.AllowList
	Metrics *Metrics
	Log     *slog.Logger
	Workers int
	Now     func() time.Time
}

// Runner polls one connection while this replica holds its lease.
type Runner struct {
	Deps
	conn config.Connection
	src  source.Source

	mu    sync.Mutex
	cache map[string]*state.Entry
}

// NewRunner builds a runner.
func NewRunner(d Deps, c config.Connection, src source.Source) *Runner {
	if d.Workers <= 0 {
		d.Workers = 16
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	return &Runner{Deps: d, conn: c, src: src}
}

// progress is the connection's schedule, kept in AW_WATCH so that a replica
// taking a connection over continues where the last one stopped.
type progress struct {
	LastStart  time.Time `json:"last_start"`
	Cycles     int       `json:"cycles"`
	ScanSince  time.Time `json:"scan_since,omitzero"`
	ListedOnce bool      `json:"listed_once"`
}

func (r *Runner) progressKey() string { return "progress." + r.conn.Name }

// scanOverlap re-reads a little of the previous incremental window, so that an
// update stamped while the last scan ran is not missed (re-reads are no-ops).
const scanOverlap = 2 * time.Minute

// Run loads the connection's state and runs cycles until ctx ends.
func (r *Runner) Run(ctx context.Context) error {
	log := r.Log.With("instance", r.conn.Name)
	entries, err := r.State.Load(ctx, state.Prefix(r.conn.Provider, r.conn.Name))
	if err != nil {
		return err
	}
	r.cache = entries
	for key, e := range entries {
		if len(e.Pending) > 0 { // a predecessor crashed between staging and publishing
			if err := r.State.Flush(ctx, key, e); err != nil {
				log.Warn("flushing a pending outbox failed; retrying next cycle", "key", key, "err", err)
			}
		}
	}
	prog := r.loadProgress(ctx)
	log.Info("polling", "accounts_in_state", len(entries), "last_cycle", prog.LastStart, "interval", r.conn.Interval.Duration.String())
	for {
		due := r.Now()
		if !prog.LastStart.IsZero() {
			j := time.Duration((rand.Float64()*2 - 1) * r.conn.Jitter * float64(r.conn.Interval.Duration))
			due = prog.LastStart.Add(r.conn.Interval.Duration + j)
		}
		if wait := due.Sub(r.Now()); wait > 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(wait):
			}
		}
		start := r.Now()
		r.Metrics.Lag.WithLabelValues(r.conn.Name).Set(max(0, start.Sub(due).Seconds()))
		full := r.conn.Provider != event.ProviderActivePlatform || prog.Cycles%max(1, r.conn.FullScanEvery) == 0 || prog.ScanSince.IsZero()
		listedOK := r.cycle(ctx, &prog, full)
		if ctx.Err() != nil {
			return nil // an interrupted cycle is run again by whoever holds the lease next
		}
		prog.LastStart, prog.Cycles = start, prog.Cycles+1
		if listedOK {
			prog.ScanSince = start.Add(-scanOverlap)
		}
		r.saveProgress(ctx, prog)
		r.Metrics.CycleSeconds.WithLabelValues(r.conn.Name).Observe(r.Now().Sub(start).Seconds())
		r.Metrics.LastCycle.WithLabelValues(r.conn.Name).Set(float64(r.Now().Unix()))
	}
}

func (r *Runner) loadProgress(ctx context.Context) progress {
	var p progress
	if e, err := r.Watch.KV().Get(ctx, r.progressKey()); err == nil {
		json.Unmarshal(e.Value(), &p)
	}
	return p
}

func (r *Runner) saveProgress(ctx context.Context, p progress) {
	b, _ := json.Marshal(p)
	if _, err := r.Watch.KV().Put(ctx, r.progressKey(), b); err != nil {
		r.Log.Warn("saving progress failed", "instance", r.conn.Name, "err", err)
	}
}

type task struct {
	entry watch.Entry
	obs   *detect.Observation // from the listing; nil: read it
}

// cycle polls every watched account of the connection once. It reports whether
// the listing (if any) succeeded.
func (r *Runner) cycle(ctx context.Context, prog *progress, full bool) bool {
	watched := map[string]watch.Entry{}
	for _, e := range r.Live.Entries(r.conn.Name) {
		watched[e.AccountID] = e
	}
	var tasks []task
	listedOK := true
	listing := r.conn.Provider == event.ProviderActivePlatform || r.conn.Discovery
	inListing := map[string]bool{}
	if listing {
		listed, complete, err := r.src.List(ctx, full, prog.ScanSince)
		if err != nil {
			listedOK = false
			r.countError(err)
			if r.conn.Provider == event.ProviderActivePlatform {
				r.providerFailed(ctx, err) // the listing is how ActivePlatform is read
				return false
			}
			r.Log.Warn("listing failed; polling the known accounts", "instance", r.conn.Name, "err", err)
		}
		for _, l := range listed {
			inListing[l.AccountID] = true
			e, ok := watched[l.AccountID]
			if !ok && r.conn.Discovery {
				e = watch.Entry{Provider: r.conn.Provider, Instance: r.conn.Name, AccountID: l.AccountID, Space: l.Space, Source: watch.SourceDiscovery, AddedAt: r.Now().UTC()}
				if _, err := r.Watch.Add(ctx, e); err != nil {
					r.Log.Warn("adding a discovered account failed", "account", l.AccountID, "err", err)
					continue
				}
				watched[l.AccountID] = e
				if prog.ListedOnce {
					r.discovered(ctx, e, l.Obs)
					continue
				}
			}
			if (ok || r.conn.Discovery) && l.Obs != nil {
				tasks = append(tasks, task{entry: e, obs: l.Obs})
			}
		}
		if err == nil && r.conn.Discovery {
			prog.ListedOnce = true
		}
		if complete && r.conn.Discovery {
			for id, e := range watched {
				if !inListing[id] && e.Source == watch.SourceDiscovery {
					r.removed(ctx, e)
					delete(watched, id)
				}
			}
		}
	}
	r.Metrics.WatchSize.WithLabelValues(r.conn.Name).Set(float64(len(watched)))
	for id, e := range watched {
		if inListing[id] && r.conn.Provider == event.ProviderActivePlatform {
			continue // observed through the listing
		}
		if r.conn.Provider == event.ProviderActivePlatform && !full && r.baselined(e) {
			continue // unchanged since the last scan: not in the incremental listing
		}
		tasks = append(tasks, task{entry: e})
	}
	ok, failed := r.runTasks(ctx, tasks)
	switch {
	case ok == 0 && len(failed) > 0 && (!listing || !listedOK):
		r.providerFailed(ctx, failed[0].err)
	default:
		for _, f := range failed {
			r.accountFailed(ctx, f.entry, f.err)
		}
		if listedOK {
			r.providerOK(ctx)
		}
	}
	return listedOK
}

type failure struct {
	entry watch.Entry
	err   error
}

// runTasks reads and processes tasks on the worker pool. Failures are returned
// rather than recorded, so that a connection that fails entirely is one
// provider-level outage, not an alert per account.
func (r *Runner) runTasks(ctx context.Context, tasks []task) (int, []failure) {
	var (
		mu     sync.Mutex
		ok     int
		failed []failure
		wg     sync.WaitGroup
	)
	ch := make(chan task)
	for range min(r.Workers, max(1, len(tasks))) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for t := range ch {
				obs := t.obs
				if obs == nil {
					o, err := r.src.Observe(ctx, t.entry)
					if err != nil {
						if ctx.Err() != nil {
							continue
						}
						r.countError(err)
						r.Metrics.Polls.WithLabelValues(r.conn.Name, "error").Inc()
						if errors.Is(err, upstream.ErrNotFound) && r.vanished(ctx, t.entry) {
							continue
						}
						mu.Lock()
						failed = append(failed, failure{t.entry, err})
						mu.Unlock()
						continue
					}
					obs = &o
				}
				r.Metrics.Polls.WithLabelValues(r.conn.Name, "ok").Inc()
				mu.Lock()
				ok++
				mu.Unlock()
				r.observed(ctx, t.entry, *obs)
			}
		}()
	}
	for _, t := range tasks {
		select {
		case ch <- t:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
	}
	close(ch)
	wg.Wait()
	return ok, failed
}

func (r *Runner) countError(err error) {
	code := upstream.CodeOf(err)
	if code == "" {
		var ue *upstream.Error
		code = "other"
		if errors.As(err, &ue) {
			code = ue.Kind.Error()
		}
	}
	r.Metrics.Errors.WithLabelValues(string(r.conn.Provider), r.conn.Name, code).Inc()
}

func (r *Runner) key(accountID string) string {
	return state.Key(r.conn.Provider, r.conn.Name, accountID)
}

func (r *Runner) get(ctx context.Context, key string) *state.Entry {
	r.mu.Lock()
	e, ok := r.cache[key]
	if !ok {
		e = &state.Entry{}
		r.cache[key] = e
	}
	r.mu.Unlock()
	if len(e.Pending) > 0 {
		if err := r.State.Flush(ctx, key, e); err != nil {
			r.Log.Warn("flushing a pending outbox failed", "key", key, "err", err)
		}
	}
	return e
}

func (r *Runner) baselined(e watch.Entry) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, ok := r.cache[r.key(e.AccountID)]
	return ok && c.Record.Baseline
}

func (r *Runner) meta(e watch.Entry, name string, at time.Time, ev event.Evidence) event.Meta {
	labels := map[string]string{}
	for k, v := range r.conn.Labels {
		labels[k] = v
	}
	for k, v := range e.Labels {
		labels[k] = v
	}
	return event.Meta{Provider: r.conn.Provider, Instance: r.conn.Name, AccountID: e.AccountID, AccountName: name,
		Labels: labels, ObservedAt: at, Evidence: ev, Allow: r.Allow}
}

func (r *Runner) observed(ctx context.Context, e watch.Entry, obs detect.Observation) {
	key := r.key(e.AccountID)
	cur := r.get(ctx, key)
	changes, next := detect.Observe(cur.Record, obs, r.Policy)
	r.commit(ctx, key, cur, next, changes, r.meta(e, next.Name, obs.At, obs.Evidence))
}

// vanished handles an account the upstream no longer knows: once baselined,
// that is a removal; otherwise it is a failure like any other.
func (r *Runner) vanished(ctx context.Context, e watch.Entry) bool {
	key := r.key(e.AccountID)
	cur := r.get(ctx, key)
	if !cur.Record.Baseline {
		return false
	}
	if !cur.Record.Removed {
		r.removedRecord(ctx, key, cur, e)
	}
	return true
}

func (r *Runner) discovered(ctx context.Context, e watch.Entry, obs *detect.Observation) {
	key := r.key(e.AccountID)
	cur := r.get(ctx, key)
	next := cur.Record
	m := r.meta(e, "", r.Now().UTC(), event.Evidence{})
	var attrs map[string]string
	if obs != nil {
		_, next = detect.Observe(cur.Record, *obs, r.Policy)
		m = r.meta(e, obs.Name, obs.At, obs.Evidence)
		attrs = obs.Attrs
	}
	r.commit(ctx, key, cur, next, []detect.Change{{Type: event.TypeDiscovered, Attrs: attrs}}, m)
}

func (r *Runner) removed(ctx context.Context, e watch.Entry) {
	key := r.key(e.AccountID)
	cur := r.get(ctx, key)
	if !cur.Record.Removed {
		r.removedRecord(ctx, key, cur, e)
	}
	if err := r.Watch.Remove(ctx, e.Provider, e.Instance, e.AccountID); err != nil && !errors.Is(err, watch.ErrNotFound) {
		r.Log.Warn("removing a vanished account from the watch list failed", "account", e.AccountID, "err", err)
	}
}

func (r *Runner) removedRecord(ctx context.Context, key string, cur *state.Entry, e watch.Entry) {
	next := cur.Record
	next.Removed = true
	r.commit(ctx, key, cur, next, []detect.Change{{Type: event.TypeRemoved, Attrs: cur.Record.Attrs}}, r.meta(e, cur.Record.Name, r.Now().UTC(), event.Evidence{}))
}

func (r *Runner) accountFailed(ctx context.Context, e watch.Entry, err error) {
	key := r.key(e.AccountID)
	cur := r.get(ctx, key)
	changes, next := detect.Fail(cur.Record, r.Now(), upstream.CodeOf(err), err.Error(), r.Policy)
	r.commit(ctx, key, cur, next, changes, r.meta(e, cur.Record.Name, r.Now().UTC(), event.Evidence{}))
}

func (r *Runner) providerEntry() watch.Entry {
	return watch.Entry{Provider: r.conn.Provider, Instance: r.conn.Name, AccountID: event.ProviderScope}
}

func (r *Runner) providerFailed(ctx context.Context, err error) {
	key := r.key(event.ProviderScope)
	cur := r.get(ctx, key)
	changes, next := detect.Fail(cur.Record, r.Now(), upstream.CodeOf(err), err.Error(), r.Policy)
	r.Log.Warn("connection failed", "instance", r.conn.Name, "failures", next.Failures, "err", err)
	r.commit(ctx, key, cur, next, changes, r.meta(r.providerEntry(), "", r.Now().UTC(), event.Evidence{}))
}

func (r *Runner) providerOK(ctx context.Context) {
	key := r.key(event.ProviderScope)
	cur := r.get(ctx, key)
	if cur.Record.Failures == 0 {
		return
	}
	changes, next := detect.Recover(cur.Record)
	r.commit(ctx, key, cur, next, changes, r.meta(r.providerEntry(), "", r.Now().UTC(), event.Evidence{}))
}

// commit turns changes into chained events and commits them with the next
// record; without changes it writes the record only if it differs.
func (r *Runner) commit(ctx context.Context, key string, cur *state.Entry, next detect.Record, changes []detect.Change, m event.Meta) {
	next.Version, next.Provider, next.Instance = 1, r.conn.Provider, r.conn.Name
	next.AccountID = m.AccountID
	if len(changes) == 0 {
		if reflect.DeepEqual(cur.Record, next) {
			return
		}
		if err := r.State.Put(ctx, key, cur, next); err != nil {
			r.conflict(ctx, key, err)
		}
		return
	}
	m.PreviousObservedAt = cur.Record.ChangedAt
	m.Revision = cur.Rev
	chain := cur.Record.Chain
	events := make([]*event.Event, 0, len(changes))
	for _, c := range changes {
		m.Chain = event.Chain{Seq: chain.Seq + 1, Prev: chain.Prev}
		ev, err := c.Event(m)
		if err != nil {
			r.Log.Error("building an event failed", "key", key, "type", c.Type, "err", err)
			return
		}
		chain = event.Chain{Seq: ev.Data.Chain.Seq, Prev: ev.Hash()}
		events = append(events, ev)
		if c.Unknown {
			r.Metrics.Unknown.WithLabelValues(r.conn.Name, c.Field).Inc()
		}
	}
	next.Chain = chain
	next.ChangedAt = m.ObservedAt
	if err := r.State.Commit(ctx, key, cur, next, events); err != nil {
		r.conflict(ctx, key, err)
		return
	}
	for _, ev := range events {
		r.Metrics.Changes.WithLabelValues(r.conn.Name, ev.Type().Tail()).Inc()
	}
}

// conflict re-reads a record another writer changed (or logs a failed write);
// the change is detected again next cycle against the fresh state.
func (r *Runner) conflict(ctx context.Context, key string, err error) {
	if ctx.Err() != nil {
		return
	}
	if errors.Is(err, state.ErrConflict) {
		if fresh, gerr := r.State.Get(ctx, key); gerr == nil {
			r.mu.Lock()
			r.cache[key] = fresh
			r.mu.Unlock()
		}
		r.Log.Info("state changed under this replica; re-reading", "key", key)
		return
	}
	r.Log.Warn("committing state failed; the change is detected again next cycle", "key", key, "err", fmt.Sprint(err))
}
