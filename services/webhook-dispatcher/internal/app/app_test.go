package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/accountwatch/accountwatch/pkg/deliverylog"
	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/event/eventtest"
	"github.com/accountwatch/accountwatch/pkg/eventbus"
	"github.com/accountwatch/accountwatch/pkg/eventbus/bustest"
	"github.com/accountwatch/accountwatch/pkg/ops"
	"github.com/accountwatch/accountwatch/pkg/ops/opstest"
	"github.com/accountwatch/accountwatch/pkg/sink"
	"github.com/accountwatch/accountwatch/services/webhook-dispatcher/internal/app"
)

const token = "test-admin-token-0123456789"

// receiver is a subscriber's HTTP endpoint.
type receiver struct {
	srv    *httptest.Server
	mu     sync.Mutex
	got    []delivery
	n      int
	answer func(n int) (int, http.Header)
	// origin is what the handshake allows ("" answers no header).
	origin string
}

type delivery struct {
	at     time.Time
	header http.Header
	body   []byte
	status int
}

func newReceiver(t *testing.T, answer func(n int) (int, http.Header)) *receiver {
	r := &receiver{answer: answer, origin: "*"}
	r.srv = httptest.NewServer(r)
	t.Cleanup(r.srv.Close)
	return r
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodOptions {
		if rc.origin != "" {
			w.Header().Set("WebHook-Allowed-Origin", rc.origin)
		}
		w.WriteHeader(200)
		return
	}
	b, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	rc.n++
	status, hdr := 200, http.Header(nil)
	if rc.answer != nil {
		status, hdr = rc.answer(rc.n)
	}
	rc.got = append(rc.got, delivery{at: time.Now(), header: r.Header.Clone(), body: b, status: status})
	rc.mu.Unlock()
	for k, v := range hdr {
		w.Header()[k] = v
	}
	w.WriteHeader(status)
	io.WriteString(w, `{"received":true}`)
}

func (rc *receiver) deliveries() []delivery {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]delivery(nil), rc.got...)
}

// ok counts the successful deliveries per webhook-id.
func (rc *receiver) ok() map[string]int {
	out := map[string]int{}
	for _, d := range rc.deliveries() {
		if d.status < 300 {
			out[d.header.Get("webhook-id")]++
		}
	}
	return out
}

type stack struct {
	bus  *eventbus.Bus
	api  string
	logs *opstest.Buffer
}

func settings(bus *eventbus.Bus) app.Settings {
	var s app.Settings
	s.Config = bus.Cfg
	s.URL, s.NKeySeedFile = bus.ClientURL(), bus.SeedFile(eventbus.RoleWebhook)
	s.Settings = sink.DefaultSettings()
	s.AckWait = 5 * time.Second
	s.AdminToken = token
	s.APIListen, s.OpsListen = "127.0.0.1:0", "127.0.0.1:0"
	s.Schedule = "100ms,200ms,400ms,800ms"
	s.Origin = "accountwatch-test"
	s.AllowCIDRs = "127.0.0.0/8"
	s.Timeout, s.MaxResponse, s.ConnsPerHost = 5*time.Second, 1024, 64
	s.DisableAfter, s.SecretGrace, s.LogRetention = 24*time.Hour, time.Hour, time.Hour
	s.DeliveryLog = "all"
	s.LogLevel = "debug"
	return s
}

func start(t *testing.T, mod ...func(*app.Settings)) *stack {
	t.Helper()
	st := &stack{bus: bustest.Start(t, bustest.Config(t, "127.0.0.1:0")), logs: &opstest.Buffer{}}
	s := settings(st.bus)
	for _, m := range mod {
		m(&s)
	}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	st.run(t, s)
	return st
}

func (st *stack) run(t *testing.T, s app.Settings) {
	bustest.Provision(t, st.bus, deliverylog.StreamConfig(st.bus.Cfg, s.LogRetention))
	log, _ := ops.NewLogger(st.logs, s.LogLevel, "webhook-dispatcher")
	ctx, cancel := context.WithCancel(context.Background())
	addr := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx, s, log, func(d app.Dispatcher) { addr <- d.APIAddr }) }()
	select {
	case a := <-addr:
		st.api = "http://" + a
	case err := <-done:
		t.Fatalf("dispatcher: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("dispatcher: %v", err)
		}
		if strings.Contains(st.logs.String(), "whsec_") || strings.Contains(st.logs.String(), token) {
			t.Error("a secret appears in the logs")
		}
	})
}

func (st *stack) call(t *testing.T, method, path string, body any) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, st.api+path, rd)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]any{}
	json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// endpoint creates an endpoint and returns its id and secret.
func (st *stack) endpoint(t *testing.T, body map[string]any) (string, string) {
	t.Helper()
	code, out := st.call(t, "POST", "/v1/endpoints", body)
	if code != 201 {
		t.Fatalf("create endpoint: %d %v", code, out)
	}
	return out["id"].(string), out["secret"].(string)
}

func statuses(t *testing.T, prefix string, n int) []*event.Event {
	out := make([]*event.Event, n)
	for i := range out {
		out[i] = eventtest.Status(t, eventtest.Meta(fmt.Sprintf("%s%d", prefix, i), nil), "active", "credit_hold")
	}
	return out
}

// waitActive waits until a fresh endpoint is registered (the dispatcher
// logged it delivering: its receiver is in), so that events published next
// reach it: a new endpoint receives the events taken after its creation. Its
// retry queue has no consumer until something waits there.
func (st *stack) waitActive(t *testing.T, id string) {
	bustest.Eventually(t, "endpoint registered", func() bool {
		for _, line := range strings.Split(st.logs.String(), "\n") {
			if strings.Contains(line, `"msg":"endpoint delivering"`) && strings.Contains(line, `"endpoint":"`+id+`"`) {
				return true
			}
		}
		return false
	})
}

func TestSignedDeliveriesVerifyIndependently(t *testing.T) {
	st := start(t)
	structured := newReceiver(t, nil)
	binary := newReceiver(t, nil)
	sid, ssecret := st.endpoint(t, map[string]any{"url": structured.srv.URL + "/hooks", "headers": map[string]string{"X-Tenant": "acme"}})
	bid, bsecret := st.endpoint(t, map[string]any{"url": binary.srv.URL, "content_mode": "binary", "types": []string{"account.status.changed"}})
	st.waitActive(t, sid)
	st.waitActive(t, bid)
	evs := statuses(t, "sig", 3)
	debt := eventtest.Debt(t, eventtest.Meta("sig-debt", nil), "0", "10", "500", "")
	bustest.Publish(t, st.bus, append(evs, debt)...)
	bustest.Eventually(t, "deliveries", func() bool { return len(structured.ok()) == 4 && len(binary.ok()) == 3 })

	for _, c := range []struct {
		r      *receiver
		secret string
	}{{structured, ssecret}, {binary, bsecret}} {
		wh, err := standardwebhooks.NewWebhook(c.secret)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range c.r.deliveries() {
			if err := wh.Verify(d.body, d.header); err != nil {
				t.Errorf("the Standard Webhooks library rejects a delivery: %v", err)
			}
		}
	}
	for _, d := range structured.deliveries() {
		if ct := d.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/cloudevents+json") {
			t.Errorf("structured content type %q", ct)
		}
		var ce map[string]any
		json.Unmarshal(d.body, &ce)
		if ce["id"] != d.header.Get("webhook-id") || ce["specversion"] != "1.0" || d.header.Get("X-Tenant") != "acme" {
			t.Errorf("structured delivery: %v %v", ce["id"], d.header)
		}
	}
	for _, d := range binary.deliveries() {
		if d.header.Get("Ce-Id") != d.header.Get("webhook-id") || d.header.Get("Ce-Type") != "com.accountwatch.account.status.changed" || !strings.HasPrefix(d.header.Get("Content-Type"), "application/json") {
			t.Errorf("binary delivery headers %v", d.header)
		}
		var data event.Data
		if err := json.Unmarshal(d.body, &data); err != nil || data.AccountID == "" {
			t.Errorf("binary body is not the event data: %s", d.body)
		}
	}
	if binary.ok()[debt.ID()] != 0 {
		t.Error("a debt event reached an endpoint subscribed to status changes only")
	}
	if n := len(structured.deliveries()); n != 4 {
		t.Errorf("%d deliveries to the structured endpoint, want 4", n)
	}
	for _, e := range evs {
		if structured.ok()[e.ID()] != 1 {
			t.Errorf("webhook-id %s not delivered once", e.ID())
		}
	}
}

func TestHandshake(t *testing.T) {
	st := start(t)
	good := newReceiver(t, nil)
	good.origin = "accountwatch-test"
	none := newReceiver(t, nil)
	none.origin = ""
	other := newReceiver(t, nil)
	other.origin = "someone-else"
	if code, out := st.call(t, "POST", "/v1/endpoints", map[string]any{"url": good.srv.URL}); code != 201 {
		t.Errorf("a receiver allowing our origin: %d %v", code, out)
	}
	for name, r := range map[string]*receiver{"no answer header": none, "other origin": other} {
		code, out := st.call(t, "POST", "/v1/endpoints", map[string]any{"url": r.srv.URL})
		if code != 422 || !strings.Contains(fmt.Sprint(out["error"]), "handshake") {
			t.Errorf("%s: %d %v, want 422 handshake failed", name, code, out)
		}
	}
	if code, _ := st.call(t, "POST", "/v1/endpoints", map[string]any{"url": none.srv.URL, "skip_handshake": true}); code != 201 {
		t.Errorf("skip_handshake: %d", code)
	}
}

func TestRetriesThenDelivered(t *testing.T) {
	st := start(t)
	r := newReceiver(t, func(n int) (int, http.Header) {
		if n <= 2 {
			return 500, nil
		}
		return 204, nil
	})
	id, _ := st.endpoint(t, map[string]any{"url": r.srv.URL})
	st.waitActive(t, id)
	ev := statuses(t, "retry", 1)[0]
	bustest.Publish(t, st.bus, ev)
	bustest.Eventually(t, "delivered on the third attempt", func() bool { return r.ok()[ev.ID()] == 1 })
	ds := r.deliveries()
	if len(ds) != 3 || ds[0].header.Get("webhook-id") != ev.ID() || ds[2].header.Get("webhook-id") != ev.ID() {
		t.Fatalf("%d deliveries", len(ds))
	}
	if g1, g2 := ds[1].at.Sub(ds[0].at), ds[2].at.Sub(ds[1].at); g1 < 90*time.Millisecond || g2 < 180*time.Millisecond {
		t.Errorf("waits %s, %s: shorter than the schedule (100ms, 200ms, less 10%%)", g1, g2)
	}
	var out map[string]any
	bustest.Eventually(t, "three attempts logged", func() bool {
		_, out = st.call(t, "GET", "/v1/endpoints/"+id+"/attempts", nil)
		a, _ := out["attempts"].([]any)
		return len(a) == 3
	})
	var got []string
	for _, a := range out["attempts"].([]any) {
		m := a.(map[string]any)
		got = append(got, fmt.Sprintf("%v:%v:%v", m["attempt"], m["status"], m["outcome"]))
	}
	if strings.Join(got, " ") != "1:500:failed 2:500:failed 3:204:delivered" {
		t.Errorf("attempts %v", got)
	}
	_, byEvent := st.call(t, "GET", "/v1/events/"+ev.ID()+"/attempts", nil)
	if a, _ := byEvent["attempts"].([]any); len(a) != 3 {
		t.Errorf("attempts by event: %v", byEvent)
	}
}

func TestRetryAfterHonoured(t *testing.T) {
	st := start(t)
	r := newReceiver(t, func(n int) (int, http.Header) {
		if n == 1 {
			return 429, http.Header{"Retry-After": {"1"}}
		}
		return 200, nil
	})
	id, _ := st.endpoint(t, map[string]any{"url": r.srv.URL})
	st.waitActive(t, id)
	bustest.Publish(t, st.bus, statuses(t, "ra", 1)...)
	bustest.Eventually(t, "delivered after the 429", func() bool { return len(r.ok()) == 1 })
	ds := r.deliveries()
	if gap := ds[1].at.Sub(ds[0].at); gap < time.Second {
		t.Errorf("retried %s after a 429 with Retry-After: 1", gap)
	}
}

func TestGoneDisablesAndResumeDelivers(t *testing.T) {
	st := start(t)
	var gone sync.Mutex
	isGone := true
	r := newReceiver(t, func(int) (int, http.Header) {
		gone.Lock()
		defer gone.Unlock()
		if isGone {
			return 410, nil
		}
		return 200, nil
	})
	ops := make(chan *nats.Msg, 4)
	sub, _ := st.bus.NC.ChanSubscribe(app.DisabledSubject, ops)
	defer sub.Unsubscribe()
	id, _ := st.endpoint(t, map[string]any{"url": r.srv.URL})
	st.waitActive(t, id)
	first := statuses(t, "gone", 1)[0]
	bustest.Publish(t, st.bus, first)
	bustest.Eventually(t, "disabled", func() bool {
		_, out := st.call(t, "GET", "/v1/endpoints/"+id, nil)
		return out["status"] == "disabled" && strings.Contains(fmt.Sprint(out["disabled_reason"]), "410")
	})
	select {
	case m := <-ops:
		if !strings.Contains(string(m.Data), id) {
			t.Errorf("operator event %s", m.Data)
		}
	case <-time.After(5 * time.Second):
		t.Error("no operator event")
	}
	// The bucket says disabled; the runtime parks the endpoint when the
	// dispatcher's watch sees it. Events published from then on wait.
	bustest.Eventually(t, "parked", func() bool {
		for _, l := range strings.Split(st.logs.String(), "\n") {
			if strings.Contains(l, `"msg":"endpoint parked"`) && strings.Contains(l, `"endpoint":"`+id+`","status":"disabled"`) {
				return true
			}
		}
		return false
	})
	later := statuses(t, "gone-later", 2)
	bustest.Publish(t, st.bus, later...)
	gone.Lock()
	isGone = false
	gone.Unlock()
	if code, out := st.call(t, "POST", "/v1/endpoints/"+id+"/resume", nil); code != 200 || out["status"] != "active" {
		t.Fatalf("resume: %d %v", code, out)
	}
	bustest.Eventually(t, "everything that waited is delivered", func() bool {
		ok := r.ok()
		return ok[first.ID()] == 1 && ok[later[0].ID()] == 1 && ok[later[1].ID()] == 1
	})
	// Until the resume every delivery would have been answered 410: only
	// the one that disabled the endpoint was.
	gones := 0
	for _, d := range r.deliveries() {
		if d.status == 410 {
			gones++
		}
	}
	if gones != 1 {
		t.Errorf("%d deliveries answered 410, want only the one that disabled the endpoint", gones)
	}
}

func TestFailingTooLongDisables(t *testing.T) {
	st := start(t, func(s *app.Settings) {
		s.DisableAfter = 300 * time.Millisecond
		s.Schedule = "100ms,100ms,100ms,100ms,100ms,100ms,100ms,100ms"
	})
	r := newReceiver(t, func(int) (int, http.Header) { return 500, nil })
	id, _ := st.endpoint(t, map[string]any{"url": r.srv.URL})
	st.waitActive(t, id)
	bustest.Publish(t, st.bus, statuses(t, "fail", 1)...)
	bustest.Eventually(t, "disabled after failing too long", func() bool {
		_, out := st.call(t, "GET", "/v1/endpoints/"+id, nil)
		return out["status"] == "disabled" && strings.Contains(fmt.Sprint(out["disabled_reason"]), "failing since")
	})
}

func TestExhaustedDeadLetteredAndRedrivenPerEndpoint(t *testing.T) {
	st := start(t, func(s *app.Settings) { s.Schedule = "50ms,50ms" })
	var mu sync.Mutex
	broken := true
	r := newReceiver(t, func(int) (int, http.Header) {
		mu.Lock()
		defer mu.Unlock()
		if broken {
			return 502, nil
		}
		return 200, nil
	})
	id, _ := st.endpoint(t, map[string]any{"url": r.srv.URL})
	st.waitActive(t, id)
	evs := statuses(t, "dlq", 2)
	bustest.Publish(t, st.bus, evs...)
	bustest.Eventually(t, "dead letters", func() bool {
		_, out := st.call(t, "GET", "/v1/endpoints/"+id+"/dead-letters", nil)
		l, _ := out["dead_letters"].([]any)
		return len(l) == 2
	})
	if code, out := st.call(t, "POST", "/v1/endpoints/"+id+"/redrive?dry_run=true&since=1h", nil); code != 200 || out["would_redrive"] != float64(2) {
		t.Errorf("dry run: %d %v", code, out)
	}
	mu.Lock()
	broken = false
	mu.Unlock()
	if code, out := st.call(t, "POST", "/v1/endpoints/"+id+"/redrive", nil); code != 200 || out["redriven"] != float64(2) {
		t.Fatalf("redrive: %d %v", code, out)
	}
	bustest.Eventually(t, "re-driven deliveries", func() bool { return r.ok()[evs[0].ID()] == 1 && r.ok()[evs[1].ID()] == 1 })
}

func TestReceiverDownThenUp(t *testing.T) {
	st := start(t, func(s *app.Settings) {
		s.Schedule = "200ms,200ms,200ms,200ms,200ms,200ms,200ms,200ms,200ms,200ms,200ms,200ms,200ms,200ms,200ms"
	})
	r := newReceiver(t, nil)
	addr := r.srv.Listener.Addr().String()
	id, _ := st.endpoint(t, map[string]any{"url": r.srv.URL})
	st.waitActive(t, id)
	r.srv.Close() // down
	evs := statuses(t, "down", 5)
	bustest.Publish(t, st.bus, evs...)
	bustest.Eventually(t, "failed attempts", func() bool { return strings.Count(st.logs.String(), "delivery failed") >= 5 })
	up := &receiver{origin: "*"}
	var ln net.Listener
	var err error
	for range 50 {
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: up}
	go srv.Serve(ln)
	defer srv.Close()
	bustest.Eventually(t, "every event delivered once the receiver is up", func() bool { return len(up.ok()) == 5 })
	for _, e := range evs {
		if up.ok()[e.ID()] != 1 {
			t.Errorf("webhook-id %s delivered %d times", e.ID(), up.ok()[e.ID()])
		}
	}
}

func TestAPI(t *testing.T) {
	st := start(t)
	r := newReceiver(t, nil)
	req, _ := http.NewRequest("GET", st.api+"/v1/endpoints", nil)
	req.Header.Set("Authorization", "Bearer wrong")
	if resp, _ := http.DefaultClient.Do(req); resp.StatusCode != 401 {
		t.Errorf("wrong token: %d", resp.StatusCode)
	}
	bad := []struct {
		body map[string]any
		code int
		want string
	}{
		{map[string]any{"url": "ftp://x"}, 400, "scheme"},
		{map[string]any{"url": r.srv.URL, "types": []string{"account.nope"}}, 400, "types[0]"},
		{map[string]any{"url": r.srv.URL, "filters": []any{map[string]any{}}}, 400, "filters[0]"},
		{map[string]any{"url": r.srv.URL, "headers": map[string]string{"webhook-id": "x"}}, 400, "set by the dispatcher"},
		{map[string]any{"url": r.srv.URL, "colour": "red"}, 400, "unknown field"},
		{map[string]any{"url": "http://169.254.169.254/"}, 400, "url: destination refused: 169.254.169.254 is Link Local"},
	}
	for _, c := range bad {
		code, out := st.call(t, "POST", "/v1/endpoints", c.body)
		if code != c.code || !strings.Contains(fmt.Sprint(out["error"]), c.want) {
			t.Errorf("%v: %d %v, want %d %q", c.body, code, out, c.code, c.want)
		}
	}
	id, secret := st.endpoint(t, map[string]any{"url": r.srv.URL, "description": "ERP"})
	if code, out := st.call(t, "GET", "/v1/endpoints/"+id, nil); code != 200 || out["description"] != "ERP" || strings.Contains(fmt.Sprint(out), "whsec_") {
		t.Errorf("get: %d %v (secrets must not be listed)", code, out)
	}
	if code, out := st.call(t, "PATCH", "/v1/endpoints/"+id, map[string]any{"description": "ERP prod", "filters": []any{map[string]any{"exact": map[string]string{"severity": "critical"}}}}); code != 200 || out["description"] != "ERP prod" {
		t.Errorf("patch: %d %v", code, out)
	}
	if code, out := st.call(t, "GET", "/v1/endpoints", nil); code != 200 || len(out["endpoints"].([]any)) != 1 {
		t.Errorf("list: %d %v", code, out)
	}
	if code, out := st.call(t, "POST", "/v1/endpoints/"+id+"/pause", nil); code != 200 || out["status"] != "paused" {
		t.Errorf("pause: %d %v", code, out)
	}
	if code, _ := st.call(t, "POST", "/v1/endpoints/"+id+"/resume", nil); code != 200 {
		t.Errorf("resume: %d", code)
	}

	// Rotation: the test event is signed with both secrets during the grace period.
	code, rot := st.call(t, "POST", "/v1/endpoints/"+id+"/rotate-secret", map[string]any{"grace": "1h"})
	if code != 200 || rot["valid_secrets"] != float64(2) {
		t.Fatalf("rotate: %d %v", code, rot)
	}
	code, res := st.call(t, "POST", "/v1/endpoints/"+id+"/test", nil)
	if code != 200 || res["delivered"] != true || res["status"] != float64(200) {
		t.Fatalf("test event: %d %v", code, res)
	}
	last := r.deliveries()[len(r.deliveries())-1]
	for _, s := range []string{secret, rot["secret"].(string)} {
		wh, _ := standardwebhooks.NewWebhook(s)
		if err := wh.Verify(last.body, last.header); err != nil {
			t.Errorf("during the grace period a receiver holding one of the secrets rejects: %v", err)
		}
	}
	if last.header.Get("webhook-id") != res["event_id"] {
		t.Error("test event id")
	}
	if code, _ := st.call(t, "DELETE", "/v1/endpoints/"+id, nil); code != 204 {
		t.Errorf("delete: %d", code)
	}
	if code, _ := st.call(t, "GET", "/v1/endpoints/"+id, nil); code != 404 {
		t.Errorf("get deleted: %d", code)
	}
}
