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
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/eventbus"
	"github.com/accountwatch/accountwatch/pkg/flatmap"
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
func (e Entry) Validate() error { return e.validate(nil) }

// validate checks an entry; an instance name in valid was checked before
// (a load checks each once, not with each of a million entries).
func (e Entry) validate(valid map[string]bool) error {
	if !e.Provider.Valid() {
		return fmt.Errorf("unknown provider %q", e.Provider)
	}
	if !valid[e.Instance] {
		if err := event.ValidateInstance(e.Instance); err != nil {
			return err
		}
		if valid != nil {
			valid[strings.Clone(e.Instance)] = true
		}
	}
	if e.AccountID == "" || e.AccountID == event.ProviderScope || e.AccountID == event.PollerScope {
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
	if err := l.load(ctx, s.js, false, nil); err != nil {
		return nil, err
	}
	return l.Entries(instance), nil
}

// Live is an in-memory copy of the watch list kept current by a KV watcher.
// It holds a million entries in about 60 bytes each, none of them a pointer
// the garbage collector walks (flatmap): by instance and provider, keyed by
// the account's key token, the strings they share once.
type Live struct {
	mu    sync.RWMutex
	insts map[string]*instance
	n     int
	// sources are the entries' sources, each once.
	sources  []string
	sourceOf map[string]uint32
}

// instance is one instance's entries. Its version advances with every
// change to one of them, so that a poller can tell an unchanged list
// without walking a million entries.
type instance struct {
	byProvider map[event.Provider]*provEntries
	count      int
	version    uint64
}

// provEntries are one provider's entries of an instance: held, by key
// token, and what few have beyond it (an id its token does not spell,
// labels, a space), by token too.
type provEntries struct {
	held flatmap.Table[held]
	more map[string]*heldMore
}

// held is an entry as the live list holds it.
type held struct {
	added  int64 // AddedAt, Unix nanoseconds
	source uint32
	more   bool // more holds the rest
}

// heldMore is what few entries have.
type heldMore struct {
	id     string // the account id, when its key token is not (escaped)
	space  string
	labels map[string]string
}

// NewLive is an empty live list.
func NewLive() *Live {
	return &Live{insts: map[string]*instance{}, sourceOf: map[string]uint32{}}
}

// Follow loads the list and keeps it current until ctx ends. It returns once
// the current entries are loaded; a long load logs its progress to log (nil:
// none) and is bounded by its progress, not by a deadline.
func (s *Store) Follow(ctx context.Context, log *slog.Logger) (*Live, error) {
	l := NewLive()
	return l, l.load(ctx, s.js, true, log)
}

func (l *Live) load(ctx context.Context, js jetstream.JetStream, follow bool, log *slog.Logger) error {
	valid := map[string]bool{} // instance names checked (apply runs on one goroutine)
	return eventbus.LoadKV(ctx, js, eventbus.BucketWatch, "acct.>", eventbus.LoadOptions{What: "watch list", Follow: follow, Log: log}, func(u eventbus.KVEntry) {
		p, inst, tok, ok := splitKey(u.Key)
		if !ok {
			return
		}
		if u.Deleted {
			l.mu.Lock()
			defer l.mu.Unlock()
			l.delete(p, inst, tok)
			return
		}
		var e Entry
		if json.Unmarshal(u.Value, &e) == nil && e.Provider == p && e.Instance == inst && e.validate(valid) == nil {
			l.mu.Lock()
			defer l.mu.Unlock()
			l.put(tok, e)
		}
	})
}

// splitKey splits a key (Key) into its provider, instance and token.
func splitKey(key string) (event.Provider, string, string, bool) {
	rest, ok := strings.CutPrefix(key, "acct.")
	p, rest, ok1 := strings.Cut(rest, ".")
	inst, tok, ok2 := strings.Cut(rest, ".")
	return event.Provider(p), inst, tok, ok && ok1 && ok2 && tok != ""
}

// put stores an entry under its key token; lock held.
func (l *Live) put(tok string, e Entry) {
	in := l.insts[e.Instance]
	if in == nil {
		in = &instance{byProvider: map[event.Provider]*provEntries{}}
		l.insts[e.Instance] = in
	}
	m := in.byProvider[e.Provider]
	if m == nil {
		m = &provEntries{more: map[string]*heldMore{}}
		in.byProvider[e.Provider] = m
	}
	in.version++
	h := held{source: l.source(e.Source)}
	if !e.AddedAt.IsZero() {
		h.added = e.AddedAt.UnixNano()
	}
	delete(m.more, tok)
	if e.AccountID != tok || e.Space != "" || len(e.Labels) > 0 {
		more := &heldMore{space: e.Space, labels: e.Labels}
		if e.AccountID != tok {
			more.id = e.AccountID
		}
		m.more[strings.Clone(tok)] = more // not the whole subject it was cut from
		h.more = true
	}
	if m.held.Put(tok, h) {
		in.count++
		l.n++
	}
}

// source is the index of a source; lock held.
func (l *Live) source(s string) uint32 {
	i, ok := l.sourceOf[s]
	if !ok {
		i = uint32(len(l.sources))
		l.sources = append(l.sources, s)
		l.sourceOf[s] = i
	}
	return i
}

// delete drops an entry; lock held.
func (l *Live) delete(p event.Provider, inst, tok string) {
	in := l.insts[inst]
	if in == nil || in.byProvider[p] == nil {
		return
	}
	m := in.byProvider[p]
	if m.held.Delete(tok) {
		delete(m.more, tok)
		in.count--
		in.version++
		l.n--
	}
}

// entry is what h holds; lock held. tok may be only valid during the call.
func (l *Live) entry(p event.Provider, inst string, m *provEntries, tok string, h held) Entry {
	e := Entry{Provider: p, Instance: inst, Source: l.sources[h.source]}
	if h.more {
		more := m.more[tok]
		e.AccountID, e.Space, e.Labels = more.id, more.space, more.labels
	}
	if e.AccountID == "" {
		e.AccountID = strings.Clone(tok)
	}
	if h.added != 0 {
		e.AddedAt = time.Unix(0, h.added).UTC()
	}
	return e
}

// each calls fn with every entry of one instance ("" for all); read lock held.
func (l *Live) each(instance string, fn func(Entry)) {
	for name, in := range l.insts {
		if instance != "" && name != instance {
			continue
		}
		for p, m := range in.byProvider {
			m.held.Range(func(tok string, h held) bool {
				fn(l.entry(p, name, m, tok, h))
				return true
			})
		}
	}
}

// Entries returns the entries of one instance ("" for all).
func (l *Live) Entries(instance string) []Entry {
	l.mu.RLock()
	defer l.mu.RUnlock()
	out := make([]Entry, 0, l.count(instance))
	l.each(instance, func(e Entry) { out = append(out, e) })
	return out
}

// Lookup finds one entry.
func (l *Live) Lookup(p event.Provider, instance, accountID string) (Entry, bool) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	in := l.insts[instance]
	if in == nil {
		return Entry{}, false
	}
	m := in.byProvider[p]
	if m == nil {
		return Entry{}, false
	}
	tok := eventbus.KeyToken(accountID)
	h, ok := m.held.Get(tok)
	if !ok {
		return Entry{}, false
	}
	return l.entry(p, instance, m, tok, h), true
}

// Range calls fn for each entry of one instance, under a read lock: fn must not
// change the list. It avoids copying a 100,000-entry list every poll cycle.
// It returns the version of the instance's entries it walked (see Version).
func (l *Live) Range(instance string, fn func(Entry)) uint64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	in := l.insts[instance]
	if in == nil {
		return 0
	}
	l.each(instance, fn)
	return in.version
}

// Version reports the version of one instance's entries and how many there
// are. The version advances with every change to them (an added, replaced or
// removed entry): equal versions mean the same entries.
func (l *Live) Version(instance string) (version uint64, count int) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if in := l.insts[instance]; in != nil {
		return in.version, in.count
	}
	return 0, 0
}

// Count is the number of entries of one instance ("" for all).
func (l *Live) Count(instance string) int {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.count(instance)
}

func (l *Live) count(instance string) int {
	if instance == "" {
		return l.n
	}
	if in := l.insts[instance]; in != nil {
		return in.count
	}
	return 0
}
