// Package deadletter keeps what a sink could not deliver: the original event
// message with the error, the attempt count and the sink attached, in the
// AW_DLQ stream; and sends it back to its receiver on request (re-drive),
// through the AW_REDRIVE work queue, never through the audit log.
package deadletter

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/eventbus"
	"github.com/accountwatch/accountwatch/pkg/redact"
)

// Headers a dead letter carries besides the original message's own.
const (
	HdrSink      = "Aw-Dlq-Sink"
	HdrReceiver  = "Aw-Dlq-Receiver"
	HdrReason    = "Aw-Dlq-Reason"
	HdrError     = "Aw-Dlq-Error"
	HdrAttempts  = "Aw-Dlq-Attempts"
	HdrOrigin    = "Aw-Dlq-Origin"     // the subject the message was consumed from
	HdrOriginSeq = "Aw-Dlq-Origin-Seq" // its sequence in that stream
	HdrTime      = "Aw-Dlq-Time"
	// HdrRedriveOf is set on a re-driven message: the dead letter's sequence in AW_DLQ.
	HdrRedriveOf = "Aw-Redrive-Of"
	// HdrRedriveTo carries the destination of a re-drive to AdhocReceiver.
	HdrRedriveTo = "Aw-Redrive-To"
	// HdrEventSubject is, on a message in a re-drive queue, the subject the
	// event it carries was published on: the queue's subject names only the
	// sink and the receiver (RedriveSubject).
	HdrEventSubject = "Aw-Event-Subject"
)

// AdhocReceiver is the receiver name of re-drives to a destination that no
// configured receiver names (a Slack channel, an email address); every
// notifier takes its re-drives and reads the destination from HdrRedriveTo.
const AdhocReceiver = "adhoc"

// ErrNotFound is returned when a dead letter does not exist (any more).
var ErrNotFound = errors.New("dead letter not found")

// maxErrorLen bounds the error text kept with a letter.
const maxErrorLen = 2048

// Entry is what a sink says about a message it gives up on.
type Entry struct {
	Sink, Receiver string
	// Reason is a short class ("client_error", "rate_limited", "invalid_event", ...).
	Reason   string
	Err      error
	Attempts int
	// OriginSeq is the message's sequence in the stream it was consumed from.
	OriginSeq uint64
}

// Letter is a stored dead letter.
type Letter struct {
	Seq       uint64      `json:"seq"`
	Sink      string      `json:"sink"`
	Receiver  string      `json:"receiver"`
	Reason    string      `json:"reason"`
	Error     string      `json:"error"`
	Attempts  int         `json:"attempts"`
	Origin    string      `json:"origin"`
	OriginSeq uint64      `json:"origin_seq"`
	At        time.Time   `json:"at"`
	EventID   string      `json:"event_id"`
	EventType string      `json:"event_type"`
	AccountID string      `json:"account_id"`
	Header    nats.Header `json:"-"`
	Data      []byte      `json:"-"`
}

// tail is the part of an event subject after its root, or of a dead-letter or
// an older version's re-drive subject after its sink and receiver:
// provider.instance.type.account.
func tail(subject string) string {
	if rest, ok := strings.CutPrefix(subject, event.SubjectRoot); ok {
		return rest
	}
	for _, root := range []string{eventbus.RedriveRoot, eventbus.DeadLetterRoot} {
		if rest, ok := strings.CutPrefix(subject, root); ok {
			if parts := strings.SplitN(rest, ".", 3); len(parts) == 3 {
				return parts[2]
			}
		}
	}
	return "unknown"
}

// eventSubject is the subject of the event a message consumed from subject
// carries: its HdrEventSubject in a re-drive queue, else what the subject's
// tail says (an event's own subject, an older version's re-drive subject).
func eventSubject(subject string, h nats.Header) string {
	if s := h.Get(HdrEventSubject); s != "" {
		return s
	}
	return event.SubjectRoot + tail(subject)
}

// Subject is where a letter of sink/receiver about an event published on
// eventSubject is kept.
func Subject(sink, receiver, eventSubject string) string {
	return eventbus.DeadLetterRoot + sink + "." + receiver + "." + tail(eventSubject)
}

// RedriveSubject is sink/receiver's re-drive queue: one literal subject per
// receiver, so that the queue's consumer finds its next message through the
// stream's index of subjects. An older version put the event's subject after
// the receiver, a subject per event: a consumer filtering on a wildcard then
// reads past every other receiver's messages to find its own, and a thousand
// failing webhook endpoints' consumers doing so were the server's largest
// cost.
func RedriveSubject(sink, receiver string) string {
	return eventbus.RedriveRoot + sink + "." + receiver + ".queue"
}

// RedriveFilter is the subject filter of every re-drive of sink/receiver,
// RedriveSubject's and the older layout's.
func RedriveFilter(sink, receiver string) string {
	return eventbus.RedriveRoot + sink + "." + receiver + ".>"
}

// RedriveMsg is a message for sink/receiver's re-drive queue carrying the
// event published on eventSubject; h is its header, and gains
// HdrEventSubject.
func RedriveMsg(sink, receiver, eventSubject string, h nats.Header, data []byte) *nats.Msg {
	h.Set(HdrEventSubject, eventSubject)
	return &nats.Msg{Subject: RedriveSubject(sink, receiver), Header: h, Data: data}
}

// Writer stores dead letters.
type Writer struct {
	js  jetstream.JetStream
	now func() time.Time
}

// NewWriter writes to AW_DLQ through js.
func NewWriter(js jetstream.JetStream) *Writer { return &Writer{js: js, now: time.Now} }

// Write stores m (the original message) as a dead letter and waits for the
// stream's ack: only then may the caller terminate the original.
func (w *Writer) Write(ctx context.Context, e Entry, subject string, header nats.Header, data []byte) error {
	h := make(nats.Header, len(header)+8)
	for k, v := range header {
		if k == jetstream.MsgIDHeader || strings.HasPrefix(k, "Nats-") || strings.HasPrefix(k, "Aw-Dlq-") {
			continue
		}
		h[k] = append([]string(nil), v...)
	}
	msg := "unknown error"
	if e.Err != nil {
		msg = redact.String(e.Err.Error())
	}
	if len(msg) > maxErrorLen {
		msg = msg[:maxErrorLen] + "…"
	}
	h.Set(HdrSink, e.Sink)
	h.Set(HdrReceiver, e.Receiver)
	h.Set(HdrReason, e.Reason)
	h.Set(HdrError, strings.ReplaceAll(msg, "\n", " "))
	h.Set(HdrAttempts, strconv.Itoa(e.Attempts))
	h.Set(HdrOrigin, subject)
	h.Set(HdrOriginSeq, strconv.FormatUint(e.OriginSeq, 10))
	h.Set(HdrTime, w.now().UTC().Format(time.RFC3339Nano))
	// A sink that crashed after writing but before terminating writes the same
	// letter again on redelivery; this id lets the stream drop the copy.
	h.Set(jetstream.MsgIDHeader, fmt.Sprintf("dlq:%s:%s:%s:%d", e.Sink, e.Receiver, subject, e.OriginSeq))
	out := &nats.Msg{Subject: Subject(e.Sink, e.Receiver, eventSubject(subject, header)), Header: h, Data: data}
	if _, err := w.js.PublishMsg(ctx, out, jetstream.WithExpectStream(eventbus.StreamDeadLetter)); err != nil {
		return fmt.Errorf("dead-letter %s: %w", out.Subject, err)
	}
	return nil
}

// Filter selects letters.
type Filter struct {
	Sink, Receiver string
	// Since and Until bound the time the letter was written (zero: unbounded).
	Since, Until time.Time
	// Limit caps the result (0: no cap).
	Limit int
}

func (f Filter) subject() string {
	s := eventbus.DeadLetterRoot + "*.*.>"
	if f.Sink != "" {
		s = eventbus.DeadLetterRoot + f.Sink + ".*.>"
		if f.Receiver != "" {
			s = eventbus.DeadLetterRoot + f.Sink + "." + f.Receiver + ".>"
		}
	} else if f.Receiver != "" {
		s = eventbus.DeadLetterRoot + "*." + f.Receiver + ".>"
	}
	return s
}

// Store lists and re-drives dead letters.
type Store struct {
	js     jetstream.JetStream
	stream jetstream.Stream
	roster Roster
}

// Option configures a Store.
type Option func(*Store)

// WithRoster makes Redrive refuse a letter whose sink or receiver no longer
// exists (it would wait in AW_REDRIVE for a consumer that never comes).
func WithRoster(r Roster) Option { return func(s *Store) { s.roster = r } }

// Open opens AW_DLQ.
func Open(ctx context.Context, js jetstream.JetStream, opts ...Option) (*Store, error) {
	st, err := js.Stream(ctx, eventbus.StreamDeadLetter)
	if err != nil {
		return nil, fmt.Errorf("dead-letter stream: %w", err)
	}
	s := &Store{js: js, stream: st}
	for _, o := range opts {
		o(s)
	}
	return s, nil
}

// List returns the letters f selects, oldest first.
func (s *Store) List(ctx context.Context, f Filter) ([]Letter, error) {
	var out []Letter
	subj := f.subject()
	for seq := uint64(1); f.Limit == 0 || len(out) < f.Limit; {
		raw, err := s.stream.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subj))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("list dead letters: %w", err)
		}
		seq = raw.Sequence + 1
		l := decode(raw)
		if !f.Since.IsZero() && l.At.Before(f.Since) || !f.Until.IsZero() && !l.At.Before(f.Until) {
			continue
		}
		out = append(out, l)
	}
	return out, nil
}

// Get returns one letter by its sequence in AW_DLQ.
func (s *Store) Get(ctx context.Context, seq uint64) (Letter, error) {
	raw, err := s.stream.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return Letter{}, fmt.Errorf("%w: %d", ErrNotFound, seq)
	}
	if err != nil {
		return Letter{}, fmt.Errorf("dead letter %d: %w", seq, err)
	}
	return decode(raw), nil
}

// Redrive sends a letter back to its receiver and removes it from AW_DLQ.
// The re-drive carries the original message (its CloudEvent unchanged) and
// HdrRedriveOf; its id makes a second re-drive of the same letter a no-op.
func (s *Store) Redrive(ctx context.Context, seq uint64) (Letter, error) {
	l, err := s.Get(ctx, seq)
	if err != nil {
		return Letter{}, err
	}
	if s.roster != nil {
		to := ""
		if l.Receiver == AdhocReceiver {
			to = l.Header.Get(HdrRedriveTo)
		}
		if err := CheckTarget(ctx, s.roster, l.Sink, l.Receiver, to); err != nil {
			return l, fmt.Errorf("re-drive %d: %w", seq, err)
		}
	}
	h := make(nats.Header, len(l.Header))
	for k, v := range l.Header {
		if !strings.HasPrefix(k, "Aw-Dlq-") && !strings.HasPrefix(k, "Nats-") {
			h[k] = v
		}
	}
	h.Set(HdrRedriveOf, strconv.FormatUint(seq, 10))
	h.Set(jetstream.MsgIDHeader, "redrive:"+strconv.FormatUint(seq, 10))
	m := RedriveMsg(l.Sink, l.Receiver, eventSubject(l.Origin, l.Header), h, l.Data)
	if _, err := s.js.PublishMsg(ctx, m, jetstream.WithExpectStream(eventbus.StreamRedrive)); err != nil {
		return Letter{}, fmt.Errorf("re-drive %d: %w", seq, err)
	}
	if err := s.stream.DeleteMsg(ctx, seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		return Letter{}, fmt.Errorf("re-drive %d: sent, but not removed from the dead letters: %w", seq, err)
	}
	return l, nil
}

func decode(raw *jetstream.RawStreamMsg) Letter {
	h := raw.Header
	attempts, _ := strconv.Atoi(h.Get(HdrAttempts))
	oseq, _ := strconv.ParseUint(h.Get(HdrOriginSeq), 10, 64)
	at, _ := time.Parse(time.RFC3339Nano, h.Get(HdrTime))
	return Letter{
		Seq: raw.Sequence, Sink: h.Get(HdrSink), Receiver: h.Get(HdrReceiver), Reason: h.Get(HdrReason),
		Error: h.Get(HdrError), Attempts: attempts, Origin: h.Get(HdrOrigin), OriginSeq: oseq, At: at,
		EventID: h.Get("ce-id"), EventType: h.Get("ce-type"), AccountID: h.Get("ce-subject"),
		Header: h, Data: raw.Data,
	}
}
