package sink_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/sink"
)

// downReceiver fails every call while down, recording each call's start
// and how many calls were in flight then (itself included).
type downReceiver struct {
	down     atomic.Bool
	inFlight atomic.Int32
	mu       sync.Mutex
	failed   []downCall
	ok       map[string]int
}

type downCall struct {
	at       time.Time
	inFlight int32
}

func (r *downReceiver) Send(_ context.Context, n *sink.Notification) error {
	now := r.inFlight.Add(1)
	defer r.inFlight.Add(-1)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.down.Load() {
		r.failed = append(r.failed, downCall{time.Now(), now})
		return sink.Transient(sink.ReasonServerError, errors.New("503"))
	}
	if r.ok == nil {
		r.ok = map[string]int{}
	}
	for _, e := range n.Events {
		r.ok[e.ID()]++
	}
	return nil
}

func (r *downReceiver) snapshot() ([]downCall, map[string]int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ok := make(map[string]int, len(r.ok))
	for k, v := range r.ok {
		ok[k] = v
	}
	return append([]downCall(nil), r.failed...), ok
}

// TestBreakerProbesADownReceiver: 40 events for a receiver that is down.
// After AW_SINK_BREAK_AFTER failures (and what was in flight then) it gets
// no call until the retry is due; then one probe at a time, alone, until
// one is delivered; then every event, once. On both paths: a fan-out
// receiver (fast path and retry queue) and a receiver with its own consumer.
func TestBreakerProbesADownReceiver(t *testing.T) {
	const events, breakAfter, retry = 40, 3, 1500 * time.Millisecond
	for _, tc := range []struct {
		name   string
		fanout bool
	}{
		{"fan-out", true},
		{"own consumer", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			set := fast()
			set.BreakAfter = breakAfter
			set.RetrySchedule = "1500ms,1500ms,1500ms,1500ms,1500ms,1500ms,1500ms,1500ms"
			r := &downReceiver{}
			r.down.Store(true)
			evs := statuses(t, events, "brk")
			var sinkName string
			if tc.fanout {
				sinkName = "brk"
				rt, stop := runFanout(t, h, sinkName, r, set, sink.WithMetrics(h.metrics))
				defer stop()
				if err := rt.Add(sink.Receiver{Name: "ep", Filter: func(*event.Event) bool { return true }}); err != nil {
					t.Fatal(err)
				}
				rt.Start()
				h.publish(t, evs...)
			} else {
				sinkName = "test"
				h.publish(t, evs...)
				h.start(t, tree(t, `route: {receiver: ep, group_wait: 0s}`, "ep"), []sink.Receiver{{Name: "ep"}}, r, sink.WithSettings(set))
			}
			// Down until two probes have failed after the first pause.
			firstBatch := breakAfter + set.Concurrency - 1 // what may be in flight as it opens
			eventually(t, "two probes after the first pause", func() bool {
				failed, _ := r.snapshot()
				return len(failed) >= breakAfter && probesAfter(failed, failed[0].at.Add(retry*9/10)) >= 2
			})
			r.down.Store(false)
			eventually(t, "every event delivered", func() bool {
				_, ok := r.snapshot()
				return len(ok) == events
			})
			failed, ok := r.snapshot()
			for _, e := range evs {
				if ok[e.ID()] != 1 {
					t.Errorf("%s delivered %d times", e.ID(), ok[e.ID()])
				}
			}
			pauseEnds := failed[0].at.Add(retry * 9 / 10) // the schedule's wait, less its jitter
			before := len(failed) - probesAfter(failed, pauseEnds)
			if before > firstBatch {
				t.Errorf("%d calls before the retry was due, want at most %d (%d failures open the circuit, %d more may be in flight)",
					before, firstBatch, breakAfter, set.Concurrency-1)
			}
			for i, c := range failed {
				if c.at.After(pauseEnds) && c.inFlight != 1 {
					t.Errorf("failed call %d, a probe, had %d calls in flight with it; want it alone", i, c.inFlight)
				}
			}
			probes := len(failed) - before
			opened := int(testutil.ToFloat64(h.metrics.CircuitOpened.WithLabelValues(sinkName, "ep")))
			if opened != 1+probes { // the first opening, then each failed probe's
				t.Errorf("circuit opened %d times for %d failed probes, want one more than the probes", opened, probes)
			}
			t.Logf("%d events: %d failed calls (%d before the first retry was due, %d probes), circuit opened %d times", events, len(failed), before, probes, opened)
		})
	}
}

// probesAfter counts the failed calls made after t.
func probesAfter(calls []downCall, t time.Time) int {
	n := 0
	for _, c := range calls {
		if c.at.After(t) {
			n++
		}
	}
	return n
}
