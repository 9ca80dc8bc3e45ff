package sink

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/accountwatch/accountwatch/pkg/retryafter"
)

// Reason classes a failed delivery, for the retry decision, metrics and the
// dead letter.
type Reason string

// Reasons.
const (
	ReasonRateLimited  Reason = "rate_limited"
	ReasonClientError  Reason = "client_error"
	ReasonServerError  Reason = "server_error"
	ReasonTimeout      Reason = "timeout"
	ReasonInvalidEvent Reason = "invalid_event"
	ReasonOther        Reason = "other"
)

// Error is a classified delivery failure. A Sender returns one (through
// Permanent, Transient or RateLimited) to say what the runtime should do;
// anything else it returns is classified by Classify.
type Error struct {
	Reason Reason
	// Permanent failures are dead-lettered at once: retrying cannot help.
	Permanent bool
	// RetryAfter is the wait the receiver asked for (HTTP Retry-After, Slack 429).
	RetryAfter time.Duration
	// Status is the remote's answer code, when it gave one (an HTTP status,
	// an SMTP reply code), for the delivery log.
	Status int
	Err    error
}

func (e *Error) Error() string {
	kind := "transient"
	if e.Permanent {
		kind = "permanent"
	}
	if e.RetryAfter > 0 {
		return fmt.Sprintf("%s (%s, retry after %s): %v", e.Reason, kind, e.RetryAfter, e.Err)
	}
	return fmt.Sprintf("%s (%s): %v", e.Reason, kind, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Permanent marks err as not worth retrying (an invalid channel, a revoked
// token, a 4xx other than 408/429).
func Permanent(r Reason, err error) error { return &Error{Reason: r, Permanent: true, Err: err} }

// Transient marks err as worth retrying with backoff.
func Transient(r Reason, err error) error { return &Error{Reason: r, Err: err} }

// RateLimited asks for the next attempt after d exactly.
func RateLimited(d time.Duration, err error) error {
	return &Error{Reason: ReasonRateLimited, RetryAfter: d, Err: err}
}

// Classify returns err's classification: the sender's own when it gave one, a
// transient timeout for deadlines and network timeouts, else transient "other".
func Classify(err error) *Error {
	if e, ok := errors.AsType[*Error](err); ok {
		return e
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return &Error{Reason: ReasonTimeout, Err: err}
	}
	if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
		return &Error{Reason: ReasonTimeout, Err: err}
	}
	return &Error{Reason: ReasonOther, Err: err}
}

// HTTPOptions are what one HTTP sink decides differently from another.
type HTTPOptions struct {
	// RetryClientErrors retries a 4xx answer (and a 3xx: no redirect is
	// followed) on the schedule instead of dead-lettering it at once. A
	// webhook subscriber's 404 or 401 is often a deployment of theirs, and
	// dropping the event would lose it; Slack's 4xx says our request is wrong.
	RetryClientErrors bool
}

// HTTPStatus is the one classification of an HTTP answer of every HTTP sink:
// nil for 2xx; 429, and 503 with a Retry-After, rate limited (the receiver
// pauses for exactly the Retry-After of h, or backs off without one); 408 a
// timeout; 5xx a transient server error; any other answer a client error,
// permanent unless o.RetryClientErrors. err describes the answer.
func HTTPStatus(code int, h http.Header, now time.Time, err error, o HTTPOptions) error {
	if code >= 200 && code < 300 {
		return nil
	}
	e := &Error{Reason: ReasonClientError, Permanent: !o.RetryClientErrors, Status: code, Err: err}
	wait, hasWait := retryafter.Header(h, now)
	switch {
	case code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable && hasWait:
		e.Reason, e.Permanent = ReasonRateLimited, false
		if hasWait {
			// An exact wait, at least a second: "0" still asks for a pause.
			e.RetryAfter = max(wait, time.Second)
		}
	case code == http.StatusRequestTimeout:
		e.Reason, e.Permanent = ReasonTimeout, false
	case code >= 500:
		e.Reason, e.Permanent = ReasonServerError, false
	}
	return e
}
