package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/accountwatch/accountwatch/pkg/config"
	"github.com/accountwatch/accountwatch/pkg/egress"
	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/event/eventtest"
	"github.com/accountwatch/accountwatch/pkg/eventbus/bustest"
	"github.com/accountwatch/accountwatch/pkg/route"
	"github.com/accountwatch/accountwatch/pkg/sink"
	"github.com/accountwatch/accountwatch/pkg/sink/sinktest"
	"github.com/accountwatch/accountwatch/services/email-notifier/internal/compose"
	"github.com/accountwatch/accountwatch/services/email-notifier/internal/mailer"
	"github.com/accountwatch/accountwatch/services/email-notifier/internal/smtpcapture"
)

// BenchmarkEmail1000: AW_BENCH_EMAIL_SECONDS (10) of events at 1,000/s, of
// 1,000 accounts, each event its own email (group_by "...", no wait),
// composed and sent over a pool of 8 SMTP connections to the in-process SMTP
// server, server default sync: publish→accepted (DATA answered) p50/p99,
// next to a raw JetStream publish→read at the same rate on the same server.
func BenchmarkEmail1000(b *testing.B) {
	const rate, accounts = 1000, 1000
	seconds := 10
	if v, err := strconv.Atoi(os.Getenv("AW_BENCH_EMAIL_SECONDS")); err == nil && v > 0 {
		seconds = v
	}
	var rc route.Config
	if err := config.DecodeYAML(strings.NewReader("route: {receiver: ops, group_by: ['...'], group_wait: 0s, group_interval: 0s}"), &rc); err != nil {
		b.Fatal(err)
	}
	tree, err := route.NewTree(rc, []string{"ops"})
	if err != nil {
		b.Fatal(err)
	}
	for range b.N {
		cfg := bustest.Config(b, "")
		cfg.SyncAlways = false
		bus := bustest.Start(b, cfg)
		evs := make([]*event.Event, 0, rate*seconds)
		states := []string{"active", "credit_hold"}
		for i := range rate * seconds {
			m := eventtest.Meta(fmt.Sprintf("m%05d", i%accounts), nil)
			m.Revision = uint64(i / accounts)
			evs = append(evs, eventtest.Status(b, m, states[(i/accounts)%2], states[(i/accounts+1)%2]))
		}
		raw := bustest.RawLatency(b, bus, len(evs), len(evs[0].Cloud.Data()), rate)

		srv, err := smtpcapture.Start(b.TempDir(), smtpcapture.Options{TLS: "none"})
		if err != nil {
			b.Fatal(err)
		}
		comp, err := compose.New("", nil, "reseller.example")
		if err != nil {
			b.Fatal(err)
		}
		rcv := mailer.Receiver{Name: "ops", To: []string{"billing-ops@reseller.example"}}
		m, err := mailer.New([]mailer.Receiver{rcv}, comp, mailer.Options{
			SMTP: mailer.SMTP{Host: srv.Host(), Port: srv.Port(), TLS: mailer.TLSNone, Auth: "none", Pool: 8, Timeout: 10 * time.Second, Allow: egress.Loopback},
			From: "accountwatch <alerts@reseller.example>",
		})
		if err != nil {
			b.Fatal(err)
		}
		rec := sinktest.NewRecorder(m)
		set := sink.DefaultSettings()
		set.Start, set.Concurrency = "all", 8
		rt, err := sink.New(bus.JS, "email", tree, []sink.Receiver{rcv.Runtime()}, rec, sink.WithSettings(set))
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		go rt.Run(ctx)
		sent, achieved := bustest.PublishAt(b, bus, evs, rate)
		for deadline := time.Now().Add(5 * time.Minute); rec.Delivered() < len(evs); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				b.Fatalf("%d of %d events mailed", rec.Delivered(), len(evs))
			}
		}
		cancel()
		m.Close()
		srv.Stop()
		lat := bustest.Latencies(rec.Latencies(sent)).Sorted()
		b.ReportMetric(lat.P(0.5), "p50-ms")
		b.ReportMetric(lat.P(0.99), "p99-ms")
		b.ReportMetric(raw.P(0.5), "raw-p50-ms")
		b.ReportMetric(raw.P(0.99), "raw-p99-ms")
		b.ReportMetric(achieved, "events-in/s")
		b.Logf("%d events at %.0f/s, %d messages received", len(evs), achieved, len(srv.Messages()))
	}
}
