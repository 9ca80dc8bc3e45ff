package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/accountwatch/accountwatch/pkg/deliverylog"
	"github.com/accountwatch/accountwatch/pkg/event/eventtest"
	"github.com/accountwatch/accountwatch/pkg/eventbus"
	"github.com/accountwatch/accountwatch/pkg/eventbus/bustest"
)

func TestDeliveries(t *testing.T) {
	b := bustest.Start(t, bustest.Config(t, "127.0.0.1:0"))
	t.Setenv("NATS_URL", b.ClientURL())
	t.Setenv("AW_NATS_NKEY_SEED_FILE", b.SeedFile(eventbus.RoleOperator))
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"deliveries"}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "no delivery log yet") {
		t.Errorf("before any sink ran: exit %d, %q", code, errb.String())
	}
	ev := eventtest.Status(t, eventtest.Meta("1000123", nil), "active", "credit_hold")
	bustest.Publish(t, b, ev)
	l, err := deliverylog.Open(context.Background(), b.JS, deliverylog.StreamConfig(b.Cfg, time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	next := time.Now().Add(5 * time.Minute)
	for _, r := range []deliverylog.Record{
		{Sink: "slack", Receiver: "ops", EventID: ev.ID(), Attempt: 1, Outcome: deliverylog.Delivered, Destination: "bot #ops", Status: 200, LatencyMS: 80},
		{Sink: "email", Receiver: "finance", EventID: ev.ID(), Outcome: deliverylog.Silenced, Reason: "3f2a9c1d0b4e5f60"},
		{Sink: "webhook", Receiver: "ep_1", EventID: ev.ID(), Attempt: 1, Outcome: deliverylog.Failed, Status: 503, Error: "server_error (transient): answered 503", Retry: &next},
		{Sink: "webhook", Receiver: "ep_1", EventID: "aw1-other", Attempt: 1, Outcome: deliverylog.Delivered, Status: 204},
	} {
		r.At = time.Now()
		if err := l.Add(r); err != nil {
			t.Fatal(err)
		}
	}
	bustest.Eventually(t, "the records stored", func() bool {
		recs, _ := l.List(context.Background(), deliverylog.Query{})
		return len(recs) == 4
	})
	cases := []struct {
		name string
		args string
		code int
		want []string
		not  string
	}{
		{"by sequence", "deliveries --seq 1", 0, []string{"3 records", "silenced by silence 3f2a9c1d0b4e5f60", "to bot #ops", "next attempt", "503"}, "aw1-other"},
		{"by event and sink", "deliveries --event " + ev.ID() + " --sink email", 0, []string{"1 records", "finance"}, "#ops"},
		{"by outcome", "deliveries --outcome failed --output json", 0, []string{`"outcome":"failed"`, `"retry_at"`}, `"delivered"`},
		{"a receiver", "deliveries --sink webhook --receiver ep_1", 0, []string{"2 records", "aw1-other"}, ""},
		{"both selections", "deliveries --seq 1 --event x", 2, []string{"not both"}, ""},
		{"no such event", "deliveries --seq 99", 1, []string{"event 99"}, ""},
		{"bad since", "deliveries --since yesterday", 2, []string{"want a duration"}, ""},
	}
	for _, c := range cases {
		out.Reset()
		errb.Reset()
		code := run(context.Background(), strings.Fields(c.args), &out, &errb)
		all := out.String() + errb.String()
		if code != c.code {
			t.Errorf("%s: exit %d, want %d: %s", c.name, code, c.code, all)
		}
		for _, w := range c.want {
			if !strings.Contains(all, w) {
				t.Errorf("%s: output lacks %q: %s", c.name, w, all)
			}
		}
		if c.not != "" && strings.Contains(out.String(), c.not) {
			t.Errorf("%s: output has %q: %s", c.name, c.not, all)
		}
	}
}
