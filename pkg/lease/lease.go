// Package lease shares units of work (the poller's upstream connections) among
// replicas with expiring KV leases: each unit is held by at most one replica,
// a replica renews what it holds, a dead replica's leases expire (the bucket's
// TTL) and the survivors claim them, and the units spread evenly over the live
// replicas, which announce themselves with member keys in the same bucket.
package lease

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Manager holds leases for one replica.
type Manager struct {
	kv    jetstream.KeyValue
	id    string
	units []string
	every time.Duration
	log   *slog.Logger

	// ttl is the bucket's: an unrenewed lease expires after it (read at Run).
	ttl time.Duration

	mu    sync.Mutex
	owned map[string]uint64 // unit → lease revision
	// renewed is when the write that last renewed (or took) each owned
	// lease was sent: the server expires it ttl after it stored that write.
	renewed map[string]time.Time
	// OnAcquire and OnLose are called (from Run's goroutine) when a unit is won or
	// lost. OnLose should return once the unit's work has stopped: a released
	// lease is deleted only after it returns.
	OnAcquire func(unit string)
	OnLose    func(unit string)
}

// New builds a manager for replica id over units; every is the renewal period
// (at most a third of the bucket's TTL).
func New(kv jetstream.KeyValue, id string, units []string, every time.Duration, log *slog.Logger) *Manager {
	u := append([]string{}, units...)
	sort.Strings(u)
	return &Manager{kv: kv, id: id, units: u, every: every, log: log, owned: map[string]uint64{}, renewed: map[string]time.Time{},
		OnAcquire: func(string) {}, OnLose: func(string) {}}
}

type lease struct {
	Owner string    `json:"owner"`
	At    time.Time `json:"at"`
}

func leaseKey(unit string) string { return "lease." + unit }
func memberKey(id string) string  { return "member." + id }

// Owned lists the units held now.
func (m *Manager) Owned() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]string, 0, len(m.owned))
	for u := range m.owned {
		out = append(out, u)
	}
	sort.Strings(out)
	return out
}

// Run renews, balances and claims until ctx ends, then releases every lease so
// that the others take over at once instead of after the TTL.
func (m *Manager) Run(ctx context.Context) error {
	m.ttl = 3 * m.every // the least a bucket's TTL may be; the bucket's own, when it answers
	if st, err := m.kv.Status(ctx); err == nil && st.TTL() > 0 {
		m.ttl = st.TTL()
	}
	t := time.NewTicker(m.every)
	defer t.Stop()
	for {
		m.tick(ctx)
		select {
		case <-ctx.Done():
			m.releaseAll()
			return nil
		case <-t.C:
		}
	}
}

// op bounds one bucket operation of a tick, so that an unreachable bucket
// cannot hold the tick (and the expiry of what it holds) for long.
func (m *Manager) op(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, min(max(m.every, time.Second), m.ttl/3))
}

// expire gives up every lease not renewed for ttl less two renewal periods:
// a replica that cannot reach the bucket (or whose renewals hang) stops
// working before its lease can expire on the server and another replica
// take the unit over, so that no unit ever has two replicas at work.
func (m *Manager) expire() {
	for _, u := range m.Owned() {
		m.mu.Lock()
		since := time.Since(m.renewed[u])
		m.mu.Unlock()
		if since >= m.ttl-2*m.every {
			m.lose(u, fmt.Errorf("not renewed for %s (leases expire after %s): stopping before another replica may take it", since.Round(time.Millisecond), m.ttl))
		}
	}
}

func (m *Manager) tick(ctx context.Context) {
	m.expire()
	// Renewals first: they keep what this replica works on; the heartbeat
	// only counts the replicas for balancing.
	for _, u := range m.Owned() {
		m.renew(ctx, u)
	}
	hctx, cancel := m.op(ctx)
	_, err := m.kv.Put(hctx, memberKey(m.id), []byte(time.Now().UTC().Format(time.RFC3339Nano)))
	cancel()
	if err != nil {
		m.log.Warn("lease: heartbeat failed", "err", err)
		return
	}
	members := 1
	lctx, cancel := m.op(ctx)
	defer cancel()
	if keys, err := m.kv.ListKeysFiltered(lctx, "member.>"); err == nil {
		n := 0
		for range keys.Keys() {
			n++
		}
		members = max(1, n)
	}
	target := (len(m.units) + members - 1) / members

	// Give back what exceeds a fair share, so a new replica gets work.
	if owned := m.Owned(); len(owned) > target {
		for _, u := range owned[target:] {
			m.release(u)
		}
	}
	// Claim free units up to the fair share.
	for _, u := range m.units {
		if len(m.Owned()) >= target {
			break
		}
		m.mu.Lock()
		_, mine := m.owned[u]
		m.mu.Unlock()
		if mine {
			continue
		}
		sent := time.Now()
		b, _ := json.Marshal(lease{Owner: m.id, At: sent.UTC()})
		cctx, cancel := m.op(ctx)
		rev, err := m.kv.Create(cctx, leaseKey(u), b)
		if errors.Is(err, jetstream.ErrKeyExists) {
			rev, err = m.reclaim(cctx, u, b)
		}
		cancel()
		if err != nil {
			if !errors.Is(err, jetstream.ErrKeyExists) && ctx.Err() == nil {
				m.log.Warn("lease: claim failed", "unit", u, "err", err)
			}
			continue
		}
		m.mu.Lock()
		m.owned[u], m.renewed[u] = rev, sent
		m.mu.Unlock()
		m.log.Info("lease acquired", "unit", u, "members", members)
		m.OnAcquire(u)
	}
}

// renew renews one lease; a failed renewal means the lease is gone (or may
// be: an answer that never came), and the unit's work stops.
func (m *Manager) renew(ctx context.Context, u string) {
	m.mu.Lock()
	rev, ok := m.owned[u]
	m.mu.Unlock()
	if !ok {
		return
	}
	sent := time.Now()
	b, _ := json.Marshal(lease{Owner: m.id, At: sent.UTC()})
	uctx, cancel := m.op(ctx)
	nrev, err := m.kv.Update(uctx, leaseKey(u), b, rev)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		m.lose(u, err)
		return
	}
	m.mu.Lock()
	m.owned[u], m.renewed[u] = nrev, sent
	m.mu.Unlock()
}

// reclaim takes over a lease this replica's identity still holds from before a
// restart (a stable replica id, e.g. a StatefulSet pod name), without waiting
// for it to expire. Anyone else's lease is left alone.
func (m *Manager) reclaim(ctx context.Context, u string, b []byte) (uint64, error) {
	e, err := m.kv.Get(ctx, leaseKey(u))
	if err != nil {
		return 0, err
	}
	var l lease
	if json.Unmarshal(e.Value(), &l) != nil || l.Owner != m.id {
		return 0, jetstream.ErrKeyExists
	}
	return m.kv.Update(ctx, leaseKey(u), b, e.Revision())
}

func (m *Manager) lose(u string, err error) {
	m.mu.Lock()
	delete(m.owned, u)
	delete(m.renewed, u)
	m.mu.Unlock()
	m.log.Warn("lease lost", "unit", u, "err", err)
	m.OnLose(u)
}

func (m *Manager) release(u string) {
	m.mu.Lock()
	rev, ok := m.owned[u]
	delete(m.owned, u)
	delete(m.renewed, u)
	m.mu.Unlock()
	if !ok {
		return
	}
	m.OnLose(u)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := m.kv.Delete(ctx, leaseKey(u), jetstream.LastRevision(rev)); err != nil {
		m.log.Warn("lease: release failed (it will expire)", "unit", u, "err", err)
		return
	}
	m.log.Info("lease released", "unit", u)
}

func (m *Manager) releaseAll() {
	for _, u := range m.Owned() {
		m.release(u)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	m.kv.Delete(ctx, memberKey(m.id))
}
