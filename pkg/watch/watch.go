// Package watch is the watch list: which accounts of which upstream connection
// are polled, with the labels (team, manager, tier, ...) that travel into their
// events. It lives in the AW_WATCH bucket, so the admin CLI changes it at
// runtime and every poller replica sees the change.
package watch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/eventbus"
)

// Sources of entries.
const (
	SourceConfig     = "config"
	SourceDiscovery  = "discovery"
	SourceOnboarding = "onboarding"
	SourceCLI        = "cli"
)

// ErrNotFound is returned for an entry that is not on the list.
var ErrNotFound = errors.New("not on the watch list")

// Entry is one watched account.
type Entry struct {
	Provider  event.Provider    `json:"provider"`
	Instance  string            `json:"instance"`
	AccountID string            `json:"account_id"`
	Labels    map[string]string `json:"labels,omitempty"`
	// Space is the CAMS CustSpaceId of a phone number.
	Space   string    `json:"space,omitempty"`
	Source  string    `json:"source"`
	AddedAt time.Time `json:"added_at"`
}

var labelKeyRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)

// Validate checks an entry.
func (e Entry) Validate() error {
	if !e.Provider.Valid() {
		return fmt.Errorf("unknown provider %q", e.Provider)
	}
	if err := event.ValidateInstance(e.Instance); err != nil {
		return err
	}
	if e.AccountID == "" || e.AccountID == event.ProviderScope {
		return fmt.Errorf("bad account id %q", e.AccountID)
	}
	if e.Provider == event.ProviderAlibabaCAMS && e.Space == "" {
		return fmt.Errorf("a CAMS phone number needs its space (CustSpaceId)")
	}
	for k := range e.Labels {
		if !labelKeyRE.MatchString(k) {
			return fmt.Errorf("label %q: want lower-case letters, digits and '_'", k)
		}
	}
	return nil
}

// Key is the KV key of an entry: acct.<provider>.<instance>.<account token>.
func Key(p event.Provider, instance, accountID string) string {
	return "acct." + string(p) + "." + instance + "." + eventbus.KeyToken(accountID)
}

// Store reads and writes the watch list.
type Store struct {
	js jetstream.JetStream
	kv jetstream.KeyValue
}

// Open opens the AW_WATCH bucket.
func Open(ctx context.Context, js jetstream.JetStream) (*Store, error) {
	kv, err := js.KeyValue(ctx, eventbus.BucketWatch)
	if err != nil {
		return nil, fmt.Errorf("watch list: %w", err)
	}
	return &Store{js: js, kv: kv}, nil
}

// KV exposes the bucket (progress records of the poller live beside the entries).
func (s *Store) KV() jetstream.KeyValue { return s.kv }

// Put adds or replaces an entry.
func (s *Store) Put(ctx context.Context, e Entry) error {
	if err := e.Validate(); err != nil {
		return fmt.Errorf("watch %s/%s: %w", e.Instance, e.AccountID, err)
	}
	if e.AddedAt.IsZero() {
		e.AddedAt = time.Now().UTC()
	}
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	_, err = s.kv.Put(ctx, Key(e.Provider, e.Instance, e.AccountID), b)
	return err
}

// Add adds an entry unless it exists (an existing entry keeps its labels).
// It reports whether it added it.
func (s *Store) Add(ctx context.Context, e Entry) (bool, error) {
	return s.AddAsync(e).Wait(ctx)
}

// Adding is an Add in flight (AddAsync); Wait gives its answer.
type Adding struct {
	s     *Store
	key   string
	data  []byte
	f     jetstream.PubAckFuture
	once  sync.Once
	added bool
	err   error
}

// AddAsync sends an Add without awaiting the server's answer, so that
// discovering a million accounts writes their entries pipelined, as the
// listing goes, instead of one round trip each. The write is the KV
// client's create (a compare-and-swap on "no entry yet"); one the server
// refuses (the key exists, or holds a delete marker) or that cannot be sent
// at once (too many in flight) is settled by Wait the way Add always was:
// with the KV client's own create.
func (s *Store) AddAsync(e Entry) *Adding {
	a := &Adding{s: s}
	if err := e.Validate(); err != nil {
		a.err = fmt.Errorf("watch %s/%s: %w", e.Instance, e.AccountID, err)
		a.once.Do(func() {})
		return a
	}
	if e.AddedAt.IsZero() {
		e.AddedAt = time.Now().UTC()
	}
	a.key = Key(e.Provider, e.Instance, e.AccountID)
	a.data, _ = json.Marshal(e)
	m := &nats.Msg{Subject: "$KV." + eventbus.BucketWatch + "." + a.key, Data: a.data,
		Header: nats.Header{jetstream.ExpectedLastSubjSeqHeader: []string{"0"}}}
	a.f, _ = s.js.PublishMsgAsync(m, jetstream.WithExpectStream("KV_"+eventbus.BucketWatch))
	return a
}

// Wait awaits the Add's answer: whether the entry was added (false: it
// existed, and keeps its labels). It may be called more than once.
func (a *Adding) Wait(ctx context.Context) (bool, error) {
	a.once.Do(func() {
		if a.f != nil {
			select {
			case ack := <-a.f.Ok():
				a.added = ack != nil
				return
			case <-a.f.Err():
				// refused, most likely because the entry exists: the KV
				// client's create below tells that from a delete marker
			case <-ctx.Done():
				a.err = fmt.Errorf("watch %s: %w", a.key, ctx.Err())
				return
			}
		}
		_, err := a.s.kv.Create(ctx, a.key, a.data)
		a.added, a.err = err == nil, err
		if errors.Is(err, jetstream.ErrKeyExists) {
			a.err = nil
		}
	})
	return a.added, a.err
}

// Remove deletes an entry.
func (s *Store) Remove(ctx context.Context, p event.Provider, instance, accountID string) error {
	key := Key(p, instance, accountID)
	if _, err := s.kv.Get(ctx, key); errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("%s/%s: %w", instance, accountID, ErrNotFound)
	}
	return s.kv.Delete(ctx, key)
}

// Get reads an entry.
func (s *Store) Get(ctx context.Context, p event.Provider, instance, accountID string) (Entry, error) {
	kve, err := s.kv.Get(ctx, Key(p, instance, accountID))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Entry{}, fmt.Errorf("%s/%s: %w", instance, accountID, ErrNotFound)
	}
	if err != nil {
		return Entry{}, err
	}
	var e Entry
	return e, json.Unmarshal(kve.Value(), &e)
}

// List reads every entry (of one instance, if given).
func (s *Store) List(ctx context.Context, instance string) ([]Entry, error) {
	l := NewLive()
	if err := l.load(ctx, s.kv, false); err != nil {
		return nil, err
	}
	return l.Entries(instance), nil
}

// Live is an in-memory copy of the watch list kept current by a KV watcher.
type Live struct {
	mu      sync.RWMutex
	entries map[string]held // by key
	// Per instance: how many entries, and a version that every change to
	// one of its entries advances, so that a poller can tell an unchanged
	// list without walking 100,000 entries.
	counts   map[string]int
	versions map[string]uint64
	// kinds are the (provider, instance, source) the entries hold, each
	// once: a million entries share a handful.
	kinds  []kind
	kindOf map[kind]uint32
}

// held is an entry as the live list holds it, in a third of an Entry's room.
type held struct {
	id     string // shares the key's bytes when it is the key's last token
	space  string
	labels map[string]string
	added  int64 // AddedAt, Unix nanoseconds
	kind   uint32
}

type kind struct {
	provider         event.Provider
	instance, source string
}

// hold is e as the list holds it under key; lock held.
func (l *Live) hold(key string, e Entry) held {
	id := e.AccountID
	if strings.HasSuffix(key, "."+id) {
		id = key[len(key)-len(id):]
	}
	k := kind{e.Provider, e.Instance, e.Source}
	i, ok := l.kindOf[k]
	if !ok {
		i = uint32(len(l.kinds))
		l.kinds = append(l.kinds, k)
		l.kindOf[k] = i
	}
	h := held{id: id, space: e.Space, labels: e.Labels, kind: i}
	if !e.AddedAt.IsZero() {
		h.added = e.AddedAt.UnixNano()
	}
	return h
}

// entry is what h holds; lock held.
func (l *Live) entry(h held) Entry {
	k := l.kinds[h.kind]
	e := Entry{Provider: k.provider, Instance: k.instance, AccountID: h.id, Labels: h.labels, Space: h.space, Source: k.source}
	if h.added != 0 {
		e.AddedAt = time.Unix(0, h.added).UTC()
	}
	return e
}

func (l *Live) instance(h held) string { return l.kinds[h.kind].instance }

// NewLive is an empty live list.
func NewLive() *Live {
	return &Live{entries: map[string]held{}, counts: map[string]int{}, versions: map[string]uint64{}, kindOf: map[kind]uint32{}}
}

// Follow loads the list and keeps it current until ctx ends. It returns once
// the current entries are loaded.
func (s *Store) Follow(ctx context.Context) (*Live, error) {
	l := NewLive()
	return l, l.load(ctx, s.kv, true)
}

func (l *Live) load(ctx context.Context, kv jetstream.KeyValue, follow bool) error {
	w, err := kv.Watch(ctx, "acct.>")
	if err != nil {
		return fmt.Errorf("watch list: %w", err)
	}
	apply := func(u jetstream.KeyValueEntry) {
		if u.Operation() != jetstream.KeyValuePut {
			l.mu.Lock()
			defer l.mu.Unlock()
			l.delete(u.Key())
			return
		}
		var e Entry
		if json.Unmarshal(u.Value(), &e) == nil && e.Validate() == nil {
			l.mu.Lock()
			defer l.mu.Unlock()
			l.put(u.Key(), e)
		}
	}
	return eventbus.Follow(ctx, w, follow, apply)
}

// put stores an entry; lock held.
func (l *Live) put(key string, e Entry) {
	if old, ok := l.entries[key]; ok {
		l.counts[l.instance(old)]--
		l.versions[l.instance(old)]++
	}
	l.entries[key] = l.hold(key, e)
	l.counts[e.Instance]++
	l.versions[e.Instance]++
}

// delete drops an entry; lock held.
func (l *Live) delete(key string) {
	if old, ok := l.entries[key]; ok {
		delete(l.entries, key)
		l.counts[l.instance(old)]--
		l.versions[l.instance(old)]++
	}
}

// Entries returns the entries of one instance ("" for all).
func (l *Live) Entries(instance string) []Entry {
	l.mu.RLock()
	defer l.mu.RUnlock()
	out := make([]Entry, 0, len(l.entries))
	for _, h := range l.entries {
		if instance == "" || l.instance(h) == instance {
			out = append(out, l.entry(h))
		}
	}
	return out
}

// Lookup finds one entry.
func (l *Live) Lookup(p event.Provider, instance, accountID string) (Entry, bool) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	h, ok := l.entries[Key(p, instance, accountID)]
	if !ok {
		return Entry{}, false
	}
	return l.entry(h), true
}

// Range calls fn for each entry of one instance, under a read lock: fn must not
// change the list. It avoids copying a 100,000-entry list every poll cycle.
// It returns the version of the instance's entries it walked (see Version).
func (l *Live) Range(instance string, fn func(Entry)) uint64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	for _, h := range l.entries {
		if l.instance(h) == instance {
			fn(l.entry(h))
		}
	}
	return l.versions[instance]
}

// Version reports the version of one instance's entries and how many there
// are. The version advances with every change to them (an added, replaced or
// removed entry): equal versions mean the same entries.
func (l *Live) Version(instance string) (version uint64, count int) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.versions[instance], l.counts[instance]
}

// Count is the number of entries of one instance ("" for all).
func (l *Live) Count(instance string) int {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if instance == "" {
		return len(l.entries)
	}
	return l.counts[instance]
}
