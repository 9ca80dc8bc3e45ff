package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/accountwatch/accountwatch/pkg/deliverylog"
	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/event/eventtest"
	"github.com/accountwatch/accountwatch/pkg/eventbus"
	"github.com/accountwatch/accountwatch/pkg/eventbus/bustest"
	"github.com/accountwatch/accountwatch/pkg/sink"
	"github.com/accountwatch/accountwatch/services/webhook-dispatcher/internal/app"
)

// benchReceiver answers 204 at once, counts deliveries and keeps their bodies
// (for the raw baseline) and arrival times.
type benchReceiver struct {
	n      atomic.Int64
	mu     sync.Mutex
	keep   bool
	bodies [][]byte
	at     map[string]time.Time
}

func (b *benchReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodOptions {
		w.Header().Set("WebHook-Allowed-Origin", "*")
		return
	}
	body, _ := io.ReadAll(r.Body)
	now := time.Now()
	if b.keep {
		b.mu.Lock()
		b.bodies = append(b.bodies, body)
		if b.at != nil {
			b.at[r.Header.Get("webhook-id")] = now
		}
		b.mu.Unlock()
	}
	b.n.Add(1)
	w.WriteHeader(http.StatusNoContent)
}

// benchDispatcher runs the dispatcher in-process with count endpoints, all
// subscribed to everything, pointing at url.
func benchDispatcher(b *testing.B, bus *eventbus.Bus, url string, count int) context.CancelFunc {
	return benchDispatcherAt(b, bus, func(int) string { return url }, count)
}

// benchDispatcherAt is benchDispatcher with endpoint i at url(i), created
// by 16 API clients at once. The function it returns stops the dispatcher
// and waits until it has.
func benchDispatcherAt(b *testing.B, bus *eventbus.Bus, url func(i int) string, count int) context.CancelFunc {
	var s app.Settings
	s.Config = bus.Cfg
	s.URL, s.NKeySeedFile = bus.ClientURL(), bus.SeedFile(eventbus.RoleWebhook)
	s.Settings = sink.DefaultSettings()
	if c := os.Getenv("AW_BENCH_CONCURRENCY"); c != "" {
		s.Concurrency, _ = strconv.Atoi(c)
	}
	if v := os.Getenv("AW_BENCH_BREAK_AFTER"); v != "" { // 0: the breaker off
		s.BreakAfter, _ = strconv.Atoi(v)
	}
	s.AdminToken = "bench-admin-token-0123456789"
	s.APIListen, s.OpsListen = "127.0.0.1:0", "127.0.0.1:0"
	s.Schedule, s.Origin, s.AllowCIDRs = "5s,5m", "bench", "127.0.0.0/8"
	s.Timeout, s.MaxResponse, s.DisableAfter, s.SecretGrace, s.LogRetention = 10*time.Second, 1024, time.Hour, time.Hour, time.Hour
	s.ConnsPerHost = 64
	if v := os.Getenv("AW_BENCH_CONNS"); v != "" {
		s.ConnsPerHost, _ = strconv.Atoi(v)
	}
	s.LogLevel = "warn"
	s.DeliveryLog = "all"
	bustest.Provision(b, bus, deliverylog.StreamConfig(bus.Cfg, s.LogRetention))
	if v := os.Getenv("AW_BENCH_DELIVERY_LOG"); v != "" {
		s.DeliveryLog = v
	}
	if err := s.Validate(); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	addr := make(chan app.Dispatcher, 1)
	ran := make(chan struct{})
	go func() {
		defer close(ran)
		_ = app.Run(ctx, s, slog.New(slog.DiscardHandler), func(d app.Dispatcher) { addr <- d })
	}()
	d := <-addr
	api, ops := "http://"+d.APIAddr, d.OpsAddr
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(16, count) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < count; i = int(next.Add(1) - 1) {
				body, _ := json.Marshal(map[string]any{"url": url(i), "skip_handshake": true})
				req, _ := http.NewRequest("POST", api+"/v1/endpoints", bytes.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+s.AdminToken)
				resp, err := http.DefaultClient.Do(req)
				if err != nil || resp.StatusCode != 201 {
					b.Errorf("create endpoint: %v %v", err, resp)
					return
				}
				resp.Body.Close()
			}
		}()
	}
	wg.Wait()
	if b.Failed() {
		b.FailNow()
	}
	// Every endpoint is in once the dispatcher counts them all active (its
	// gauge moves after the runtime took the endpoint in).
	want := fmt.Sprintf("aw_webhook_endpoints{status=%q} %d\n", "active", count)
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(100 * time.Millisecond) {
		if resp, err := http.Get("http://" + ops + "/metrics"); err == nil {
			m, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if strings.Contains(string(m), want) {
				break
			}
		}
		if time.Now().After(deadline) {
			b.Fatalf("not every endpoint active after two minutes (want %q)", want)
		}
	}
	return func() { cancel(); <-ran } // stopped once drained: no load left to compete with what follows
}

func benchEvents(b *testing.B, n int) []*event.Event {
	out := make([]*event.Event, n)
	for i := range out {
		out[i] = eventtest.Status(b, eventtest.Meta(fmt.Sprintf("b%06d", i), nil), "active", "credit_hold")
	}
	return out
}

// BenchmarkDeliveries: 300 events to 100 endpoints (30,000 signed deliveries,
// each its own consumer, request building, HMAC, POST, ack and delivery-log
// record) against a local receiver, next to a raw load of the same bodies
// POSTed to the same receiver by 64 goroutines in the same run.
func BenchmarkDeliveries(b *testing.B) {
	endpoints, events := 100, 300
	if v := os.Getenv("AW_BENCH_EVENTS"); v != "" {
		events, _ = strconv.Atoi(v)
	}
	total := int64(endpoints * events)
	for range b.N {
		cfg := bustest.Config(b, "127.0.0.1:0")
		cfg.SyncAlways = false
		bus := bustest.Start(b, cfg)
		rcv := &benchReceiver{keep: true}
		srv := httptest.NewServer(rcv)
		stop := benchDispatcher(b, bus, srv.URL, endpoints)
		evs := benchEvents(b, events)
		var ms0, ms1 runtime.MemStats
		runtime.ReadMemStats(&ms0)
		c0 := cpuTime()
		t0 := time.Now()
		if _, err := eventbus.NewPublisher(bus.JS).PublishAll(context.Background(), evs); err != nil {
			b.Fatal(err)
		}
		for deadline := time.Now().Add(5 * time.Minute); rcv.n.Load() < total; time.Sleep(2 * time.Millisecond) {
			if time.Now().After(deadline) {
				b.Fatalf("%d of %d delivered", rcv.n.Load(), total)
			}
		}
		dispatched := time.Since(t0)
		dispatchCPU := cpuTime() - c0
		runtime.ReadMemStats(&ms1)
		b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/float64(total), "allocs/delivery")
		b.ReportMetric(float64(ms1.TotalAlloc-ms0.TotalAlloc)/float64(total), "B/delivery")
		stop()

		// Raw: the same bodies, POSTed with net/http's keep-alive client; the
		// receiver does the same work (it keeps what it gets) as before.
		rcv.mu.Lock()
		bodies := rcv.bodies
		rcv.bodies = nil
		rcv.mu.Unlock()
		rcv.n.Store(0)
		hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
		runtime.ReadMemStats(&ms0)
		c1 := cpuTime()
		t1 := time.Now()
		rawPosts(b, hc, 64, int64(len(bodies)), func(i int64) *http.Request {
			req, _ := http.NewRequest(http.MethodPost, srv.URL, bytes.NewReader(bodies[i]))
			req.Header.Set("Content-Type", "application/cloudevents+json")
			return req
		})
		raw := time.Since(t1)
		rawCPU := cpuTime() - c1
		runtime.ReadMemStats(&ms1)
		b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/float64(len(bodies)), "raw-allocs/post")
		b.ReportMetric(float64(ms1.TotalAlloc-ms0.TotalAlloc)/float64(len(bodies)), "raw-B/post")
		srv.Close()

		rate, rawRate := float64(total)/dispatched.Seconds(), float64(len(bodies))/raw.Seconds()
		b.ReportMetric(rate, "deliveries/s")
		b.ReportMetric(rawRate, "raw-posts/s")
		b.ReportMetric(rate/rawRate, "ratio")
		b.ReportMetric(dispatchCPU.Seconds()*1e6/float64(total), "cpu-µs/delivery")
		b.ReportMetric(rawCPU.Seconds()*1e6/float64(len(bodies)), "raw-cpu-µs/post")
	}
}

// BenchmarkLatency1000: AW_BENCH_WEBHOOK_SECONDS (10) of events at 1,000/s
// to one endpoint, server default sync; publish → receipt p50 and p99, next
// to a raw JetStream publish→read at the same rate on the same server (the
// bus's floor).
func BenchmarkLatency1000(b *testing.B) {
	const rate = 1000
	seconds := envInt("AW_BENCH_WEBHOOK_SECONDS", 10)
	for range b.N {
		cfg := bustest.Config(b, "127.0.0.1:0")
		cfg.SyncAlways = false
		bus := bustest.Start(b, cfg)
		evs := benchEvents(b, rate*seconds)
		raw := bustest.RawLatency(b, bus, len(evs), len(evs[0].Cloud.Data()), rate)
		rcv := &benchReceiver{keep: true, at: map[string]time.Time{}}
		srv := httptest.NewServer(rcv)
		stop := benchDispatcher(b, bus, srv.URL, 1)
		sent, achieved := bustest.PublishAt(b, bus, evs, rate)
		for deadline := time.Now().Add(time.Minute); rcv.n.Load() < int64(len(evs)); time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				b.Fatalf("%d of %d delivered", rcv.n.Load(), len(evs))
			}
		}
		stop()
		srv.Close()
		var lat bustest.Latencies
		rcv.mu.Lock()
		for id, at := range rcv.at {
			lat = append(lat, at.Sub(sent[id]))
		}
		rcv.mu.Unlock()
		lat.Sorted()
		b.ReportMetric(lat.P(0.5), "p50-ms")
		b.ReportMetric(lat.P(0.99), "p99-ms")
		b.ReportMetric(raw.P(0.5), "raw-p50-ms")
		b.ReportMetric(raw.P(0.99), "raw-p99-ms")
		b.ReportMetric(achieved, "events-in/s")
	}
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// rawPosts is a raw POST load: senders goroutines, each with a request in
// flight on hc, make the n requests req builds, and it returns once all are
// answered (their bodies read, so that the connections are reused) or their
// context ended.
func rawPosts(b *testing.B, hc *http.Client, senders int, n int64, req func(i int64) *http.Request) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1) - 1; i < n; i = next.Add(1) - 1 {
				r := req(i)
				resp, err := hc.Do(r)
				if err != nil {
					if r.Context().Err() == nil { // else the load was called off
						b.Error(err)
					}
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}()
	}
	wg.Wait()
}
