package deadletter_test

import (
	"context"
	"errors"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/accountwatch/accountwatch/pkg/deadletter"
	"github.com/accountwatch/accountwatch/pkg/eventbus"
	"github.com/accountwatch/accountwatch/pkg/eventbus/bustest"
)

// TestLettersKeepTheEventsSubject: a letter is kept under the subject of the
// event it carries, whether it was consumed from the event stream, from a
// retry queue (whose one subject names only the sink and the receiver: the
// event's travels in a header), or from an older version's retry queue (the
// event's subject after the receiver's); and its re-drive goes to the
// receiver's queue subject with the event's subject in its header.
func TestLettersKeepTheEventsSubject(t *testing.T) {
	const sink, receiver = "webhook", "ep_1"
	const ev = "aw.events.activeplatform.ap-main.account-status-changed.1000"
	want := deadletter.Subject(sink, receiver, ev)
	if want != "aw.dlq.webhook.ep_1.activeplatform.ap-main.account-status-changed.1000" {
		t.Fatalf("Subject = %s", want)
	}
	for _, tc := range []struct {
		name, from string
		header     nats.Header
	}{
		{"from the event stream", ev, nats.Header{}},
		{"from a retry queue", deadletter.RedriveSubject(sink, receiver), nats.Header{deadletter.HdrEventSubject: {ev}}},
		{"from an older version's retry queue", "aw.redrive.webhook.ep_1.activeplatform.ap-main.account-status-changed.1000", nats.Header{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bus := bustest.New(t)
			ctx := context.Background()
			tc.header.Set("ce-id", "aw1-1")
			w := deadletter.NewWriter(bus.JS)
			if err := w.Write(ctx, deadletter.Entry{Sink: sink, Receiver: receiver, Reason: "server_error", Err: errors.New("503"), Attempts: 3, OriginSeq: 7}, tc.from, tc.header, []byte("{}")); err != nil {
				t.Fatal(err)
			}
			dlq, err := bus.JS.Stream(ctx, eventbus.StreamDeadLetter)
			if err != nil {
				t.Fatal(err)
			}
			raw, err := dlq.GetMsg(ctx, 1)
			if err != nil {
				t.Fatal(err)
			}
			if raw.Subject != want {
				t.Errorf("letter kept under %s, want %s", raw.Subject, want)
			}
			store, err := deadletter.Open(ctx, bus.JS)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := store.Redrive(ctx, raw.Sequence); err != nil {
				t.Fatal(err)
			}
			q, err := bus.JS.Stream(ctx, eventbus.StreamRedrive)
			if err != nil {
				t.Fatal(err)
			}
			m, err := q.GetLastMsgForSubject(ctx, deadletter.RedriveSubject(sink, receiver))
			if errors.Is(err, jetstream.ErrMsgNotFound) {
				t.Fatalf("no re-drive on %s", deadletter.RedriveSubject(sink, receiver))
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := m.Header.Get(deadletter.HdrEventSubject); got != ev {
				t.Errorf("re-drive's %s = %q, want %q", deadletter.HdrEventSubject, got, ev)
			}
		})
	}
}
