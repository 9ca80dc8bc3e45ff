package sink

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"
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
	Err        error
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

// HTTPStatus classifies an HTTP answer of an HTTP sink: 429 and 503 with a
// retry-after are rate limits, 408 a timeout, other 4xx permanent client
// errors, 5xx transient server errors. It returns nil for 2xx.
func HTTPStatus(code int, retryAfter time.Duration, err error) error {
	switch {
	case code >= 200 && code < 300:
		return nil
	case code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable && retryAfter > 0:
		return RateLimited(retryAfter, err)
	case code == http.StatusRequestTimeout:
		return Transient(ReasonTimeout, err)
	case code >= 400 && code < 500:
		return Permanent(ReasonClientError, err)
	}
	return Transient(ReasonServerError, err)
}
