package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/accountwatch/accountwatch/pkg/deliverylog"
	"github.com/accountwatch/accountwatch/pkg/describe"
	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/eventbus"
	"github.com/accountwatch/accountwatch/pkg/silence"
)

// EventPage is the data of an event's page.
type EventPage struct {
	Seq                       uint64
	Stored                    time.Time
	Event                     *event.Event
	Headline, Change, Account string
	JSON                      string
	// Deliveries are the event's delivery-log records, oldest first.
	Deliveries []deliverylog.Record
	// Sinks are the same records per sink and receiver: Slack, email and
	// webhooks always (an auditor must see that a sink has nothing), then
	// any other sink that wrote some.
	Sinks []SinkDeliveries
}

// SinkDeliveries are what one sink did with the event.
type SinkDeliveries struct {
	Sink, Title string
	Receivers   []ReceiverDeliveries
}

// ReceiverDeliveries are one receiver's records of the event.
type ReceiverDeliveries struct {
	Receiver string
	// Outcome is where the event stands there: delivered if any attempt
	// delivered it, else the last record's outcome.
	Outcome string
	Records []RecordRow
}

// RecordRow is a record with what it means in words.
type RecordRow struct {
	deliverylog.Record
	// Detail says why: the silence that dropped the event, the interval that
	// muted it, the notification it went out in, the failure and what
	// follows it.
	Detail string
}

// knownSinks are the sinks every event page lists, in this order.
var knownSinks = []struct{ sink, title string }{{"slack", "Slack"}, {"email", "Email"}, {"webhook", "Webhooks"}}

func (s *Server) loadEvent(ctx context.Context, seq uint64) (*EventPage, error) {
	st, err := s.JS.Stream(ctx, eventbus.StreamEvents)
	if err != nil {
		return nil, err
	}
	raw, err := st.GetMsg(ctx, seq)
	if err != nil {
		return nil, err
	}
	ev, err := eventbus.Decode(&nats.Msg{Subject: raw.Subject, Header: raw.Header, Data: raw.Data})
	if err != nil {
		return nil, err
	}
	pretty, _ := json.MarshalIndent(ev.Cloud, "", "  ")
	dl, err := s.Log.List(ctx, deliverylog.Query{EventID: ev.ID(), Limit: 1000})
	if err != nil {
		return nil, err
	}
	slices.SortStableFunc(dl, func(a, b deliverylog.Record) int { return a.At.Compare(b.At) })
	return &EventPage{Seq: seq, Stored: raw.Time, Event: ev, Headline: describe.Headline(ev), Change: describe.Change(ev),
		Account: describe.Account(ev.Data), JSON: string(pretty), Deliveries: dl, Sinks: s.bySink(ctx, dl)}, nil
}

// bySink groups records per sink and receiver, each with its words.
func (s *Server) bySink(ctx context.Context, recs []deliverylog.Record) []SinkDeliveries {
	var out []SinkDeliveries
	index := map[string]int{}
	for _, k := range knownSinks {
		index[k.sink] = len(out)
		out = append(out, SinkDeliveries{Sink: k.sink, Title: k.title})
	}
	silences := s.silenceNames(ctx, recs)
	for _, r := range recs {
		i, ok := index[r.Sink]
		if !ok {
			index[r.Sink] = len(out)
			i = len(out)
			out = append(out, SinkDeliveries{Sink: r.Sink, Title: r.Sink})
		}
		sd := &out[i]
		j := slices.IndexFunc(sd.Receivers, func(rd ReceiverDeliveries) bool { return rd.Receiver == r.Receiver })
		if j < 0 {
			sd.Receivers = append(sd.Receivers, ReceiverDeliveries{Receiver: r.Receiver})
			j = len(sd.Receivers) - 1
		}
		rd := &sd.Receivers[j]
		rd.Records = append(rd.Records, RecordRow{Record: r, Detail: detail(r, silences)})
		if rd.Outcome != deliverylog.Delivered {
			rd.Outcome = r.Outcome
		}
	}
	return out
}

// silenceNames describes the silences the records name (a silence may have
// expired and been purged since: then only its id is known).
func (s *Server) silenceNames(ctx context.Context, recs []deliverylog.Record) map[string]string {
	out := map[string]string{}
	var store *silence.Store
	for _, r := range recs {
		if r.Outcome != deliverylog.Silenced || r.Reason == "" || out[r.Reason] != "" {
			continue
		}
		if store == nil {
			var err error
			if store, err = silence.Open(ctx, s.JS); err != nil {
				return out
			}
		}
		if sl, _, err := store.Get(ctx, r.Reason); err == nil {
			out[r.Reason] = fmt.Sprintf("%s (by %s, %s to %s)", sl.Comment, sl.CreatedBy, when(sl.StartsAt), when(sl.EndsAt))
		} else if errors.Is(err, silence.ErrNotFound) {
			out[r.Reason] = "(no longer stored)"
		}
	}
	return out
}

func when(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") }

// detail is the record in words, with the comment of the silence it names.
func detail(r deliverylog.Record, silences map[string]string) string {
	d := r.Describe()
	if r.Outcome == deliverylog.Silenced && silences[r.Reason] != "" {
		d += ": " + silences[r.Reason]
	}
	return d
}
