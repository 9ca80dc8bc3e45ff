package watch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/accountwatch/accountwatch/pkg/event"
)

// Connection is an upstream connection as the pollers announce it, beside
// the watch list: what awctl checks an entry against (a connection that
// exists, of the provider named), and what the dead-man watches (its poll
// interval and its progress).
type Connection struct {
	Name     string         `json:"name"`
	Provider event.Provider `json:"provider"`
	// Interval is the poll interval.
	Interval time.Duration `json:"interval"`
	// Spaces: a watched account of it names its space (CAMS).
	Spaces bool              `json:"spaces,omitempty"`
	Labels map[string]string `json:"labels,omitempty"`
	// AnnouncedAt is when a poller first announced it so.
	AnnouncedAt time.Time `json:"announced_at"`
}

// Progress is a connection's schedule, which the replica holding its lease
// writes after every cycle, so that the next holder continues where it
// stopped; the dead-man reads when it was written.
type Progress struct {
	LastStart  time.Time `json:"last_start"`
	Cycles     int       `json:"cycles"`
	ScanSince  time.Time `json:"scan_since,omitzero"`
	ListedOnce bool      `json:"listed_once"`
}

// Settled is written by a connection's owner after a cycle, and as it
// stops, with every commit acknowledged: each of the connection's records
// in the state stream (created at Stream) at a revision up to Revision has
// its outbox in the event stream, so a start checks only the outboxes of
// later revisions (none after a clean restart, the last cycle's after a
// crash, instead of every outbox the last change of each account left). It
// is kept apart from Progress, whose writes mark cycles.
type Settled struct {
	Revision uint64    `json:"revision"`
	Stream   time.Time `json:"stream"`
}

func settledKey(name string) string { return "settled." + name }

// LoadSettled reads a connection's Settled mark (zero without one).
func (s *Store) LoadSettled(ctx context.Context, name string) (Settled, error) {
	var m Settled
	e, err := s.kv.Get(ctx, settledKey(name))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return m, nil
	}
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal(e.Value(), &m); err != nil {
		return Settled{}, fmt.Errorf("settled mark of %s: %w", name, err)
	}
	return m, nil
}

// SaveSettled writes a connection's Settled mark.
func (s *Store) SaveSettled(ctx context.Context, name string, m Settled) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	_, err = s.kv.Put(ctx, settledKey(name), b)
	return err
}

// ErrUnknownConnection is returned for a connection no poller announced.
var ErrUnknownConnection = errors.New("unknown connection")

func connKey(name string) string { return "conn." + name }

// ProgressKey is where a connection's Progress is kept.
func ProgressKey(name string) string { return "progress." + name }

// Announce records the connections of a poller's configuration and
// forgets those it no longer has: the poller's replicas share one
// configuration, and the last started tells what exists.
func (s *Store) Announce(ctx context.Context, conns []Connection) error {
	known, err := s.Connections(ctx)
	if err != nil {
		return err
	}
	was := map[string]Connection{}
	for _, c := range known {
		was[c.Name] = c
	}
	keep := map[string]bool{}
	for _, c := range conns {
		keep[c.Name] = true
		c.AnnouncedAt = time.Now().UTC()
		if old, ok := was[c.Name]; ok && old.Provider == c.Provider {
			c.AnnouncedAt = old.AnnouncedAt
		}
		b, err := json.Marshal(c)
		if err != nil {
			return err
		}
		if _, err := s.kv.Put(ctx, connKey(c.Name), b); err != nil {
			return fmt.Errorf("announce connection %s: %w", c.Name, err)
		}
	}
	for name := range was {
		if !keep[name] {
			if err := s.kv.Delete(ctx, connKey(name)); err != nil {
				return fmt.Errorf("forget connection %s: %w", name, err)
			}
		}
	}
	return nil
}

// Connections lists the announced connections, by name.
func (s *Store) Connections(ctx context.Context) ([]Connection, error) {
	w, err := s.kv.Watch(ctx, connKey(">"), jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("connections: %w", err)
	}
	defer w.Stop()
	var out []Connection
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case u := <-w.Updates():
			if u == nil {
				sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
				return out, nil
			}
			var c Connection
			if json.Unmarshal(u.Value(), &c) == nil && c.Name != "" {
				out = append(out, c)
			}
		}
	}
}

// CheckEntry tells whether an entry names an announced connection of its
// provider; the error names the connections there are. With none announced
// (no poller ran yet) there is nothing to check against, and it is nil.
func CheckEntry(conns []Connection, e Entry) error {
	if len(conns) == 0 {
		return nil
	}
	var names []string
	for _, c := range conns {
		if c.Name != e.Instance {
			names = append(names, c.Name+" ("+string(c.Provider)+")")
			continue
		}
		if c.Provider != e.Provider {
			return fmt.Errorf("%w: connection %s is of provider %s, not %s", ErrUnknownConnection, c.Name, c.Provider, e.Provider)
		}
		return nil
	}
	return fmt.Errorf("%w %q: the pollers have %s", ErrUnknownConnection, e.Instance, strings.Join(names, ", "))
}

// LoadProgress reads a connection's progress and when it was written (the
// server's clock: when the last cycle completed); zero without one.
func (s *Store) LoadProgress(ctx context.Context, name string) (Progress, time.Time, error) {
	var p Progress
	e, err := s.kv.Get(ctx, ProgressKey(name))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return p, time.Time{}, nil
	}
	if err != nil {
		return p, time.Time{}, err
	}
	if err := json.Unmarshal(e.Value(), &p); err != nil {
		return p, time.Time{}, fmt.Errorf("progress of %s: %w", name, err)
	}
	return p, e.Created(), nil
}

// SaveProgress writes a connection's progress.
func (s *Store) SaveProgress(ctx context.Context, name string, p Progress) error {
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	_, err = s.kv.Put(ctx, ProgressKey(name), b)
	return err
}
