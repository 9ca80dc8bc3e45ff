// Package deliver posts events to webhook endpoints: the CloudEvents HTTP
// binding (structured or binary), Standard Webhooks signatures, custom
// headers, bounded responses, one delivery-log record per attempt, and the
// endpoint's health: 410 Gone disables it at once, failing longer than the
// configured period disables it too.
package deliver

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cloudevents/sdk-go/v2/binding"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"

	"github.com/accountwatch/accountwatch/pkg/deliverylog"
	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/redact"
	"github.com/accountwatch/accountwatch/pkg/sink"
	"github.com/accountwatch/accountwatch/services/webhook-dispatcher/internal/egress"
	"github.com/accountwatch/accountwatch/services/webhook-dispatcher/internal/subscription"
)

// SinkName names the dispatcher's consumers, dead letters and log records.
const SinkName = "webhook"

// Endpoints gives the current definition of an endpoint (kept by the app from
// the subscriptions bucket).
type Endpoints interface {
	Endpoint(id string) (*subscription.Endpoint, bool)
}

// Health records an endpoint's health transitions.
type Health interface {
	Update(ctx context.Context, id string, change func(*subscription.Endpoint) error) (subscription.Endpoint, error)
}

// Options configure the Sender.
type Options struct {
	Client *http.Client
	Guard  *egress.Guard
	Log    *deliverylog.Log
	// LogFailuresOnly leaves out first-attempt successes (high volumes).
	LogFailuresOnly bool
	// MaxResponse bounds how much of a response body is read.
	MaxResponse int64
	// DisableAfter disables an endpoint that has failed for this long without a success.
	DisableAfter time.Duration
	UserAgent    string
	// OnDisable is told when this sender disables an endpoint (the operator event).
	OnDisable func(id, reason string)
	Logger    *slog.Logger
	Now       func() time.Time
}

// Sender implements sink.Sender for webhook endpoints.
type Sender struct {
	o         Options
	endpoints Endpoints
	health    Health

	mu      sync.Mutex
	failing map[string]bool // endpoints known to be failing (saves a write per failure)
	enc     encodeCache
}

// New builds the sender.
func New(eps Endpoints, health Health, o Options) *Sender {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.MaxResponse <= 0 {
		o.MaxResponse = 64 << 10
	}
	return &Sender{o: o, endpoints: eps, health: health, failing: map[string]bool{}}
}

// Result is one attempt's outcome.
type Result struct {
	Status   int           `json:"status"`
	Latency  time.Duration `json:"latency"`
	Response string        `json:"response,omitempty"`
	Err      error         `json:"-"`
}

// Send delivers a notification (one event) to the endpoint named by its receiver.
func (s *Sender) Send(ctx context.Context, n *sink.Notification) error {
	ep, ok := s.endpoints.Endpoint(n.Receiver)
	if !ok {
		// Deleted meanwhile: nothing to deliver to, and nobody to tell.
		return sink.Permanent(sink.ReasonClientError, fmt.Errorf("endpoint %s no longer exists", n.Receiver))
	}
	if ep.Status != subscription.StatusActive {
		return sink.Transient(sink.ReasonOther, fmt.Errorf("endpoint %s is %s", ep.ID, ep.Status))
	}
	var errs []error
	for _, e := range n.Events {
		res := s.Deliver(ctx, ep, e, n.Redrive, false, n.Attempt)
		if res.Err != nil {
			errs = append(errs, res.Err)
		}
	}
	return errors.Join(errs...)
}

// Encoded is an event in one content mode of the CloudEvents HTTP binding.
type Encoded struct {
	Header http.Header
	Body   []byte
}

// Encode writes e with the SDK's HTTP binding: structured (the whole event as
// application/cloudevents+json) or binary (ce-* headers, the data as body).
func Encode(ctx context.Context, mode string, e *event.Event) (*Encoded, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://encode.invalid/", nil)
	if err != nil {
		return nil, err
	}
	if mode != subscription.ModeBinary {
		ctx = binding.WithForceStructured(ctx)
	}
	ce := e.Cloud
	if err := cehttp.WriteRequest(ctx, binding.ToMessage(&ce), req); err != nil {
		return nil, fmt.Errorf("encode %s: %w", e.ID(), err)
	}
	out := &Encoded{Header: req.Header}
	if req.Body != nil {
		if out.Body, err = io.ReadAll(req.Body); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Request builds the signed HTTP request of an encoded event for ep at t.
func Request(ctx context.Context, ep *subscription.Endpoint, id string, enc *Encoded, t time.Time, userAgent string) (*http.Request, error) {
	body := enc.Body
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ep.URL, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("request: %w", err)
	}
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	for k, v := range enc.Header {
		req.Header[k] = v
	}
	for k, v := range ep.Headers {
		req.Header.Set(k, v)
	}
	sig, err := Sign(ep.ValidSecrets(t), id, t, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("webhook-id", id)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(t.Unix(), 10))
	req.Header.Set("webhook-signature", sig)
	req.Header.Set("User-Agent", userAgent)
	return req, nil
}

// encodeCache keeps recent encodings: in fan-out one event goes to many
// endpoints, and is encoded once per content mode, not once per endpoint.
type encodeCache struct {
	mu sync.Mutex
	m  map[encodeKey]*Encoded
}

type encodeKey struct {
	e    *event.Event
	mode string
}

const encodeCacheSize = 4096

func (c *encodeCache) get(ctx context.Context, mode string, e *event.Event) (*Encoded, error) {
	k := encodeKey{e, mode}
	c.mu.Lock()
	enc, ok := c.m[k]
	c.mu.Unlock()
	if ok {
		return enc, nil
	}
	enc, err := Encode(ctx, mode, e)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.m == nil || len(c.m) >= encodeCacheSize {
		c.m = make(map[encodeKey]*Encoded, encodeCacheSize) // start over: entries are only useful for a moment
	}
	c.m[k] = enc
	c.mu.Unlock()
	return enc, nil
}

// Sign is the Standard Webhooks signature header value: "v1,<base64 of
// HMAC-SHA256(id.timestamp.body)>" for each secret, space-separated, so that
// a receiver holding either secret of a rotation accepts the delivery.
func Sign(secrets []string, id string, t time.Time, body []byte) (string, error) {
	if len(secrets) == 0 {
		return "", errors.New("endpoint has no valid signing secret")
	}
	parts := make([]string, 0, len(secrets))
	for _, s := range secrets {
		key, err := subscription.SecretKey(s)
		if err != nil {
			return "", fmt.Errorf("signing secret: %w", err)
		}
		m := hmac.New(sha256.New, key)
		m.Write([]byte(id + "." + strconv.FormatInt(t.Unix(), 10) + "."))
		m.Write(body)
		parts = append(parts, "v1,"+base64.StdEncoding.EncodeToString(m.Sum(nil)))
	}
	return strings.Join(parts, " "), nil
}

// Deliver makes one attempt, logs it, updates the endpoint's health, and
// classifies a failure for the sink runtime.
func (s *Sender) Deliver(ctx context.Context, ep *subscription.Endpoint, e *event.Event, redrive, test bool, attempt uint64) Result {
	start := s.o.Now()
	res := s.post(ctx, ep, e, start)
	res.Latency = s.o.Now().Sub(start)
	rec := deliverylog.Record{
		Sink: SinkName, Receiver: ep.ID, EventID: e.ID(), Attempt: attempt, At: start.UTC(), Status: res.Status,
		LatencyMS: float64(res.Latency.Microseconds()) / 1000, Response: res.Response, Redrive: redrive, Test: test,
		Outcome: "delivered",
	}
	if res.Err != nil {
		rec.Outcome, rec.Error = "failed", redact.String(res.Err.Error())
		if c := sink.Classify(res.Err); c.Reason == sink.ReasonRateLimited {
			rec.Outcome = "rate_limited"
		}
	}
	if !test {
		if res.Status == http.StatusGone {
			rec.Outcome = "disabled"
			s.disable(ep.ID, "the endpoint answered 410 Gone")
		} else {
			s.track(ep.ID, res.Err == nil)
		}
	}
	if s.o.Log != nil && (!s.o.LogFailuresOnly || res.Err != nil || attempt > 1 || test || redrive) {
		rec.URL = redact.String(ep.URL)
		if err := s.o.Log.Add(rec); err != nil {
			s.o.Logger.Warn("delivery log", "err", err)
		}
	}
	return res
}

func (s *Sender) post(ctx context.Context, ep *subscription.Endpoint, e *event.Event, t time.Time) Result {
	if err := s.o.Guard.CheckURL(ep.URL); err != nil {
		return Result{Err: sink.Transient(sink.ReasonClientError, err)}
	}
	enc, err := s.enc.get(ctx, ep.ContentMode, e)
	if err != nil {
		return Result{Err: sink.Permanent(sink.ReasonInvalidEvent, err)}
	}
	req, err := Request(ctx, ep, e.ID(), enc, t, s.o.UserAgent)
	if err != nil {
		return Result{Err: sink.Permanent(sink.ReasonInvalidEvent, err)}
	}
	resp, err := s.o.Client.Do(req)
	if err != nil {
		if errors.Is(err, egress.ErrRefused) {
			return Result{Err: sink.Transient(sink.ReasonClientError, redact.Error(err))}
		}
		return Result{Err: sink.Classify(redact.Error(err))}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, s.o.MaxResponse))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20)) // let the connection be reused
	res := Result{Status: resp.StatusCode, Response: string(b)}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return res
	}
	failure := fmt.Errorf("%s answered %d", redact.String(ep.URL), resp.StatusCode)
	switch {
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable:
		if d, ok := RetryAfter(resp.Header.Get("Retry-After"), s.o.Now()); ok {
			res.Err = sink.RateLimited(d, failure)
			return res
		}
		res.Err = sink.Transient(sink.ReasonServerError, failure)
	case resp.StatusCode == http.StatusRequestTimeout:
		res.Err = sink.Transient(sink.ReasonTimeout, failure)
	case resp.StatusCode >= 500:
		res.Err = sink.Transient(sink.ReasonServerError, failure)
	default:
		// A receiver's 4xx is retried on the schedule too: it is often a
		// deployment of theirs, and dropping the event would lose it.
		res.Err = sink.Transient(sink.ReasonClientError, failure)
	}
	return res
}

// RetryAfter parses a Retry-After header: seconds or an HTTP date.
func RetryAfter(v string, now time.Time) (time.Duration, bool) {
	if v == "" {
		return 0, false
	}
	if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && n >= 0 {
		return max(time.Duration(n)*time.Second, time.Second), true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), time.Second), true
	}
	return 0, false
}

// track writes the endpoint's health on transitions only: the first failure
// after a success, and the first success after failures; and disables an
// endpoint failing for longer than DisableAfter.
func (s *Sender) track(id string, ok bool) {
	s.mu.Lock()
	wasFailing := s.failing[id]
	s.failing[id] = !ok
	s.mu.Unlock()
	now := s.o.Now().UTC()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if ok {
		if wasFailing {
			s.update(ctx, id, func(e *subscription.Endpoint) error { e.FailingSince = nil; return nil })
		}
		return
	}
	ep, known := s.endpoints.Endpoint(id)
	if !known {
		return
	}
	switch {
	case ep.FailingSince == nil && !wasFailing:
		s.update(ctx, id, func(e *subscription.Endpoint) error {
			if e.FailingSince == nil {
				e.FailingSince = &now
			}
			return nil
		})
	case ep.FailingSince != nil && s.o.DisableAfter > 0 && now.Sub(*ep.FailingSince) > s.o.DisableAfter:
		s.disable(id, fmt.Sprintf("failing since %s, longer than %s", ep.FailingSince.Format(time.RFC3339), s.o.DisableAfter))
	}
}

func (s *Sender) disable(id, reason string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	now := s.o.Now().UTC()
	changed := false
	s.update(ctx, id, func(e *subscription.Endpoint) error {
		changed = e.Status != subscription.StatusDisabled
		if changed {
			e.Status, e.DisabledReason, e.DisabledAt = subscription.StatusDisabled, reason, &now
		}
		return nil
	})
	if !changed {
		return
	}
	s.o.Logger.Error("webhook endpoint disabled", "endpoint", id, "reason", reason)
	if s.o.OnDisable != nil {
		s.o.OnDisable(id, reason)
	}
}

func (s *Sender) update(ctx context.Context, id string, change func(*subscription.Endpoint) error) {
	if _, err := s.health.Update(ctx, id, change); err != nil && !errors.Is(err, subscription.ErrNotFound) {
		s.o.Logger.Warn("endpoint health not saved", "endpoint", id, "err", err)
	}
}
