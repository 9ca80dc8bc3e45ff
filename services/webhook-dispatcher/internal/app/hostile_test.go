package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/accountwatch/accountwatch/pkg/deliverylog"
	"github.com/accountwatch/accountwatch/pkg/egress/egresstest"
	"github.com/accountwatch/accountwatch/pkg/eventbus"
	"github.com/accountwatch/accountwatch/pkg/eventbus/bustest"
	"github.com/accountwatch/accountwatch/pkg/listen/listentest"
	"github.com/accountwatch/accountwatch/pkg/sink"
	"github.com/accountwatch/accountwatch/services/webhook-dispatcher/internal/app"
	"github.com/accountwatch/accountwatch/services/webhook-dispatcher/internal/subscription"
)

// raw sends body as it is.
func (st *stack) raw(t *testing.T, method, path, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, st.api+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestLoopbackCanary: with no allow-list, no spelling of a loopback address
// reaches the canary listening there: not at creation (with or without the
// handshake), not through a changed URL, not from an endpoint stored before
// this guard (a test send and a delivery of an event), and the API answers
// a 400 naming the url.
func TestLoopbackCanary(t *testing.T) {
	st := start(t, func(s *app.Settings) { s.AllowCIDRs = "" })
	c := egresstest.NewCanary(t)
	r := newReceiver(t, nil)
	// An endpoint of a public-looking name, to PATCH the spellings onto.
	code, out := st.call(t, "POST", "/v1/endpoints", map[string]any{"url": "https://hooks.example.com/x", "skip_handshake": true})
	if code != 201 {
		t.Fatalf("create: %d %v", code, out)
	}
	id := out["id"].(string)
	for _, u := range c.URLs() {
		for _, skip := range []bool{false, true} {
			code, out := st.call(t, "POST", "/v1/endpoints", map[string]any{"url": u, "skip_handshake": skip})
			if code != 400 || !strings.HasPrefix(fmt.Sprint(out["error"]), "url: destination refused") {
				t.Errorf("create %s (skip_handshake %v): %d %v", u, skip, code, out)
			}
		}
		if code, out := st.call(t, "PATCH", "/v1/endpoints/"+id, map[string]any{"url": u}); code != 400 {
			t.Errorf("patch to %s: %d %v", u, code, out)
		}
	}
	// Stored by an earlier version, or written into the bucket by hand.
	now := time.Now().UTC()
	legacy := subscription.Endpoint{ID: "ep_00000000000000aa", URL: "http://127.0.0.1:" + c.Port + "/", ContentMode: subscription.ModeStructured,
		Status: subscription.StatusActive, Secrets: []subscription.Secret{{Value: subscription.NewSecret(), CreatedAt: now}}, CreatedAt: now, UpdatedAt: now}
	b, _ := json.Marshal(legacy)
	kv, _ := st.bus.JS.KeyValue(context.Background(), eventbus.BucketSubscriptions)
	if _, err := kv.Put(context.Background(), legacy.ID, b); err != nil {
		t.Fatal(err)
	}
	st.waitActive(t, legacy.ID)
	code, res := st.call(t, "POST", "/v1/endpoints/"+legacy.ID+"/test", nil)
	if code != 200 || res["delivered"] != false || !strings.Contains(fmt.Sprint(res["error"]), "Loopback") {
		t.Errorf("test send to a stored loopback URL: %d %v", code, res)
	}
	bustest.Publish(t, st.bus, statuses(t, "canary", 1)...)
	bustest.Eventually(t, "a refused attempt logged", func() bool {
		_, out := st.call(t, "GET", "/v1/endpoints/"+legacy.ID+"/attempts", nil)
		a, _ := out["attempts"].([]any)
		return len(a) >= 2 && strings.Contains(fmt.Sprint(a), "Loopback")
	})
	if n := c.Connections(); n != 0 {
		t.Fatalf("the loopback canary received %d connections", n)
	}
	if len(r.deliveries()) != 0 {
		t.Error("a request reached a loopback receiver")
	}
}

// TestInputValidation: every field bounded, every error a 4xx naming it.
func TestInputValidation(t *testing.T) {
	st := start(t)
	r := newReceiver(t, nil)
	ok := r.srv.URL + "/"
	cases := []struct {
		name, body string
		code       int
		want       string
	}{
		{"raw space in the URL", `{"url":"` + ok + `a b"}`, 400, "url: destination refused: a space"},
		{"long URL", `{"url":"` + ok + strings.Repeat("a", 3000) + `"}`, 400, "url: longer than 2048"},
		{"huge body", `{"url":"` + ok + `","description":"` + strings.Repeat("a", 900<<10) + `"}`, 413, "body: larger than"},
		{"long description", `{"url":"` + ok + `","description":"` + strings.Repeat("a", 2000) + `"}`, 400, "description: longer than 1024"},
		{"escape in description", `{"url":"` + ok + `","description":"a\u001b[2Jb"}`, 400, "description: holds a control character"},
		{"trailing value", `{"url":"` + ok + `"} {"url":"` + ok + `"}`, 400, "more than one JSON value"},
		{"trailing garbage", `{"url":"` + ok + `"}x`, 400, "more than one JSON value"},
		{"empty body", ``, 400, "body: empty"},
		{"not an object", `[1]`, 400, "body:"},
		{"header name with a space", `{"url":"` + ok + `","headers":{"X Bad":"v"}}`, 400, "is not a header name"},
		{"header name with a colon", `{"url":"` + ok + `","headers":{"X-A:":"v"}}`, 400, "is not a header name"},
		{"header value NUL", `{"url":"` + ok + `","headers":{"X-A":"a\u0000b"}}`, 400, "headers[X-A]: not a header value"},
		{"header value CRLF", `{"url":"` + ok + `","headers":{"X-A":"a\r\nSet-Cookie: x"}}`, 400, "headers[X-A]: not a header value"},
		{"header value leading space", `{"url":"` + ok + `","headers":{"X-A":" a"}}`, 400, "headers[X-A]: not a header value"},
		{"header twice", `{"url":"` + ok + `","headers":{"X-A":"1","x-a":"2"}}`, 400, "name the same header"},
		{"hop-by-hop header", `{"url":"` + ok + `","headers":{"TE":"trailers"}}`, 400, "set by the dispatcher"},
		{"long header value", `{"url":"` + ok + `","headers":{"X-A":"` + strings.Repeat("a", 5000) + `"}}`, 400, "headers[X-A]: longer than 4096"},
		{"type twice", `{"url":"` + ok + `","types":["account.status.changed","com.accountwatch.account.status.changed"]}`, 400, "listed twice"},
		{"tiny rate limit", `{"url":"` + ok + `","rate_limit":1e-300}`, 400, "rate_limit: 1e-300"},
		{"fractional rate limit", `{"url":"` + ok + `","rate_limit":0.5}`, 400, "rate_limit"},
		{"negative rate limit", `{"url":"` + ok + `","rate_limit":-1}`, 400, "rate_limit"},
		{"huge rate limit", `{"url":"` + ok + `","rate_limit":1e9}`, 400, "rate_limit"},
		{"rate limit overflow", `{"url":"` + ok + `","rate_limit":1e400}`, 400, "rate_limit"},
		{"rate limit as a string", `{"url":"` + ok + `","rate_limit":"1"}`, 400, "rate_limit"},
		{"long filter value", `{"url":"` + ok + `","filters":[{"exact":{"subject":"` + strings.Repeat("a", 300) + `"}}]}`, 400, "filters[0].exact.subject: longer than 256"},
		{"deep filter", `{"url":"` + ok + `","filters":[` + strings.Repeat(`{"not":`, 100) + `{"exact":{"a":"b"}}` + strings.Repeat(`}`, 100) + `]}`, 400, "filters[0]: 101 expressions"},
	}
	for _, c := range cases {
		code, body := st.raw(t, "POST", "/v1/endpoints", c.body)
		if code != c.code || !strings.Contains(body, c.want) {
			t.Errorf("%s: %d %.200s, want %d %q", c.name, code, body, c.code, c.want)
		}
	}
	id, _ := st.endpoint(t, map[string]any{"url": ok, "rate_limit": 1, "headers": map[string]string{"Authorization": "Bearer t", "X-Tab": "a\tb"}})
	queries := []struct {
		method, path string
		code         int
		want         string
	}{
		{"GET", "/v1/endpoints/" + id + "/attempts?limit=100000", 400, "limit"},
		{"GET", "/v1/endpoints/" + id + "/attempts?limit=-1", 400, "limit"},
		{"GET", "/v1/endpoints/" + id + "/attempts?since=yesterday", 400, "since"},
		{"POST", "/v1/endpoints/" + id + "/redrive?dry_run=yes", 400, "dry_run"},
		{"POST", "/v1/endpoints/ep_ffffffffffffffff/redrive", 404, "endpoint not found"},
		{"POST", "/v1/endpoints/" + id + "/rotate-secret", 200, "secret"},
	}
	for _, q := range queries {
		code, body := st.raw(t, q.method, q.path, "")
		if code != q.code || !strings.Contains(body, q.want) {
			t.Errorf("%s %s: %d %.200s, want %d %q", q.method, q.path, code, body, q.code, q.want)
		}
	}
	if code, body := st.raw(t, "POST", "/v1/endpoints/"+id+"/rotate-secret", `{"grace":"1h"}{}`); code != 400 {
		t.Errorf("rotate with two values: %d %s", code, body)
	}
}

// TestSlowRateLimitDelete: deleting an endpoint whose rate limit holds
// deliveries back answers, and its consumers go with it: one created at the
// slowest limit the API takes, and one stored before the API bounded it
// (rate_limit 1e-300, which used to hold a delete for good).
func TestSlowRateLimitDelete(t *testing.T) {
	st := start(t)
	r := newReceiver(t, nil)
	id, _ := st.endpoint(t, map[string]any{"url": r.srv.URL, "rate_limit": subscription.MinRateLimit})
	now := time.Now().UTC()
	legacy := subscription.Endpoint{ID: "ep_00000000000000bb", URL: r.srv.URL + "/legacy", ContentMode: subscription.ModeStructured, RateLimit: 1e-300,
		Status: subscription.StatusActive, Secrets: []subscription.Secret{{Value: subscription.NewSecret(), CreatedAt: now}}, CreatedAt: now, UpdatedAt: now}
	b, _ := json.Marshal(legacy)
	kv, _ := st.bus.JS.KeyValue(context.Background(), eventbus.BucketSubscriptions)
	if _, err := kv.Put(context.Background(), legacy.ID, b); err != nil {
		t.Fatal(err)
	}
	for _, ep := range []string{id, legacy.ID} {
		st.waitActive(t, ep)
	}
	bustest.Publish(t, st.bus, statuses(t, "slow", 30)...)
	// Each endpoint's burst of one goes at once; the rest wait their turn.
	bustest.Eventually(t, "the first deliveries", func() bool { return len(r.deliveries()) >= 2 })
	for _, ep := range []string{id, legacy.ID} {
		if code, _ := st.call(t, "DELETE", "/v1/endpoints/"+ep, nil); code != 204 {
			t.Fatalf("delete %s: %d", ep, code)
		}
		name := sink.ConsumerName("webhook", ep)
		for stream, c := range map[string]string{eventbus.StreamEvents: name, eventbus.StreamRedrive: name + "_redrive"} {
			if _, err := st.bus.JS.Consumer(context.Background(), stream, c); !errors.Is(err, jetstream.ErrConsumerNotFound) {
				t.Errorf("consumer %s on %s after the delete: %v", c, stream, err)
			}
		}
	}
	if strings.Contains(st.logs.String(), "its consumers were not") {
		t.Error("the consumers were not deleted")
	}
}

// TestTLSListener: with a certificate and key the API speaks only TLS.
func TestTLSListener(t *testing.T) {
	cert, key, client := listentest.Cert(t, t.TempDir(), "webhook-api")
	bus := bustest.Start(t, bustest.Config(t, "127.0.0.1:0"))
	s := settings(bus)
	bustest.Provision(t, bus, deliverylog.StreamConfig(bus.Cfg, s.LogRetention))
	s.APICert, s.APIKey = cert, key
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan app.Dispatcher, 1)
	done := make(chan error, 1)
	go func() {
		done <- app.Run(ctx, s, slog.New(slog.DiscardHandler), func(d app.Dispatcher) { started <- d })
	}()
	var d app.Dispatcher
	select {
	case d = <-started:
	case err := <-done:
		t.Fatal(err)
	}
	defer func() { cancel(); <-done }()
	if !strings.HasPrefix(d.APIURL, "https://") {
		t.Fatalf("API at %s", d.APIURL)
	}
	req, _ := http.NewRequest("GET", d.APIURL+"/v1/endpoints", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("over TLS: %v %v", err, resp)
	}
	resp.Body.Close()
	if resp, err := http.Get("http://" + d.APIAddr + "/v1/endpoints"); err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == 200 || bytes.Contains(b, []byte("endpoints")) {
			t.Errorf("plain HTTP answered: %d %s", resp.StatusCode, b)
		}
	}
	bad := settings(bus)
	bad.APICert = cert
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "AW_WEBHOOK_API_TLS_KEY") {
		t.Errorf("a certificate without its key: %v", err)
	}
}
