// Package silence holds silences: an operator's "I know, stop telling me" for
// the events a set of matchers selects, for a while. They live in the
// AW_SILENCES bucket, so every notifier replica sees the same ones; a notifier
// follows the bucket and checks each event against what it holds in memory.
package silence

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/eventbus"
	"github.com/accountwatch/accountwatch/pkg/route"
)

// Sentinel errors.
var (
	ErrNotFound = errors.New("silence not found")
	ErrInvalid  = errors.New("invalid silence")
)

// Silence mutes the events its matchers select between StartsAt and EndsAt.
type Silence struct {
	ID        string         `json:"id"`
	Matchers  route.Matchers `json:"matchers"`
	StartsAt  time.Time      `json:"starts_at"`
	EndsAt    time.Time      `json:"ends_at"`
	CreatedBy string         `json:"created_by"`
	Comment   string         `json:"comment"`
	CreatedAt time.Time      `json:"created_at"`
}

// State is "pending", "active" or "expired" at t.
func (s *Silence) State(t time.Time) string {
	switch {
	case t.Before(s.StartsAt):
		return "pending"
	case t.Before(s.EndsAt):
		return "active"
	}
	return "expired"
}

// Mutes reports whether s silences e at t.
func (s *Silence) Mutes(e *event.Event, t time.Time) bool {
	return s.State(t) == "active" && s.Matchers.Matches(e)
}

func (s *Silence) validate() error {
	if len(s.Matchers) == 0 {
		return fmt.Errorf("%w: no matchers (a silence of everything is a mistake waiting to happen)", ErrInvalid)
	}
	for i := range s.Matchers {
		if err := s.Matchers[i].Compile(); err != nil {
			return fmt.Errorf("%w: %v", ErrInvalid, err)
		}
	}
	if !s.EndsAt.After(s.StartsAt) {
		return fmt.Errorf("%w: ends %s, not after it starts %s", ErrInvalid, s.EndsAt.Format(time.RFC3339), s.StartsAt.Format(time.RFC3339))
	}
	if s.CreatedBy == "" || s.Comment == "" {
		return fmt.Errorf("%w: say who created it and why (created_by, comment)", ErrInvalid)
	}
	return nil
}

// Store reads and writes silences, and answers Silenced from memory once Follow runs.
type Store struct {
	kv  jetstream.KeyValue
	now func() time.Time

	mu    sync.RWMutex
	cache map[string]*Silence
}

// Open opens the silences bucket (provisioned by eventbus.Bus.Provision).
func Open(ctx context.Context, js jetstream.JetStream) (*Store, error) {
	kv, err := js.KeyValue(ctx, eventbus.BucketSilences)
	if err != nil {
		return nil, fmt.Errorf("silences bucket: %w", err)
	}
	return &Store{kv: kv, now: time.Now, cache: map[string]*Silence{}}, nil
}

// Add validates and stores a new silence, giving it an id; a zero StartsAt means now.
func (s *Store) Add(ctx context.Context, sl Silence) (Silence, error) {
	now := s.now().UTC()
	if sl.StartsAt.IsZero() {
		sl.StartsAt = now
	}
	sl.CreatedAt = now
	if err := sl.validate(); err != nil {
		return Silence{}, err
	}
	var id [8]byte
	_, _ = rand.Read(id[:])
	sl.ID = hex.EncodeToString(id[:])
	b, err := json.Marshal(sl)
	if err != nil {
		return Silence{}, err
	}
	if _, err := s.kv.Create(ctx, sl.ID, b); err != nil {
		return Silence{}, fmt.Errorf("store silence: %w", err)
	}
	s.put(&sl)
	return sl, nil
}

// Get returns one silence.
func (s *Store) Get(ctx context.Context, id string) (Silence, uint64, error) {
	e, err := s.kv.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrInvalidKey) {
		return Silence{}, 0, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err != nil {
		return Silence{}, 0, fmt.Errorf("silence %s: %w", id, err)
	}
	sl, err := decode(e.Value())
	if err != nil {
		return Silence{}, 0, err
	}
	return *sl, e.Revision(), nil
}

// Expire ends a silence now (it stays listed, as expired, for the record).
func (s *Store) Expire(ctx context.Context, id string) (Silence, error) {
	sl, rev, err := s.Get(ctx, id)
	if err != nil {
		return Silence{}, err
	}
	now := s.now().UTC()
	if !sl.EndsAt.After(now) {
		return sl, nil
	}
	sl.EndsAt = now
	if sl.StartsAt.After(now) {
		sl.StartsAt = now
	}
	b, _ := json.Marshal(sl)
	if _, err := s.kv.Update(ctx, id, b, rev); err != nil {
		return Silence{}, fmt.Errorf("expire silence %s: %w", id, err)
	}
	s.put(&sl)
	return sl, nil
}

// List returns every stored silence, newest first.
func (s *Store) List(ctx context.Context) ([]Silence, error) {
	lister, err := s.kv.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("list silences: %w", err)
	}
	var out []Silence
	for k := range lister.Keys() {
		sl, _, err := s.Get(ctx, k)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, sl)
	}
	slices.SortFunc(out, func(a, b Silence) int { return b.CreatedAt.Compare(a.CreatedAt) })
	return out, nil
}

// Follow keeps the in-memory set current until ctx ends; it returns once the
// bucket's present content is loaded.
func (s *Store) Follow(ctx context.Context) error {
	w, err := s.kv.WatchAll(ctx)
	if err != nil {
		return fmt.Errorf("watch silences: %w", err)
	}
	apply := func(e jetstream.KeyValueEntry) {
		if e.Operation() != jetstream.KeyValuePut {
			s.mu.Lock()
			delete(s.cache, e.Key())
			s.mu.Unlock()
			return
		}
		if sl, err := decode(e.Value()); err == nil {
			s.put(sl)
		}
	}
	return eventbus.Follow(ctx, w, true, apply)
}

// Silenced returns the id of a silence that mutes e at t, if any.
func (s *Store) Silenced(e *event.Event, t time.Time) (string, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for id, sl := range s.cache {
		if sl.Mutes(e, t) {
			return id, true
		}
	}
	return "", false
}

func (s *Store) put(sl *Silence) {
	s.mu.Lock()
	s.cache[sl.ID] = sl
	s.mu.Unlock()
}

func decode(b []byte) (*Silence, error) {
	var sl Silence
	if err := json.Unmarshal(b, &sl); err != nil {
		return nil, fmt.Errorf("%w: stored silence: %v", ErrInvalid, err)
	}
	for i := range sl.Matchers {
		if err := sl.Matchers[i].Compile(); err != nil {
			return nil, err
		}
	}
	return &sl, nil
}
