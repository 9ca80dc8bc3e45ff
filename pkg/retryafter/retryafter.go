// Package retryafter reads the HTTP Retry-After header (RFC 9110, section
// 10.2.3): a number of seconds or an HTTP date. It is the one parser of the
// project, shared by the sinks (a webhook subscriber's or Slack's 429) and by
// the provider clients (an upstream's throttling), so it imports nothing but
// the standard library.
package retryafter

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Max bounds what Parse returns: a value past it (a typo, a date decades
// ahead) is taken as Max, and callers cap it further by their own policy.
const Max = 30 * 24 * time.Hour

// Parse returns the wait v asks for, counted from now: "120" is two minutes,
// "Fri, 31 Dec 1999 23:59:59 GMT" (or either obsolete date format HTTP
// allows) is the time left until then, zero when it has passed. ok is false
// for an empty or unreadable value, which asks for nothing.
func Parse(v string, now time.Time) (d time.Duration, ok bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if v[0] >= '0' && v[0] <= '9' {
		// delay-seconds = 1*DIGIT; anything else that starts with a digit is no value.
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			if ne, isNum := err.(*strconv.NumError); isNum && ne.Err == strconv.ErrRange {
				return Max, true
			}
			return 0, false
		}
		if n > uint64(Max/time.Second) {
			return Max, true
		}
		return time.Duration(n) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return min(max(t.Sub(now), 0), Max), true
}

// Header is Parse of h's Retry-After.
func Header(h http.Header, now time.Time) (time.Duration, bool) {
	return Parse(h.Get("Retry-After"), now)
}
