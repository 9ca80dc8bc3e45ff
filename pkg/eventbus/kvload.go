package eventbus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// KVEntry is one stored revision of a bucket's key, as LoadKV hands it out.
// Value is only valid during the call.
type KVEntry struct {
	Key      string // without the bucket's subject prefix
	Value    []byte
	Revision uint64
	Deleted  bool // a delete or purge marker
}

// LoadOptions tune LoadKV.
type LoadOptions struct {
	// Follow keeps applying new revisions, in the background, until ctx ends.
	Follow bool
	// What is loaded, for the progress lines and errors ("watch list").
	What string
	// Log gets a progress line every ProgressEvery while a load runs
	// (nil: none).
	Log           *slog.Logger
	ProgressEvery time.Duration // default 10 s
	// Stall bounds a load by its progress: it fails once no revision
	// arrived for this long while some were still to come (default 1 min).
	// It also bounds the consumer's creation, a constant-time request.
	Stall time.Duration
}

// ErrLoadStalled is a load that stopped receiving revisions (LoadOptions.Stall).
var ErrLoadStalled = errors.New("no progress")

// LoadKV applies every stored revision of a bucket's keys matching filter
// (a key pattern, "acct.>"), in the order they were written, so that the
// last one applied for each key is its current value (a delete marker
// included: Deleted); it returns once every revision stored when it began
// is applied.
//
// Why every revision, not the last of each key (what a KV watcher asks
// for): the server answers the creation of a last-per-subject consumer
// only once it has found the last revision of every subject, which for a
// million keys took more than the 5 s nats.go grants a request whose
// context has no deadline, on a loaded machine ("watch list: context
// deadline exceeded" at startup). A consumer from the first revision is
// created at once; the revisions a bucket's history keeps are few. The load
// is bounded by its progress (Stall), not by a deadline on its duration,
// and logs how far it is (Log).
func LoadKV(ctx context.Context, js jetstream.JetStream, bucket, filter string, o LoadOptions, apply func(KVEntry)) error {
	if o.Stall <= 0 {
		o.Stall = time.Minute
	}
	if o.ProgressEvery <= 0 {
		o.ProgressEvery = 10 * time.Second
	}
	if o.What == "" {
		o.What = bucket
	}
	prefix := "$KV." + bucket + "."
	stream := "KV_" + bucket
	cctx, cancel := context.WithTimeout(ctx, o.Stall)
	c, err := js.OrderedConsumer(cctx, stream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{prefix + filter}, DeliverPolicy: jetstream.DeliverAllPolicy})
	cancel()
	if err != nil {
		return fmt.Errorf("%s: %w", o.What, err)
	}
	total := c.CachedInfo().NumPending
	it, err := c.Messages(jetstream.PullMaxMessages(4096))
	if err != nil {
		return fmt.Errorf("%s: %w", o.What, err)
	}
	stop := func() {
		it.Stop()
		if info := c.CachedInfo(); info != nil {
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			js.DeleteConsumer(dctx, stream, info.Name) // else it lingers until inactive
			cancel()
		}
	}
	var lastRev uint64 // the last revision the load applied
	handle := func(m jetstream.Msg) (pending uint64, err error) {
		md, err := m.Metadata()
		if err != nil {
			return 0, err
		}
		subj := m.Subject()
		if len(subj) <= len(prefix) {
			return md.NumPending, nil
		}
		lastRev = md.Sequence.Stream
		e := KVEntry{Key: subj[len(prefix):], Value: m.Data(), Revision: md.Sequence.Stream}
		if h := m.Headers(); len(h) > 0 {
			switch h.Get("KV-Operation") {
			case "DEL", "PURGE":
				e.Deleted = true
			}
			switch h.Get(jetstream.MarkerReasonHeader) {
			case "MaxAge", "Purge", "Remove":
				e.Deleted = true
			}
		}
		apply(e)
		return md.NumPending, nil
	}

	// The load: until every revision counted at the start is applied, or
	// the consumer has none left. A watchdog fails it when it stalls.
	var read atomic.Uint64
	lctx, cancelLoad := context.WithCancelCause(ctx)
	defer cancelLoad(nil)
	began := time.Now()
	go func() {
		tick := time.NewTicker(max(min(o.Stall, o.ProgressEvery)/2, time.Millisecond))
		defer tick.Stop()
		last, lastAt, logged := read.Load(), time.Now(), time.Now()
		for {
			select {
			case <-lctx.Done():
				return
			case now := <-tick.C:
				n := read.Load()
				if n != last {
					last, lastAt = n, now
				} else if now.Sub(lastAt) >= o.Stall {
					cancelLoad(fmt.Errorf("%s: %w for %s after %d of %d revisions", o.What, ErrLoadStalled, o.Stall, n, total))
					return
				}
				if o.Log != nil && now.Sub(logged) >= o.ProgressEvery {
					logged = now
					o.Log.Info("loading", "what", o.What, "revisions", n, "of", total, "elapsed", now.Sub(began).Round(time.Second).String())
				}
			}
		}
	}()
	for n := uint64(0); n < total; {
		m, err := it.Next(jetstream.NextContext(lctx))
		if err != nil {
			stop()
			if cause := context.Cause(lctx); cause != nil && ctx.Err() == nil {
				return cause
			}
			return fmt.Errorf("%s: %w", o.What, err)
		}
		if cause := context.Cause(lctx); cause != nil && ctx.Err() == nil {
			stop() // stalled: Next may still hand out what it had buffered
			return cause
		}
		pending, err := handle(m)
		if err != nil {
			stop()
			return fmt.Errorf("%s: %w", o.What, err)
		}
		n++
		read.Store(n)
		if pending == 0 {
			break
		}
	}
	cancelLoad(nil)
	if o.Log != nil && time.Since(began) >= o.ProgressEvery {
		o.Log.Info("loaded", "what", o.What, "revisions", read.Load(), "took", time.Since(began).Round(time.Millisecond).String())
	}
	stop()
	if !o.Follow {
		return nil
	}
	// What follows comes from a KV watcher from the next revision: the
	// load's pull consumer did not come back after a cluster node was
	// killed (the chaos run's auditor index stopped), a watcher recovers.
	// From a revision near the end its creation is quick.
	kv, err := js.KeyValue(ctx, bucket)
	if err != nil {
		return fmt.Errorf("%s: follow: %w", o.What, err)
	}
	w, err := kv.Watch(ctx, filter, jetstream.ResumeFromRevision(lastRev+1))
	if err != nil {
		return fmt.Errorf("%s: follow: %w", o.What, err)
	}
	return Follow(ctx, w, true, func(e jetstream.KeyValueEntry) {
		apply(KVEntry{Key: e.Key(), Value: e.Value(), Revision: e.Revision(), Deleted: e.Operation() != jetstream.KeyValuePut})
	})
}
