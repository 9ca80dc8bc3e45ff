package roster_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/accountwatch/accountwatch/pkg/deadletter"
	"github.com/accountwatch/accountwatch/pkg/event/eventtest"
	"github.com/accountwatch/accountwatch/pkg/eventbus"
	"github.com/accountwatch/accountwatch/pkg/eventbus/bustest"
	"github.com/accountwatch/accountwatch/pkg/roster"
)

func TestPublishAndCheck(t *testing.T) {
	b := bustest.New(t)
	ctx := context.Background()
	if err := roster.Publish(ctx, b, roster.Entry{Sink: "slack", Adhoc: deadletter.AddressSlackChannel, Receivers: []string{"ops", "finance"}}); err != nil {
		t.Fatal(err)
	}
	if err := roster.Publish(ctx, b, roster.Entry{Sink: "webhook", ReceiverBucket: eventbus.BucketSubscriptions}); err != nil {
		t.Fatal(err)
	}
	subs, _ := b.JS.KeyValue(ctx, eventbus.BucketSubscriptions)
	subs.Put(ctx, "ep_live", []byte(`{}`))
	subs.Put(ctx, "ep_gone", []byte(`{}`))
	subs.Delete(ctx, "ep_gone")
	r, err := roster.Open(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	e, ok, err := r.Get(ctx, "slack")
	if err != nil || !ok || strings.Join(e.Receivers, ",") != "finance,ops" || e.UpdatedAt.IsZero() {
		t.Fatalf("entry: %+v %v %v (sorted)", e, ok, err)
	}
	cases := []struct{ sink, receiver, to, want string }{
		{"slack", "ops", "", ""},
		{"slack", "", "#billing", ""},
		{"slack", "adhoc", "", "to: required"},
		{"slack", "nobody", "", "no receiver"},
		{"webhook", "ep_live", "", ""},
		{"webhook", "ep_gone", "", "no receiver"},
		{"webhook", "ep.x", "", "no receiver"},
		{"webhook", "", "https://example.com/", "takes no ad-hoc destination"},
		{"email", "default", "", `"email" is not a sink that has started (known: slack, webhook)`},
	}
	for _, c := range cases {
		err := deadletter.CheckTarget(ctx, r, c.sink, c.receiver, c.to)
		if c.want == "" && err != nil || c.want != "" && (!errors.Is(err, deadletter.ErrInvalidTarget) || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%s/%s to %q: %v, want %q", c.sink, c.receiver, c.to, err, c.want)
		}
	}
	// A notifier restarted with fewer receivers replaces its entry.
	if err := roster.Publish(ctx, b, roster.Entry{Sink: "slack", Adhoc: deadletter.AddressSlackChannel, Receivers: []string{"ops"}}); err != nil {
		t.Fatal(err)
	}
	if err := deadletter.CheckTarget(ctx, r, "slack", "finance", ""); !errors.Is(err, deadletter.ErrInvalidTarget) {
		t.Errorf("a removed receiver: %v", err)
	}
}

// TestStoreRedriveChecks: a dead letter of a receiver that is gone stays in
// the dead letters, and nothing reaches AW_REDRIVE.
func TestStoreRedriveChecks(t *testing.T) {
	b := bustest.New(t)
	ctx := context.Background()
	if err := roster.Publish(ctx, b, roster.Entry{Sink: "slack", Receivers: []string{"ops"}}); err != nil {
		t.Fatal(err)
	}
	r, _ := roster.Open(ctx, b)
	msg, err := eventbus.Encode(eventtest.Status(t, eventtest.Meta("1000123", nil), "active", "credit_hold"))
	if err != nil {
		t.Fatal(err)
	}
	w := deadletter.NewWriter(b.JS)
	for i, rcv := range []string{"ops", "finance"} {
		if err := w.Write(ctx, deadletter.Entry{Sink: "slack", Receiver: rcv, Reason: "client_error", Err: errors.New("x"), Attempts: 1, OriginSeq: uint64(i + 1)}, msg.Subject, nats.Header(msg.Header), msg.Data); err != nil {
			t.Fatal(err)
		}
	}
	store, err := deadletter.Open(ctx, b.JS, deadletter.WithRoster(r))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Redrive(ctx, 1); err != nil {
		t.Errorf("a live receiver's letter: %v", err)
	}
	if _, err := store.Redrive(ctx, 2); !errors.Is(err, deadletter.ErrInvalidTarget) || !strings.Contains(err.Error(), `no receiver "finance"`) {
		t.Errorf("a gone receiver's letter: %v", err)
	}
	if _, err := store.Get(ctx, 2); err != nil {
		t.Errorf("the refused letter is no longer kept: %v", err)
	}
	rs, _ := b.JS.Stream(ctx, eventbus.StreamRedrive)
	if info, _ := rs.Info(ctx); info.State.Msgs != 1 {
		t.Errorf("%d re-drives, want 1", info.State.Msgs)
	}
}
