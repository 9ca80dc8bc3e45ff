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
//
// Commits of different accounts made at the same time are grouped: their
// records are all sent (each with its own compare-and-swap) before the first
// answer is awaited, then the events of those stored, the same way. A group
// costs two round trips to the server, not two per change, and each commit is
// settled exactly as it would have been alone. Groups are pipelined: the next
// group's records are written while this one's events are being stored, so
// with fsync on every write the two streams' syncs overlap.
package state

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

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
	return string(AppendKey(nil, p, instance, accountID))
}

// AppendKey appends the key of an account's record to b: Key into a buffer
// the caller reuses, for a lookup per watched account without an allocation.
func AppendKey(b []byte, p event.Provider, instance, accountID string) []byte {
	b = append(append(append(append(b, p...), '.'), instance...), '.')
	return append(b, eventbus.KeyToken(accountID)...)
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
	Pending []Pending     `json:"pending,omitempty"` // Raw.HasPending looks for this tag
	// Listing is the SHA-256 (hex) of the account's bytes in the listing
	// the record was last processed from, if it was: a poller starting
	// again recognises unchanged accounts by it without decoding them, or
	// reading their records. Last, so that Raw.Listing finds it at the end.
	Listing string `json:"listing,omitempty"`
	// Rev is the KV revision (0: no record yet).
	Rev uint64 `json:"-"`
}

// The stored bytes Raw's questions look for: encoding/json writes exactly
// these for an Entry's outbox and its record's baseline flag (a string value
// that holds them is escaped, a map key that is them holds an object, so
// nothing else matches). TestRawAnswers holds them to the tags.
var (
	pendingMark  = []byte(`"pending":[`)
	baselineMark = []byte(`"baseline":true`)
	listingMark  = []byte(`"listing":"`)
)

// HasPending reports whether the stored entry has an outbox (events written
// with the record, perhaps not yet in the stream), without decoding it: a
// poller starting with 100,000 records asks this of each.
func (r Raw) HasPending() bool { return bytes.Contains(r.Data, pendingMark) }

// Baselined reports whether the stored record has its baseline (its account
// was read once), without decoding it.
func (r Raw) Baselined() bool { return bytes.Contains(r.Data, baselineMark) }

// Listing is the stored entry's Listing, without decoding it: the last
// field, so the bytes end with it (a string inside the record is followed
// by the record's closing brace, and an outbox by its bracket).
func (r Raw) Listing() string {
	const digest = 64
	d := r.Data
	if len(d) < len(listingMark)+digest+2 || !bytes.HasSuffix(d, []byte(`"}`)) {
		return ""
	}
	start := len(d) - 2 - digest
	if !bytes.Equal(d[start-len(listingMark):start], listingMark) {
		return ""
	}
	return string(d[start : start+digest])
}

// Store reads and commits records.
type Store struct {
	js     jetstream.JetStream
	kv     jetstream.KeyValue
	pub    *eventbus.Publisher
	events jetstream.Stream
	group  group
	// maxGroup bounds a group
	maxGroup int
	// groups committed, the commits they held, and the groups whose records
	// were written while the group before's events were in flight
	batches, grouped, pipelined atomic.Uint64
}

// stateStream is the bucket's stream.
const stateStream = "KV_" + eventbus.BucketState

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
	return &Store{js: js, kv: kv, pub: eventbus.NewPublisher(js), events: events, maxGroup: defaultMaxGroup}, nil
}

// Position is the state stream's last revision and when the stream was
// created (a revision means nothing in another stream of the same name).
func (s *Store) Position(ctx context.Context) (last uint64, created time.Time, err error) {
	st, err := s.js.Stream(ctx, stateStream)
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("state: %w", err)
	}
	info := st.CachedInfo()
	return info.State.LastSeq, info.Created, nil
}

// StoredSince is how many of a connection's records (prefix: Prefix) are
// stored at revisions after the given one: every one this process wrote
// since, and any another wrote, such as a previous owner's write whose
// answer it never got, stored once the cluster had its quorum again.
func (s *Store) StoredSince(ctx context.Context, prefix string, after uint64) (uint64, error) {
	st, err := s.js.Stream(ctx, stateStream)
	if err != nil {
		return 0, fmt.Errorf("state: %w", err)
	}
	cfg := jetstream.ConsumerConfig{FilterSubject: "$KV." + eventbus.BucketState + "." + prefix + ">", AckPolicy: jetstream.AckNonePolicy,
		MemoryStorage: true, InactiveThreshold: 10 * time.Second, DeliverPolicy: jetstream.DeliverAllPolicy}
	if after > 0 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, after+1
	}
	c, err := st.CreateConsumer(ctx, cfg)
	if err != nil {
		return 0, fmt.Errorf("state: counting %s>: %w", prefix, err)
	}
	info := c.CachedInfo()
	_ = st.DeleteConsumer(ctx, info.Name) // else the inactivity threshold removes it
	return info.NumPending, nil
}

// Grouping reports how many groups were committed and how many commits they
// held (their ratio is the average group size).
func (s *Store) Grouping() (groups, commits uint64) { return s.batches.Load(), s.grouped.Load() }

// ErrUndecodable is returned with a record whose bytes do not decode: the
// Entry returned beside it holds only its revision, to start it afresh.
var ErrUndecodable = errors.New("undecodable state record")

// Get reads one record; a missing one is a zero Entry with Rev 0.
func (s *Store) Get(ctx context.Context, key string) (*Entry, error) {
	kve, err := s.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return &Entry{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("state %s: %w", key, err)
	}
	return Decode(key, Raw{Data: kve.Value(), Rev: kve.Revision()})
}

// GetKnown reads one record like Get, but when its revision is settled (an
// outbox the caller knows is in the stream), the outbox is left undecoded
// and the Entry has none: a poller reading the record of each changed
// account would otherwise decode the previous change's events every time.
func (s *Store) GetKnown(ctx context.Context, key string, settled uint64) (*Entry, error) {
	kve, err := s.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return &Entry{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("state %s: %w", key, err)
	}
	r := Raw{Data: kve.Value(), Rev: kve.Revision()}
	if settled == 0 || r.Rev != settled {
		return Decode(key, r)
	}
	var e struct {
		Record  detect.Record `json:"record"`
		Listing string        `json:"listing,omitempty"`
	}
	if err := json.Unmarshal(r.Data, &e); err != nil {
		return &Entry{Rev: r.Rev}, fmt.Errorf("state %s: %w: %v", key, ErrUndecodable, err)
	}
	return &Entry{Record: e.Record, Listing: e.Listing, Rev: r.Rev}, nil
}

// Raw is a stored record as bytes, decoded only when needed (Decode): a poller
// holding 100,000 accounts keeps them compact.
type Raw struct {
	Data []byte
	Rev  uint64
}

// Decode decodes a raw record (ErrUndecodable, with an Entry of its
// revision only, when it does not decode).
func Decode(key string, r Raw) (*Entry, error) {
	var e Entry
	if err := json.Unmarshal(r.Data, &e); err != nil {
		return &Entry{Rev: r.Rev}, fmt.Errorf("state %s: %w: %v", key, ErrUndecodable, err)
	}
	e.Rev = r.Rev
	return &e, nil
}

// Encode is the stored form of an entry.
func Encode(e *Entry) (Raw, error) {
	b, err := appendEntry(make([]byte, 0, entrySize), e)
	return Raw{Data: b, Rev: e.Rev}, err
}

// entrySize is the room an encoding starts with: a baseline record fits,
// a commit's outbox grows it once.
const entrySize = 1024

// Scan calls fn with every record under a prefix (one connection), as
// stored, one at a time: a poller starting on a million records keeps what
// it needs of each, not the records. A long scan logs its progress to log
// (nil: none) and is bounded by its progress (eventbus.LoadKV).
func (s *Store) Scan(ctx context.Context, prefix string, log *slog.Logger, fn func(key string, r Raw)) error {
	err := eventbus.LoadKV(ctx, s.js, eventbus.BucketState, prefix+">", eventbus.LoadOptions{What: "state " + prefix + ">", Log: log}, func(e eventbus.KVEntry) {
		if !e.Deleted { // the bucket keeps one revision a key: a marker is all there is of it
			fn(e.Key, Raw{Data: e.Value, Rev: e.Revision})
		}
	})
	if err != nil {
		return fmt.Errorf("state load: %w", err)
	}
	return nil
}

// Load reads and decodes every record under a prefix (one connection).
func (s *Store) Load(ctx context.Context, prefix string) (map[string]*Entry, error) {
	out := map[string]*Entry{}
	var first error
	err := s.Scan(ctx, prefix, nil, func(key string, r Raw) {
		e, err := Decode(key, r)
		if err != nil && first == nil {
			first = err
		}
		out[key] = e
	})
	if err == nil {
		err = first
	}
	if err != nil {
		return nil, err
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
	staged := &Entry{Record: next, Rev: cur.Rev, Listing: cur.Listing}
	msgs := make([]*nats.Msg, len(events))
	for i, e := range events {
		m, err := eventbus.Encode(e)
		if err != nil {
			return err
		}
		msgs[i] = m
		staged.Pending = append(staged.Pending, Pending{Subject: m.Subject, Header: m.Header, Data: m.Data})
	}
	w := &write{key: key, entry: staged, msgs: msgs}
	if err := s.commit(ctx, w); err != nil {
		return err
	}
	*cur = *staged
	if w.pubErr != nil {
		return w.pubErr // still pending: the next Flush publishes them
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
	e := &Entry{Record: next, Rev: cur.Rev, Pending: cur.Pending, Listing: cur.Listing}
	if err := s.commit(ctx, &write{key: key, entry: e}); err != nil {
		return err
	}
	*cur = *e
	return nil
}

// writeBytes stores e (encoded as b) with CAS on e.Rev and sets e.Rev to the
// new revision.
func (s *Store) writeBytes(ctx context.Context, key string, e *Entry, b []byte) error {
	var (
		rev uint64
		err error
	)
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

// write is one commit of a group: a record, then its events.
type write struct {
	key   string
	entry *Entry // staged; its Rev is the expected revision, then the new one
	data  []byte
	msgs  []*nats.Msg
	// err: the record was not stored; pubErr: stored, its events not yet
	err, pubErr error
	done        chan struct{}
}

// group commits writes made at the same time together. The first writer to
// find no group in progress leads: it commits what has queued up, again
// until the queue is empty, while the others wait for their result. No
// goroutine of its own, and a writer alone is committed at once.
type group struct {
	mu      sync.Mutex
	queue   []*write
	leading bool
}

// defaultMaxGroup bounds a group.
const defaultMaxGroup = 256

// groupTimeout bounds a group's writes; they are not abandoned when the
// caller that leads gives up, as the others wait on them.
const groupTimeout = 30 * time.Second

func (s *Store) commit(ctx context.Context, w *write) error {
	b, err := appendEntry(make([]byte, 0, entrySize), w.entry)
	if err != nil {
		return err
	}
	w.data, w.done = b, make(chan struct{})
	g := &s.group
	g.mu.Lock()
	g.queue = append(g.queue, w)
	if g.leading {
		g.mu.Unlock()
		<-w.done
		return w.err
	}
	g.leading = true
	s.lead(ctx)
	return w.err
}

// lead commits what has queued up, again until the queue is empty; lock
// held on entry, released on return. Groups are pipelined: a group's
// records are written while the group before's events are still being
// stored (two streams, whose writes the server performs, and with fsync
// syncs, side by side), then those events are awaited before this group's
// are sent. Each account's record still precedes its events; an account is
// in one group at a time (its writer waits).
func (s *Store) lead(ctx context.Context) {
	g := &s.group
	var prev *flight
	for {
		var batch []*write
		if n := min(len(g.queue), s.maxGroup); n > 0 {
			batch = g.queue[:n:n]
			g.queue = g.queue[n:]
		}
		g.mu.Unlock()
		var cur *flight
		if batch != nil {
			s.batches.Add(1)
			s.grouped.Add(uint64(len(batch)))
			cur = &flight{ws: batch}
			cur.ctx, cur.cancel = context.WithTimeout(context.WithoutCancel(ctx), groupTimeout)
			if prev != nil {
				s.pipelined.Add(1)
			}
			s.writeRecords(cur.ctx, batch)
		}
		if prev != nil {
			prev.settle()
		}
		if cur != nil {
			cur.sent = s.sendEvents(batch)
		}
		prev = cur
		g.mu.Lock()
		if prev == nil && len(g.queue) == 0 {
			g.queue = nil
			g.leading = false
			g.mu.Unlock()
			return
		}
	}
}

// flight is a group whose events are sent and not yet awaited.
type flight struct {
	ws     []*write
	sent   []sentEvent
	ctx    context.Context
	cancel context.CancelFunc
}

// settle awaits the group's events and releases its writers.
func (f *flight) settle() {
	awaitEvents(f.ctx, f.sent)
	f.cancel()
	for _, w := range f.ws {
		close(w.done)
	}
}

// kvMsg is a write's record as a message on the bucket's stream, with its
// compare-and-swap.
func kvMsg(w *write) *nats.Msg {
	return &nats.Msg{Subject: "$KV." + eventbus.BucketState + "." + w.key, Data: w.data,
		Header: nats.Header{jetstream.ExpectedLastSubjSeqHeader: []string{strconv.FormatUint(w.entry.Rev, 10)}}}
}

// writeRecords stores each record with its own compare-and-swap,
// all sent before the first answer is awaited. A new record refused because
// its key holds a delete marker is created the way the KV client does it.
func (s *Store) writeRecords(ctx context.Context, ws []*write) {
	futures := make([]jetstream.PubAckFuture, len(ws))
	expect := jetstream.WithExpectStream(stateStream)
	for i, w := range ws {
		f, err := s.js.PublishMsgAsync(kvMsg(w), expect)
		if err != nil {
			w.err = fmt.Errorf("state %s: %w", w.key, err)
			continue
		}
		futures[i] = f
	}
	for i, w := range ws {
		if futures[i] == nil {
			continue
		}
		select {
		case a := <-futures[i].Ok():
			w.entry.Rev = a.Sequence
		case err := <-futures[i].Err():
			switch {
			case isWrongSequence(err) && w.entry.Rev == 0:
				w.err = s.writeBytes(ctx, w.key, w.entry, w.data)
			case isWrongSequence(err):
				w.err = fmt.Errorf("state %s: %w", w.key, ErrConflict)
			default:
				w.err = fmt.Errorf("state %s: %w", w.key, err)
			}
		case <-ctx.Done():
			w.err = fmt.Errorf("state %s: %w", w.key, ctx.Err())
		}
	}
}

type sentEvent struct {
	w *write
	f jetstream.PubAckFuture
}

// sendEvents sends the events of the writes whose record was stored, without
// awaiting them (awaitEvents does); a send that fails is that write's pubErr
// (an event not acknowledged stays in its outbox).
func (s *Store) sendEvents(ws []*write) []sentEvent {
	var all []sentEvent
	expect := jetstream.WithExpectStream(eventbus.StreamEvents)
	for _, w := range ws {
		if w.err != nil {
			continue
		}
		for _, m := range w.msgs {
			f, err := s.js.PublishMsgAsync(m, expect)
			if err != nil {
				w.pubErr = fmt.Errorf("%w %s: %v", eventbus.ErrPublish, m.Header.Get(jetstream.MsgIDHeader), err)
				continue
			}
			all = append(all, sentEvent{w, f})
		}
	}
	return all
}

// awaitEvents awaits sent events; each write learns its own outcome.
func awaitEvents(ctx context.Context, all []sentEvent) {
	for _, x := range all {
		select {
		case <-x.f.Ok():
		case err := <-x.f.Err():
			x.w.pubErr = fmt.Errorf("%w %s: %v", eventbus.ErrPublish, x.f.Msg().Header.Get(jetstream.MsgIDHeader), err)
		case <-ctx.Done():
			x.w.pubErr = fmt.Errorf("%w: %v", eventbus.ErrPublish, ctx.Err())
		}
	}
}
