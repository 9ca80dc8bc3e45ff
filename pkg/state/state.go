// Package state keeps each account's last-known state (a detect.Record) in the
// AW_STATE bucket, and commits a change and its events crash-safely.
//
// Commit is an outbox: (1) the next record is written together with its
// encoded events, compare-and-swap on the revision the change was detected
// against; (2) the events are published and acknowledged. The events stay in
// the record until the account's next commit replaces it: whoever reads the
// record next (after a crash, or before the next change) makes sure each is in
// the stream, publishing exactly those bytes (same ids, same chain links) unless
// the last message on the event's subject already carries its id. Nothing is
// lost, nothing is stored twice, and an account's hash chain can never fork, as
// it could if a change were re-detected from an older state after upstream
// moved on. Two durable writes per change, not three: no write to clear the outbox.
package state

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/accountwatch/accountwatch/pkg/detect"
	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/eventbus"
)

// ErrConflict is returned when the record changed since it was read (another
// writer): the caller re-reads and tries again later.
var ErrConflict = errors.New("state changed concurrently")

// Key is the KV key of an account's record: <provider>.<instance>.<account token>.
func Key(p event.Provider, instance, accountID string) string {
	return string(p) + "." + instance + "." + eventbus.KeyToken(accountID)
}

// Prefix selects every record of one connection.
func Prefix(p event.Provider, instance string) string { return string(p) + "." + instance + "." }

// Pending is an encoded event not yet acknowledged by the stream.
type Pending struct {
	Subject string      `json:"subject"`
	Header  nats.Header `json:"header"`
	Data    []byte      `json:"data"`
}

// Entry is a stored record with its revision and outbox.
type Entry struct {
	Record  detect.Record `json:"record"`
	Pending []Pending     `json:"pending,omitempty"`
	// Rev is the KV revision (0: no record yet).
	Rev uint64 `json:"-"`
}

// Store reads and commits records.
type Store struct {
	kv     jetstream.KeyValue
	pub    *eventbus.Publisher
	events jetstream.Stream
}

// Open opens the AW_STATE bucket.
func Open(ctx context.Context, js jetstream.JetStream) (*Store, error) {
	kv, err := js.KeyValue(ctx, eventbus.BucketState)
	if err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	events, err := js.Stream(ctx, eventbus.StreamEvents)
	if err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	return &Store{kv: kv, pub: eventbus.NewPublisher(js), events: events}, nil
}

// Get reads one record; a missing one is a zero Entry with Rev 0.
func (s *Store) Get(ctx context.Context, key string) (*Entry, error) {
	kve, err := s.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return &Entry{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("state %s: %w", key, err)
	}
	return decode(kve)
}

func decode(kve jetstream.KeyValueEntry) (*Entry, error) {
	var e Entry
	if err := json.Unmarshal(kve.Value(), &e); err != nil {
		return nil, fmt.Errorf("state %s: %w", kve.Key(), err)
	}
	e.Rev = kve.Revision()
	return &e, nil
}

// Raw is a stored record as bytes, decoded only when needed (Decode): a poller
// holding 100,000 accounts keeps them compact.
type Raw struct {
	Data []byte
	Rev  uint64
}

// Decode decodes a raw record.
func Decode(key string, r Raw) (*Entry, error) {
	var e Entry
	if err := json.Unmarshal(r.Data, &e); err != nil {
		return nil, fmt.Errorf("state %s: %w", key, err)
	}
	e.Rev = r.Rev
	return &e, nil
}

// Encode is the stored form of an entry.
func Encode(e *Entry) (Raw, error) {
	b, err := json.Marshal(e)
	return Raw{Data: b, Rev: e.Rev}, err
}

// LoadRaw reads every record under a prefix (one connection), keyed by KV key,
// without decoding them.
func (s *Store) LoadRaw(ctx context.Context, prefix string) (map[string]Raw, error) {
	w, err := s.kv.Watch(ctx, prefix+">")
	if err != nil {
		return nil, fmt.Errorf("state load %s: %w", prefix, err)
	}
	defer w.Stop()
	out := map[string]Raw{}
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case u := <-w.Updates():
			if u == nil {
				return out, nil
			}
			if u.Operation() != jetstream.KeyValuePut {
				delete(out, u.Key())
				continue
			}
			out[u.Key()] = Raw{Data: u.Value(), Rev: u.Revision()}
		}
	}
}

// Load reads and decodes every record under a prefix (one connection).
func (s *Store) Load(ctx context.Context, prefix string) (map[string]*Entry, error) {
	raws, err := s.LoadRaw(ctx, prefix)
	if err != nil {
		return nil, err
	}
	out := make(map[string]*Entry, len(raws))
	for k, r := range raws {
		e, err := Decode(k, r)
		if err != nil {
			return nil, err
		}
		out[k] = e
	}
	return out, nil
}

// Commit stores next and publishes events (in order) crash-safely, with
// compare-and-swap on cur.Rev. Any outbox cur still holds is flushed first.
// It updates cur in place to the committed state.
func (s *Store) Commit(ctx context.Context, key string, cur *Entry, next detect.Record, events []*event.Event) error {
	if err := s.Flush(ctx, key, cur); err != nil {
		return err
	}
	staged := &Entry{Record: next, Rev: cur.Rev}
	msgs := make([]*nats.Msg, len(events))
	for i, e := range events {
		m, err := eventbus.Encode(e)
		if err != nil {
			return err
		}
		msgs[i] = m
		staged.Pending = append(staged.Pending, Pending{Subject: m.Subject, Header: m.Header, Data: m.Data})
	}
	if err := s.write(ctx, key, staged); err != nil {
		return err
	}
	*cur = *staged
	if _, err := s.pub.PublishMsgs(ctx, msgs); err != nil {
		return err // still pending: the next Flush publishes them
	}
	cur.Pending = nil // published; the stored copy is replaced by the next commit
	return nil
}

// Flush makes sure an entry's outbox is in the stream: an event whose subject's
// last message already carries its id was published; the others are published
// now. The outbox is then empty in cur (the stored copy is left for the next
// commit to replace).
func (s *Store) Flush(ctx context.Context, key string, cur *Entry) error {
	if len(cur.Pending) == 0 {
		return nil
	}
	var missing []*nats.Msg
	for _, p := range cur.Pending {
		id := p.Header.Get(jetstream.MsgIDHeader)
		last, err := s.events.GetLastMsgForSubject(ctx, p.Subject)
		switch {
		case err == nil && last.Header.Get(jetstream.MsgIDHeader) == id:
			continue
		case err != nil && !errors.Is(err, jetstream.ErrMsgNotFound):
			return fmt.Errorf("state %s: checking the outbox: %w", key, err)
		}
		missing = append(missing, &nats.Msg{Subject: p.Subject, Header: p.Header, Data: p.Data})
	}
	if len(missing) > 0 {
		if _, err := s.pub.PublishMsgs(ctx, missing); err != nil {
			return err
		}
	}
	cur.Pending = nil
	return nil
}

// Put writes a record without events (baseline, failure counters).
func (s *Store) Put(ctx context.Context, key string, cur *Entry, next detect.Record) error {
	e := &Entry{Record: next, Rev: cur.Rev, Pending: cur.Pending}
	if err := s.write(ctx, key, e); err != nil {
		return err
	}
	*cur = *e
	return nil
}

// write stores e with CAS on e.Rev and sets e.Rev to the new revision.
func (s *Store) write(ctx context.Context, key string, e *Entry) error {
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	var rev uint64
	if e.Rev == 0 {
		rev, err = s.kv.Create(ctx, key, b)
	} else {
		rev, err = s.kv.Update(ctx, key, b, e.Rev)
	}
	if errors.Is(err, jetstream.ErrKeyExists) || isWrongSequence(err) {
		return fmt.Errorf("state %s: %w", key, ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("state %s: %w", key, err)
	}
	e.Rev = rev
	return nil
}

func isWrongSequence(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence
}
