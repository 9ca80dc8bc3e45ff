package app_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/accountwatch/accountwatch/pkg/config"
	"github.com/accountwatch/accountwatch/pkg/deliverylog"
	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/eventbus/bustest"
	"github.com/accountwatch/accountwatch/pkg/route"
	"github.com/accountwatch/accountwatch/pkg/silence"
	"github.com/accountwatch/accountwatch/pkg/sink"
)

// notify is a sender of one sink: it delivers, saying where to.
type notify string

func (d notify) Send(_ context.Context, n *sink.Notification) error {
	n.Receipt.Destination, n.Receipt.Status = string(d), 200
	return nil
}

// TestEventDeliveriesInBrowser: the real sink runtime, as the Slack, email
// and webhook notifiers run it, delivers the fixture's events while a
// silence covers the frozen account; the event page shows, per sink, the
// debt event delivered by all three, and the frozen one silenced in Slack
// and email (silences do not apply to webhook subscriptions) with the
// silence's comment.
func TestEventDeliveriesInBrowser(t *testing.T) {
	f := start(t)
	tctx, shot, text := browser(t) // after start: its cleanup closes the browser before the auditor
	bg := context.Background()
	silences, err := silence.Open(bg, f.bus.JS)
	if err != nil {
		t.Fatal(err)
	}
	if err := silences.Follow(t.Context()); err != nil {
		t.Fatal(err)
	}
	ms, _ := route.ParseMatchers([]string{"account=1500000000000001"})
	sl, err := silences.Add(bg, silence.Silence{Matchers: ms, EndsAt: time.Now().Add(time.Hour), CreatedBy: "alice", Comment: "BSS migration"})
	if err != nil {
		t.Fatal(err)
	}
	dlog, err := deliverylog.Open(bg, f.bus.JS, deliverylog.StreamConfig(f.bus.Cfg, time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	set := sink.DefaultSettings()
	set.Start = "all"
	var routes route.Config
	config.DecodeYAML(strings.NewReader("route: {receiver: r, group_wait: 300ms}"), &routes)
	run := func(name, receiver string, s sink.Sender, fanout bool) {
		opts := []sink.Option{sink.WithSettings(set), sink.WithDeliveryLog(dlog, false)}
		var tree *route.Tree
		var rcvs []sink.Receiver
		if fanout {
			opts = append(opts, sink.WithFanout())
		} else {
			rc := routes
			rc.Route = &route.Route{Receiver: receiver, GroupWait: routes.Route.GroupWait}
			if tree, err = route.NewTree(rc, []string{receiver}); err != nil {
				t.Fatal(err)
			}
			rcvs = []sink.Receiver{{Name: receiver}}
			opts = append(opts, sink.WithSilences(silences))
		}
		rt, err := sink.New(f.bus.JS, name, tree, rcvs, s, opts...)
		if err != nil {
			t.Fatal(err)
		}
		rctx, cancel := context.WithCancel(bg)
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { defer wg.Done(); rt.Run(rctx) }()
		t.Cleanup(func() { cancel(); wg.Wait() })
		<-rt.Ready()
		if fanout {
			rt.Add(sink.Receiver{Name: receiver, Filter: func(*event.Event) bool { return true }})
		}
		rt.Start()
	}
	run("slack", "billing", notify("bot #billing-alerts"), false)
	run("email", "finance", notify("finance-ops@reseller.example"), false)
	run("webhook", "ep_0123456789abcdef", notify("https://erp.example.com/hooks"), true)
	debt, frozen := f.events[1], f.events[2]
	bustest.Eventually(t, "every sink done with both events", func() bool {
		recs, _ := dlog.List(bg, deliverylog.Query{Limit: 1000})
		seen := map[string]bool{}
		for _, r := range recs {
			seen[r.Sink+" "+r.EventID+" "+r.Outcome] = true
		}
		return seen["slack "+debt.ID()+" delivered"] && seen["email "+debt.ID()+" delivered"] && seen["webhook "+debt.ID()+" delivered"] &&
			seen["slack "+frozen.ID()+" silenced"] && seen["email "+frozen.ID()+" silenced"] && seen["webhook "+frozen.ID()+" delivered"]
	})

	var slackDebt, emailDebt, hookDebt, slackFrozen, emailFrozen, hookFrozen string
	err = chromedp.Do(tctx,
		chromedp.Navigate(f.base+"/"),
		chromedp.WaitVisible("#token"),
		chromedp.SendKeys("#token", token),
		chromedp.Click("#signin"),
		chromedp.WaitVisible("#accounts"),
		chromedp.Navigate(f.base+"/events/2"),
		chromedp.WaitVisible("#deliveries"),
		text("#sink-slack", &slackDebt), text("#sink-email", &emailDebt), text("#sink-webhook", &hookDebt),
		shot("7-event-three-sinks"),
		chromedp.Navigate(f.base+"/events/3"),
		chromedp.WaitVisible("#deliveries"),
		text("#sink-slack", &slackFrozen), text("#sink-email", &emailFrozen), text("#sink-webhook", &hookFrozen),
		shot("8-event-silenced"),
	)
	if err != nil {
		t.Fatalf("browser: %v", err)
	}
	for _, c := range []struct{ name, got, want string }{
		{"slack, debt", slackDebt, "billing"}, {"slack, debt", slackDebt, "delivered"}, {"slack, debt", slackDebt, "bot #billing-alerts"},
		{"email, debt", emailDebt, "finance-ops@reseller.example"}, {"email, debt", emailDebt, "delivered"},
		{"webhook, debt", hookDebt, "https://erp.example.com/hooks"}, {"webhook, debt", hookDebt, "delivered"},
		{"slack, frozen", slackFrozen, "silenced by silence " + sl.ID}, {"slack, frozen", slackFrozen, "BSS migration (by alice"},
		{"email, frozen", emailFrozen, "silenced"},
		{"webhook, frozen", hookFrozen, "delivered"},
	} {
		if !strings.Contains(c.got, c.want) {
			t.Errorf("%s: the page shows %q, want %q", c.name, c.got, c.want)
		}
	}
	if strings.Contains(slackFrozen, "delivered") || strings.Contains(emailFrozen, "delivered") {
		t.Errorf("a silenced event shows as delivered: %q / %q", slackFrozen, emailFrozen)
	}
}
