package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/event/eventtest"
	"github.com/accountwatch/accountwatch/pkg/eventbus"
	"github.com/accountwatch/accountwatch/pkg/eventbus/bustest"
	"github.com/accountwatch/accountwatch/services/webhook-dispatcher/internal/deliver"
	"github.com/accountwatch/accountwatch/services/webhook-dispatcher/internal/subscription"
)

// Host behaviours of the scale benchmark.
const (
	healthy int32 = iota
	slow          // answers after 5 s
	failing       // answers 503
)

// scaleHost is one subscriber host: every endpoint on it behaves as its mode
// says. A healthy host records each delivery's publish→receipt time.
type scaleHost struct {
	srv  *httptest.Server
	mode atomic.Int32
	sent *sync.Map // event id → publish time
	n    atomic.Int64
	reqs atomic.Int64 // every request, whatever the answer
	mu   sync.Mutex
	lat  bustest.Latencies
}

func (h *scaleHost) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	h.reqs.Add(1)
	switch h.mode.Load() {
	case slow:
		select {
		case <-time.After(5 * time.Second):
		case <-r.Context().Done():
			return
		}
	case failing:
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	now := time.Now()
	if at, ok := h.sent.Load(r.Header.Get("webhook-id")); ok {
		h.mu.Lock()
		h.lat = append(h.lat, now.Sub(at.(time.Time)))
		h.mu.Unlock()
	}
	h.n.Add(1)
	w.WriteHeader(http.StatusNoContent)
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// BenchmarkEndpoints10k: AW_BENCH_ENDPOINTS endpoints (10,000) on 20 hosts,
// each endpoint subscribed to everything, AW_BENCH_ENDPOINT_EVENTS events
// (20) published at once, server default sync, delivery log of every attempt.
//
//   - all-healthy: every host answers 204 at once;
//   - sick: the same endpoints, two hosts (10%) answering after 5 s and two
//     (10%) answering 503, new events; the healthy endpoints' publish→receipt
//     p50/p99 against the all-healthy run's (no head-of-line blocking: within
//     1.5×), and their deliveries/s against a raw load of as many bodies
//     POSTed to the same healthy endpoints by net/http's keep-alive client,
//     within the dispatcher's limit per host (AW_BENCH_CONNS, 64: as many
//     connections and a sender on each), before the dispatcher starts;
//     and against the same load of requests with a delivery's headers
//     (signed once), which tells the wire protocol's cost from the
//     dispatcher's;
//   - the process's RSS before the dispatcher started and its peak (VmHWM)
//     at the end (the embedded server, the hosts and the dispatcher).
//
// A host here stands for a subscriber's server: the dispatcher bounds
// connections per host, so a sick endpoint shares its host's limit only with
// the endpoints on that host.
func BenchmarkEndpoints10k(b *testing.B) {
	endpoints, events := envInt("AW_BENCH_ENDPOINTS", 10_000), envInt("AW_BENCH_ENDPOINT_EVENTS", 20)
	const nhosts = 20
	sick := map[int]int32{16: slow, 17: slow, 18: failing, 19: failing}
	for range b.N {
		cfg := bustest.Config(b, "127.0.0.1:0")
		cfg.SyncAlways = false
		bus := bustest.Start(b, cfg)
		sent := &sync.Map{}
		hosts := make([]*scaleHost, nhosts)
		for i := range hosts {
			hosts[i] = &scaleHost{sent: sent}
			hosts[i].srv = httptest.NewServer(hosts[i])
			defer hosts[i].srv.Close()
		}
		url := func(i int) string { return fmt.Sprintf("%s/hooks/%d", hosts[i%nhosts].srv.URL, i) }
		onHealthy := 0 // endpoints on the hosts that stay healthy
		for i := range endpoints {
			if _, ok := sick[i%nhosts]; !ok {
				onHealthy++
			}
		}
		// Raw, before the dispatcher starts: as many POSTs of a delivery's
		// body (the event in the structured mode) as a run delivers to the
		// healthy endpoints, to those endpoints, within the dispatcher's
		// limit per host (as many connections, and a sender on each).
		byHost := map[int][]string{}
		for i := range endpoints {
			if _, ok := sick[i%nhosts]; !ok {
				byHost[i%nhosts] = append(byHost[i%nhosts], url(i))
			}
		}
		enc, err := deliver.Encode(context.Background(), subscription.ModeStructured, eventtest.Status(b, eventtest.Meta("raw", nil), "active", "credit_hold"))
		if err != nil {
			b.Fatal(err)
		}
		conns := envInt("AW_BENCH_CONNS", 64)
		rawLoad := func(header http.Header) float64 {
			hc := &http.Client{Transport: &http.Transport{MaxConnsPerHost: conns, MaxIdleConnsPerHost: conns}}
			defer hc.CloseIdleConnections()
			var total int64
			var wg sync.WaitGroup
			t2 := time.Now()
			for _, targets := range byHost { // the hosts at once, each within the limit
				n := int64(len(targets) * events)
				total += n
				wg.Add(1)
				go func() {
					defer wg.Done()
					rawPosts(b, hc, conns, n, func(i int64) *http.Request {
						req, _ := http.NewRequest(http.MethodPost, targets[i%int64(len(targets))], bytes.NewReader(enc.Body))
						req.Header = header
						return req
					})
				}()
			}
			wg.Wait()
			return float64(total) / time.Since(t2).Seconds()
		}
		// The baseline: the bodies alone. And, to tell the wire
		// protocol's cost from the dispatcher's, the same requests with
		// the headers a delivery carries (the Standard Webhooks three and
		// the user agent, signed once: signing each is the dispatcher's).
		rawRate := rawLoad(http.Header{"Content-Type": {"application/cloudevents+json"}})
		sig, err := deliver.Sign([]string{subscription.NewSecret()}, "aw1-5d13147bac4dfc341bb2dba2db7594cd", time.Now(), enc.Body)
		if err != nil {
			b.Fatal(err)
		}
		headersRate := rawLoad(http.Header{"Content-Type": {"application/cloudevents+json"}, "User-Agent": {"accountwatch-webhooks/1"},
			"Webhook-Id": {"aw1-5d13147bac4dfc341bb2dba2db7594cd"}, "Webhook-Timestamp": {strconv.FormatInt(time.Now().Unix(), 10)}, "Webhook-Signature": {sig}})

		rssBefore := rssMB("VmRSS")
		t0 := time.Now()
		stop := benchDispatcherAt(b, bus, url, endpoints)
		b.Logf("%d endpoints created in %s", endpoints, time.Since(t0).Round(time.Millisecond))

		// run publishes a batch of new events at once and waits for every
		// healthy host to have them all; it returns the healthy endpoints'
		// latencies and deliveries/s.
		run := func(name string) (bustest.Latencies, float64) {
			evs := make([]*event.Event, events)
			for i := range evs {
				evs[i] = eventtest.Status(b, eventtest.Meta(fmt.Sprintf("%s-%06d", name, i), nil), "active", "credit_hold")
			}
			for _, h := range hosts {
				h.n.Store(0)
				h.reqs.Store(0)
				h.lat = h.lat[:0]
			}
			start := time.Now()
			for _, e := range evs {
				sent.Store(e.ID(), start)
			}
			if _, err := eventbus.NewPublisher(bus.JS).PublishAll(context.Background(), evs); err != nil {
				b.Fatal(err)
			}
			want := int64(onHealthy * events)
			got := func() (n int64) {
				for i, h := range hosts {
					if _, ok := sick[i]; !ok {
						n += h.n.Load()
					}
				}
				return n
			}
			for deadline := time.Now().Add(10 * time.Minute); got() < want; time.Sleep(5 * time.Millisecond) {
				if time.Now().After(deadline) {
					b.Fatalf("%s: %d of %d healthy deliveries", name, got(), want)
				}
			}
			took := time.Since(start)
			var lat bustest.Latencies
			for i, h := range hosts {
				if _, ok := sick[i]; !ok {
					h.mu.Lock()
					lat = append(lat, h.lat...)
					h.mu.Unlock()
				}
			}
			return lat.Sorted(), float64(want) / took.Seconds()
		}
		healthyLat, healthyRate := run("all-healthy")
		for i, m := range sick {
			hosts[i].mode.Store(m)
		}
		sickLat, sickRate := run("sick")
		var slowDone, failed int64
		for i, m := range sick {
			if m == slow {
				slowDone += hosts[i].n.Load()
			} else {
				failed += hosts[i].reqs.Load()
			}
		}
		peak := rssMB("VmHWM")
		if f := os.Getenv("AW_BENCH_HEAP_PROFILE"); f != "" { // where the memory is, for the report
			out, err := os.Create(f)
			if err != nil {
				b.Fatal(err)
			}
			runtime.GC()
			_ = pprof.WriteHeapProfile(out)
			out.Close()
		}
		t1 := time.Now()
		stop()
		b.Logf("dispatcher stopped in %s", time.Since(t1).Round(time.Millisecond))

		b.ReportMetric(sickLat.P(0.5), "p50-ms")
		b.ReportMetric(sickLat.P(0.99), "p99-ms")
		b.ReportMetric(healthyLat.P(0.5), "healthy-p50-ms")
		b.ReportMetric(healthyLat.P(0.99), "healthy-p99-ms")
		b.ReportMetric(sickRate, "deliveries/s")
		b.ReportMetric(healthyRate, "healthy-deliveries/s")
		b.ReportMetric(rawRate, "raw-posts/s")
		b.ReportMetric(headersRate, "raw-headers-posts/s")
		b.ReportMetric(peak, "peak-rss-MB")
		b.ReportMetric(rssBefore, "rss-before-MB")
		b.Logf("%d endpoints (%d on healthy hosts), %d events a run; sick run: %d slow deliveries done, %d answered 503, meanwhile; p99 %.0f ms vs %.0f ms all-healthy",
			endpoints, onHealthy, events, slowDone, failed, sickLat.P(0.99), healthyLat.P(0.99))
	}
}

// rssMB reads a field of /proc/self/status (VmRSS, VmHWM) in MB (0 where unknown).
func rssMB(field string) float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}
