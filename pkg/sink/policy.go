package sink

import (
	"fmt"
	"math/rand/v2"
	"time"
)

// Action is what the runtime does with an event after an attempt.
type Action int

// Actions.
const (
	// Ack: delivered; the event leaves the receiver's consumer.
	Ack Action = iota
	// Retry: handed back (NakWithDelay, or the fan-out's retry queue) for
	// another attempt after Decision.Delay.
	Retry
	// DeadLetter: stored in the dead letters, then terminated.
	DeadLetter
)

func (a Action) String() string {
	return [...]string{"ack", "retry", "dead-letter"}[a]
}

// Decision is the policy's answer for one event after one attempt.
type Decision struct {
	Action Action
	// Delay is the wait before the next attempt (Retry).
	Delay time.Duration
	// Pause is how long the receiver makes no call at all: the Retry-After it
	// asked for, capped by Settings.MaxRetryAfter.
	Pause time.Duration
	// Err is the classified failure (nil on success); an exhausted event's says so.
	Err *Error
}

// Decide is the acknowledgement policy, the one both consumer paths (a
// receiver's own consumer, and the fan-out's shared one) apply after every
// attempt of an event: err is the sender's answer, attempts counts this one.
//
//	success                      → Ack
//	permanent error              → DeadLetter
//	attempts exhausted           → DeadLetter
//	rate limited (Retry-After)   → Retry after exactly the Retry-After (capped), the receiver pauses
//	other error                  → Retry after the backoff (or the schedule's next wait), with jitter
func Decide(err error, attempts uint64, s Settings) Decision {
	if err == nil {
		return Decision{Action: Ack}
	}
	e := Classify(err)
	d := Decision{Err: e}
	if e.RetryAfter > 0 {
		d.Pause = min(e.RetryAfter, s.MaxRetryAfter)
	}
	switch {
	case e.Permanent:
		d.Action = DeadLetter
	case attempts >= uint64(s.attempts()):
		d.Action = DeadLetter
		d.Err = &Error{Reason: e.Reason, Err: fmt.Errorf("gave up after %d attempts: %w", attempts, e.Err)}
	case d.Pause > 0:
		d.Action, d.Delay = Retry, d.Pause
	default:
		d.Action, d.Delay = Retry, s.backoff(attempts, rand.Float64())
	}
	return d
}

// attempts is how many attempts an event gets: the schedule's waits + 1
// when there is a schedule, else MaxDeliver.
func (s Settings) attempts() int {
	if w := s.waits(); len(w) > 0 {
		return len(w) + 1
	}
	return s.MaxDeliver
}

// waits is the retry schedule, parsed once by New (prepare) and here for
// settings that were not prepared.
func (s Settings) waits() []time.Duration {
	if s.schedule == nil && s.RetrySchedule != "" {
		w, _ := parseSchedule(s.RetrySchedule)
		return w
	}
	return s.schedule
}

// backoff is the wait before attempt n+1 after n failed: initial·2^(n-1),
// capped, with equal jitter (half fixed, half random) so that a burst of
// failures does not retry in lockstep; or the schedule's n-th wait ±10%.
func (s Settings) backoff(n uint64, jitter float64) time.Duration {
	if sched := s.waits(); len(sched) > 0 {
		// A fixed schedule (webhooks: minutes to days) jitters by ±10%.
		d := sched[min(max(int(n), 1), len(sched))-1]
		return d - d/10 + time.Duration(jitter*float64(d/5))
	}
	d := s.BackoffInitial
	for i := uint64(1); i < n && d < s.BackoffMax; i++ {
		d *= 2
	}
	d = min(d, s.BackoffMax)
	return d/2 + time.Duration(jitter*float64(d/2))
}
