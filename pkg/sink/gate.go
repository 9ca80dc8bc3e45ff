package sink

import (
	"context"
	"time"
)

// gate keeps a receiver's notifications in order across a restart. An
// instance that was killed leaves the events it held unacknowledged; the
// server hands them out again only after AckWait, and meanwhile the new
// instance would read and send newer changes of the same accounts first
// (a thread ending on a stale "credit hold"). So a receiver whose consumer
// has events pending when it starts holds back every event newer than the
// last one delivered then, until the old ones are settled (the ack floor
// passes them) or AckWait and a fifth have passed (another live replica
// may hold them, or they wait out a mute interval). Held events are kept
// alive like any other.
type gate struct {
	below uint64 // the last stream sequence delivered to the previous instance
	until time.Time
	every time.Duration
	held  []*pending
}

// newGate is the gate of a consumer that has pending events up to delivered.
func newGate(pending int, delivered uint64, ackWait time.Duration) *gate {
	if pending == 0 {
		return nil
	}
	return &gate{below: delivered, until: time.Now().Add(ackWait + ackWait/5), every: max(time.Second, ackWait/20)}
}

// gateHolds holds p back when the gate is closed and p is newer than what
// it waits for.
func (w *worker) gateHolds(p *pending) bool {
	g := w.gate
	if g == nil || p.streamSeq() <= g.below {
		return false
	}
	w.hold(p)
	g.held = append(g.held, p)
	return true
}

// gateHeld returns (and forgets) what the gate holds.
func (w *worker) gateHeld() []*pending {
	if w.gate == nil {
		return nil
	}
	held := w.gate.held
	w.gate.held = nil
	return held
}

// openGate opens the gate once the old events are settled or it waited
// long enough; what it held is taken in order. True once open.
func (w *worker) openGate(ctx context.Context) bool {
	g := w.gate
	if g == nil {
		return true
	}
	if time.Now().Before(g.until) && w.main != nil {
		ictx, cancel := context.WithTimeout(ctx, 5*time.Second)
		info, err := w.main.Info(ictx)
		cancel()
		if err != nil || info.AckFloor.Stream < g.below {
			return false
		}
	}
	w.gate = nil
	for _, p := range g.held {
		w.release(p)
		w.accept(inbound{msg: p.msg})
	}
	return true
}
