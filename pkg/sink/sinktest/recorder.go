package sinktest

import (
	"context"
	"sync"
	"time"

	"github.com/accountwatch/accountwatch/pkg/sink"
)

// Recorder wraps a sink's Sender and notes when each event was first
// delivered (the Send that carried it returned without error): a sink's
// publish→delivery latency where the destination's record names no event
// (a grouped Slack message, an email of many changes).
type Recorder struct {
	sink.Sender
	mu sync.Mutex
	at map[string]time.Time
}

// NewRecorder wraps s.
func NewRecorder(s sink.Sender) *Recorder { return &Recorder{Sender: s, at: map[string]time.Time{}} }

// Send delivers n and notes its events' delivery.
func (r *Recorder) Send(ctx context.Context, n *sink.Notification) error {
	err := r.Sender.Send(ctx, n)
	if err == nil {
		now := time.Now()
		r.mu.Lock()
		for _, e := range n.Events {
			if _, ok := r.at[e.ID()]; !ok {
				r.at[e.ID()] = now
			}
		}
		r.mu.Unlock()
	}
	return err
}

// Delivered counts the events delivered so far.
func (r *Recorder) Delivered() int { r.mu.Lock(); defer r.mu.Unlock(); return len(r.at) }

// Latencies are the delivered events' times from sent (their publish
// times by id), sorted.
func (r *Recorder) Latencies(sent map[string]time.Time) []time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]time.Duration, 0, len(r.at))
	for id, at := range r.at {
		if t, ok := sent[id]; ok {
			out = append(out, at.Sub(t))
		}
	}
	return out
}
