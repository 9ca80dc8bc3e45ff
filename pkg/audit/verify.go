package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/accountwatch/accountwatch/pkg/deadletter"
	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/eventbus"
)

// Kinds of problems Verify reports.
const (
	// ProblemGap: stream sequences are missing (messages deleted).
	ProblemGap = "gap"
	// ProblemAltered: a message's data or id no longer match its chain hash,
	// or it does not decode.
	ProblemAltered = "altered"
	// ProblemMissing: an account's chain skips events.
	ProblemMissing = "missing"
	// ProblemBrokenLink: an event does not name its predecessor's hash (the
	// predecessor was altered, or the event was inserted).
	ProblemBrokenLink = "broken_link"
	// ProblemOutOfOrder: an account's chain goes back or repeats.
	ProblemOutOfOrder = "out_of_order"
)

// Problem is one finding, placed precisely.
type Problem struct {
	Kind    string `json:"kind"`
	Seq     uint64 `json:"seq"`
	EventID string `json:"event_id,omitempty"`
	Account string `json:"account,omitempty"` // provider/instance/account
	Detail  string `json:"detail"`
}

// Report is the result of a verification.
type Report struct {
	Stream   string    `json:"stream"`
	FirstSeq uint64    `json:"first_seq"`
	LastSeq  uint64    `json:"last_seq"`
	Events   uint64    `json:"events"`
	Accounts int       `json:"accounts"`
	Problems []Problem `json:"problems"`
	Checked  time.Time `json:"checked_at"`
}

// OK reports whether nothing was found.
func (r *Report) OK() bool { return len(r.Problems) == 0 }

type link struct {
	seq  uint64
	hash string
}

// Verify walks a whole event stream (AW_EVENTS, or another of the same
// layout) and checks that its sequence has no gap and that every account's
// hash chain is whole: each event's chain hash matches its id and data, its
// chain sequence follows the previous one of its account, and it names that
// event's hash. An account first seen mid-chain is not a problem when the
// stream's start has aged out (retention); otherwise it is.
func Verify(ctx context.Context, js jetstream.JetStream, stream string, progress Progress) (Report, error) {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return Report{}, fmt.Errorf("verify: %w", err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return Report{}, fmt.Errorf("verify: %w", err)
	}
	rep := Report{Stream: stream, FirstSeq: info.State.FirstSeq, LastSeq: info.State.LastSeq, Checked: time.Now().UTC()}
	trimmed := info.State.FirstSeq > 1
	expect := info.State.FirstSeq
	chains := map[string]link{}
	add := func(p Problem) { rep.Problems = append(rep.Problems, p) }
	err = replay(ctx, js, stream, Selection{}, progress, func(m jetstream.Msg, seq uint64, _ time.Time) error {
		rep.Events++
		if seq != expect {
			add(Problem{Kind: ProblemGap, Seq: seq, Detail: fmt.Sprintf("stream sequences %d to %d are missing", expect, seq-1)})
		}
		expect = seq + 1
		h := m.Headers()
		id := h.Get("ce-id")
		var d event.Data
		if err := json.Unmarshal(m.Data(), &d); err != nil || id == "" {
			add(Problem{Kind: ProblemAltered, Seq: seq, EventID: id, Detail: fmt.Sprintf("message on %s does not decode as an event", m.Subject())})
			return nil
		}
		acct := string(d.Provider) + "/" + d.Instance + "/" + d.AccountID
		hash := event.HashOf(id, m.Data())
		if want := h.Get("ce-" + event.ExtChainHash); want != hash {
			add(Problem{Kind: ProblemAltered, Seq: seq, EventID: id, Account: acct, Detail: fmt.Sprintf("data or id changed: hash %s…, the event says %s…", short(hash), short(want))})
		}
		prev, seen := chains[acct]
		switch {
		case !seen && d.Chain.Seq != 1 && !trimmed:
			add(Problem{Kind: ProblemMissing, Seq: seq, EventID: id, Account: acct, Detail: fmt.Sprintf("the account's first event in the stream is link %d of its chain: links 1 to %d are missing", d.Chain.Seq, d.Chain.Seq-1)})
		case !seen:
		case d.Chain.Seq <= prev.seq:
			add(Problem{Kind: ProblemOutOfOrder, Seq: seq, EventID: id, Account: acct, Detail: fmt.Sprintf("link %d comes after link %d", d.Chain.Seq, prev.seq)})
		case d.Chain.Seq > prev.seq+1:
			add(Problem{Kind: ProblemMissing, Seq: seq, EventID: id, Account: acct, Detail: fmt.Sprintf("links %d to %d of the account's chain are missing (before stream sequence %d)", prev.seq+1, d.Chain.Seq-1, seq)})
		case d.Chain.Prev != prev.hash:
			add(Problem{Kind: ProblemBrokenLink, Seq: seq, EventID: id, Account: acct, Detail: fmt.Sprintf("names predecessor %s…, but link %d as stored hashes to %s…", short(d.Chain.Prev), prev.seq, short(prev.hash))})
		}
		if !seen || d.Chain.Seq > prev.seq {
			chains[acct] = link{seq: d.Chain.Seq, hash: hash}
		}
		return nil
	})
	if err != nil {
		return rep, err
	}
	if rep.Events > 0 && expect <= info.State.LastSeq {
		rep.Problems = append(rep.Problems, Problem{Kind: ProblemGap, Seq: expect, Detail: fmt.Sprintf("stream sequences %d to %d are missing", expect, info.State.LastSeq)})
	}
	rep.Accounts = len(chains)
	if rep.Problems == nil {
		rep.Problems = []Problem{}
	}
	return rep, nil
}

func short(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

// Timeline is every event of one account, oldest first: the states it had,
// when, and from which upstream answer (each event's evidence).
func Timeline(ctx context.Context, js jetstream.JetStream, p event.Provider, instance, account string, limit int) ([]Record, error) {
	if !p.Valid() || instance == "" || account == "" {
		return nil, fmt.Errorf("%w: a timeline needs provider, instance and account", ErrInvalid)
	}
	var out []Record
	err := Replay(ctx, js, Selection{Provider: p, Instance: instance, Account: account}, nil, func(r *Record) error {
		if _, err := r.Event(); err != nil {
			return err
		}
		out = append(out, *r)
		if limit > 0 && len(out) > limit {
			out = out[1:]
		}
		return nil
	})
	return out, err
}

// Target is where a re-drive goes: a receiver of a sink (a webhook
// endpoint's id, a Slack or email receiver's name), or, with To, an ad-hoc
// destination the sink understands (a Slack channel, an email address).
type Target struct {
	Sink, Receiver, To string
}

// Redrive sends the selected events to one target through its sink's
// re-drive queue (AW_REDRIVE), each marked with the "replayed" extension. The
// originals stay as they are, and each copy carries an id of this re-drive,
// so the stream's dedup window cannot swallow it. With dryRun it only counts.
func Redrive(ctx context.Context, js jetstream.JetStream, sel Selection, to Target, dryRun bool, each func(*Record)) (int, error) {
	sink, receiver := to.Sink, to.Receiver
	if to.To != "" {
		if receiver != "" && receiver != deadletter.AdhocReceiver {
			return 0, fmt.Errorf("%w: give a receiver or an ad-hoc destination, not both", ErrInvalid)
		}
		receiver = deadletter.AdhocReceiver
	}
	if sink == "" || receiver == "" || strings.ContainsAny(sink+receiver, ".*> ") {
		return 0, fmt.Errorf("%w: re-drive needs a sink and a receiver (letters, digits, - and _) or a destination", ErrInvalid)
	}
	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	n := 0
	err := Replay(ctx, js, sel, nil, func(r *Record) error {
		n++
		if each != nil {
			each(r)
		}
		if dryRun {
			return nil
		}
		h := make(nats.Header, len(r.Raw.Header)+2)
		for k, v := range r.Raw.Header {
			if !strings.HasPrefix(k, "Nats-") {
				h[k] = v
			}
		}
		h.Set("ce-"+event.ExtReplayed, "true")
		if to.To != "" {
			h.Set(deadletter.HdrRedriveTo, to.To)
		}
		h.Set(jetstream.MsgIDHeader, "replay:"+run+":"+h.Get("ce-id"))
		m := &nats.Msg{Subject: eventbus.RedriveRoot + sink + "." + receiver + "." + strings.TrimPrefix(r.Raw.Subject, event.SubjectRoot), Header: h, Data: r.Raw.Data}
		if _, err := js.PublishMsgAsync(m, jetstream.WithExpectStream(eventbus.StreamRedrive)); err != nil {
			return fmt.Errorf("re-drive seq %d: %w", r.Seq, err)
		}
		return nil
	})
	if err != nil {
		return n, err
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-ctx.Done():
		return n, ctx.Err()
	}
	return n, nil
}
