// Package upstream holds what the provider clients share: the error kinds callers
// branch on, evidence, tolerant money decoding, bounded reads and the retry
// policy. It knows no NATS and no event model.
package upstream

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/shopspring/decimal"
)

// Error kinds: every client error wraps exactly one.
var (
	// ErrUnauthorized: bad credentials or a missing permission. Not retried.
	ErrUnauthorized = errors.New("not authorised")
	// ErrNotFound: the account (or customer, or phone) does not exist upstream.
	ErrNotFound = errors.New("no data")
	// ErrThrottled: the provider's rate limiter refused; Error.RetryAfter says when to come back.
	ErrThrottled = errors.New("throttled")
	// ErrTransient: 5xx, timeouts, dropped connections; worth retrying.
	ErrTransient = errors.New("transient upstream failure")
	// ErrMalformed: an answer that cannot be trusted (bad JSON, wrong content
	// type, too large, required fields missing). Never presented as a snapshot.
	ErrMalformed = errors.New("malformed upstream answer")
	// ErrRejected: the request itself was refused (bad parameter).
	ErrRejected = errors.New("request rejected")
)

// Error is a classified upstream failure. Its message never holds a credential.
type Error struct {
	Kind       error
	Op         string
	HTTPStatus int
	Code       string
	RequestID  string
	RetryAfter time.Duration
	// Account and Field name what could not be read, when the failure is one
	// account (of a listing) or one field of an answer (ErrMalformed).
	Account string
	Field   string
	Msg     string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Op)
	b.WriteString(": ")
	b.WriteString(e.Kind.Error())
	if e.HTTPStatus != 0 {
		fmt.Fprintf(&b, " (HTTP %d)", e.HTTPStatus)
	}
	if e.Code != "" {
		b.WriteString(" " + e.Code)
	}
	if e.Account != "" {
		b.WriteString(": account " + e.Account)
	}
	if e.Field != "" {
		b.WriteString(": field " + e.Field)
	}
	if e.Msg != "" {
		b.WriteString(": " + e.Msg)
	}
	if e.RequestID != "" {
		b.WriteString(" [request " + e.RequestID + "]")
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Kind }

// FieldError is one field of an answer that cannot be used: its name and
// what is wrong with it, never its value (a value may be personal data).
type FieldError struct {
	Field   string
	Problem string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Problem }

// Malformed classifies a decoding failure of op's answer: a FieldError (at
// any depth of err) names its field in the Error.
func Malformed(op, requestID string, err error) *Error {
	e := &Error{Kind: ErrMalformed, Op: op, RequestID: requestID}
	var fe *FieldError
	if errors.As(err, &fe) {
		e.Field, e.Msg = fe.Field, fe.Problem
	} else {
		e.Msg = err.Error()
	}
	return e
}

// CodeOf returns the upstream error code of err ("" if none).
func CodeOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// RetryAfterOf returns the retry-after the server gave with an error (a
// throttled answer's, a 503's), zero when it gave none.
func RetryAfterOf(err error) time.Duration {
	var e *Error
	if errors.As(err, &e) {
		return e.RetryAfter
	}
	return 0
}

// Evidence ties a snapshot to the answer it came from.
type Evidence struct {
	RequestID      string
	ResponseSHA256 string
	Endpoint       string
}

// Hash is the hex SHA-256 of a raw answer.
func Hash(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// ReadBounded reads at most limit bytes; a longer body is ErrMalformed.
func ReadBounded(r io.Reader, limit int64, op string) ([]byte, error) {
	return ReadBoundedInto(nil, r, -1, limit, op)
}

// ReadBoundedInto is ReadBounded with the announced length (-1 if unknown)
// sizing the buffer once, reading into dst's storage when it is large enough
// (a reused buffer).
func ReadBoundedInto(dst []byte, r io.Reader, announced, limit int64, op string) ([]byte, error) {
	if announced > limit {
		announced = limit // a hint, or a lie: reading stops at the limit either way
	}
	if int64(cap(dst)) < announced+bytes.MinRead {
		dst = make([]byte, 0, max(512, announced+bytes.MinRead))
	}
	buf := bytes.NewBuffer(dst[:0])
	_, err := buf.ReadFrom(io.LimitReader(r, limit+1))
	b := buf.Bytes()
	if err != nil {
		return nil, &Error{Kind: ErrTransient, Op: op, Msg: "reading the answer: " + err.Error()}
	}
	if int64(len(b)) > limit {
		return nil, &Error{Kind: ErrMalformed, Op: op, Msg: fmt.Sprintf("answer exceeds %d bytes", limit)}
	}
	return b, nil
}

// IsJSON reports whether a Content-Type is application/json (any parameters).
func IsJSON(contentType string) bool {
	ct, _, _ := strings.Cut(contentType, ";")
	return strings.EqualFold(strings.TrimSpace(ct), "application/json")
}

// JSONAnswer reports whether a 200 answer is JSON: its Content-Type says so
// (application/json, text/json, any +json), or, where it says something else
// or nothing (the documents name none), its body is a JSON object or array.
// An error page of a proxy in front of the upstream (HTML) is not.
func JSONAnswer(contentType string, body []byte) bool {
	ct, _, _ := strings.Cut(contentType, ";")
	ct = strings.ToLower(strings.TrimSpace(ct))
	if ct == "application/json" || ct == "text/json" || strings.HasSuffix(ct, "+json") {
		return true
	}
	if strings.HasPrefix(ct, "text/html") || strings.HasPrefix(ct, "application/xml") || strings.HasPrefix(ct, "text/xml") {
		return false
	}
	b := bytes.TrimSpace(body)
	return len(b) > 0 && (b[0] == '{' || b[0] == '[')
}

// Money decodes an amount that arrives as a JSON number (453.2), a string
// ("453.2", " 453.20 "), or null, into an exact decimal: a JSON number is read
// from its literal text, never through a float. It returns nil for null or "".
func Money(raw json.RawMessage) (*decimal.Decimal, string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, "", nil
	}
	text, err := scalarText(raw)
	if err != nil {
		return nil, "", fmt.Errorf("money %s: %w", raw, err)
	}
	text = strings.TrimSpace(text)
	if text == "" {
		return nil, "", nil
	}
	if len(text) > 64 {
		return nil, "", fmt.Errorf("money %q: too long", text)
	}
	d, err := decimal.NewFromString(text)
	if err != nil {
		return nil, "", fmt.Errorf("money %q is not a decimal", text)
	}
	if d.Exponent() < -18 || d.Exponent() > 18 {
		return nil, "", fmt.Errorf("money %q out of range", text)
	}
	return &d, text, nil
}

// scalarText returns the text of a JSON string (unquoted) or number literal.
// Plain strings and numbers take a fast path; anything else goes through
// encoding/json, so escapes and validation behave exactly as the standard.
func scalarText(raw []byte) (string, error) {
	if raw[0] == '"' {
		if len(raw) >= 2 && raw[len(raw)-1] == '"' && bytes.IndexByte(raw[1:len(raw)-1], '"') < 0 && bytes.IndexByte(raw, '\\') < 0 && plainASCII(raw) {
			return string(raw[1 : len(raw)-1]), nil
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", err
		}
		return s, nil
	}
	if raw[0] == '-' || raw[0] >= '0' && raw[0] <= '9' {
		var n json.Number
		if numberLiteral(raw) {
			return string(raw), nil
		}
		if err := json.Unmarshal(raw, &n); err != nil {
			return "", err
		}
		return n.String(), nil
	}
	return "", fmt.Errorf("neither a number nor a string")
}

func plainASCII(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c >= 0x7f {
			return false
		}
	}
	return true
}

// numberLiteral reports whether b is a JSON number (RFC 8259 grammar).
func numberLiteral(b []byte) bool {
	i := 0
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		i = digits(b, i)
	default:
		return false
	}
	if i < len(b) && b[i] == '.' {
		if j := digits(b, i+1); j > i+1 {
			i = j
		} else {
			return false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if j := digits(b, i); j > i {
			i = j
		} else {
			return false
		}
	}
	return i == len(b)
}

// digits returns the end of the run of decimal digits starting at i.
func digits(b []byte, i int) int {
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	return i
}

// Bool decodes a flag sent as a JSON boolean, a string ("true", "false",
// "1", "0", any case) or the numbers 1 and 0; null and "" are false.
func Bool(raw json.RawMessage) (bool, error) {
	raw = bytes.TrimSpace(raw)
	s := string(raw)
	if len(raw) >= 2 && raw[0] == '"' {
		if err := json.Unmarshal(raw, &s); err != nil {
			return false, err
		}
		s = strings.TrimSpace(s)
	}
	switch strings.ToLower(s) {
	case "", "null", "false", "0":
		return false, nil
	case "true", "1":
		return true, nil
	}
	return false, fmt.Errorf("%.40s is not a boolean", raw)
}

// Text decodes a code or name sent as a JSON string or number ("200" or 200);
// null is "".
func Text(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	t, err := scalarText(raw)
	return strings.TrimSpace(t), err
}

// ID decodes an identifier sent as a JSON number or string.
func ID(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	text, err := scalarText(raw)
	if err != nil {
		return "", fmt.Errorf("id %s: %w", raw, err)
	}
	if raw[0] == '"' {
		return strings.TrimSpace(text), nil
	}
	if strings.ContainsAny(text, ".eE-") {
		return "", fmt.Errorf("id %s is not an integer", raw)
	}
	return text, nil
}

// Retry is a retry policy: exponential backoff with full jitter.
type Retry struct {
	Attempts int           // total attempts, at least 1
	Base     time.Duration // first backoff
	Max      time.Duration // cap of one backoff
	// MaxRetryAfter bounds how long a throttled call waits for the server's retry-after.
	MaxRetryAfter time.Duration
}

// DefaultRetry: 3 attempts, 200 ms doubling to 5 s, throttle waits up to 10 s.
var DefaultRetry = Retry{Attempts: 3, Base: 200 * time.Millisecond, Max: 5 * time.Second, MaxRetryAfter: 10 * time.Second}

// Backoff is the wait before retry n (1-based).
func (r Retry) Backoff(n int) time.Duration {
	d := r.Base << (n - 1)
	if d > r.Max || d <= 0 {
		d = r.Max
	}
	return time.Duration(rand.Int64N(int64(d)/2+1)) + d/2
}

// Do runs call until it succeeds, fails with a kind that is not retried, or the
// attempts run out. Transient errors back off; throttled ones wait the server's
// retry-after (bounded by MaxRetryAfter), or back off when it gave none; a
// transient error's retry-after lengthens its backoff.
func (r Retry) Do(ctx context.Context, call func(context.Context) error) error {
	attempts := max(1, r.Attempts)
	var err error
	for n := 1; ; n++ {
		err = call(ctx)
		if err == nil || n >= attempts || ctx.Err() != nil {
			return err
		}
		var wait time.Duration
		switch {
		case errors.Is(err, ErrThrottled):
			wait = RetryAfterOf(err)
			if wait <= 0 {
				wait = r.Backoff(n)
			}
			if wait > r.MaxRetryAfter {
				return err
			}
		case errors.Is(err, ErrTransient):
			// A server that said when it is back (a 503's Retry-After) is
			// not asked sooner, nor waited for past MaxRetryAfter.
			wait = max(r.Backoff(n), RetryAfterOf(err))
			if wait > max(r.MaxRetryAfter, r.Max) {
				return err
			}
		default:
			return err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
}
