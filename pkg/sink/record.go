package sink

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/accountwatch/accountwatch/pkg/deadletter"
	"github.com/accountwatch/accountwatch/pkg/deliverylog"
	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/redact"
)

// record writes one record of the delivery log, secrets redacted. A record
// that cannot be written is a missing line of diagnostics, never a reason to
// hold an event back.
func (r *Runtime) record(rec deliverylog.Record) {
	if r.deliveries == nil {
		return
	}
	rec.Sink = r.sink
	if rec.At.IsZero() {
		rec.At = time.Now().UTC()
	}
	rec.Destination, rec.Error = redact.String(rec.Destination), redact.String(rec.Error)
	if err := r.deliveries.Add(rec); err != nil {
		r.log.Warn("delivery log", "sink", r.sink, "receiver", rec.Receiver, "err", err)
	}
}

// recordAttempt writes the record of one event's attempt in notification n,
// made at start and taking took, and what the policy decided after it.
func (r *Runtime) recordAttempt(n *Notification, ev *event.Event, attempt uint64, start time.Time, took time.Duration, d Decision) {
	if r.deliveries == nil || r.failuresOnly && d.Action == Ack && attempt <= 1 && !n.Redrive {
		return
	}
	rec := deliverylog.Record{
		Receiver: n.Receiver, EventID: ev.ID(), Attempt: attempt, At: start.UTC(), Outcome: deliverylog.Delivered,
		Destination: n.Receipt.Destination, Status: n.Receipt.Status, Response: n.Receipt.Response,
		LatencyMS: float64(took.Microseconds()) / 1000, Redrive: n.Redrive,
	}
	if rec.Destination == "" {
		rec.Destination = n.RedriveTo
	}
	if len(n.Events) > 1 {
		rec.Notification, rec.Events = n.ID(), len(n.Events)
	}
	if d.Action != Ack {
		rec.Outcome, rec.Error = deliverylog.Failed, d.Err.Error()
		if rec.Status == 0 {
			rec.Status = d.Err.Status
		}
		switch {
		case n.Receipt.Outcome != "":
			rec.Outcome = n.Receipt.Outcome
		case d.Err.Reason == ReasonRateLimited:
			rec.Outcome = deliverylog.RateLimited
		}
		if d.Action == Retry {
			next := start.Add(took).Add(d.Delay).UTC()
			rec.Retry = &next
		}
	}
	r.record(rec)
}

// deadLetter stores m in the dead letters with its failure, counts and
// records it; false when the letter could not be stored (the caller hands
// the event back, so that it is never both lost and settled).
func (r *Runtime) deadLetter(ctx context.Context, receiver string, m jetstream.Msg, ev *event.Event, e *Error, attempts uint64) bool {
	var seq uint64
	if md, err := m.Metadata(); err == nil {
		seq = md.Sequence.Stream
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := r.dlq.Write(wctx, deadletter.Entry{Sink: r.sink, Receiver: receiver, Reason: string(e.Reason), Err: e, Attempts: int(attempts), OriginSeq: seq}, m.Subject(), m.Headers(), m.Data()); err != nil {
		r.log.Error("dead letter not stored; the event is handed back", "sink", r.sink, "receiver", receiver, "err", err)
		return false
	}
	r.metrics.DeadLettered.WithLabelValues(r.sink, receiver, string(e.Reason)).Inc()
	r.log.Warn("dead-lettered", "sink", r.sink, "receiver", receiver, "subject", m.Subject(), "reason", e.Reason, "attempts", attempts)
	id := m.Headers().Get("ce-id") // an undecodable message may still name its event
	if ev != nil {
		id = ev.ID()
	}
	r.record(deliverylog.Record{Receiver: receiver, EventID: id, Attempt: attempts, Outcome: deliverylog.DeadLettered, Reason: string(e.Reason), Error: e.Error()})
	return true
}
