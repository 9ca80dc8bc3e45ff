// Package audit reads the event stream as the audit log it is: replay of a
// selection (time or sequence range, provider, instance, account, types,
// severity) in stream order, read-only through an ordered consumer; export as
// CloudEvents JSON lines, CSV or a table; verification of every account's hash
// chain and of the stream's sequence continuity; an account's timeline.
package audit

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/eventbus"
)

// ErrInvalid is returned for a selection that cannot be used.
var ErrInvalid = errors.New("invalid selection")

// Selection chooses events; zero fields select everything.
type Selection struct {
	Since, Until   time.Time // by the stream's time of storage; Until exclusive
	FromSeq, ToSeq uint64    // inclusive stream sequences
	Provider       event.Provider
	Instance       string
	Account        string
	Types          []event.Type
	MinSeverity    event.Severity
	// Limit stops after this many events (0: no limit).
	Limit int
}

// Validate checks the selection, naming the field at fault.
func (s *Selection) Validate() error {
	switch {
	case s.Provider != "" && !s.Provider.Valid():
		return fmt.Errorf("%w: provider %q", ErrInvalid, s.Provider)
	case s.Instance != "" && event.ValidateInstance(s.Instance) != nil:
		return fmt.Errorf("%w: instance %q", ErrInvalid, s.Instance)
	case s.MinSeverity != "" && s.MinSeverity.Rank() == 0:
		return fmt.Errorf("%w: severity %q", ErrInvalid, s.MinSeverity)
	case s.ToSeq != 0 && s.ToSeq < s.FromSeq:
		return fmt.Errorf("%w: sequence range %d-%d", ErrInvalid, s.FromSeq, s.ToSeq)
	case !s.Until.IsZero() && !s.Since.IsZero() && !s.Until.After(s.Since):
		return fmt.Errorf("%w: until %s is not after since %s", ErrInvalid, s.Until.Format(time.RFC3339), s.Since.Format(time.RFC3339))
	case s.Limit < 0:
		return fmt.Errorf("%w: limit %d", ErrInvalid, s.Limit)
	}
	for _, t := range s.Types {
		if !t.Valid() {
			return fmt.Errorf("%w: type %q", ErrInvalid, t)
		}
	}
	return nil
}

// whole reports whether the selection takes every subject of the stream.
func (s *Selection) whole() bool {
	return s.Provider == "" && s.Instance == "" && s.Account == "" && len(s.Types) == 0
}

// filters are the consumer's subject filters: the server skips what they
// exclude, so a replay of one account reads only that account's messages.
func (s *Selection) filters() []string {
	if s.whole() {
		// No filter rather than one that matches every subject: the server
		// then reads blocks in order without matching each message's subject.
		return nil
	}
	if len(s.Types) == 0 {
		return []string{event.FilterSubject(s.Provider, s.Instance, "", s.Account)}
	}
	out := make([]string, 0, len(s.Types))
	for _, t := range s.Types {
		out = append(out, event.FilterSubject(s.Provider, s.Instance, t, s.Account))
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Record is one replayed event with its place in the stream. The event is
// decoded on first use: an export to JSON lines never needs to.
type Record struct {
	Seq    uint64
	Stored time.Time
	// Raw is the message as stored (binary content mode).
	Raw *nats.Msg
	ev  *event.Event
}

// Event decodes the record's event (once).
func (r *Record) Event() (*event.Event, error) {
	if r.ev == nil {
		ev, err := eventbus.Decode(r.Raw)
		if err != nil {
			return nil, fmt.Errorf("seq %d: %w", r.Seq, err)
		}
		r.ev = ev
	}
	return r.ev, nil
}

// Progress is told how far a replay got: done of about total messages.
type Progress func(done, total uint64)

// Replay calls fn with each selected event in stream order, reading from an
// ordered consumer (read-only: nothing is acknowledged or changed). It stops
// at the last message stored when it started, so it ends even while events
// keep coming. A message that does not decode is an error.
func Replay(ctx context.Context, js jetstream.JetStream, sel Selection, progress Progress, fn func(*Record) error) error {
	return replay(ctx, js, eventbus.StreamEvents, sel, progress, func(m jetstream.Msg, seq uint64, stored time.Time) error {
		h := m.Headers()
		if sel.MinSeverity != "" && event.Severity(h.Get("ce-"+event.ExtSeverity)).Rank() < sel.MinSeverity.Rank() {
			return errSkip
		}
		return fn(&Record{Seq: seq, Stored: stored, Raw: &nats.Msg{Subject: m.Subject(), Header: h, Data: m.Data()}})
	})
}

var errSkip = errors.New("skip")

// firstWait bounds the wait for a replay's first message.
const firstWait = 3 * time.Second

// matches reports whether any message of the selection's subjects is stored
// at or after its start sequence: an empty replay ends at once.
func matches(ctx context.Context, stream jetstream.Stream, sel Selection) (bool, error) {
	if sel.whole() {
		return true, nil // the whole stream, which is not empty (a wildcard lookup would scan every subject)
	}
	for _, f := range sel.filters() {
		m, err := stream.GetMsg(ctx, max(sel.FromSeq, 1), jetstream.WithGetMsgSubject(f))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return false, fmt.Errorf("replay: %w", err)
		}
		if sel.ToSeq == 0 || m.Sequence <= sel.ToSeq {
			return true, nil
		}
	}
	return false, nil
}

// replay walks stream messages of a selection, raw.
func replay(ctx context.Context, js jetstream.JetStream, streamName string, sel Selection, progress Progress, fn func(m jetstream.Msg, seq uint64, stored time.Time) error) error {
	if err := sel.Validate(); err != nil {
		return err
	}
	stream, err := js.Stream(ctx, streamName)
	if err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	last := info.State.LastSeq
	if sel.ToSeq != 0 && sel.ToSeq < last {
		last = sel.ToSeq
	}
	if info.State.Msgs == 0 || last < sel.FromSeq {
		return nil
	}
	if !sel.Since.IsZero() && sel.Since.After(info.State.LastTime) {
		return nil
	}
	if any, err := matches(ctx, stream, sel); err != nil || !any {
		return err
	}
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: sel.filters()}
	switch {
	case sel.FromSeq > 0:
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, sel.FromSeq
	case !sel.Since.IsZero():
		since := sel.Since
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &since
	}
	cons, err := stream.OrderedConsumer(ctx, cfg)
	if err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	first := max(info.State.FirstSeq, sel.FromSeq)
	total := last - min(first, last) + 1
	it, err := cons.Messages(jetstream.PullMaxMessages(4096))
	if err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	defer it.Stop()
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	n := 0
	for started := false; ; started = true {
		var m jetstream.Msg
		if started {
			m, err = it.Next()
		} else {
			// Something matches at or after the start, unless it lies before
			// Since; the first message then never comes, and waiting ends it.
			m, err = it.Next(jetstream.NextMaxWait(firstWait))
			if errors.Is(err, nats.ErrTimeout) || errors.Is(err, jetstream.ErrNoMessages) {
				return nil
			}
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("replay: %w", err)
		}
		md, err := m.Metadata()
		if err != nil {
			return fmt.Errorf("replay: %w", err)
		}
		seq := md.Sequence.Stream
		if seq > last || !sel.Until.IsZero() && !md.Timestamp.Before(sel.Until) {
			break
		}
		if err := fn(m, seq, md.Timestamp); err == nil {
			n++
		} else if !errors.Is(err, errSkip) {
			return err
		}
		if progress != nil {
			progress(seq-first+1, total)
		}
		if sel.Limit > 0 && n >= sel.Limit || seq >= last || md.NumPending == 0 {
			break
		}
	}
	return nil
}
