// Package engine runs the poll cycles of the connections this replica leases.
package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/accountwatch/accountwatch/pkg/detect"
	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/eventbus"
	"github.com/accountwatch/accountwatch/pkg/flatmap"
	"github.com/accountwatch/accountwatch/pkg/ops"
	"github.com/accountwatch/accountwatch/pkg/redact"
	"github.com/accountwatch/accountwatch/pkg/state"
	"github.com/accountwatch/accountwatch/pkg/telemetry"
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
	// Publish follows the state commits (records and their events) for
	// readiness; nil follows nothing.
	Publish *ops.Outcomes
}

// Runner polls one connection while this replica holds its lease.
type Runner struct {
	Deps
	conn config.Connection
	src  source.Source
	caps source.Caps

	mu sync.Mutex // guards records, which the workers share
	// records: every stored record of the connection, by its key's last
	// token (after prefix). The records themselves stay in AW_STATE and
	// are read when their account is touched (a change, a failure): a
	// million of them would take a gigabyte here, for the 1% that change.
	// A flatmap: a million string keys are objects every collection walks.
	records *flatmap.Table[record]
	// recorded: records changed since markSettled last looked at them.
	recorded bool
	prefix   string
	// lastDone and took are the last completed cycle's end (unix
	// nanoseconds) and duration, for readiness (Cycled).
	lastDone, took atomic.Int64
	// uncertain: a write of this runner failed or timed out, so what the
	// server holds may differ from records: no Settled mark when it stops.
	uncertain atomic.Bool
	// markedAt is the state stream's last revision before the load, then
	// the last Settled mark's: a record stored after it that is not one of
	// records' revisions was written by another replica (markSettled then
	// writes no mark). vouched is the revision the stored mark covers (the
	// one loaded, then the last written); created is the stream's creation
	// time the mark names. Touched only by the goroutine running cycles.
	markedAt, vouched uint64
	created           time.Time
	// unmarked: the last attempt wrote no mark, and said why.
	unmarked bool
	// memory is the scan's, touched only by the goroutine running cycles
	// (the listing reaches it 100,000 times a scan: no lock, no contention
	// with the workers, which hand back what they processed through the
	// pool).
	memory
}

// NewRunner builds a runner.
func NewRunner(d Deps, c config.Connection, src source.Source) *Runner {
	if d.Workers <= 0 {
		d.Workers = 16
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	return &Runner{Deps: d, conn: c, src: src, caps: src.Caps(), memory: newMemory(), records: &flatmap.Table[record]{}, prefix: state.Prefix(c.Provider, c.Name)}
}

// allListed reports whether this scan listed every watched account, by
// counting instead of walking the list (see covered).
func (r *Runner) allListed() bool {
	v, n := r.Live.Version(r.conn.Name)
	c := r.covered
	return c.ok && c.version == v && c.forgets == r.forgets && r.stampedWatched == n
}

// progress is the connection's schedule, kept in AW_WATCH so that a replica
// taking a connection over continues where the last one stopped.
type progress = watch.Progress

// scanOverlap re-reads a little of the previous incremental window, so that an
// update stamped while the last scan ran is not missed (re-reads are no-ops).
const scanOverlap = 2 * time.Minute

// Run loads the connection's state and runs cycles until ctx ends.
func (r *Runner) Run(ctx context.Context) error {
	log := r.Log.With("instance", r.conn.Name)
	prog := r.loadProgress(ctx)
	var trusted uint64
	last, created, err := r.State.Position(ctx)
	if err == nil {
		trusted = r.trusted(ctx, created)
		r.markedAt, r.vouched, r.created = last, trusted, created
	} else {
		r.uncertain.Store(true) // what was stored before the load is not known: no Settled mark
	}
	records, err := r.load(ctx, trusted)
	if err != nil {
		return err
	}
	defer r.markSettled(ctx)
	log.Info("polling", "accounts_in_state", records, "last_cycle", prog.LastStart, "interval", r.conn.Interval.Duration.String())
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
		full := !r.caps.Incremental || prog.Cycles%max(1, r.conn.FullScanEvery) == 0 || prog.ScanSince.IsZero()
		cctx, span := telemetry.Start(ctx, "poll "+r.conn.Name, trace.SpanKindInternal, r.spanAttrs(full)...)
		listedOK := r.cycle(cctx, &prog, full)
		span.End()
		if ctx.Err() != nil {
			return nil // an interrupted cycle is run again by whoever holds the lease next
		}
		prog.LastStart, prog.Cycles = start, prog.Cycles+1
		if listedOK {
			prog.ScanSince = start.Add(-scanOverlap)
		}
		r.saveProgress(ctx, prog)
		r.markSettled(ctx)
		r.lastDone.Store(r.Now().UnixNano())
		r.took.Store(int64(r.Now().Sub(start)))
		r.Metrics.CycleSeconds.WithLabelValues(r.conn.Name).Observe(r.Now().Sub(start).Seconds())
		r.Metrics.LastCycle.WithLabelValues(r.conn.Name).Set(float64(r.Now().Unix()))
	}
}

// Cycled tells when this runner last completed a cycle (zero: not yet) and
// how long it took.
func (r *Runner) Cycled() (time.Time, time.Duration) {
	n := r.lastDone.Load()
	if n == 0 {
		return time.Time{}, 0
	}
	return time.Unix(0, n), time.Duration(r.took.Load())
}

// Interval is the connection's poll interval.
func (r *Runner) Interval() time.Duration { return r.conn.Interval.Duration }

// spanAttrs describe a cycle's span (nothing while tracing is off).
func (r *Runner) spanAttrs(full bool) []attribute.KeyValue {
	if !telemetry.Enabled() {
		return nil
	}
	return []attribute.KeyValue{attribute.String("accountwatch.provider", string(r.conn.Provider)),
		attribute.String("accountwatch.instance", r.conn.Name), attribute.Bool("accountwatch.full_scan", full)}
}

// load reads what the runner keeps of the connection's stored records: that
// each exists and whether it has its baseline, and the listing it was last
// processed from (recognised again without decoding it, see memory.recall),
// answered from the stored bytes without decoding them. A record keeps its
// last outbox until its next commit; a predecessor may have crashed between
// writing one and publishing it, so every record holding one is flushed,
// on the workers: flushing checks the stream first, so an outbox already
// published costs a read, not a write. It returns how many records there are.
//
// Outboxes at revisions up to trusted are known to be in the stream (the
// last owner had every commit up to it acknowledged when it last marked
// them, after a cycle or as it stopped: watch.Settled) and are not checked.
func (r *Runner) load(ctx context.Context, trusted uint64) (int, error) {
	records := &flatmap.Table[record]{}
	var pending []string
	err := r.State.Scan(ctx, r.prefix, r.Log.With("instance", r.conn.Name), func(key string, raw state.Raw) {
		tok := key[len(r.prefix):]
		rec := record{settled: raw.Rev, baseline: raw.Baselined()}
		if raw.Rev > trusted && raw.HasPending() {
			rec.settled = 0
			pending = append(pending, strings.Clone(key)) // not the whole subject the key was cut from
		}
		records.Put(tok, rec)
		if l := raw.Listing(); l != "" {
			if id, err := eventbus.ParseKeyToken(tok); err == nil {
				r.recall(l, id)
			}
		}
	})
	if err != nil {
		return 0, err
	}
	r.mu.Lock()
	r.records, r.recorded = records, true
	r.mu.Unlock()
	keys := make(chan string)
	var wg sync.WaitGroup
	for range min(r.Workers, len(pending)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for key := range keys {
				r.with(ctx, key, func(*state.Entry) bool { return true })
			}
		}()
	}
	for _, key := range pending {
		keys <- key
	}
	close(keys)
	wg.Wait()
	return records.Len(), ctx.Err()
}

// trusted is the revision up to which the stored outboxes are known to be
// in the stream: the connection's Settled mark, if it is of this stream
// (created then).
func (r *Runner) trusted(ctx context.Context, created time.Time) uint64 {
	m, err := r.Watch.LoadSettled(ctx, r.conn.Name)
	if err != nil || m.Revision == 0 || !created.Equal(m.Stream) {
		return 0
	}
	return m.Revision
}

// markSettled writes the connection's Settled mark when every record the
// runner knows is settled, it made no write of uncertain outcome, and every
// record stored since its last mark (or its load) is one it wrote or
// loaded: the mark's revision is the highest of those records', so a write
// in flight meanwhile, or another replica's, stays past it. It runs after
// every cycle that settled a record, so that a start after a crash checks
// the outboxes of the last cycle, not of every change since the last clean
// stop (a million accounts changing 1% an interval would leave each of
// them one within a day), and when the runner stops. A lease is given up
// before another replica may take it (pkg/lease), so nobody else writes the
// connection's records while it holds one; the count below catches a write
// stored late (see the README).
func (r *Runner) markSettled(ctx context.Context) {
	if r.uncertain.Load() {
		return
	}
	r.mu.Lock()
	if !r.recorded {
		r.mu.Unlock()
		return // nothing the last look did not see (a million records walked every quiet cycle otherwise)
	}
	r.recorded = false
	all, since, top := true, uint64(0), uint64(0)
	r.records.Range(func(_ string, rec record) bool {
		all = rec.settled != 0
		if rec.settled > r.markedAt {
			since++
		}
		top = max(top, rec.settled)
		return all
	})
	r.mu.Unlock()
	if !all || since == 0 && top <= r.vouched {
		return // unsettled (settled only by a write, which marks records changed), or nothing the stored mark does not cover
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	// A write another replica made before this one held the lease may be
	// stored after the load (its answer lost while the cluster had no
	// quorum): then a record is newer than this runner knows, its outbox
	// perhaps never published, and a mark would vouch for it.
	stored, err := r.State.StoredSince(sctx, r.prefix, r.markedAt)
	if err == nil && stored == since {
		err = r.Watch.SaveSettled(sctx, r.conn.Name, watch.Settled{Revision: top, Stream: r.created})
		if err == nil {
			r.markedAt, r.vouched, r.unmarked = max(r.markedAt, top), top, false
			return
		}
	}
	r.mu.Lock()
	r.recorded = true // look again next cycle
	r.mu.Unlock()
	if r.unmarked {
		return // said once until a mark is written again, not every cycle
	}
	r.unmarked = true
	switch {
	case err != nil:
		r.Log.Warn("no settled mark: a start checks the outboxes past the last one", "instance", r.conn.Name, "err", err)
	default: // it holds once this replica has written each of those records again
		r.Log.Info("no settled mark: records were stored that this replica did not write; a start checks their outboxes",
			"instance", r.conn.Name, "stored", stored, "written", since)
	}
}

func (r *Runner) loadProgress(ctx context.Context) progress {
	p, _, err := r.Watch.LoadProgress(ctx, r.conn.Name)
	if err != nil {
		r.Log.Warn("reading progress failed; starting afresh", "instance", r.conn.Name, "err", err)
	}
	return p
}

func (r *Runner) saveProgress(ctx context.Context, p progress) {
	if err := r.Watch.SaveProgress(ctx, r.conn.Name, p); err != nil {
		r.Log.Warn("saving progress failed", "instance", r.conn.Name, "err", err)
	}
}

// record is what the runner keeps of a stored record.
type record struct {
	// settled is a revision of the record whose outbox is known to be in
	// the stream (its commit saw it acknowledged, or a flush found it
	// there): the stored copy keeps its outbox until the next commit, and
	// is not checked again each time it is read.
	settled  uint64
	baseline bool
}

type task struct {
	entry watch.Entry
	obs   *detect.Observation  // from the listing; nil: read it
	sum   upstream.Fingerprint // of the listing bytes, when obs came from a listing
	size  int
	// gone: an account a complete listing lacked; the read confirms it gone
	// (not found) before it is removed, or observes it (a page that shifted)
	gone bool
	// adding: the account was discovered by this listing, its watch-list
	// entry is being written (awaited before anything else is done with
	// it); with discover set, it is announced (a listing after the first)
	adding   *watch.Adding
	discover bool
	listErr  error // a discovered account the listing holds but could not read
}

// cycle polls every watched account of the connection once. Listed accounts
// go to the workers as their page arrives, so committing changes overlaps
// with reading the rest of the listing. It reports whether the listing (if
// any) succeeded.
func (r *Runner) cycle(ctx context.Context, prog *progress, full bool) bool {
	p := r.startPool(ctx)
	listedOK := true
	observes := r.caps.Full // the listing is how accounts are read
	listing := observes || r.caps.Lists && r.conn.Discovery
	r.startScan(full && observes)
	scanComplete := false
	var partial error // a listing read to its end, some of it unreadable
	var listedFailed []failure
	unchanged, changed := 0, 0
	began := r.Now()
	var listed time.Duration
	defer func() {
		r.Metrics.Polls.WithLabelValues(r.conn.Name, "ok").Add(float64(unchanged))
		r.Log.Debug("cycle done", "instance", r.conn.Name, "full", full, "unchanged", unchanged, "read", changed,
			"listing", listed.String(), "total", r.Now().Sub(began).String())
	}()
	if listing {
		complete, err := r.src.List(ctx, full, prog.ScanSince, &r.memory, func(l source.Listed) {
			if l.Unchanged && r.again(l.AccountID) || !l.Unchanged && !r.listed(l.AccountID) {
				r.Log.Warn("account listed twice in one scan; reading it once", "instance", r.conn.Name, "account", l.AccountID)
				return
			}
			if l.Unchanged {
				unchanged++
				return // byte for byte what was last processed: nothing to detect
			}
			e, ok := r.Live.Lookup(r.conn.Provider, r.conn.Name, l.AccountID)
			var adding *watch.Adding
			if !ok && r.conn.Discovery {
				// Its entry is written pipelined with the others the
				// listing discovers; the worker taking the account awaits it.
				e = watch.Entry{Provider: r.conn.Provider, Instance: r.conn.Name, AccountID: l.AccountID, Space: l.Space, Source: watch.SourceDiscovery, AddedAt: r.Now().UTC()}
				adding = r.Watch.AddAsync(e)
				if prog.ListedOnce {
					p.submit(ctx, task{entry: e, obs: l.Obs, sum: l.Sum, size: l.Size, adding: adding, discover: true, listErr: l.Err})
					return
				}
				ok = true
			}
			switch {
			case !ok:
			case l.Err != nil:
				// Listed, but unreadable: this account failed, not the listing.
				r.countError(l.Err)
				listedFailed = append(listedFailed, failure{e, l.Err, adding})
			case l.Obs != nil:
				changed++
				p.submit(ctx, task{entry: e, obs: l.Obs, sum: l.Sum, size: l.Size, adding: adding})
			}
		})
		listed = r.Now().Sub(began)
		var pe *source.PartialError
		if errors.As(err, &pe) {
			r.countError(err)
			partial, err = err, nil
		}
		r.endListing(complete)
		if err != nil && ctx.Err() != nil {
			r.drain(p) // stopping is not the connection failing
			return false
		}
		if err != nil {
			listedOK = false
			r.countError(err)
			if observes {
				r.drain(p)
				r.providerFailed(ctx, err) // the listing is how this connection is read
				return false
			}
			r.Log.Warn("listing failed; polling the known accounts", "instance", r.conn.Name, "err", err)
		}
		if err == nil && r.conn.Discovery {
			prog.ListedOnce = true
		}
		if complete {
			r.pruneSums()
		}
		scanComplete = complete
	}
	// One pass over the watch list, under the runner's lock (the lock order
	// is runner, then watch list): a discovered account a complete listing
	// no longer holds may be gone; an account the scan did not list (or,
	// when the listing does not observe, every account) is read on its own.
	goneCheck := scanComplete && r.caps.Authoritative && r.conn.Discovery
	// In the steady state of a connection whose listing observes, the
	// listing holds every watched account and the pass would find nothing:
	// counting proves that without 100,000 lookups on the cycle's critical
	// path.
	var gone, rest []watch.Entry
	r.mu.Lock()
	if !(observes && listedOK && r.allListed()) {
		covered, gen := true, r.covered.gen+1
		v := r.Live.Range(r.conn.Name, func(e watch.Entry) {
			known, listedNow := r.seenBy(e.AccountID, gen)
			covered = covered && known
			_, other := r.other.Get(e.AccountID)
			inScan := listing && (listedNow || other)
			switch {
			case goneCheck && !inScan && e.Source == watch.SourceDiscovery:
				gone = append(gone, e)
			case observes && inScan: // observed through the listing
			case observes && !full && r.baselinedLocked(e): // unchanged since the last scan
			default:
				rest = append(rest, e)
			}
		})
		r.covered.ok, r.covered.version, r.covered.forgets, r.covered.gen = covered, v, r.forgets, gen
	}
	r.mu.Unlock()
	for _, e := range gone {
		p.submit(ctx, task{entry: e, gone: true})
	}
	for _, e := range rest {
		p.submit(ctx, task{entry: e})
	}
	ok, failed := r.drain(p)
	for _, e := range p.gone {
		r.removed(ctx, e)
	}
	failed = append(failed, listedFailed...)
	r.Metrics.WatchSize.WithLabelValues(r.conn.Name).Set(float64(r.Live.Count(r.conn.Name)))
	switch {
	case ok == 0 && len(failed) > 0 && (!listing || !listedOK):
		r.providerFailed(ctx, failed[0].err)
	default:
		for _, f := range failed {
			if f.adding != nil && !r.added(ctx, f.adding, f.entry) {
				continue
			}
			r.accountFailed(ctx, f.entry, f.err)
		}
		switch {
		case partial != nil:
			r.providerFailed(ctx, partial)
		case listedOK:
			r.providerOK(ctx)
		}
	}
	return listedOK
}

type failure struct {
	entry  watch.Entry
	err    error
	adding *watch.Adding // the account's entry being written, if it was discovered
}

// pool reads and processes tasks on the connection's workers. Failures are
// returned rather than recorded, so that a connection that fails entirely is
// one provider-level outage, not an alert per account.
type pool struct {
	ch     chan task
	wg     sync.WaitGroup
	mu     sync.Mutex
	ok     int
	failed []failure
	// processed: listed accounts committed, whose listing bytes the runner
	// remembers once the workers are done (drain)
	processed []listedSum
	// gone: accounts a read confirmed gone, removed once the workers are done
	gone []watch.Entry
}

type listedSum struct {
	id   string
	sum  upstream.Fingerprint
	size int
}

// drain waits for the workers and remembers the listing bytes of the
// accounts they committed.
func (r *Runner) drain(p *pool) (int, []failure) {
	ok, failed := p.wait()
	for _, x := range p.processed {
		r.remember(x.id, x.sum, x.size)
	}
	return ok, failed
}

func (r *Runner) startPool(ctx context.Context) *pool {
	p := &pool{ch: make(chan task, 4096)} // deep: the listing never waits for commits
	for range r.Workers {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			for t := range p.ch {
				r.run(ctx, p, t)
			}
		}()
	}
	return p
}

func (p *pool) submit(ctx context.Context, t task) {
	select {
	case p.ch <- t:
	case <-ctx.Done():
	}
}

func (p *pool) wait() (int, []failure) {
	close(p.ch)
	p.wg.Wait()
	return p.ok, p.failed
}

func (r *Runner) run(ctx context.Context, p *pool, t task) {
	if ctx.Err() != nil {
		return
	}
	if t.adding != nil && !r.added(ctx, t.adding, t.entry) {
		return
	}
	if t.discover {
		if r.discovered(ctx, t.entry, t.obs) && t.obs != nil {
			p.mu.Lock()
			p.processed = append(p.processed, listedSum{t.entry.AccountID, t.sum, t.size})
			p.mu.Unlock()
		}
		if t.listErr != nil {
			p.mu.Lock()
			p.failed = append(p.failed, failure{entry: t.entry, err: t.listErr})
			p.mu.Unlock()
		}
		return
	}
	obs := t.obs
	if obs == nil {
		o, err := r.src.Observe(ctx, t.entry)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			r.countError(err)
			r.Metrics.Polls.WithLabelValues(r.conn.Name, "error").Inc()
			if t.gone && errors.Is(err, upstream.ErrNotFound) {
				p.mu.Lock()
				p.gone = append(p.gone, t.entry)
				p.mu.Unlock()
				return
			}
			if errors.Is(err, upstream.ErrNotFound) && r.vanished(ctx, t.entry) {
				return
			}
			p.mu.Lock()
			p.failed = append(p.failed, failure{entry: t.entry, err: err})
			p.mu.Unlock()
			return
		}
		obs = &o
	}
	r.Metrics.Polls.WithLabelValues(r.conn.Name, "ok").Inc()
	p.mu.Lock()
	p.ok++
	p.mu.Unlock()
	if r.observed(ctx, t.entry, *obs, t.obs != nil) && t.obs != nil {
		p.mu.Lock()
		p.processed = append(p.processed, listedSum{t.entry.AccountID, t.sum, t.size})
		p.mu.Unlock()
	}
}

// added awaits a discovered account's watch-list entry; false if it could
// not be written (the account is discovered again next cycle).
func (r *Runner) added(ctx context.Context, a *watch.Adding, e watch.Entry) bool {
	if _, err := a.Wait(ctx); err != nil {
		if ctx.Err() == nil {
			r.Log.Warn("adding a discovered account failed", "account", e.AccountID, "err", err)
		}
		return false
	}
	return true
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

// with runs f on the account's current record (read from AW_STATE if there
// is one, any outbox left by a crash published first) and notes what f
// leaves in it. It returns what f returns, false if the record could not
// be read or its outbox flushed.
func (r *Runner) with(ctx context.Context, key string, f func(cur *state.Entry) bool) bool {
	tok := key[len(r.prefix):]
	r.mu.Lock()
	rec, stored := r.records.Get(tok)
	r.mu.Unlock()
	cur := &state.Entry{}
	if stored {
		e, err := r.State.GetKnown(ctx, key, rec.settled)
		switch {
		case errors.Is(err, state.ErrUndecodable):
			r.Log.Error("undecodable state record; starting it afresh", "key", key, "err", err)
		case err != nil:
			if ctx.Err() == nil {
				r.Log.Warn("reading a state record failed; retrying next cycle", "key", key, "err", err)
			}
			return false
		}
		cur = e
		if cur.Rev == rec.settled {
			cur.Pending = nil
		}
	}
	done := true
	if len(cur.Pending) > 0 {
		if err := r.State.Flush(ctx, key, cur); err != nil {
			r.Log.Warn("flushing a pending outbox failed; retrying next cycle", "key", key, "err", err)
			r.failedWrite(ctx, key, cur, err)
			done = false
		}
	}
	if done {
		done = f(cur)
	}
	if cur.Rev != 0 {
		now := record{baseline: cur.Record.Baseline}
		if len(cur.Pending) == 0 { // committed and acknowledged, or flushed
			now.settled = cur.Rev
		}
		r.mu.Lock()
		if was, ok := r.records.Get(tok); !ok || was != now {
			r.records.Put(tok, now)
			r.recorded = true
		}
		r.mu.Unlock()
	}
	return done
}

// baselinedLocked reports whether the account has a baseline. Lock held.
// An incremental scan asks this of every watched account it did not list:
// the token of an id is the id (no allocation) unless it needs escaping.
func (r *Runner) baselinedLocked(e watch.Entry) bool {
	rec, _ := r.records.Get(eventbus.KeyToken(e.AccountID))
	return rec.baseline
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

// DisplayNameLabel is the watch-entry label that names an account whose
// upstream gives it no name (a BSS customer, a CAMS number).
const DisplayNameLabel = "display_name"

// accountName is what events call the account: the upstream's name, else
// its watch entry's display_name label, else the allow-listed attribute the
// connection names (name_attribute), else none (the id, with the
// provider's wording, is then shown).
func (r *Runner) accountName(rec detect.Record, m event.Meta) string {
	if rec.Name != "" && rec.Name != rec.AccountID && rec.Name != m.AccountID {
		return rec.Name
	}
	if n := m.Labels[DisplayNameLabel]; n != "" {
		return n
	}
	if a := r.conn.NameAttribute; a != "" && r.Allow.Allowed(a) {
		return rec.Attrs[a]
	}
	return ""
}

// observed processes one successful read; it reports whether the result is
// committed (only then may the listing bytes be remembered as processed).
// An observation from a listing is recorded with the digest of its listing
// bytes (the evidence's: see source.Listed), so that a poller starting again
// recognises the account unchanged without decoding it.
func (r *Runner) observed(ctx context.Context, e watch.Entry, obs detect.Observation, listed bool) bool {
	return r.with(ctx, r.key(e.AccountID), func(cur *state.Entry) bool {
		changes, next := detect.Observe(cur.Record, obs, r.Policy)
		relisted := listed && cur.Listing != obs.Evidence.ResponseSHA256
		if relisted {
			cur.Listing = obs.Evidence.ResponseSHA256
		}
		return r.commit(ctx, r.key(e.AccountID), cur, next, changes, r.meta(e, next.Name, obs.At, obs.Evidence), relisted)
	})
}

// vanished handles an account the upstream no longer knows: once baselined,
// that is a removal; otherwise it is a failure like any other.
func (r *Runner) vanished(ctx context.Context, e watch.Entry) bool {
	handled := false
	r.with(ctx, r.key(e.AccountID), func(cur *state.Entry) bool {
		if !cur.Record.Baseline {
			return true
		}
		handled = true
		if !cur.Record.Removed {
			r.removedRecord(ctx, cur, e)
		}
		return true
	})
	return handled
}

func (r *Runner) discovered(ctx context.Context, e watch.Entry, obs *detect.Observation) bool {
	return r.with(ctx, r.key(e.AccountID), func(cur *state.Entry) bool {
		next := cur.Record
		m := r.meta(e, "", r.Now().UTC(), event.Evidence{})
		var attrs map[string]string
		if obs != nil {
			cur.Listing = obs.Evidence.ResponseSHA256 // a listing's (see observed)
			_, next = detect.Observe(cur.Record, *obs, r.Policy)
			m = r.meta(e, obs.Name, obs.At, obs.Evidence)
			attrs = obs.Attrs
		}
		return r.commit(ctx, r.key(e.AccountID), cur, next, []detect.Change{{Type: event.TypeDiscovered, Attrs: attrs}}, m, false)
	})
}

func (r *Runner) removed(ctx context.Context, e watch.Entry) {
	r.forget(e.AccountID)
	r.with(ctx, r.key(e.AccountID), func(cur *state.Entry) bool {
		if !cur.Record.Removed {
			r.removedRecord(ctx, cur, e)
		}
		return true
	})
	if err := r.Watch.Remove(ctx, e.Provider, e.Instance, e.AccountID); err != nil && !errors.Is(err, watch.ErrNotFound) {
		r.Log.Warn("removing a vanished account from the watch list failed", "account", e.AccountID, "err", err)
	}
}

func (r *Runner) removedRecord(ctx context.Context, cur *state.Entry, e watch.Entry) bool {
	next := cur.Record
	next.Removed = true
	return r.commit(ctx, r.key(e.AccountID), cur, next, []detect.Change{{Type: event.TypeRemoved, Attrs: cur.Record.Attrs}}, r.meta(e, cur.Record.Name, r.Now().UTC(), event.Evidence{}), false)
}

func (r *Runner) accountFailed(ctx context.Context, e watch.Entry, err error) {
	r.with(ctx, r.key(e.AccountID), func(cur *state.Entry) bool {
		changes, next := detect.Fail(cur.Record, r.Now(), upstream.CodeOf(err), scrub(err.Error()), causeOf(err), r.Policy)
		return r.commit(ctx, r.key(e.AccountID), cur, next, changes, r.meta(e, cur.Record.Name, r.Now().UTC(), event.Evidence{}), false)
	})
}

func (r *Runner) providerEntry() watch.Entry {
	return watch.Entry{Provider: r.conn.Provider, Instance: r.conn.Name, AccountID: event.ProviderScope}
}

func (r *Runner) providerFailed(ctx context.Context, err error) {
	r.with(ctx, r.key(event.ProviderScope), func(cur *state.Entry) bool {
		changes, next := detect.Fail(cur.Record, r.Now(), upstream.CodeOf(err), scrub(err.Error()), causeOf(err), r.Policy)
		r.Log.Warn("connection failed", "instance", r.conn.Name, "failures", next.Failures, "err", err)
		return r.commit(ctx, r.key(event.ProviderScope), cur, next, changes, r.meta(r.providerEntry(), "", r.Now().UTC(), event.Evidence{}), false)
	})
}

func (r *Runner) providerOK(ctx context.Context) {
	key := r.key(event.ProviderScope)
	r.mu.Lock()
	_, ok := r.records.Get(key[len(r.prefix):])
	r.mu.Unlock()
	if !ok {
		return // never failed
	}
	r.with(ctx, key, func(cur *state.Entry) bool {
		if cur.Record.Failures == 0 {
			return true
		}
		changes, next := detect.Recover(cur.Record)
		return r.commit(ctx, key, cur, next, changes, r.meta(r.providerEntry(), "", r.Now().UTC(), event.Evidence{}), false)
	})
}

// scrub keeps secrets and personal data out of an error's text before it is
// stored or sent (an upstream's message may echo a login email).
func scrub(s string) string { return event.ScrubPII(redact.String(s)) }

// kinds names the upstream error kinds in a cause.
var kinds = []struct {
	err  error
	name string
}{
	{upstream.ErrMalformed, "malformed"}, {upstream.ErrThrottled, "throttled"}, {upstream.ErrUnauthorized, "unauthorised"},
	{upstream.ErrNotFound, "not_found"}, {upstream.ErrTransient, "transient"}, {upstream.ErrRejected, "rejected"},
}

// causeOf says what a failed read could not read, for poll.degraded.
func causeOf(err error) *event.PollCause {
	c := &event.PollCause{Operation: "read", Kind: "other", Detail: truncate(scrub(err.Error()), 200)}
	var ue *upstream.Error
	if !errors.As(err, &ue) {
		return c
	}
	c.Operation, c.AccountID, c.Field, c.Code, c.RequestID = ue.Op, ue.Account, ue.Field, ue.Code, ue.RequestID
	c.Detail = truncate(scrub(ue.Msg), 200)
	if ue.HTTPStatus >= 100 && ue.HTTPStatus <= 599 {
		c.HTTPStatus = ue.HTTPStatus
	}
	for _, k := range kinds {
		if errors.Is(ue.Kind, k.err) {
			c.Kind = k.name
		}
	}
	if c.Operation == "" {
		c.Operation = "read"
	}
	return c
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// commit turns changes into chained events and commits them with the next
// record; without changes it writes the record only if it differs, or if
// force (what else the entry holds changed).
func (r *Runner) commit(ctx context.Context, key string, cur *state.Entry, next detect.Record, changes []detect.Change, m event.Meta, force bool) bool {
	if telemetry.Enabled() {
		var span trace.Span
		ctx, span = telemetry.Start(ctx, "commit "+m.AccountID, trace.SpanKindProducer,
			attribute.String("accountwatch.instance", r.conn.Name), attribute.String("accountwatch.account", m.AccountID), attribute.Int("accountwatch.changes", len(changes)))
		defer span.End()
	}
	next.Version, next.Provider, next.Instance = 1, r.conn.Provider, r.conn.Name
	next.AccountID = m.AccountID
	// The labels the account's events carry, for reports that select by them.
	next.Labels = nil
	if len(m.Labels) > 0 {
		next.Labels = m.Labels
	}
	if len(changes) == 0 {
		if !force && unchanged(cur.Record, next) {
			return true
		}
		if err := r.State.Put(ctx, key, cur, next); err != nil {
			r.failedWrite(ctx, key, cur, err)
			return false
		}
		r.observe(nil)
		return true
	}
	m.PreviousObservedAt = cur.Record.ChangedAt
	m.Revision = cur.Rev
	m.AccountName = r.accountName(next, m)
	// Every event says where the account stands once it happened.
	m.Standing = next.Standing()
	chain := cur.Record.Chain
	events := make([]*event.Event, 0, len(changes))
	for _, c := range changes {
		m.Chain = event.Chain{Seq: chain.Seq + 1, Prev: chain.Prev}
		ev, err := c.Event(m)
		if err != nil {
			r.Log.Error("building an event failed", "key", key, "type", c.Type, "err", err)
			return false
		}
		chain = event.Chain{Seq: ev.Data.Chain.Seq, Prev: ev.Hash()}
		telemetry.Inject(ctx, ev) // the commit's span: a sink's attempts continue it
		events = append(events, ev)
		if c.Unknown {
			r.Metrics.Unknown.WithLabelValues(r.conn.Name, c.Field).Inc()
		}
	}
	next.Chain = chain
	next.ChangedAt = m.ObservedAt
	if err := r.State.Commit(ctx, key, cur, next, events); err != nil {
		r.failedWrite(ctx, key, cur, err)
		return false
	}
	r.observe(nil)
	for _, ev := range events {
		r.Metrics.Changes.WithLabelValues(r.conn.Name, ev.Type().Tail()).Inc()
	}
	return true
}

// unchanged reports whether next would be stored as cur is: a map left
// empty is stored as none (omitempty), as detection leaves one it copied
// from none.
func unchanged(cur, next detect.Record) bool {
	for _, r := range []*detect.Record{&cur, &next} {
		if len(r.Enums) == 0 {
			r.Enums = nil
		}
		if len(r.Profile) == 0 {
			r.Profile = nil
		}
		if len(r.Attrs) == 0 {
			r.Attrs = nil
		}
	}
	return reflect.DeepEqual(cur, next)
}

// failedWrite re-reads a record another writer changed (or logs a failed
// write); the change is detected again next cycle against the fresh state. A
// failed publish leaves the outbox in cur, flushed before the next change.
func (r *Runner) failedWrite(ctx context.Context, key string, cur *state.Entry, err error) {
	r.uncertain.Store(true)
	if ctx.Err() != nil {
		return
	}
	if errors.Is(err, state.ErrConflict) {
		r.observe(nil) // the server answered: storing works
		if fresh, gerr := r.State.Get(ctx, key); gerr == nil {
			*cur = *fresh
		}
		r.Log.Info("state changed under this replica; re-reading", "key", key)
		return
	}
	r.observe(err)
	r.Log.Warn("committing state failed; the change is detected again next cycle", "key", key, "err", fmt.Sprint(err))
}

// observe tells readiness (and the failures' counter) how a commit went.
func (r *Runner) observe(err error) {
	if err != nil {
		r.Metrics.PublishFailures.Inc()
	}
	if r.Publish != nil {
		r.Publish.Observe(err)
	}
}
