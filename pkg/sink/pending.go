package sink

import (
	"container/heap"
	"time"

	"github.com/accountwatch/accountwatch/pkg/deliverylog"
	"github.com/accountwatch/accountwatch/pkg/describe"
	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/route"
)

// A route's `for` (Prometheus' pending period): a change that puts an
// account in bad standing waits it out, counted from when it was observed
// (so that a restart does not start it again). Undone inside it — the same
// condition back to where it was, or recovered — neither change is sent
// (flap: drop, each recorded "resolved") or both go out as one notification
// (flap: once). A change not undone goes on to its group when the period
// ends; a change that is no problem (a recovery, an info) does not wait.

// forPrefix marks the due entries of pending periods among the groups'.
const forPrefix = "for|"

// forGroup is one condition of one account waiting out its period.
type forGroup struct {
	leaf  *route.Leaf
	items []*pending
	due   time.Time
}

func forKey(leaf *route.Leaf, e *event.Event) string {
	return leaf.ID + "|" + string(e.Data.Provider) + "|" + e.Data.Instance + "|" + e.Data.AccountID + "|" + route.Condition(e)
}

// undoes reports whether later takes first back: the field is where it was
// before first, or later is a recovery.
func undoes(first, later *event.Event) bool {
	if describe.IsRecovery(later) {
		return true
	}
	return first.Data.Previous != nil && later.Data.Current != nil && later.Data.Current.Value == first.Data.Previous.Value
}

// pendingFor holds p for its leaf's pending period, or settles it with the
// change it undoes; false when p does not wait (it goes to its group).
func (w *worker) pendingFor(p *pending, leaf *route.Leaf) bool {
	key := forKey(leaf, p.ev)
	if fg := w.forHeld[key]; fg != nil {
		if !undoes(fg.items[0].ev, p.ev) {
			fg.items = append(fg.items, p) // the account moved on: it all goes out when the period ends
			return true
		}
		delete(w.forHeld, key)
		items := append(fg.items, p)
		if leaf.Flap == route.FlapOnce {
			due := false
			for _, q := range items {
				q.flap = true
				due = w.group(q, leaf) || due
			}
			if due {
				w.flushDue(time.Now())
			}
			return true
		}
		why := "undone within the route's for (" + leaf.For.String() + ") by " + p.ev.ID() + " (" + describe.Headline(p.ev) + ")"
		for _, q := range items {
			w.r.metrics.Suppressed.WithLabelValues(w.r.sink, w.name, "resolved").Inc()
			w.r.record(deliverylog.Record{Receiver: w.name, EventID: q.ev.ID(), Outcome: deliverylog.Resolved, Reason: why})
			_ = q.msg.Ack()
			w.release(q)
		}
		return true
	}
	if describe.IsRecovery(p.ev) || p.ev.Data.Severity.Rank() < event.SeverityWarning.Rank() {
		return false
	}
	due := p.ev.Cloud.Time().Add(leaf.For)
	if !due.After(time.Now()) {
		return false // its period is over already (read late: a backlog, a restart)
	}
	w.forHeld[key] = &forGroup{leaf: leaf, items: []*pending{p}, due: due}
	heap.Push(&w.due, dueEntry{at: due, key: forPrefix + key})
	return true
}

// forDue ends a pending period: what waited goes to its group.
func (w *worker) forDue(key string, at time.Time) {
	fg := w.forHeld[key]
	if fg == nil || !fg.due.Equal(at) {
		return
	}
	delete(w.forHeld, key)
	for _, p := range fg.items {
		w.group(p, fg.leaf)
	}
}
