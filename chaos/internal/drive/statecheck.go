package drive

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/eventbus"
	"github.com/accountwatch/accountwatch/pkg/state"
)

// Ahead is a state record whose hash chain ends on an event the stream does
// not hold.
type Ahead struct {
	Key string
	Seq uint64
	// Pending: the event waits in the record's own outbox.
	Pending bool
	// Undecodable holds the decoding error of a record that could not be read.
	Undecodable string
}

func (a Ahead) String() string {
	if a.Undecodable != "" {
		return a.Key + ": undecodable: " + a.Undecodable
	}
	return fmt.Sprintf("%s: chain at %d names an event the stream does not hold (in its outbox: %v)", a.Key, a.Seq, a.Pending)
}

// afterState runs between the two reads of StateAhead (a test's writes).
var afterState func()

// StateAhead compares every state record with the event stream: the event a
// record's chain ends on must be stored, or (while the pipeline may still be
// catching up, allowPending) wait in the record's own outbox. It returns the
// records read and those ahead of the stream; retry repeats a read the
// settling cluster refused.
//
// The records are read first, then the stream. A poller drops an event from
// the outbox only once the stream acknowledged it, so a record read without
// it names an event already stored when the stream is read. The other order
// raced a live pipeline: an outbox flushed, and its record rewritten,
// between the two reads looked like state ahead of the stream.
func StateAhead(ctx context.Context, js jetstream.JetStream, allowPending bool, retry func(func() error) error) (int, []Ahead, error) {
	var kv jetstream.KeyValue
	if err := retry(func() (err error) { kv, err = js.KeyValue(ctx, eventbus.BucketState); return err }); err != nil {
		return 0, nil, err
	}
	var entries []jetstream.KeyValueEntry
	err := retry(func() error {
		w, err := kv.WatchAll(ctx, jetstream.IgnoreDeletes())
		if err != nil {
			return err
		}
		defer w.Stop()
		entries = entries[:0]
		for e := range w.Updates() {
			if e == nil {
				return nil
			}
			entries = append(entries, e)
		}
		return errors.New("watcher closed")
	})
	if err != nil {
		return 0, nil, fmt.Errorf("reading the state records: %w", err)
	}
	if afterState != nil {
		afterState()
	}
	var msgs []jetstream.Msg
	if err := retry(func() (err error) { msgs, err = ReadAll(ctx, js, eventbus.StreamEvents); return err }); err != nil {
		return 0, nil, fmt.Errorf("reading the event stream: %w", err)
	}
	stored := make(map[string]bool, len(msgs))
	for _, m := range msgs {
		stored[event.HashOf(m.Headers().Get(jetstream.MsgIDHeader), m.Data())] = true
	}
	var ahead []Ahead
	for _, e := range entries {
		st, err := state.Decode(e.Key(), state.Raw{Data: e.Value(), Rev: e.Revision()})
		if err != nil {
			ahead = append(ahead, Ahead{Key: e.Key(), Undecodable: err.Error()})
			continue
		}
		head := st.Record.Chain
		if head.Seq == 0 || stored[head.Prev] {
			continue
		}
		pending := false
		for _, p := range st.Pending {
			pending = pending || event.HashOf(p.Header.Get(jetstream.MsgIDHeader), p.Data) == head.Prev
		}
		if pending && allowPending {
			continue
		}
		ahead = append(ahead, Ahead{Key: e.Key(), Seq: head.Seq, Pending: pending})
	}
	return len(entries), ahead, nil
}
