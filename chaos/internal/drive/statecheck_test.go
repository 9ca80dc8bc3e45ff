package drive

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/accountwatch/accountwatch/pkg/detect"
	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/eventbus"
	"github.com/accountwatch/accountwatch/pkg/eventbus/bustest"
	"github.com/accountwatch/accountwatch/pkg/state"
)

// TestStateAhead holds the chaos run's state check to what a poller
// guarantees: a record's chain ends on a stored event, or on one in its own
// outbox while the pipeline catches up. The case "flushed between the
// reads" is the pipeline working while the check reads: an outbox flushed
// and its record rewritten without it. Checked in the other order (the
// stream first), it reported state ahead of the stream that was not (a CI
// run's false failure after a quorum loss).
func TestStateAhead(t *testing.T) {
	const key = "activeplatform.ap.acct-1"
	type msg struct{ id, data string }
	e0, e1 := msg{"aw1-e0", `{"n":0}`}, msg{"aw1-e1", `{"n":1}`}
	hash := func(m msg) string { return event.HashOf(m.id, []byte(m.data)) }
	entry := func(head msg, seq uint64, outbox ...msg) *state.Entry {
		e := &state.Entry{Record: detect.Record{Version: 1, AccountID: "acct-1", Chain: event.Chain{Seq: seq, Prev: hash(head)}}}
		for _, p := range outbox {
			e.Pending = append(e.Pending, state.Pending{Subject: event.SubjectRoot + "test", Header: nats.Header{jetstream.MsgIDHeader: {p.id}}, Data: []byte(p.data)})
		}
		return e
	}
	cases := []struct {
		name         string
		stored       []msg
		record       *state.Entry
		raw          string // a record stored as these bytes instead
		between      func(publish func(msg), put func(*state.Entry))
		allowPending bool
		want         []Ahead
	}{
		{name: "head stored", stored: []msg{e0}, record: entry(e0, 1)},
		{name: "head in the outbox, pending allowed", stored: []msg{e0}, record: entry(e1, 2, e1), allowPending: true},
		{name: "head in the outbox, pending not allowed", stored: []msg{e0}, record: entry(e1, 2, e1),
			want: []Ahead{{Key: key, Seq: 2, Pending: true}}},
		{name: "head nowhere", stored: []msg{e0}, record: entry(e1, 2), allowPending: true,
			want: []Ahead{{Key: key, Seq: 2}}},
		{name: "flushed between the reads", stored: []msg{e0}, record: entry(e0, 1), allowPending: true,
			between: func(publish func(msg), put func(*state.Entry)) {
				publish(e1)
				put(entry(e1, 2))
			}},
		{name: "undecodable", stored: []msg{e0}, raw: `{"record":`,
			want: []Ahead{{Key: key, Undecodable: "state " + key + ": undecodable state record: unexpected end of JSON input"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			b := bustest.New(t)
			kv, err := b.JS.KeyValue(ctx, eventbus.BucketState)
			if err != nil {
				t.Fatal(err)
			}
			publish := func(m msg) {
				t.Helper()
				out := &nats.Msg{Subject: event.SubjectRoot + "test", Header: nats.Header{jetstream.MsgIDHeader: {m.id}}, Data: []byte(m.data)}
				if _, err := b.JS.PublishMsg(ctx, out); err != nil {
					t.Fatal(err)
				}
			}
			put := func(e *state.Entry) {
				t.Helper()
				raw, err := state.Encode(e)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := kv.Put(ctx, key, raw.Data); err != nil {
					t.Fatal(err)
				}
			}
			for _, m := range tc.stored {
				publish(m)
			}
			if tc.raw != "" {
				if _, err := kv.Put(ctx, key, []byte(tc.raw)); err != nil {
					t.Fatal(err)
				}
			} else {
				put(tc.record)
			}
			afterState = nil
			if tc.between != nil {
				afterState = func() { tc.between(publish, put) }
			}
			defer func() { afterState = nil }()
			records, ahead, err := StateAhead(ctx, b.JS, tc.allowPending, func(f func() error) error { return f() })
			if err != nil {
				t.Fatal(err)
			}
			if records != 1 || !reflect.DeepEqual(ahead, tc.want) {
				t.Fatalf("records %d, ahead %+v; want 1, %+v", records, ahead, tc.want)
			}
		})
	}
}
