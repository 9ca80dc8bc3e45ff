package audit_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/accountwatch/accountwatch/pkg/audit"
	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/event/eventtest"
	"github.com/accountwatch/accountwatch/pkg/eventbus"
	"github.com/accountwatch/accountwatch/pkg/eventbus/bustest"
)

// BenchmarkAudit is the audit log at size: a stream of AW_BENCH_REPLAY_EVENTS
// events (10,000,000 by default) of 10,000 accounts, each a chain of
// status changes, filled once (server default sync; set-up, not measured),
// read once by a raw ordered consumer (the baseline, raw-msgs/s), then
//
//   - replay: every event replayed to JSON lines (to io.Discard);
//   - verify: every chain and the stream's continuity checked (the checks
//     audit.Verify makes of a stream on its own; AW_STATE and checkpoints
//     are tested elsewhere), and the live heap after a tenth of the events
//     and after all of them, the verifier still holding its chain heads
//     (heap-MB-tenth, heap-MB): it grows with accounts, not events.
//
// AW_BENCH_PROFILE=/tmp/p writes CPU and allocation profiles of each
// (/tmp/p.replay.cpu, /tmp/p.verify.alloc, ...).
func BenchmarkAudit(b *testing.B) {
	n := 10_000_000
	if v := os.Getenv("AW_BENCH_REPLAY_EVENTS"); v != "" {
		n, _ = strconv.Atoi(v)
	}
	const accounts = 10_000
	cfg := bustest.Config(b, "")
	cfg.SyncAlways = false
	// A stream of ten million events is months of a poller's output: the
	// dedup window (15 minutes) never holds more than an interval's ids.
	// Filled in a minute it would hold all of them (a fifth of the fill's
	// time is that map); a short window stands for the months.
	cfg.DedupWindow = 2 * time.Second
	bus := bustest.Start(b, cfg)
	t0 := time.Now()
	fill(b, bus, n, accounts)
	b.Logf("filled %d events in %s (%.0f/s)", n, time.Since(t0).Round(time.Second), float64(n)/time.Since(t0).Seconds())
	raw := rawRead(b, bus, n)
	b.Logf("read raw in %s", raw.Round(time.Millisecond))
	b.Run("replay", func(b *testing.B) {
		for range b.N {
			stop := profile(b, "replay")
			t1 := time.Now()
			w, _ := audit.NewWriter(audit.FormatJSONL, io.Discard)
			got := 0
			if err := audit.Replay(context.Background(), bus.JS, audit.Selection{}, nil, func(r *audit.Record) error { got++; return w.Write(r) }); err != nil {
				b.Fatal(err)
			}
			w.Close()
			replay := time.Since(t1)
			stop()
			if got != n {
				b.Fatalf("replayed %d of %d", got, n)
			}
			b.ReportMetric(float64(n)/replay.Seconds(), "events/s")
			b.ReportMetric(float64(n)/raw.Seconds(), "raw-msgs/s")
			b.ReportMetric(raw.Seconds()/replay.Seconds(), "ratio")
		}
	})
	b.Run("verify", func(b *testing.B) {
		for range b.N {
			var tenth, all uint64
			heap := func() uint64 {
				var ms runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&ms)
				return ms.HeapAlloc
			}
			base := heap()
			var paused time.Duration // the heap readings' GCs are not the verifier's time
			progress := func(done, total uint64) {
				switch done {
				case total / 10:
					t := time.Now()
					tenth = heap() - min(base, heap())
					paused += time.Since(t)
				case total:
					t := time.Now()
					all = heap() - min(base, heap())
					paused += time.Since(t)
				}
			}
			stop := profile(b, "verify")
			t1 := time.Now()
			rep, err := audit.Verify(context.Background(), bus.JS, audit.Options{Progress: progress})
			if err != nil {
				b.Fatal(err)
			}
			verify := time.Since(t1) - paused
			stop()
			if rep.Events != uint64(n) || !rep.OK() || rep.Accounts != accounts {
				b.Fatalf("verified %d of %d, %d accounts: %+v", rep.Events, n, rep.Accounts, rep.Problems[:min(3, len(rep.Problems))])
			}
			b.ReportMetric(float64(n)/verify.Seconds(), "events/s")
			b.ReportMetric(float64(n)/raw.Seconds(), "raw-msgs/s")
			b.ReportMetric(raw.Seconds()/verify.Seconds(), "ratio")
			b.ReportMetric(float64(tenth)/(1<<20), "heap-MB-tenth")
			b.ReportMetric(float64(all)/(1<<20), "heap-MB")
		}
	})
}

// profile starts a CPU profile of part when AW_BENCH_PROFILE names a path
// prefix; the function it returns stops it and writes the allocations.
func profile(b *testing.B, part string) func() {
	path := os.Getenv("AW_BENCH_PROFILE")
	if path == "" {
		return func() {}
	}
	cpu, err := os.Create(path + "." + part + ".cpu")
	if err != nil {
		b.Fatal(err)
	}
	runtime.MemProfileRate = 64 << 10
	pprof.StartCPUProfile(cpu)
	return func() {
		pprof.StopCPUProfile()
		cpu.Close()
		if f, err := os.Create(path + "." + part + ".alloc"); err == nil {
			pprof.Lookup("allocs").WriteTo(f, 0)
			f.Close()
		}
	}
}

// rawRead is the baseline: an ordered consumer reading the whole stream.
func rawRead(b *testing.B, bus *eventbus.Bus, n int) time.Duration {
	ctx := context.Background()
	s, _ := bus.JS.Stream(ctx, eventbus.StreamEvents)
	t0 := time.Now()
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		b.Fatal(err)
	}
	it, _ := c.Messages(jetstream.PullMaxMessages(4096))
	for i := 0; i < n; i++ {
		if _, err := it.Next(); err != nil {
			b.Fatal(err)
		}
	}
	it.Stop()
	return time.Since(t0)
}

// fill stores n events of accounts accounts, each a chain of status
// changes, in rounds (an event of every account each). It is the set-up, not
// a measurement, so it is made fast: each event's bytes are spliced from a
// template the real constructor built for its account and parity (only the
// observation time, the chain link and the id change), checked against the
// constructor every checkEvery events; the rounds are built on every core
// while the publishes of the last are in flight (fenceEvery).
func fill(b *testing.B, bus *eventbus.Bus, n, accounts int) {
	b.Helper()
	observed := time.Now().UTC()
	f := newFiller(b, accounts, observed)
	js, err := jetstream.New(bus.NC, jetstream.WithPublishAsyncMaxPending(fences))
	if err != nil {
		b.Fatal(err)
	}
	workers := runtime.GOMAXPROCS(0)
	rounds := make(chan []*nats.Msg, 4)
	go func() {
		defer close(rounds)
		for k := 0; k*accounts < n; k++ {
			parts := make([][]*nats.Msg, workers)
			var wg sync.WaitGroup
			for w := range workers {
				wg.Go(func() {
					for a := w * accounts / workers; a < (w+1)*accounts/workers && k*accounts+a < n; a++ {
						parts[w] = append(parts[w], f.next(b, k, a))
					}
				})
			}
			wg.Wait()
			var round []*nats.Msg
			for _, p := range parts {
				round = append(round, p...)
			}
			rounds <- round
		}
	}()
	sent := 0
	for round := range rounds {
		for _, m := range round {
			if sent++; sent%fenceEvery != 0 && sent != n {
				if err := bus.NC.PublishMsg(m); err != nil {
					b.Fatal(err)
				}
				continue
			}
			if _, err := js.PublishMsgAsync(m, jetstream.WithStallWait(time.Minute)); err != nil {
				b.Fatal(err)
			}
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(5 * time.Minute):
		b.Fatal("the fill was not acknowledged")
	}
	if b.Failed() {
		b.FailNow()
	}
	s, _ := bus.JS.Stream(context.Background(), eventbus.StreamEvents)
	info, err := s.Info(context.Background())
	if err != nil || info.State.Msgs != uint64(n) {
		b.Fatalf("the stream holds %v messages, want %d (%v)", info.State.Msgs, n, err)
	}
}

// The fill's events go as plain publishes, which the stream stores without
// an ack; every fenceEvery-th is acknowledged, with at most fences of those
// in flight. The stream stores in order, so an ack says that every event
// before it is stored, and the server's ingest queue (100,000 messages)
// never holds more than fences*fenceEvery: past its bound it would drop a
// plain publish without a word. Acking each made the fill a fifth slower
// (74,000 against 94,000 events/s at two million).
const (
	fenceEvery = 2048
	fences     = 8
)

// checkEvery is how often the filler builds an event with the constructor
// too, and fails unless its own bytes are the same.
const checkEvery = 99_991

// filler splices events from templates: the status change of an account to
// states[k%2] from the other, as event.StatusChanged builds it.
type filler struct {
	observed  time.Time
	templates [][2]template // by account, by parity
	prev      [][]byte      // each account's last hash
}

// template is a real event cut where the per-event fields go.
type template struct {
	subject   string
	header    nats.Header
	before    []byte // the data up to observed_at's value
	middle    []byte // from after observed_at to the chain object
	prevState string
	curState  string
	accountID string
}

var fillStates = [2]string{"active", "credit_hold"}

func fillMeta(a int, observed time.Time, k int, prev string) event.Meta {
	m := eventtest.Meta(fmt.Sprintf("a%05d", a), map[string]string{"team": "emea"})
	m.ObservedAt = observed.Add(time.Duration(k) * time.Second) // after the stream was created
	m.Revision, m.Chain = uint64(k), event.Chain{Seq: uint64(k + 1), Prev: prev}
	return m
}

func fillEvent(a, k int, observed time.Time, prev string) (*event.Event, error) {
	return event.StatusChanged(fillMeta(a, observed, k, prev), event.EnumValue(fillStates[(k+1)%2]), event.EnumValue(fillStates[k%2]))
}

func newFiller(b *testing.B, accounts int, observed time.Time) *filler {
	f := &filler{observed: observed, templates: make([][2]template, accounts), prev: make([][]byte, accounts)}
	marker := strings.Repeat("f", 64)
	for a := range accounts {
		for parity := range 2 {
			e, err := fillEvent(a, 2+parity, observed, marker)
			if err != nil {
				b.Fatal(err)
			}
			m, _ := eventbus.Encode(e)
			d := m.Data
			obs := bytes.Index(d, []byte(`"observed_at":"`)) + len(`"observed_at":"`)
			end := obs + bytes.IndexByte(d[obs:], '"')
			chain := bytes.LastIndex(d, []byte(`"chain":{`))
			if obs < len(`"observed_at":"`) || chain < end || !bytes.HasSuffix(d, []byte(`"prev":"`+marker+`"}}`)) {
				b.Fatalf("the event's data changed shape: %s", d)
			}
			f.templates[a][parity] = template{subject: m.Subject, header: m.Header, before: d[:obs], middle: d[end:chain],
				prevState: fillStates[(parity+1)%2], curState: fillStates[parity%2], accountID: e.Data.AccountID}
		}
	}
	return f
}

// next is account a's event of round k: its link k+1.
func (f *filler) next(b *testing.B, k, a int) *nats.Msg {
	t := &f.templates[a][k%2]
	observed := f.observed.Add(time.Duration(k) * time.Second)
	d := make([]byte, 0, len(t.before)+len(t.middle)+160)
	d = append(d, t.before...)
	d = observed.AppendFormat(d, time.RFC3339Nano)
	d = append(d, t.middle...)
	d = append(d, `"chain":{"seq":`...)
	d = strconv.AppendInt(d, int64(k+1), 10)
	d = append(d, `,"prev":"`...)
	d = append(d, f.prev[a]...) // empty for the first link
	d = append(d, `"}}`...)
	check := (k*len(f.templates)+a)%checkEvery == 0
	var prev string
	if check {
		prev = string(f.prev[a])
	}
	id := event.DeterministicID(event.ProviderActivePlatform, "ap-main", t.accountID, event.TypeStatusChanged, "status", t.prevState, t.curState, uint64(k))
	hash := event.HashOf(id, d)
	f.prev[a] = append(f.prev[a][:0], hash...)
	h := make(nats.Header, len(t.header))
	for key, v := range t.header {
		h[key] = v
	}
	h["ce-id"], h[jetstream.MsgIDHeader] = []string{id}, []string{id}
	h["ce-time"] = []string{observed.Format(time.RFC3339Nano)}
	h["ce-"+event.ExtChainHash] = []string{hash}
	m := &nats.Msg{Subject: t.subject, Header: h, Data: d}
	if check {
		f.check(b, k, a, prev, m)
	}
	return m
}

// check fails unless m is the event the constructor builds.
func (f *filler) check(b *testing.B, k, a int, prev string, m *nats.Msg) {
	e, err := fillEvent(a, k, f.observed, prev)
	if err != nil {
		b.Error(err)
		return
	}
	want, _ := eventbus.Encode(e)
	if !bytes.Equal(want.Data, m.Data) || want.Subject != m.Subject || !maps.EqualFunc(want.Header, m.Header, slices.Equal) {
		b.Errorf("the filler's event %d of account %d is not the constructor's:\n%s %s %v\n%s %s %v", k, a, m.Subject, m.Data, m.Header, want.Subject, want.Data, want.Header)
	}
}
