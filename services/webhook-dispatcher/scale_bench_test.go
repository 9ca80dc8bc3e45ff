package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
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

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/accountwatch/accountwatch/pkg/deliverylog"
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

// cpuProfile writes the process's CPU profile of one phase to
// AW_BENCH_PROFILE (if set) until the returned func is called: the phase
// AW_BENCH_PROFILE_RUN names ("raw", "all-healthy"; "sick" when unset).
func cpuProfile(b *testing.B, phase string) func() {
	path := os.Getenv("AW_BENCH_PROFILE")
	want := os.Getenv("AW_BENCH_PROFILE_RUN")
	if want == "" {
		want = "sick"
	}
	if path == "" || phase != want {
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		b.Fatal(err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
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
//     connections and a sender on each), before the dispatcher starts (the
//     better of two such loads);
//     and against the same load of requests with a delivery's headers
//     (signed once), which tells the wire protocol's cost from the
//     dispatcher's;
//   - the limit, after the sick run, the dispatcher stopped: that run's
//     work done raw on the same hosts and server. The raw load's healthy
//     POSTs, and at once as many requests to the 503 hosts as they
//     answered, the slow hosts' limit's worth in flight, a stored write per
//     attempt (a delivery-log record of a real one's size) and per hand-off
//     the run stored (a copy of one, into AW_REDRIVE): the healthy
//     deliveries/s the two shared cores allow, which the raw load, paying
//     for none of that, overstates;
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
			byHost[i%nhosts] = append(byHost[i%nhosts], url(i))
		}
		enc, err := deliver.Encode(context.Background(), subscription.ModeStructured, eventtest.Status(b, eventtest.Meta("raw", nil), "active", "credit_hold"))
		if err != nil {
			b.Fatal(err)
		}
		conns := envInt("AW_BENCH_CONNS", 64)
		// post makes n POSTs of the body to host h's endpoints in turn, conns at once, until ctx ends.
		post := func(ctx context.Context, hc *http.Client, header http.Header, h int, n int64) {
			targets := byHost[h]
			rawPosts(b, hc, conns, n, func(i int64) *http.Request {
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, targets[i%int64(len(targets))], bytes.NewReader(enc.Body))
				req.Header = header
				return req
			})
		}
		// rawLoad is the healthy hosts' POSTs, the hosts at once, each within
		// the limit, and the alongside work on the same client, all timed.
		// perPost is the process's CPU time per healthy POST of the last load.
		var perPost time.Duration
		rawLoad := func(header http.Header, alongside ...func(*http.Client)) float64 {
			hc := &http.Client{Transport: &http.Transport{MaxConnsPerHost: conns, MaxIdleConnsPerHost: conns}}
			defer hc.CloseIdleConnections()
			var wg sync.WaitGroup
			t2, cpu0 := time.Now(), cpuTime()
			defer func() { perPost = (cpuTime() - cpu0) / time.Duration(onHealthy*events) }()
			for h, targets := range byHost {
				if _, ok := sick[h]; !ok {
					wg.Go(func() { post(context.Background(), hc, header, h, int64(len(targets)*events)) })
				}
			}
			for _, f := range alongside {
				wg.Go(func() { f(hc) })
			}
			wg.Wait()
			return float64(onHealthy*events) / time.Since(t2).Seconds()
		}
		// The baseline: the bodies alone. And, to tell the wire
		// protocol's cost from the dispatcher's, the same requests with
		// the headers a delivery carries (the Standard Webhooks three and
		// the user agent, signed once: signing each is the dispatcher's).
		bodyOnly := http.Header{"Content-Type": {"application/cloudevents+json"}}
		rawRate := rawLoad(bodyOnly)
		sig, err := deliver.Sign([]string{subscription.NewSecret()}, "aw1-5d13147bac4dfc341bb2dba2db7594cd", time.Now(), enc.Body)
		if err != nil {
			b.Fatal(err)
		}
		headersRate := rawLoad(http.Header{"Content-Type": {"application/cloudevents+json"}, "User-Agent": {"accountwatch-webhooks/1"},
			"Webhook-Id": {"aw1-5d13147bac4dfc341bb2dba2db7594cd"}, "Webhook-Timestamp": {strconv.FormatInt(time.Now().Unix(), 10)}, "Webhook-Signature": {sig}})
		// The bodies' load again, the better of the two its baseline: the
		// first load of a run pays for the hosts' first connections and
		// stacks, and has measured half the second's (22,874 against 36,804
		// POSTs/s with headers), which would flatter every ratio to it.
		stopProfile := cpuProfile(b, "raw")
		again := rawLoad(bodyOnly)
		stopProfile()
		rawCPU := perPost
		b.Logf("raw POST loads: %.0f and %.0f posts/s, with the headers %.0f", rawRate, again, headersRate)
		rawRate = max(rawRate, again)

		rssBefore := rssMB("VmRSS")
		t0 := time.Now()
		stop := benchDispatcherAt(b, bus, url, endpoints)
		b.Logf("%d endpoints created in %s", endpoints, time.Since(t0).Round(time.Millisecond))

		// run publishes a batch of new events at once and waits for every
		// healthy host to have them all; it returns the healthy endpoints'
		// latencies and deliveries/s.
		var runCPU time.Duration // the process's CPU time per healthy delivery of the last run
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
			defer cpuProfile(b, name)()
			start, cpu0 := time.Now(), cpuTime()
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
			runCPU = (cpuTime() - cpu0) / time.Duration(want)
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
		healthyCPU := runCPU
		for i, m := range sick {
			hosts[i].mode.Store(m)
		}
		log0, handoffs0 := lastSeq(b, bus, deliverylog.Stream), lastSeq(b, bus, eventbus.StreamRedrive)
		sickLat, sickRate := run("sick")
		sickCPU := runCPU
		// What the sick run stored (not the drain that stops the dispatcher).
		logged, handoffs := lastSeq(b, bus, deliverylog.Stream)-log0, int(lastSeq(b, bus, eventbus.StreamRedrive)-handoffs0)
		var slowDone, failed int64
		failedOn := map[int]int64{}
		for i, m := range sick {
			if m == slow {
				slowDone += hosts[i].n.Load()
			} else {
				failedOn[i] = hosts[i].reqs.Load()
				failed += failedOn[i]
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

		// The limit, the dispatcher stopped: the sick run's work without the
		// dispatcher. The healthy POSTs of the raw baseline; at once the 503
		// hosts' requests (as many as they answered in the sick run) and the
		// slow hosts' (their limit's worth in flight until the rest is done);
		// and the stored writes, spread evenly over the attempts: a
		// delivery-log record per attempt (the data of the sick run's first
		// delivered and first failed records) into the log's stream, and a
		// hand-off per one the sick run stored into AW_REDRIVE (a copy of
		// one still there: after a failed retry an event waits five minutes
		// for the next; failed retries are nak'ed, not stored again).
		// Acknowledged through a window, unlike the log's records (the
		// server stores them alike; the acks say when it has). Healthy
		// deliveries/s the two cores allow with all that to do, raw.
		delivered, failedRec := sickRecords(b, bus, log0)
		handoff := storedHandoff(b, bus)
		okRecs, failRecs := onHealthy*events+int(slowDone), int(failed)
		onFailing, hdr := 0, 0 // endpoints on the 503 hosts; a hand-off's header bytes
		for h := range failedOn {
			onFailing += len(byHost[h])
		}
		for k, vs := range handoff.Header {
			for _, v := range vs {
				hdr += len(k) + len(v) + 4
			}
		}
		for _, h := range hosts {
			h.reqs.Store(0)
		}
		slowCtx, callOff := context.WithCancel(context.Background())
		var slowLoad sync.WaitGroup
		limitRate := rawLoad(bodyOnly, func(hc *http.Client) {
			for h, m := range sick {
				if m == slow { // not awaited: called off once the rest is done
					slowLoad.Go(func() { post(slowCtx, hc, bodyOnly, h, math.MaxInt64) })
				}
			}
		}, func(hc *http.Client) {
			var wg sync.WaitGroup
			for h, n := range failedOn {
				wg.Go(func() { post(context.Background(), hc, bodyOnly, h, n) })
			}
			wg.Wait()
		}, func(*http.Client) {
			all := okRecs + failRecs
			err := bustest.PublishWindow(bus.JS, all, 2048, func(i int) []*nats.Msg {
				rec := &nats.Msg{Subject: fmt.Sprintf("%slimit.e%d.%d", deliverylog.Root, i%endpoints, i/endpoints), Data: delivered}
				if _, failing := spread(i, failRecs, all); failing {
					rec.Data = failedRec
				}
				k, handedOff := spread(i, handoffs, all)
				if !handedOff {
					return []*nats.Msg{rec}
				}
				h := maps.Clone(handoff.Header)
				h.Set(jetstream.MsgIDHeader, "limit:"+strconv.Itoa(k))
				return []*nats.Msg{rec, {Subject: fmt.Sprintf("%slimit.e%d.queue", eventbus.RedriveRoot, k%onFailing), Header: h, Data: handoff.Data}}
			})
			if err != nil {
				b.Error(err) // beside the benchmark's goroutine
			}
		})
		callOff()
		slowLoad.Wait()
		if b.Failed() {
			b.FailNow()
		}
		var attempts int64
		for _, h := range hosts {
			attempts += h.reqs.Load()
		}
		logBytes := float64(okRecs*len(delivered)+failRecs*len(failedRec)) / float64(okRecs+failRecs)
		b.Logf("limit: %d requests; %d records (%d of %d B, %d of %d B; the sick run stored %d), %d hand-offs of %d B header and %d B data",
			attempts, okRecs+failRecs, okRecs, len(delivered), failRecs, len(failedRec), logged, handoffs, hdr, len(handoff.Data))

		b.ReportMetric(sickLat.P(0.5), "p50-ms")
		b.ReportMetric(sickLat.P(0.99), "p99-ms")
		b.ReportMetric(healthyLat.P(0.5), "healthy-p50-ms")
		b.ReportMetric(healthyLat.P(0.99), "healthy-p99-ms")
		b.ReportMetric(sickRate, "deliveries/s")
		b.ReportMetric(healthyRate, "healthy-deliveries/s")
		b.ReportMetric(rawRate, "raw-posts/s")
		b.ReportMetric(headersRate, "raw-headers-posts/s")
		b.ReportMetric(limitRate, "limit-posts/s")
		b.ReportMetric(float64(attempts), "limit-attempts")
		b.ReportMetric(logBytes, "limit-log-bytes")
		b.ReportMetric(float64(rawCPU.Microseconds()), "raw-cpu-µs/post")
		b.ReportMetric(float64(healthyCPU.Microseconds()), "healthy-cpu-µs/delivery")
		b.ReportMetric(float64(sickCPU.Microseconds()), "cpu-µs/delivery")
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

// lastSeq is a stream's last sequence: how many messages it ever stored.
func lastSeq(b *testing.B, bus *eventbus.Bus, stream string) uint64 {
	s, err := bus.JS.Stream(context.Background(), stream)
	if err != nil {
		b.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	return info.State.LastSeq
}

// sickRecords are the stored data of the first delivered and the first
// failed delivery-log records after sequence after.
func sickRecords(b *testing.B, bus *eventbus.Bus, after uint64) (delivered, failed []byte) {
	s, err := bus.JS.Stream(context.Background(), deliverylog.Stream)
	if err != nil {
		b.Fatal(err)
	}
	for seq := after + 1; delivered == nil || failed == nil; seq++ {
		m, err := s.GetMsg(context.Background(), seq)
		if err != nil {
			b.Fatalf("delivery log at %d: %v (a delivered and a failed record wanted)", seq, err)
		}
		var r deliverylog.Record
		if err := json.Unmarshal(m.Data, &r); err != nil {
			b.Fatal(err)
		}
		switch {
		case r.Outcome == deliverylog.Delivered && delivered == nil:
			delivered = m.Data
		case r.Outcome == deliverylog.Failed && failed == nil:
			failed = m.Data
		}
	}
	return delivered, failed
}

// storedHandoff is a hand-off still waiting in AW_REDRIVE.
func storedHandoff(b *testing.B, bus *eventbus.Bus) *jetstream.RawStreamMsg {
	s, err := bus.JS.Stream(context.Background(), eventbus.StreamRedrive)
	if err != nil {
		b.Fatal(err)
	}
	m, err := s.GetLastMsgForSubject(context.Background(), eventbus.RedriveRoot+">")
	if err != nil {
		b.Fatalf("no hand-off left in %s: %v", eventbus.StreamRedrive, err)
	}
	return m
}

// spread says whether i of n is one of k spread evenly over them, and which.
func spread(i, k, n int) (int, bool) { return i * k / n, (i+1)*k/n > i*k/n }
