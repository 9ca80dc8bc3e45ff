package sink

import (
	"context"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// pacer is one receiver's pace: its rate limit, the pause a Retry-After
// asked for, and its circuit breaker. Every path that calls a receiver
// shares one: its own consumer's and, in fan-out mode, the fast path and
// the retry queue's worker (a Retry-After met on one holds the other; a rate
// limit is not doubled by two paths; failures on either open the circuit).
//
// The breaker: after breakAfter failed attempts in a row the circuit opens,
// and the receiver gets no call until the last failed attempt's retry is
// due. Then one call, the probe, goes alone: while it is in flight nothing
// else is let through. A delivered probe closes the circuit; a failed one
// opens it again, until its own retry is due. So an endpoint that is down is
// called once per retry, not once for every event queued for it.
type pacer struct {
	lim        *rate.Limiter
	breakAfter int // 0: no breaker
	mu         sync.Mutex
	until      time.Time // no call before (a Retry-After, an open circuit)
	fails      int       // attempts failed in a row
	// probe is closed when the probe in flight settles (nil: none in flight).
	probe chan struct{}
	// onOpen is told when the circuit opens, with the failures in a row and
	// how long no call will be made (a metric, a log line).
	onOpen func(fails int, pause time.Duration)
}

func newPacer(rc Receiver, breakAfter int, onOpen func(int, time.Duration)) *pacer {
	lim := rate.NewLimiter(rate.Inf, 0)
	if rc.RateLimit > 0 {
		lim = rate.NewLimiter(rate.Limit(rc.RateLimit), max(1, rc.Burst))
	}
	if onOpen == nil {
		onOpen = func(int, time.Duration) {}
	}
	return &pacer{lim: lim, breakAfter: breakAfter, onOpen: onOpen}
}

// newPacer is rc's pace with the runtime's breaker, which counts and logs
// each opening (the receiver's series made then: ten thousand endpoints
// would otherwise carry a counter each that most never move).
func (r *Runtime) newPacer(rc Receiver) *pacer {
	return newPacer(rc, r.set.BreakAfter, func(fails int, pause time.Duration) {
		r.metrics.CircuitOpened.WithLabelValues(r.sink, rc.Name).Inc()
		r.log.Warn("receiver failing: no call until its retry is due, then one probe", "sink", r.sink, "receiver", rc.Name,
			"failures_in_a_row", fails, "pause", pause.Round(time.Millisecond))
	})
}

// probeWait is how long a path that may not call while a probe is in flight
// holds off before it looks again (the fan-out's hand-off waits this long).
const probeWait = time.Second

// pauseLocked makes no call for d (a longer pause already asked for
// stands); p.mu held.
func (p *pacer) pauseLocked(d time.Duration) {
	if d <= 0 {
		return
	}
	if u := time.Now().Add(d); u.After(p.until) {
		p.until = u
	}
}

// open reports whether the circuit is open (p.mu held).
func (p *pacer) open() bool { return p.breakAfter > 0 && p.fails >= p.breakAfter }

// admit says whether a call may be made now, and whether it is the probe of
// an open circuit (which the caller must settle: attempted, or release when
// it makes no call after all). When it may not, wait says how long to hold
// off: what is left of a pause, or probeWait while a probe is in flight.
func (p *pacer) admit() (probe bool, wait time.Duration, ok bool) {
	probe, wait, _, ok = p.try()
	return probe, wait, ok
}

// try is admit, and the probe in flight that refused the call (if one did).
func (p *pacer) try() (probe bool, wait time.Duration, inFlight <-chan struct{}, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if left := time.Until(p.until); left > 0 {
		return false, left, nil, false
	}
	if !p.open() {
		return false, 0, nil, true
	}
	if p.probe != nil {
		return false, probeWait, p.probe, false
	}
	p.probe = make(chan struct{})
	return true, 0, nil, true
}

// paused reports what is left of a pause (a Retry-After, an open circuit).
func (p *pacer) paused() (time.Duration, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	left := time.Until(p.until)
	return left, left > 0
}

// release gives the probe back unused.
func (p *pacer) release(probe bool) {
	if !probe {
		return
	}
	p.mu.Lock()
	p.endProbe()
	p.mu.Unlock()
}

func (p *pacer) endProbe() {
	if p.probe != nil {
		close(p.probe)
		p.probe = nil
	}
}

// attempted applies one attempt's decision (its first event's, for a
// notification of several): a Retry-After's pause; a delivery closes the
// circuit; a failure that is not permanent counts, and opens the circuit
// (again) once breakAfter are in a row, until the attempt's retry is due.
// A permanent failure says nothing about the receiver being up.
func (p *pacer) attempted(d Decision, probe bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if probe {
		p.endProbe()
	}
	p.pauseLocked(d.Pause)
	switch {
	case d.Err == nil:
		p.fails = 0
	case !d.Err.Permanent:
		p.fails++
		if p.open() && d.Action == Retry {
			pause := max(d.Delay, d.Pause)
			p.pauseLocked(pause)
			// Told once per opening: the failure that opens it, or a
			// failed probe; not each attempt that was in flight meanwhile.
			if p.fails == p.breakAfter || probe {
				p.onOpen(p.fails, pause)
			}
		}
	}
}

// wait waits out a pause and a probe in flight, then the rate limit. probe
// says the call is an open circuit's probe: the caller settles it.
func (p *pacer) wait(ctx context.Context) (probe bool, err error) {
	for {
		probe, left, inFlight, ok := p.try()
		if ok {
			if err := p.lim.Wait(ctx); err != nil {
				p.release(probe)
				return false, err
			}
			return probe, nil
		}
		t := time.NewTimer(left)
		select {
		case <-ctx.Done():
			t.Stop()
			return false, ctx.Err()
		case <-t.C:
		case <-inFlight: // nil, never ready, without a probe in flight
			t.Stop()
		}
	}
}
