package sink

import (
	"context"
	"slices"
	"strconv"
	"time"

	"github.com/accountwatch/accountwatch/pkg/deliverylog"
	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/route"
	"github.com/accountwatch/accountwatch/pkg/standing"
)

// Reminders (a route's repeat_interval) and standing reports (its report
// schedule) come from the alerting state, not from the stream: after each
// delivered notification the receiver records, per account, the latest
// event it told of while the account is in bad standing; every look
// reminds of those told longer than repeat_interval ago, in the account's
// thread or the digest, until an event in good standing is told. One
// replica sends each (it claims the entry with compare-and-swap); a
// reminder or report that cannot be sent is handed back for the next look.

// reminderClaim is one account's reminder in a notification.
type reminderClaim struct {
	key  string
	rev  uint64
	prev time.Time
	ev   *event.Event
}

// reportClaim is one report run.
type reportClaim struct {
	key         string
	due, before time.Time
}

// remembers reports whether notifications are recorded for reminders and
// reports.
func (r *Runtime) remembers() bool {
	return r.alert != nil && (r.tree.Repeats() || len(r.tree.Reports()) > 0)
}

// lookEvery is how often receivers look for reminders and reports due
// (0: never): a quarter of the shortest repeat_interval, between a second
// and a minute.
func (r *Runtime) lookEvery() time.Duration {
	if !r.remembers() {
		return 0
	}
	p := time.Minute
	if m := r.tree.MinRepeat(); m > 0 {
		p = min(p, max(time.Second, m/4))
	}
	return p
}

// notified records the latest event of each account of a delivered notification.
func (w *worker) notified(n *Notification) {
	latest := map[string]*event.Event{}
	var order []string
	for _, e := range n.Events {
		k := accountToken(e)
		if cur, ok := latest[k]; !ok || e.Data.Chain.Seq >= cur.Data.Chain.Seq {
			if !ok {
				order = append(order, k)
			}
			latest[k] = e
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	now := w.r.now()
	leaf := ""
	if n.Leaf != nil {
		leaf = n.Leaf.ID
	}
	for _, k := range order {
		w.r.alert.notified(ctx, w.name, leaf, latest[k], now)
	}
}

// look sends the reminders and reports that are due.
func (w *worker) look(ctx context.Context) {
	if w.r.tree.Repeats() {
		w.remind(ctx)
	}
	for _, rr := range w.r.tree.Reports() {
		if rr.Leaf.Receiver == w.name {
			w.sendReport(ctx, rr)
		}
	}
}

// remind claims the reminders due and sends them, those of one group in one
// notification (a digest's accounts together, an account in its thread).
func (w *worker) remind(ctx context.Context) {
	now := w.r.now()
	type due struct {
		claims []reminderClaim
		leaf   *Notification
	}
	byGroup := map[string]*due{}
	var keys []string
	for key, e := range w.r.alert.reminders(w.name) {
		ev := e.ev
		if later := w.r.alert.laterThan(key, e.Seq); later != nil {
			// Read, but its write to the reminder state failed or waits
			// on a notification still on its way.
			if !later.Data.Standing.Bad() {
				continue
			}
			ev = later
		}
		// The route that told; the account's latest event may be one it
		// does not take (a recovery below its min_severity).
		leaf := w.r.tree.Leaf(e.Leaf)
		if leaf == nil || leaf.Receiver != w.name {
			leaf = w.r.tree.LeafFor(ev, w.name)
		}
		if leaf == nil || leaf.RepeatInterval <= 0 || now.Before(e.NotifiedAt.Add(leaf.RepeatInterval)) {
			continue
		}
		if w.r.silences != nil {
			if _, ok := w.r.silences.Silenced(ev, now); ok {
				continue
			}
		}
		if _, _, muted := leaf.MutedBy(ev, now); muted {
			continue
		}
		if _, ok := w.r.alert.inhibitedBy(ev); ok {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		rev, ok := w.r.alert.moveReminder(cctx, key, e.rev, func(r *remindEntry) { r.NotifiedAt, r.Reminders = now.UTC(), r.Reminders+1 })
		cancel()
		if !ok {
			continue
		}
		gk := leaf.GroupKey(ev)
		d := byGroup[gk]
		if d == nil {
			d = &due{leaf: &Notification{Sink: w.r.sink, Receiver: w.name, Leaf: leaf, GroupKey: "remind|" + gk, Kind: KindReminder}}
			byGroup[gk] = d
			keys = append(keys, gk)
		}
		d.claims = append(d.claims, reminderClaim{key: key, rev: rev, prev: e.NotifiedAt, ev: ev})
	}
	slices.Sort(keys)
	for _, gk := range keys {
		d := byGroup[gk]
		slices.SortFunc(d.claims, func(a, b reminderClaim) int { return a.ev.Cloud.Time().Compare(b.ev.Cloud.Time()) })
		for _, c := range d.claims {
			d.leaf.Events = append(d.leaf.Events, c.ev)
		}
		// The account group's own deliverer: a reminder never overtakes a
		// notification of the account queued before it.
		w.enqueue(&batch{n: d.leaf, claims: d.claims, queue: gk})
	}
}

// sendReport sends rr's report when its time has come and no replica sent it.
func (w *worker) sendReport(ctx context.Context, rr *route.ReportRoute) {
	now := w.r.now()
	due := rr.Schedule.Last(now)
	if due.IsZero() {
		return
	}
	key := w.r.alert.reportKey(w.name, rr.Leaf.ID)
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	// On a first start a report is sent if its time passed less than a
	// look ago; a report missed while the notifier was down, once.
	claimed, before, err := w.r.alert.claimReport(cctx, key, due, func(d time.Time) bool { return now.Sub(d) < time.Hour })
	if err != nil {
		w.r.log.Warn("report not claimed", "sink", w.r.sink, "receiver", w.name, "route", rr.Leaf.ID, "err", err)
		return
	}
	if !claimed || now.Sub(due) > rr.Schedule.Period() {
		return
	}
	lctx, lcancel := context.WithTimeout(ctx, time.Minute)
	ix, err := standing.Load(lctx, w.r.js)
	lcancel()
	if err != nil {
		w.r.log.Warn("report: accounts' state not read; tried again next look", "sink", w.r.sink, "receiver", w.name, "err", err)
		w.r.alert.unclaimReport(ctx, key, due, before)
		return
	}
	rep := &standing.Report{Route: rr.Leaf.ID, Every: rr.Schedule.Every, Scheduled: due.In(rr.Schedule.Zone()), At: now.UTC()}
	for _, a := range ix.Bad(func(a standing.Account) bool { return rr.Takes(a.Provider, a.Instance, a.ID, a.Labels) }) {
		rep.Lines = append(rep.Lines, standing.ReportLine{Account: a, LastAlert: w.r.alert.lastAlert(w.name, a.Provider, a.Instance, a.ID)})
	}
	n := &Notification{Sink: w.r.sink, Receiver: w.name, Leaf: rr.Leaf, GroupKey: "report|" + rr.Leaf.ID, Kind: KindReport, Report: rep}
	w.enqueue(&batch{n: n, report: &reportClaim{key: key, due: due, before: before}})
}

// reportID names a report run in the delivery log.
func reportID(c *reportClaim, route string) string {
	return "report-" + route + "-" + strconv.FormatInt(c.due.Unix(), 10)
}

// settleClaims records a reminder's or a report's attempt and, should it
// have failed, hands its claims back for the next look.
func (w *worker) settleClaims(b *batch, err error, start time.Time, took time.Duration, probe bool) {
	d := Decide(err, 1, w.r.set)
	w.pace.attempted(d, probe)
	if err != nil {
		e := Classify(err)
		w.r.log.Warn("delivery failed", "sink", w.r.sink, "receiver", w.name, "kind", b.n.Kind, "reason", e.Reason, "err", err)
		w.unclaim(b)
	}
	record := func(id string) {
		rec := deliverylog.Record{Receiver: w.name, EventID: id, Attempt: 1, At: start.UTC(), Outcome: deliverylog.Delivered, Kind: b.n.Kind,
			Destination: b.n.Receipt.Destination, Status: b.n.Receipt.Status, Response: b.n.Receipt.Response, LatencyMS: float64(took.Microseconds()) / 1000}
		if len(b.n.Events) > 1 {
			rec.Notification, rec.Events = b.n.ID(), len(b.n.Events)
		}
		if err != nil {
			rec.Outcome, rec.Error = deliverylog.Failed, d.Err.Error()
			if d.Err.Reason == ReasonRateLimited {
				rec.Outcome = deliverylog.RateLimited
			}
		}
		w.r.record(rec)
	}
	if b.report != nil {
		record(reportID(b.report, b.n.Leaf.ID))
		return
	}
	for _, c := range b.claims {
		record(c.ev.ID())
	}
	if err == nil {
		w.r.metrics.Notifications.WithLabelValues(w.r.sink, w.name).Inc()
		// The next reminder is an interval after this one went out, not
		// after it was claimed (it may have waited behind others).
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		sent := w.r.now().UTC()
		for _, c := range b.claims {
			w.r.alert.moveReminder(ctx, c.key, c.rev, func(r *remindEntry) { r.NotifiedAt = sent })
		}
	}
}

// unclaim hands back the reminders or the report of a notification not sent.
func (w *worker) unclaim(b *batch) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, c := range b.claims {
		w.r.alert.moveReminder(ctx, c.key, c.rev, func(r *remindEntry) { r.NotifiedAt, r.Reminders = c.prev, max(r.Reminders-1, 0) })
	}
	if c := b.report; c != nil {
		w.r.alert.unclaimReport(ctx, c.key, c.due, c.before)
	}
}
