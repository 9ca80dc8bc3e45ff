package sink

import (
	"context"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// pacer is one receiver's pace: its rate limit, and the pause a Retry-After
// asked for. Every path that calls a receiver shares one: its own
// consumer's and, in fan-out mode, the fast path and the retry queue's
// worker (a Retry-After met on one holds the other; a rate limit is not
// doubled by two paths).
type pacer struct {
	lim   *rate.Limiter
	mu    sync.Mutex
	until time.Time
}

func newPacer(rc Receiver) *pacer {
	lim := rate.NewLimiter(rate.Inf, 0)
	if rc.RateLimit > 0 {
		lim = rate.NewLimiter(rate.Limit(rc.RateLimit), max(1, rc.Burst))
	}
	return &pacer{lim: lim}
}

// pause makes no call for d (a longer pause already asked for stands).
func (p *pacer) pause(d time.Duration) {
	if d <= 0 {
		return
	}
	p.mu.Lock()
	if u := time.Now().Add(d); u.After(p.until) {
		p.until = u
	}
	p.mu.Unlock()
}

// paused reports how much of a pause is left.
func (p *pacer) paused() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return max(time.Until(p.until), 0)
}

// wait waits out the pause, then the rate limit.
func (p *pacer) wait(ctx context.Context) error {
	for {
		left := p.paused()
		if left <= 0 {
			break
		}
		t := time.NewTimer(left)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
	return p.lim.Wait(ctx)
}
