package sink

import (
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// heldSet is the messages a consumer path took and has not settled yet
// (waiting in a group, a rate limit, a slow receiver's queue). keepAlive
// tells the server they are being worked on, or it would deliver them again
// after AckWait. Both consumer paths keep theirs in one.
type heldSet[K comparable] struct {
	mu sync.Mutex
	m  map[K]jetstream.Msg
}

func newHeldSet[K comparable]() *heldSet[K] { return &heldSet[K]{m: map[K]jetstream.Msg{}} }

// add holds m under k and returns how many are held.
func (h *heldSet[K]) add(k K, m jetstream.Msg) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.m[k] = m
	return len(h.m)
}

// remove lets k go and returns how many are held.
func (h *heldSet[K]) remove(k K) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.m, k)
	return len(h.m)
}

// len is how many are held.
func (h *heldSet[K]) len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.m)
}

// keepAlive marks every held message in progress each period until stop is
// closed (a third of AckWait: two chances before the server gives up on one).
func (h *heldSet[K]) keepAlive(period time.Duration, stop <-chan struct{}) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		h.mu.Lock()
		ms := make([]jetstream.Msg, 0, len(h.m))
		for _, m := range h.m {
			ms = append(ms, m)
		}
		h.mu.Unlock()
		for _, m := range ms {
			_ = m.InProgress()
		}
	}
}
