// Package deliverylog keeps what became of every event at every receiver of
// every sink: one record per delivery attempt (time, receiver, destination,
// outcome, status, latency, error, a truncated response) and one per
// non-delivery with its reason (silenced by which silence, muted until when
// by which interval, grouped into which notification, dead-lettered,
// re-driven), in the AW_DELIVERIES stream, queryable per receiver and per
// event. The sink runtime writes them (pkg/sink), the audit console and awctl
// read them. It is a diagnostic log beside the audit log: records are
// published as plain NATS messages that the stream captures, without asking
// for an ack, so a slow log never slows a delivery (a record lost to a server
// restart is a missing line of diagnostics, never a lost event); they expire
// (AW_DELIVERY_LOG_RETENTION).
package deliverylog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/accountwatch/accountwatch/pkg/eventbus"
)

// Stream and subject root of the log: aw.deliveries.<sink>.<receiver>.<event token>.
const (
	Stream = "AW_DELIVERIES"
	Root   = "aw.deliveries."
)

// MaxResponse bounds the response text kept with a record.
const MaxResponse = 1024

// Outcomes of a record. The first four are attempts (a sender was called);
// the others say why an event was not, or not on its own, delivered.
const (
	Delivered   = "delivered"
	Failed      = "failed"
	RateLimited = "rate_limited"
	// Disabled: the attempt failed and disabled its destination (a webhook
	// endpoint that answered 410 Gone).
	Disabled = "disabled"

	// Silenced: an operator's silence (Reason: its id) dropped the event.
	Silenced = "silenced"
	// Muted: a mute time interval (Reason: its name) deferred the event to Until.
	Muted = "muted"
	// Grouped: the event went out in a notification of several (Notification,
	// Events), whose attempts follow under the same notification id.
	Grouped = "grouped"
	// DeadLettered: moved to the dead letters (Reason: the failure class).
	DeadLettered = "dead_lettered"
	// Redriven: an operator sent the event again (Destination: where to, for
	// a re-drive to an ad-hoc destination).
	Redriven = "redriven"
	// Inhibited: an inhibit rule (Reason: its name and the source event)
	// held the event back while its source holds.
	Inhibited = "inhibited"
	// Resolved: the change was undone inside its route's pending period
	// (`for`; Reason: by which event), and flap: drop sends neither.
	Resolved = "resolved"
)

// Kinds of a record's notification besides an event's own.
const (
	// KindReminder: a reminder that the account is still in bad standing
	// (repeat_interval); EventID is the event that put it there.
	KindReminder = "reminder"
	// KindReport: a standing report; EventID names the report run.
	KindReport = "report"
)

// Attempted reports whether an outcome is an attempt's (a sender was called).
func Attempted(outcome string) bool {
	switch outcome {
	case Delivered, Failed, RateLimited, Disabled:
		return true
	}
	return false
}

// Record is one attempt, or one non-delivery, of one event at one receiver.
type Record struct {
	Sink     string    `json:"sink"`
	Receiver string    `json:"receiver"`
	EventID  string    `json:"event_id"`
	Attempt  uint64    `json:"attempt,omitempty"`
	At       time.Time `json:"at"`
	// Outcome is one of the constants above.
	Outcome string `json:"outcome"`
	// Destination is where the attempt went (a channel, addresses, a URL with
	// any secret redacted).
	Destination string  `json:"destination,omitempty"`
	Status      int     `json:"status,omitempty"`
	LatencyMS   float64 `json:"latency_ms,omitempty"`
	Error       string  `json:"error,omitempty"`
	Response    string  `json:"response,omitempty"`
	// Retry is when a failed attempt's event is tried again (none: this was
	// the last, and a dead_lettered record follows).
	Retry *time.Time `json:"retry_at,omitempty"`
	// Reason says what held a non-delivery back: a silence's id, a mute
	// interval's name, a dead letter's failure class.
	Reason string `json:"reason,omitempty"`
	// Until is when a muted event is taken up again.
	Until *time.Time `json:"until,omitempty"`
	// Notification names the notification of several events this one went
	// out in, Events how many it held.
	Notification string `json:"notification,omitempty"`
	Events       int    `json:"events,omitempty"`
	Redrive      bool   `json:"redrive,omitempty"`
	Test         bool   `json:"test,omitempty"`
	// Kind is KindReminder or KindReport for those notifications.
	Kind string `json:"kind,omitempty"`
	// Seq is the record's sequence in the log (set when read).
	Seq uint64 `json:"seq,omitempty"`
}

// Describe says what a record means, in words: where an attempt went and
// what follows it, or what held the event back.
func (r Record) Describe() string {
	var b strings.Builder
	switch r.Outcome {
	case Silenced:
		fmt.Fprintf(&b, "silenced by silence %s", r.Reason)
	case Muted:
		fmt.Fprintf(&b, "muted by time interval %s", r.Reason)
		if r.Until != nil {
			fmt.Fprintf(&b, " until %s", stamp(*r.Until))
		}
	case Grouped:
		fmt.Fprintf(&b, "grouped into notification %s of %d events (%s)", r.Notification, r.Events, r.Reason)
	case DeadLettered:
		fmt.Fprintf(&b, "dead-lettered after %d attempts (%s): %s", r.Attempt, r.Reason, r.Error)
	case Redriven:
		b.WriteString(r.Reason)
		if r.Destination != "" {
			fmt.Fprintf(&b, ", to %s", r.Destination)
		}
	case Inhibited:
		fmt.Fprintf(&b, "inhibited by %s", r.Reason)
	case Resolved:
		fmt.Fprintf(&b, "not sent: %s", r.Reason)
	default: // an attempt
		if r.Kind != "" {
			fmt.Fprintf(&b, "%s ", r.Kind)
		}
		if r.Destination != "" {
			fmt.Fprintf(&b, "to %s", r.Destination)
		}
		if r.Notification != "" {
			fmt.Fprintf(&b, " in notification %s of %d events", r.Notification, r.Events)
		}
		if r.Error != "" {
			fmt.Fprintf(&b, "; %s", r.Error)
		}
		switch {
		case r.Retry != nil:
			fmt.Fprintf(&b, "; next attempt %s", stamp(*r.Retry))
		case r.Outcome != Delivered:
			b.WriteString("; no further attempt")
		}
		if r.Test {
			b.WriteString(" (test delivery)")
		}
	}
	return strings.TrimPrefix(b.String(), "; ")
}

func stamp(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") }

// StreamConfig is the log's stream: file storage, expiring by age.
func StreamConfig(c eventbus.Config, retention time.Duration) jetstream.StreamConfig {
	cfg := jetstream.StreamConfig{
		Name:        Stream,
		Description: "accountwatch delivery attempts of every sink (diagnostics; expires)",
		Subjects:    []string{Root + ">"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		MaxAge:      retention,
		Replicas:    c.Replicas,
		// The server's default, stated so that a restart finds what it expects.
		Duplicates:  2 * time.Minute,
		AllowDirect: true,
	}
	if c.Replicas <= 1 {
		// Records are published without an ack already (a diagnostic log), so
		// the server need not write each one to its file before the next: it
		// flushes them in batches, a third of its cost per record. (A
		// replicated stream batches through its Raft log anyway, and the
		// server refuses the mode there.)
		cfg.PersistMode = jetstream.AsyncPersistMode
	}
	return cfg
}

// Log writes and reads records.
type Log struct {
	js     jetstream.JetStream
	stream jetstream.Stream
}

// Open ensures the stream and opens it.
func Open(ctx context.Context, js jetstream.JetStream, cfg jetstream.StreamConfig) (*Log, error) {
	if err := eventbus.EnsureStream(ctx, js, cfg); err != nil {
		return nil, err
	}
	s, err := js.Stream(ctx, cfg.Name)
	if err != nil {
		return nil, fmt.Errorf("delivery log: %w", err)
	}
	return &Log{js: js, stream: s}, nil
}

// ErrNoLog is returned by Existing when no sink has created the log yet.
var ErrNoLog = errors.New("no delivery log yet (no sink has run)")

// Existing opens the log without creating it or changing its settings:
// for readers (awctl) that must not impose a retention.
func Existing(ctx context.Context, js jetstream.JetStream) (*Log, error) {
	s, err := js.Stream(ctx, Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, ErrNoLog
	}
	if err != nil {
		return nil, fmt.Errorf("delivery log: %w", err)
	}
	return &Log{js: js, stream: s}, nil
}

func subject(sink, receiver, eventID string) string {
	return Root + sink + "." + receiver + "." + eventbus.KeyToken(eventID)
}

// Add publishes a record; the stream stores it without acknowledging.
// Records of an event whose id is unknown (a message that is no event) go
// under the id "-".
func (l *Log) Add(r Record) error {
	if r.EventID == "" {
		r.EventID = "-"
	}
	if len(r.Response) > MaxResponse {
		r.Response = r.Response[:MaxResponse] + "…"
	}
	// The connection copies the record into its buffer: bp is free once
	// Publish returns.
	bp := recordBufs.Get().(*[]byte)
	defer recordBufs.Put(bp)
	b, err := r.appendJSON((*bp)[:0])
	if err != nil {
		return err
	}
	if cap(b) <= maxPooled { // an outsized record's buffer is left to the collector
		*bp = b[:0]
	}
	return l.js.Conn().Publish(subject(r.Sink, r.Receiver, r.EventID), b)
}

// Query selects records.
type Query struct {
	Sink, Receiver, EventID string
	Since                   time.Time
	// Limit keeps the newest Limit records (default 100, at most 1000).
	Limit int
}

// List returns the newest records q selects, oldest first.
func (l *Log) List(ctx context.Context, q Query) ([]Record, error) {
	filter := Root + star(q.Sink) + "." + star(q.Receiver) + "."
	if q.EventID != "" {
		filter += eventbus.KeyToken(q.EventID)
	} else {
		filter += "*"
	}
	if q.Limit <= 0 {
		q.Limit = 100
	}
	q.Limit = min(q.Limit, 1000)
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter}}
	if !q.Since.IsZero() {
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &q.Since
	}
	info, err := l.stream.Info(ctx, jetstream.WithSubjectFilter(filter))
	if err != nil {
		return nil, fmt.Errorf("delivery log: %w", err)
	}
	var total uint64
	for _, n := range info.State.Subjects {
		total += n
	}
	if total == 0 {
		return nil, nil
	}
	c, err := l.stream.OrderedConsumer(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("delivery log: %w", err)
	}
	// One long pull, not Next per record: an ordered consumer's Next creates
	// its consumer anew on every call.
	it, err := c.Messages(jetstream.PullMaxMessages(int(min(total, 1024))))
	if err != nil {
		return nil, fmt.Errorf("delivery log: %w", err)
	}
	defer it.Stop()
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	var out []Record
	for {
		m, err := it.Next(jetstream.NextMaxWait(2 * time.Second))
		if errors.Is(err, jetstream.ErrNoMessages) || errors.Is(err, nats.ErrTimeout) {
			break
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, fmt.Errorf("delivery log: %w", err)
		}
		md, mdErr := m.Metadata()
		var r Record
		if json.Unmarshal(m.Data(), &r) == nil {
			if mdErr == nil {
				r.Seq = md.Sequence.Stream
			}
			out = append(out, r)
			if len(out) > q.Limit {
				out = slices.Delete(out, 0, 1)
			}
		}
		if mdErr != nil || md.NumPending == 0 {
			break
		}
	}
	return out, nil
}

func star(s string) string {
	if s == "" {
		return "*"
	}
	return s
}
