package audit

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/accountwatch/accountwatch/pkg/checkpoint"
	"github.com/accountwatch/accountwatch/pkg/eventbus"
)

// Checkpointer signs checkpoints of the event stream at an interval,
// verifying what it signs: the whole stream once at start, then only what
// is new (memory: one chain head per account). A checkpoint is signed when
// the stream has moved since the last one; it names the problems its
// verification found, so a checkpoint of a broken log says so.
type Checkpointer struct {
	JS       jetstream.JetStream
	Key      ed25519.PrivateKey
	Interval time.Duration
	// Stream is AW_EVENTS when empty; Skew DefaultSkew when 0.
	Stream string
	Skew   time.Duration
	Log    *slog.Logger

	mu               sync.Mutex
	latest           checkpoint.Stored
	rounds, failures int
	signed           chan struct{}
}

// Latest is the newest checkpoint this signer stored or found (zero before).
func (c *Checkpointer) Latest() checkpoint.Stored {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.latest
}

// Rounds counts the rounds done (signing or finding nothing new).
func (c *Checkpointer) Rounds() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rounds
}

// Failures counts rounds that could not sign.
func (c *Checkpointer) Failures() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.failures
}

// Signed is told of every checkpoint stored (tests wait on it).
func (c *Checkpointer) Signed() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.signed == nil {
		c.signed = make(chan struct{}, 1)
	}
	return c.signed
}

// Run signs until ctx ends; a round that fails is logged and retried at the
// next interval.
func (c *Checkpointer) Run(ctx context.Context) error {
	if c.Stream == "" {
		c.Stream = eventbus.StreamEvents
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.Interval <= 0 {
		return fmt.Errorf("%w: checkpoint interval %s", ErrInvalid, c.Interval)
	}
	c.Signed()
	var v *Verifier
	for {
		var err error
		v, err = c.round(ctx, v)
		c.mu.Lock()
		c.rounds++
		if err != nil && ctx.Err() == nil {
			c.failures++
			c.Log.Error("checkpoint failed", "err", err)
		}
		c.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(c.Interval):
		}
	}
}

// round brings the verifier up to the stream's end and signs what it saw.
func (c *Checkpointer) round(ctx context.Context, v *Verifier) (*Verifier, error) {
	prev := c.Latest()
	if prev.Signed == nil {
		st, err := checkpoint.Latest(ctx, c.JS, c.Stream)
		if err != nil && !errors.Is(err, checkpoint.ErrNone) {
			return v, err
		}
		prev = st
	}
	info, err := streamInfo(ctx, c.JS, c.Stream)
	if err != nil {
		return v, err
	}
	if v == nil || !info.Created.Equal(v.rep.Created) || info.State.FirstSeq > v.Next() {
		if v != nil {
			c.Log.Error("the event stream was recreated or cut since the last round: verifying it again from its start", "stream", c.Stream)
		}
		v = NewVerifier(info, c.Skew, time.Now())
	}
	if err := v.Walk(ctx, c.JS, info.State.LastSeq, nil); err != nil {
		return v, err
	}
	if prev.Signed != nil && prev.Checkpoint().LastSeq == v.rep.LastSeq && prev.Checkpoint().StreamCreated.Equal(v.rep.Created) && prev.PublicKey.Equal(c.Key.Public()) {
		c.mu.Lock()
		c.latest = prev
		c.mu.Unlock()
		return v, nil // nothing new since the last checkpoint
	}
	cp := v.Checkpoint(time.Now())
	var prevSeq uint64
	if prev.Signed != nil {
		cp.Prev, prevSeq = prev.Hash(), prev.Seq
	}
	s, err := checkpoint.Sign(cp, c.Key)
	if err != nil {
		return v, err
	}
	seq, err := checkpoint.Publish(ctx, c.JS, s, prevSeq)
	if err != nil {
		c.mu.Lock()
		c.latest = checkpoint.Stored{} // another signer may have stored one: read it next round
		c.mu.Unlock()
		return v, err
	}
	c.mu.Lock()
	c.latest = checkpoint.Stored{Signed: s, Seq: seq}
	c.mu.Unlock()
	select {
	case c.signed <- struct{}{}:
	default:
	}
	log := c.Log.Info
	if cp.Problems > 0 {
		log = c.Log.Error
	}
	log("checkpoint signed", "seq", seq, "stream", c.Stream, "last_seq", cp.LastSeq, "accounts", cp.Accounts, "root", cp.Root, "problems", cp.Problems, "key", s.Checkpoint().KeyID)
	return v, nil
}
