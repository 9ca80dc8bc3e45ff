package sink

import (
	"context"
	"errors"
	"testing"
	"time"
)

var (
	delivered = Decision{Action: Ack}
	failed    = Decision{Action: Retry, Delay: time.Hour, Err: &Error{Reason: ReasonServerError, Err: errors.New("503")}}
	refused   = Decision{Action: DeadLetter, Err: &Error{Reason: ReasonClientError, Permanent: true, Err: errors.New("400")}}
)

// pauseOver ends a pause as if its time had passed.
func (p *pacer) pauseOver() {
	p.mu.Lock()
	p.until = time.Time{}
	p.mu.Unlock()
}

func TestBreaker(t *testing.T) {
	type step struct {
		do        string // "fail", "deliver", "refuse", "probe-fail", "probe-deliver", "release", "pause-over"
		admit     bool   // admit's answer after the step
		probe     bool   // and whether it handed out the probe
		wantOpens int    // openings told so far
	}
	for _, tc := range []struct {
		name       string
		breakAfter int
		steps      []step
	}{
		{"closed below the threshold", 3, []step{{"fail", true, false, 0}, {"fail", true, false, 0}, {"deliver", true, false, 0}, {"fail", true, false, 0}, {"fail", true, false, 0}}},
		{"opens at the threshold until the retry is due", 3, []step{{"fail", true, false, 0}, {"fail", true, false, 0}, {"fail", false, false, 1}}},
		{"a failure in flight meanwhile is no new opening", 2, []step{{"fail", true, false, 0}, {"fail", false, false, 1}, {"fail", false, false, 1}}},
		{"then one probe", 1, []step{{"fail", false, false, 1}, {"pause-over", true, true, 1}}},
		{"a delivered probe closes it", 1, []step{{"fail", false, false, 1}, {"pause-over", true, true, 1}, {"probe-deliver", true, false, 1}, {"deliver", true, false, 1}}},
		{"a failed probe opens it again", 1, []step{{"fail", false, false, 1}, {"pause-over", true, true, 1}, {"probe-fail", false, false, 2}, {"pause-over", true, true, 2}}},
		{"a probe given back lets the next one in", 1, []step{{"fail", false, false, 1}, {"pause-over", true, true, 1}, {"release", true, true, 1}}},
		{"permanent failures do not count", 2, []step{{"fail", true, false, 0}, {"refuse", true, false, 0}, {"refuse", true, false, 0}, {"deliver", true, false, 0}, {"fail", true, false, 0}}},
		{"no breaker", 0, []step{{"fail", true, false, 0}, {"fail", true, false, 0}, {"fail", true, false, 0}, {"fail", true, false, 0}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opens := 0
			p := newPacer(Receiver{Name: "r"}, tc.breakAfter, func(int, time.Duration) { opens++ })
			probe := false // the probe the test holds
			for i, s := range tc.steps {
				switch s.do {
				case "fail":
					p.attempted(failed, false)
				case "deliver":
					p.attempted(delivered, false)
				case "refuse":
					p.attempted(refused, false)
				case "probe-fail", "probe-deliver":
					if !probe {
						t.Fatalf("step %d: no probe held", i)
					}
					d := failed
					if s.do == "probe-deliver" {
						d = delivered
					}
					p.attempted(d, true)
					probe = false
				case "release":
					p.release(probe)
					probe = false
				case "pause-over":
					p.pauseOver()
				}
				gotProbe, wait, ok := p.admit()
				if ok != s.admit || gotProbe != s.probe {
					t.Fatalf("step %d (%s): admit = probe %v, ok %v (wait %s); want probe %v, ok %v", i, s.do, gotProbe, ok, wait, s.probe, s.admit)
				}
				if !ok && wait <= 0 {
					t.Errorf("step %d (%s): refused with no wait", i, s.do)
				}
				if gotProbe {
					probe = true
					// While it is out, nothing else is let through.
					if _, wait, ok := p.admit(); ok || wait != probeWait {
						t.Errorf("step %d (%s): a second call let through during the probe (ok %v, wait %s)", i, s.do, ok, wait)
					}
				}
				if opens != s.wantOpens {
					t.Errorf("step %d (%s): %d openings told, want %d", i, s.do, opens, s.wantOpens)
				}
			}
		})
	}
}

// TestBreakerWaitEndsWithTheProbe: a path waiting while the probe is in
// flight waits on the probe itself, and goes on once it is settled.
func TestBreakerWaitEndsWithTheProbe(t *testing.T) {
	p := newPacer(Receiver{Name: "r"}, 1, nil)
	p.attempted(failed, false)
	p.pauseOver()
	probe, err := p.wait(context.Background())
	if err != nil || !probe {
		t.Fatalf("first wait: probe %v, err %v; want the probe", probe, err)
	}
	_, _, inFlight, ok := p.try()
	if ok || inFlight == nil {
		t.Fatalf("while the probe is out: ok %v, probe to wait on %v; want a refusal naming the probe", ok, inFlight)
	}
	got := make(chan bool, 1)
	go func() {
		probe, err := p.wait(context.Background())
		if err != nil {
			t.Error(err)
		}
		got <- probe
	}()
	p.attempted(delivered, true)
	select {
	case <-inFlight:
	default:
		t.Fatal("the probe settled, but what waits on it was not told")
	}
	if probe := <-got; probe {
		t.Error("after a delivered probe the next call is a probe; the circuit should be closed")
	}

	// A wait whose context ends gives back the probe it was handed.
	p.attempted(failed, false)
	p.pauseOver()
	p.lim.SetLimit(0) // the rate limit then never allows the call
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := p.wait(ctx); err == nil {
		t.Fatal("wait with a rate limit of zero returned no error")
	}
	if probe, _, ok := p.admit(); !ok || !probe {
		t.Errorf("after a wait that ended, admit = probe %v, ok %v; want the probe again", probe, ok)
	}
}
