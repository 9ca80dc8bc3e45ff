package deliver

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/accountwatch/accountwatch/pkg/egress"
	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/event/eventtest"
	"github.com/accountwatch/accountwatch/pkg/sink"
	"github.com/accountwatch/accountwatch/pkg/telemetry"
	"github.com/accountwatch/accountwatch/services/webhook-dispatcher/internal/subscription"
)

type endpoints map[string]*subscription.Endpoint

func (e endpoints) Endpoint(id string) (*subscription.Endpoint, bool) { ep, ok := e[id]; return ep, ok }

type noHealth struct{}

func (noHealth) Update(context.Context, string, func(*subscription.Endpoint) error) (subscription.Endpoint, error) {
	return subscription.Endpoint{}, nil
}

// TestSignRotation: every secret of a rotation signs, and the independent
// Standard Webhooks library accepts the header with either one, decoded from
// the cache or not.
func TestSignRotation(t *testing.T) {
	a, b := subscription.NewSecret(), subscription.NewSecret()
	at := time.Now()
	body := []byte(`{"id":"e1"}`)
	var k keyCache
	secrets := []string{a, b}
	for range 2 { // the second round uses the cached keys
		sig, err := k.sign(2, func(i int) (string, bool) { return secrets[i], true }, "e1", at, body)
		if err != nil {
			t.Fatal(err)
		}
		if n := len(strings.Fields(sig)); n != 2 {
			t.Fatalf("signature %q has %d parts, want 2", sig, n)
		}
		h := http.Header{"Webhook-Id": {"e1"}, "Webhook-Timestamp": {strconv.FormatInt(at.Unix(), 10)}, "Webhook-Signature": {sig}}
		for _, s := range []string{a, b} {
			wh, _ := standardwebhooks.NewWebhook(s)
			if err := wh.Verify(body, h); err != nil {
				t.Errorf("secret %d…: %v", len(s), err)
			}
		}
	}
	// An expired secret signs no more: the header holds the other's only.
	only, err := k.sign(2, func(i int) (string, bool) { return secrets[i], i == 0 }, "e1", at, body)
	if want, _ := Sign([]string{a}, "e1", at, body); err != nil || only != want {
		t.Fatalf("with b expired: %q, %v; want %q", only, err, want)
	}
	// Appended after what dst holds (the request's timestamp), with
	// nothing in between.
	if got, err := k.appendSign([]byte("1765000000"), 2, func(i int) (string, bool) { return secrets[i], i == 0 }, "e1", at, body); err != nil || string(got) != "1765000000"+only {
		t.Fatalf("appended: %q, %v; want the timestamp then %q", got, err, only)
	}
	// Concurrent signers share a secret's idle HMACs (run with -race): each
	// gets the signature a fresh HMAC makes.
	want, _ := Sign([]string{a}, "e1", at, body)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for range 200 {
				if got, err := k.sign(1, func(int) (string, bool) { return a, true }, "e1", at, body); err != nil || got != want {
					t.Errorf("concurrent: %q, %v; want %q", got, err, want)
					return
				}
			}
		})
	}
	wg.Wait()
	if _, err := k.sign(2, func(i int) (string, bool) { return secrets[i], false }, "e1", at, body); err == nil {
		t.Error("signing with every secret expired succeeded")
	}
	if _, err := Sign(nil, "e1", at, body); err == nil {
		t.Error("signing without a secret succeeded")
	}
	if _, err := Sign([]string{"whsec_!!!"}, "e1", at, body); err == nil {
		t.Error("a secret that is not base64 signed")
	}
}

// TestDeliverHeadersAndRefusal: a delivery carries the signature headers and
// the endpoint's own, reads no body from a 204 and keeps a bounded one from a
// 200; a refused URL stays refused on every attempt (the parse is cached).
func TestDeliverHeadersAndRefusal(t *testing.T) {
	var got http.Header
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Clone()
		if r.URL.Query().Get("say") != "" {
			w.Write([]byte(strings.Repeat("x", 100)))
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	guard, err := egress.New([]string{"127.0.0.0/8"}, false)
	if err != nil {
		t.Fatal(err)
	}
	strict, _ := egress.New(nil, false)
	ep := &subscription.Endpoint{ID: "ep_1", URL: srv.URL + "/hook", Status: subscription.StatusActive,
		Headers: map[string]string{"x-tenant": "acme"}, Secrets: []subscription.Secret{{Value: subscription.NewSecret()}}}
	e := eventtest.Status(t, eventtest.Meta("d1", nil), "active", "credit_hold")

	s := New(endpoints{ep.ID: ep}, noHealth{}, Options{Transport: guard.Client(5*time.Second, 4).Transport, Guard: guard, MaxResponse: 10, UserAgent: "aw-test"})
	if res := s.Deliver(context.Background(), ep, e, false); res.Err != nil || res.Status != 204 || res.Response != "" {
		t.Fatalf("204: %+v", res)
	}
	if got.Get("Webhook-Id") != e.ID() || got.Get("X-Tenant") != "acme" || got.Get("User-Agent") != "aw-test" || !strings.HasPrefix(got.Get("Webhook-Signature"), "v1,") {
		t.Errorf("headers: %v", got)
	}
	say := *ep
	say.URL = srv.URL + "/hook?say=1"
	if res := s.Deliver(context.Background(), &say, e, false); res.Err != nil || res.Response != "xxxxxxxxxx" {
		t.Fatalf("bounded body: %+v", res)
	}

	r := New(endpoints{ep.ID: ep}, noHealth{}, Options{Transport: strict.Client(5*time.Second, 4).Transport, Guard: strict})
	for range 2 {
		res := r.Deliver(context.Background(), ep, e, false)
		if !errors.Is(res.Err, egress.ErrRefused) || sink.Classify(res.Err).Permanent {
			t.Fatalf("loopback without the allow-list: %+v", res)
		}
	}
}

// TestAttemptBounds: an endpoint that never answers costs one attempt
// Options.Timeout (the client has no timeout of its own), and a caller's
// earlier deadline wins; PerHost bounds the requests open to one host.
func TestAttemptBounds(t *testing.T) {
	release := make(chan struct{})
	var mu sync.Mutex
	open, most := 0, 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hang" {
			select {
			case <-release:
			case <-r.Context().Done():
			}
			return
		}
		mu.Lock()
		open++
		most = max(most, open)
		mu.Unlock()
		time.Sleep(5 * time.Millisecond)
		mu.Lock()
		open--
		mu.Unlock()
	}))
	defer srv.Close()
	defer close(release)
	guard, _ := egress.New([]string{"127.0.0.0/8"}, false)
	client := guard.Client(time.Hour, 8)
	ep := func(path string) *subscription.Endpoint {
		return &subscription.Endpoint{ID: "ep_" + path[1:], URL: srv.URL + path, Status: subscription.StatusActive, Secrets: []subscription.Secret{{Value: subscription.NewSecret()}}}
	}
	e := eventtest.Status(t, eventtest.Meta("b1", nil), "active", "credit_hold")
	s := New(endpoints{}, noHealth{}, Options{Transport: client.Transport, Timeout: 200 * time.Millisecond, Guard: guard, PerHost: 2})

	for _, c := range []struct {
		name string
		ctx  func() (context.Context, context.CancelFunc)
	}{
		{"own timeout", func() (context.Context, context.CancelFunc) { return context.WithCancel(context.Background()) }},
		{"caller's deadline", func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 50*time.Millisecond)
		}},
	} {
		ctx, cancel := c.ctx()
		res := s.Deliver(ctx, ep("/hang"), e, false)
		cancel()
		if res.Err == nil || sink.Classify(res.Err).Permanent {
			t.Errorf("%s: a hanging endpoint gave %+v, want a transient failure", c.name, res)
		}
	}

	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if res := s.Deliver(context.Background(), ep("/ok"), e, false); res.Err != nil {
				t.Error(res.Err)
			}
		}()
	}
	wg.Wait()
	if most > 2 {
		t.Errorf("%d requests open at once to one host, want at most PerHost=2", most)
	}
}

// TestLane: endpoints on one host share its lane, PerHost wide; another
// host is another lane; an unknown endpoint, a refused URL or no PerHost
// has none (the fan-out gives such an endpoint a lane of its own).
func TestLane(t *testing.T) {
	guard, _ := egress.New([]string{"127.0.0.0/8"}, false)
	eps := endpoints{}
	for id, u := range map[string]string{"ep_a": "http://127.0.0.1:8080/a", "ep_b": "http://127.0.0.1:8080/b?x=1",
		"ep_c": "http://127.0.0.2:8080/c", "ep_refused": "http://10.0.0.1/hook"} {
		eps[id] = &subscription.Endpoint{ID: id, URL: u, Status: subscription.StatusActive}
	}
	cases := []struct {
		name, id string
		perHost  int
		key      string
		width    int
	}{
		{"an endpoint", "ep_a", 8, "127.0.0.1:8080", 8},
		{"another on its host", "ep_b", 8, "127.0.0.1:8080", 8},
		{"another host", "ep_c", 8, "127.0.0.2:8080", 8},
		{"unknown", "ep_unknown", 8, "", 0},
		{"refused by the guard", "ep_refused", 8, "", 0},
		{"no PerHost", "ep_a", 0, "", 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := New(eps, noHealth{}, Options{Guard: guard, PerHost: c.perHost})
			if key, width := s.Lane(c.id); key != c.key || width != c.width {
				t.Errorf("Lane(%s) = %q, %d; want %q, %d", c.id, key, width, c.key, c.width)
			}
		})
	}
}

// TestSameLane: an endpoint's fast path moves lanes only when its URL names
// another host or port, not on a new path or query.
func TestSameLane(t *testing.T) {
	guard, _ := egress.New([]string{"127.0.0.0/8"}, false)
	s := New(endpoints{}, noHealth{}, Options{Guard: guard, PerHost: 8})
	cases := []struct {
		name, a, b string
		want       bool
	}{
		{"same URL", "http://127.0.0.1:8080/a", "http://127.0.0.1:8080/a", true},
		{"another path and query", "http://127.0.0.1:8080/a", "http://127.0.0.1:8080/b?x=1", true},
		{"another host", "http://127.0.0.1:8080/a", "http://127.0.0.2:8080/a", false},
		{"another port", "http://127.0.0.1:8080/a", "http://127.0.0.1:8443/a", false},
		{"unparsable", "http://127.0.0.1:8080/a", "http://[::1", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := s.SameLane(c.a, c.b); got != c.want {
				t.Errorf("SameLane(%q, %q) = %v, want %v", c.a, c.b, got, c.want)
			}
		})
	}
}

// TestRequestCarriesTheTrace: with tracing on, a delivery's request carries
// the W3C traceparent of its attempt's span, which continues the trace of
// the commit that published the event (its ce-traceparent, in binary mode).
func TestRequestCarriesTheTrace(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(telemetry.Use(tp))
	var got http.Header
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Clone()
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	guard, _ := egress.New([]string{"127.0.0.0/8"}, false)
	ep := &subscription.Endpoint{ID: "ep_1", URL: srv.URL, Status: subscription.StatusActive, ContentMode: subscription.ModeBinary, Secrets: []subscription.Secret{{Value: subscription.NewSecret()}}}
	e := eventtest.Status(t, eventtest.Meta("d1", nil), "active", "credit_hold")
	cctx, commit := telemetry.Start(context.Background(), "commit", trace.SpanKindProducer)
	telemetry.Inject(cctx, e)
	commit.End()

	s := New(endpoints{ep.ID: ep}, noHealth{}, Options{Transport: guard.Client(5*time.Second, 4).Transport, Guard: guard})
	ctx, end := telemetry.Attempt(context.Background(), SinkName, ep.ID, 1, []*event.Event{e})
	err := s.Send(ctx, &sink.Notification{Sink: SinkName, Receiver: ep.ID, Events: []*event.Event{e}, Attempt: 1})
	end(err)
	if err != nil {
		t.Fatal(err)
	}
	spans := exp.GetSpans()
	attempt := spans[len(spans)-1]
	want := "00-" + attempt.SpanContext.TraceID().String() + "-" + attempt.SpanContext.SpanID().String() + "-01"
	if got.Get("Traceparent") != want || attempt.SpanContext.TraceID() != commit.SpanContext().TraceID() {
		t.Errorf("traceparent %q, want the attempt's %q in the commit's trace", got.Get("Traceparent"), want)
	}
	if !strings.Contains(got.Get("Ce-Traceparent"), commit.SpanContext().SpanID().String()) {
		t.Errorf("ce-traceparent %q: the event's own trace context is not the commit's", got.Get("Ce-Traceparent"))
	}
}
