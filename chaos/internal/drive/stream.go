package drive

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/accountwatch/accountwatch/chaos/internal/ledger"
	"github.com/accountwatch/accountwatch/pkg/eventbus"
)

// ToLedger decodes one stored message.
func ToLedger(m jetstream.Msg) ledger.Event {
	e := ledger.Event{MsgID: m.Headers().Get(jetstream.MsgIDHeader)}
	if md, err := m.Metadata(); err == nil {
		e.Seq, e.Stored = md.Sequence.Stream, md.Timestamp
	}
	ev, err := eventbus.DecodeMsg(m)
	if err != nil {
		e.Undecodable = err.Error()
		return e
	}
	e.ID, e.Type, e.Field = ev.ID(), ev.Type().Tail(), ev.Data.Field
	e.Severity, e.Attrs = string(ev.Data.Severity), ev.Data.Attributes
	e.Key = ledger.Key{Provider: string(ev.Data.Provider), Instance: ev.Data.Instance, Account: ev.Data.AccountID}
	if ev.Data.Previous != nil {
		e.Prev = ev.Data.Previous.Value
	}
	if ev.Data.Current != nil {
		e.Cur = ev.Data.Current.Value
	}
	return e
}

// Follow reads the event stream from its start and hands every message to
// fn, in order, until ctx ends. Through faults the ordered consumer is made
// again from where it stopped, also when it stalls: the client's ordered
// consumer was seen, after a node was killed, to wait for good while the
// stream went on storing.
func Follow(ctx context.Context, js jetstream.JetStream, fn func(jetstream.Msg)) {
	var next atomic.Uint64
	next.Store(1)
	for ctx.Err() == nil {
		cfg := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: next.Load()}
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		c, err := js.OrderedConsumer(cctx, eventbus.StreamEvents, cfg)
		cancel()
		if err != nil {
			sleep(ctx, 500*time.Millisecond)
			continue
		}
		it, err := c.Messages()
		if err != nil {
			sleep(ctx, 500*time.Millisecond)
			continue
		}
		stop := context.AfterFunc(ctx, it.Stop)
		// The watchdog stops an iterator that stalls while the stream goes
		// on (its consumer's reset can wait on a node that is gone); the
		// loop then makes a new one from where this one stopped.
		var last atomic.Int64
		last.Store(time.Now().UnixNano())
		watch, unwatch := context.WithCancel(ctx)
		go func() {
			t := time.NewTicker(time.Second)
			defer t.Stop()
			for {
				select {
				case <-watch.Done():
					return
				case <-t.C:
				}
				if time.Since(time.Unix(0, last.Load())) > 5*time.Second && behind(watch, js, next.Load()) {
					it.Stop()
					return
				}
			}
		}()
		for {
			m, err := it.Next()
			if err != nil {
				break
			}
			last.Store(time.Now().UnixNano())
			if md, err := m.Metadata(); err == nil {
				next.Store(md.Sequence.Stream + 1)
			}
			fn(m)
		}
		unwatch()
		stop()
		it.Stop()
	}
}

// behind reports whether the stream holds a message at or past next.
func behind(ctx context.Context, js jetstream.JetStream, next uint64) bool {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, eventbus.StreamEvents)
	return err == nil && s.CachedInfo().State.LastSeq >= next
}

// ReadAll reads every message the stream holds now.
func ReadAll(ctx context.Context, js jetstream.JetStream, stream string) ([]jetstream.Msg, error) {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return nil, err
	}
	last := s.CachedInfo().State.LastSeq
	if last == 0 {
		return nil, nil
	}
	c, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return nil, err
	}
	var out []jetstream.Msg
	for {
		batch, err := c.Fetch(500, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return nil, err
		}
		got := 0
		for m := range batch.Messages() {
			got++
			out = append(out, m)
			if md, err := m.Metadata(); err == nil && md.Sequence.Stream >= last {
				return out, nil
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
			return nil, err
		}
		if got == 0 {
			return nil, fmt.Errorf("read %s: stopped at %d of %d", stream, len(out), last)
		}
	}
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
