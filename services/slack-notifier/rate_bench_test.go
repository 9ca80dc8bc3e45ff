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
	"github.com/accountwatch/accountwatch/services/slack-notifier/internal/slackcapture"
	"github.com/accountwatch/accountwatch/services/slack-notifier/internal/slacksink"
)

// BenchmarkSlack1000: AW_BENCH_SLACK_SECONDS (10) of events at 1,000/s, of
// 1,000 accounts in 10 teams, each team's channel its own receiver, paced at
// Slack's 1 message a second a channel (rate_limit 1, burst 1), grouped by
// team (group_wait 0s, group_interval 1s), server default sync, against the capture server honouring Slack's limit
// (slackcapture.Limit: 1/s a channel, bursts of 3, and a 2 s Retry-After on
// every 20th post standing for the workspace limit):
//
//   - publish→accepted p50/p99 of every event, next to a raw JetStream
//     publish→read at the same rate on the same server (the bus's floor);
//   - messages posted a second against those the limit allowed (1/s a
//     channel, less the Retry-After windows), while the events came;
//   - posts made inside a Retry-After (must be none).
func BenchmarkSlack1000(b *testing.B) {
	const rate, accounts, channels = 1000, 1000, 10
	seconds := 10
	if v, err := strconv.Atoi(os.Getenv("AW_BENCH_SLACK_SECONDS")); err == nil && v > 0 {
		seconds = v
	}
	var yml strings.Builder
	yml.WriteString("route:\n  receiver: ch0\n  group_by: [team]\n  group_wait: 0s\n  group_interval: 1s\n  routes:\n")
	var names []string
	var rcvs []slacksink.Receiver
	var srcv []sink.Receiver
	for c := range channels {
		name := fmt.Sprintf("ch%d", c)
		names = append(names, name)
		fmt.Fprintf(&yml, "    - receiver: %s\n      matchers: ['team=%s']\n", name, name)
		r := slacksink.Receiver{Name: name, Channel: "#" + name, RateLimit: 1, Burst: 1}
		rcvs, srcv = append(rcvs, r), append(srcv, r.Runtime())
	}
	var rc route.Config
	if err := config.DecodeYAML(strings.NewReader(yml.String()), &rc); err != nil {
		b.Fatal(err)
	}
	tree, err := route.NewTree(rc, names)
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
			a := i % accounts
			m := eventtest.Meta(fmt.Sprintf("s%05d", a), map[string]string{"team": fmt.Sprintf("ch%d", a%channels)})
			m.Revision = uint64(i / accounts)
			evs = append(evs, eventtest.Status(b, m, states[(i/accounts)%2], states[(i/accounts+1)%2]))
		}
		raw := bustest.RawLatency(b, bus, len(evs), len(evs[0].Cloud.Data()), rate)

		capture := slackcapture.Start(nil)
		capture.SetLimit(&slackcapture.Limit{PerSecond: 1, Burst: 3, ThrottleEvery: 20, ThrottleFor: 2})
		ctx, cancel := context.WithCancel(context.Background())
		s, err := slacksink.New(ctx, bus.JS, rcvs, slacksink.Options{Token: "xoxb-bench", APIURL: capture.URL(), Allow: egress.Loopback})
		if err != nil {
			b.Fatal(err)
		}
		rec := sinktest.NewRecorder(s)
		set := sink.DefaultSettings()
		set.Start = "all"
		rt, err := sink.New(bus.JS, "slack", tree, srcv, rec, sink.WithSettings(set))
		if err != nil {
			b.Fatal(err)
		}
		go rt.Run(ctx)
		pubStart := time.Now()
		sent, achieved := bustest.PublishAt(b, bus, evs, rate)
		pubEnd := time.Now()
		for deadline := time.Now().Add(5 * time.Minute); rec.Delivered() < len(evs); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				b.Fatalf("%d of %d events posted", rec.Delivered(), len(evs))
			}
		}
		cancel()
		capture.Stop()

		lat := bustest.Latencies(rec.Latencies(sent)).Sorted()
		// The steady window: from 2 s in (the first group's wait and the
		// connection) to the last publish.
		from, to := pubStart.Add(2*time.Second), pubEnd
		posted := 0
		for _, c := range capture.Posted("chat.postMessage") {
			if !c.At.Before(from) && c.At.Before(to) {
				posted++
			}
		}
		allowed := 0.0
		blocked := capture.Blocked()
		for _, ch := range names {
			free := to.Sub(from)
			for _, w := range blocked["#"+ch] {
				lo, hi := max(w.From.UnixNano(), from.UnixNano()), min(w.Until.UnixNano(), to.UnixNano())
				if hi > lo {
					free -= time.Duration(hi - lo)
				}
			}
			allowed += free.Seconds() // 1 message a second
		}
		window := to.Sub(from).Seconds()
		b.ReportMetric(lat.P(0.5), "p50-ms")
		b.ReportMetric(lat.P(0.99), "p99-ms")
		b.ReportMetric(raw.P(0.5), "raw-p50-ms")
		b.ReportMetric(raw.P(0.99), "raw-p99-ms")
		b.ReportMetric(float64(posted)/window, "msgs/s")
		b.ReportMetric(allowed/window, "allowed-msgs/s")
		b.ReportMetric(float64(capture.InsideRetryAfter()), "inside-retry-after")
		b.ReportMetric(achieved, "events-in/s")
		b.Logf("%d events at %.0f/s to %d channels: %d messages in the %.1f s window, %.1f allowed; %d posts inside a Retry-After", len(evs), achieved, channels, posted, window, allowed, capture.InsideRetryAfter())
	}
}
