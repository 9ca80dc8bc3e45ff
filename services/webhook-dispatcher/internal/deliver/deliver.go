// Package deliver posts events to webhook endpoints: the CloudEvents HTTP
// binding (structured or binary), Standard Webhooks signatures, custom
// headers, bounded responses, what each attempt tells the delivery log (the
// sink runtime writes it), and the endpoint's health: 410 Gone disables it at
// once, failing longer than the configured period disables it too.
package deliver

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cloudevents/sdk-go/v2/binding"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"

	"github.com/accountwatch/accountwatch/pkg/deliverylog"
	"github.com/accountwatch/accountwatch/pkg/egress"
	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/redact"
	"github.com/accountwatch/accountwatch/pkg/sink"
	"github.com/accountwatch/accountwatch/pkg/telemetry"
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
	// Transport makes each attempt's one request (the egress guard's,
	// Guard.Client's): no redirect is followed, a 3xx is the answer, and no
	// cookie is kept, so an http.Client would only add its cost (a copy of
	// every request's headers, kept for redirects). Timeout bounds each
	// attempt, through its context.
	Transport http.RoundTripper
	Timeout   time.Duration
	Guard     *egress.Guard
	// Log records test deliveries (Test); the sink runtime records the others.
	Log *deliverylog.Log
	// MaxResponse bounds how much of a response body is read.
	MaxResponse int64
	// DisableAfter disables an endpoint that has failed for this long without a success.
	DisableAfter time.Duration
	UserAgent    string
	// PerHost is how many requests run at once to one host (0: no bound),
	// the Client's connection limit: requests past it wait here, in order,
	// rather than inside the transport, whose queue costs more per request.
	PerHost int
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

	mu       sync.Mutex
	failing  map[string]bool // endpoints known to be failing (saves a write per failure)
	enc      encodeCache
	keys     keyCache
	targets  sync.Map // endpoint URL → target
	hosts    sync.Map // host → chan struct{} of PerHost slots
	ntargets atomic.Int64
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
	if o.Timeout <= 0 {
		o.Timeout = 15 * time.Second
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
	n.Receipt.Destination = ep.URL
	if ep.Status != subscription.StatusActive {
		return sink.Transient(sink.ReasonOther, fmt.Errorf("endpoint %s is %s", ep.ID, ep.Status))
	}
	var errs []error
	for _, e := range n.Events {
		res := s.Deliver(ctx, ep, e, false)
		n.Receipt.Status, n.Receipt.Response = res.Status, res.Response
		if res.Status == http.StatusGone {
			n.Receipt.Outcome = deliverylog.Disabled
		}
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
	// getBody is a request's GetBody (the body again, for a retry on a
	// fresh connection), made once per encoding rather than per delivery.
	getBody func() (io.ReadCloser, error)
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
	out.getBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(out.Body)), nil }
	return out, nil
}

// request builds the signed HTTP request of an encoded event for ep (at u)
// at t. Headers are set under their canonical keys directly: Header.Set would
// canonicalise each on every delivery.
func (s *Sender) request(ctx context.Context, ep *subscription.Endpoint, u *url.URL, id string, enc *Encoded, t time.Time) (*http.Request, error) {
	body := enc.Body
	h := make(http.Header, len(enc.Header)+len(ep.Headers)+4)
	for k, v := range enc.Header {
		h[k] = v
	}
	for k, v := range ep.Headers {
		h.Set(k, v)
	}
	// The timestamp and the signature in one string (one allocation), cut in two.
	var buf [160]byte
	ts := strconv.AppendInt(buf[:0], t.Unix(), 10)
	both, err := s.keys.appendSign(ts, len(ep.Secrets), func(i int) (string, bool) { return ep.Secrets[i].Value, ep.Secrets[i].ValidAt(t) }, id, t, body)
	if err != nil {
		return nil, err
	}
	pair := string(both)
	v := []string{id, pair[:len(ts)], pair[len(ts):], s.o.UserAgent} // one allocation for the four
	h["Webhook-Id"], h["Webhook-Timestamp"], h["Webhook-Signature"], h["User-Agent"] = v[0:1:1], v[1:2:2], v[2:3:3], v[3:4:4]
	telemetry.InjectHTTP(ctx, h) // the attempt's span, while tracing is on (W3C traceparent)
	// Built as the transport reads it, not by NewRequest (which parses a
	// URL that u already is). u is the parsed target shared by every
	// delivery to the URL: nothing on the way writes to it. The body stays
	// a NopCloser of a bytes.Reader, which the transport knows is in
	// memory: it then writes the headers and the body in one write.
	r := http.Request{
		Method: http.MethodPost, URL: u, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Header: h,
		Body: io.NopCloser(bytes.NewReader(body)), ContentLength: int64(len(body)),
		GetBody: enc.getBody,
	}
	return r.WithContext(ctx), nil
}

// Sign is the Standard Webhooks signature header value: "v1,<base64 of
// HMAC-SHA256(id.timestamp.body)>" for each secret, space-separated, so that
// a receiver holding either secret of a rotation accepts the delivery.
func Sign(secrets []string, id string, t time.Time, body []byte) (string, error) {
	var k keyCache
	return k.sign(len(secrets), func(i int) (string, bool) { return secrets[i], true }, id, t, body)
}

// keyCache keeps, per secret, its HMACs ready keyed: a secret is decoded
// and keyed once, not on every delivery. Rotated-out secrets stay until the
// cache is full, when it starts over.
type keyCache struct {
	m sync.Map // secret → *keyed
	n atomic.Int64
}

// keyed is one secret's key and its idle HMACs. Not a sync.Pool: the
// collector empties every pool, and with ten thousand endpoints each
// collection would have every endpoint's next delivery key a new HMAC and
// allocate its pool's per-CPU slots again.
type keyed struct {
	key  []byte
	mu   sync.Mutex
	idle []hash.Hash
}

// maxIdle bounds a secret's idle HMACs (deliveries to one endpoint at once).
const maxIdle = 8

func (k *keyed) get() hash.Hash {
	k.mu.Lock()
	defer k.mu.Unlock()
	if n := len(k.idle); n > 0 {
		m := k.idle[n-1]
		k.idle = k.idle[:n-1]
		return m
	}
	return hmac.New(sha256.New, k.key)
}

func (k *keyed) put(m hash.Hash) {
	k.mu.Lock()
	if len(k.idle) < maxIdle {
		k.idle = append(k.idle, m)
	}
	k.mu.Unlock()
}

// maxKeys bounds keyCache (two secrets per endpoint during rotations).
const maxKeys = 100_000

func (c *keyCache) mac(secret string) (*keyed, error) {
	if k, ok := c.m.Load(secret); ok {
		return k.(*keyed), nil
	}
	key, err := subscription.SecretKey(secret)
	if err != nil {
		return nil, fmt.Errorf("signing secret: %w", err)
	}
	k := &keyed{key: key}
	if c.n.Add(1) > maxKeys {
		c.m.Clear()
		c.n.Store(1)
	}
	c.m.Store(secret, k)
	return k, nil
}

// sign is appendSign's value on its own.
func (c *keyCache) sign(n int, secret func(i int) (string, bool), id string, t time.Time, body []byte) (string, error) {
	b, err := c.appendSign(nil, n, secret, id, t, body)
	return string(b), err
}

// appendSign appends to dst Sign's value for the n secrets secret hands
// out, those it says are valid: an endpoint's are read in place, without a
// slice of them per delivery.
func (c *keyCache) appendSign(dst []byte, n int, secret func(i int) (string, bool), id string, t time.Time, body []byte) ([]byte, error) {
	var prefix [96]byte
	p := strconv.AppendInt(append(append(prefix[:0], id...), '.'), t.Unix(), 10)
	p = append(p, '.')
	out, from := dst, len(dst)
	for i := range n {
		s, ok := secret(i)
		if !ok {
			continue
		}
		k, err := c.mac(s)
		if err != nil {
			return nil, err
		}
		m := k.get()
		m.Reset()
		m.Write(p)
		m.Write(body)
		if len(out) > from {
			out = append(out, ' ')
		}
		var sum [sha256.Size]byte
		out = base64.StdEncoding.AppendEncode(append(out, "v1,"...), m.Sum(sum[:0]))
		k.put(m)
	}
	if len(out) == from {
		return nil, errors.New("endpoint has no valid signing secret")
	}
	return out, nil
}

// acquire takes one of host's request slots, which the caller gives back
// by receiving from the channel returned (nil without PerHost).
func (s *Sender) acquire(ctx context.Context, host string) (chan struct{}, error) {
	if s.o.PerHost <= 0 {
		return nil, nil
	}
	c, ok := s.hosts.Load(host)
	if !ok {
		c, _ = s.hosts.LoadOrStore(host, make(chan struct{}, s.o.PerHost))
	}
	slots := c.(chan struct{})
	select {
	case slots <- struct{}{}:
		return slots, nil
	default: // every slot taken: wait, as long as the attempt may
	}
	select {
	case slots <- struct{}{}:
		return slots, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting for a connection to %s: %w", host, ctx.Err())
	}
}

// Lane is the endpoint's host and the requests that may run to it at once
// (sink.Lanes): the fan-out runs that many deliverers per host, its
// endpoints taking turns, rather than one per endpoint all waiting for a
// slot. None without PerHost, or for a URL the guard refuses (each such
// endpoint is a lane of its own, and fails on its own).
func (s *Sender) Lane(id string) (string, int) {
	ep, ok := s.endpoints.Endpoint(id)
	if !ok {
		return "", 0
	}
	if key := s.laneKey(ep.URL); key != "" {
		return key, s.o.PerHost
	}
	return "", 0
}

// SameLane reports whether endpoint URLs a and b are in one lane: an
// endpoint whose URL changes from one to the other keeps its fast path.
func (s *Sender) SameLane(a, b string) bool { return s.laneKey(a) == s.laneKey(b) }

// laneKey is the lane of an endpoint URL: its host, "" for none.
func (s *Sender) laneKey(raw string) string {
	if s.o.PerHost <= 0 {
		return ""
	}
	u, err := s.target(raw)
	if err != nil {
		return ""
	}
	return u.Host
}

// target is an endpoint URL checked against the egress guard and parsed.
type target struct {
	u   *url.URL
	err error
}

// maxTargets bounds the parsed-URL cache (one entry per endpoint URL seen).
const maxTargets = 100_000

// target checks and parses an endpoint's URL once: a URL cannot become
// allowed or refused later, the guard's rules are fixed at start.
func (s *Sender) target(raw string) (*url.URL, error) {
	if t, ok := s.targets.Load(raw); ok {
		return t.(target).u, t.(target).err
	}
	u, err := s.o.Guard.ParseURL(raw)
	if s.ntargets.Add(1) > maxTargets {
		s.targets.Clear()
		s.ntargets.Store(1)
	}
	s.targets.Store(raw, target{u, err})
	return u, err
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

// Deliver makes one attempt, updates the endpoint's health (not for a test)
// and classifies a failure for the sink runtime.
func (s *Sender) Deliver(ctx context.Context, ep *subscription.Endpoint, e *event.Event, test bool) Result {
	start := s.o.Now()
	res := s.post(ctx, ep, e, start)
	res.Latency = s.o.Now().Sub(start)
	if !test {
		if res.Status == http.StatusGone {
			s.disable(ep.ID, "the endpoint answered 410 Gone")
		} else {
			s.track(ep.ID, res.Err == nil)
		}
	}
	return res
}

// Test delivers e to ep at once, outside the runtime (the API's test
// event), and records the attempt in the delivery log.
func (s *Sender) Test(ctx context.Context, ep *subscription.Endpoint, e *event.Event) Result {
	start := s.o.Now()
	res := s.Deliver(ctx, ep, e, true)
	if s.o.Log == nil {
		return res
	}
	rec := deliverylog.Record{
		Sink: SinkName, Receiver: ep.ID, EventID: e.ID(), Attempt: 1, At: start.UTC(), Outcome: deliverylog.Delivered,
		Destination: redact.String(ep.URL), Status: res.Status, LatencyMS: float64(res.Latency.Microseconds()) / 1000, Response: res.Response, Test: true,
	}
	if res.Err != nil {
		rec.Outcome, rec.Error = deliverylog.Failed, redact.String(res.Err.Error())
	}
	if err := s.o.Log.Add(rec); err != nil {
		s.o.Logger.Warn("delivery log", "err", err)
	}
	return res
}

func (s *Sender) post(ctx context.Context, ep *subscription.Endpoint, e *event.Event, t time.Time) Result {
	// One deadline per attempt: the caller's when it is no later (the sink
	// runtime's, which the app sets to the same timeout), else our own.
	if dl, ok := ctx.Deadline(); !ok || dl.Sub(t) > s.o.Timeout {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.o.Timeout)
		defer cancel()
	}
	u, err := s.target(ep.URL)
	if err != nil {
		return Result{Err: sink.Transient(sink.ReasonClientError, err)}
	}
	enc, err := s.enc.get(ctx, ep.ContentMode, e)
	if err != nil {
		return Result{Err: sink.Permanent(sink.ReasonInvalidEvent, err)}
	}
	req, err := s.request(ctx, ep, u, e.ID(), enc, t)
	if err != nil {
		return Result{Err: sink.Permanent(sink.ReasonInvalidEvent, err)}
	}
	slots, err := s.acquire(ctx, u.Host)
	if err != nil {
		return Result{Err: sink.Transient(sink.ReasonTimeout, err)}
	}
	if slots != nil {
		defer func() { <-slots }()
	}
	resp, err := s.o.Transport.RoundTrip(req)
	if err != nil {
		if errors.Is(err, egress.ErrRefused) {
			return Result{Err: sink.Transient(sink.ReasonClientError, redact.Error(err))}
		}
		return Result{Err: sink.Classify(redact.Error(err))}
	}
	defer resp.Body.Close()
	res := Result{Status: resp.StatusCode}
	if resp.ContentLength != 0 { // a 204, or an empty 200, has nothing to read
		b, _ := io.ReadAll(io.LimitReader(resp.Body, s.o.MaxResponse))
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20)) // let the connection be reused
		res.Response = string(b)
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return res
	}
	// A subscriber's 4xx is retried on the schedule too: it is often a
	// deployment of theirs, and dropping the event would lose it.
	res.Err = sink.HTTPStatus(resp.StatusCode, resp.Header, s.o.Now(), fmt.Errorf("%s answered %d", redact.String(ep.URL), resp.StatusCode), sink.HTTPOptions{RetryClientErrors: true})
	return res
}

// track writes the endpoint's health on transitions only: the first failure
// after a success, and the first success after failures; and disables an
// endpoint failing for longer than DisableAfter.
func (s *Sender) track(id string, ok bool) {
	// The map holds the failing endpoints only, and is written on a
	// transition only: a healthy delivery reads it and moves on.
	s.mu.Lock()
	wasFailing := s.failing[id]
	switch {
	case ok && wasFailing:
		delete(s.failing, id)
	case !ok && !wasFailing:
		s.failing[id] = true
	}
	s.mu.Unlock()
	if ok {
		if wasFailing {
			s.update(id, func(e *subscription.Endpoint) error { e.FailingSince = nil; return nil })
		}
		return
	}
	now := s.o.Now().UTC()
	ep, known := s.endpoints.Endpoint(id)
	if !known {
		return
	}
	switch {
	case ep.FailingSince == nil && !wasFailing:
		s.update(id, func(e *subscription.Endpoint) error {
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
	now := s.o.Now().UTC()
	changed := false
	s.update(id, func(e *subscription.Endpoint) error {
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

func (s *Sender) update(id string, change func(*subscription.Endpoint) error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := s.health.Update(ctx, id, change); err != nil && !errors.Is(err, subscription.ErrNotFound) {
		s.o.Logger.Warn("endpoint health not saved", "endpoint", id, "err", err)
	}
}

// The fan-out asks a Sender which host an endpoint's deliveries share.
var _ sink.Lanes = (*Sender)(nil)
