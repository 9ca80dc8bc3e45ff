package slacksink_test

import (
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/accountwatch/accountwatch/pkg/eventbus"
	"github.com/accountwatch/accountwatch/pkg/ops"
	"github.com/accountwatch/accountwatch/pkg/ops/opstest"
	"github.com/accountwatch/accountwatch/pkg/sink"
	"github.com/accountwatch/accountwatch/pkg/sink/sinktest"
	"github.com/accountwatch/accountwatch/services/slack-notifier/internal/slackcapture"
	"github.com/accountwatch/accountwatch/services/slack-notifier/internal/slacksink"
)

// TestConformance runs the sink conformance suite against the Slack sender
// with a bot token, posting to slacktest with a capture of chat.postMessage.
func TestConformance(t *testing.T) {
	sinktest.Run(t, func(t *testing.T, bus *eventbus.Bus) *sinktest.Target {
		var mu sync.Mutex
		answer := sinktest.Accept
		api := slackcapture.Start(func(int, slackcapture.Call) *slackcapture.Failure {
			mu.Lock()
			defer mu.Unlock()
			switch answer {
			case sinktest.RateLimited:
				return &slackcapture.Failure{Status: http.StatusTooManyRequests, RetryAfter: int(sinktest.RetryAfter / time.Second)}
			case sinktest.ServerError:
				return &slackcapture.Failure{Status: http.StatusBadGateway}
			case sinktest.ClientError:
				return &slackcapture.Failure{Error: "channel_not_found"}
			case sinktest.Timeout:
				return &slackcapture.Failure{Stall: true}
			case sinktest.Broken:
				return &slackcapture.Failure{Drop: true}
			}
			return nil
		})
		t.Cleanup(api.Stop)
		const token = "xoxb-1234567890-conformance-secret"
		logs := &opstest.Buffer{}
		log, _ := ops.NewLogger(logs, "debug", "slacksink")
		s, err := slacksink.New(t.Context(), bus.JS, []slacksink.Receiver{{Name: "ops", Channel: "#ops"}}, slacksink.Options{
			Token: token, APIURL: api.URL(), LocalDir: t.TempDir(), Log: log,
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return &sinktest.Target{
			Sender: s, Receiver: "ops",
			Answer: func(f sinktest.Failure) {
				mu.Lock()
				answer = f
				mu.Unlock()
				if f == sinktest.Slowly {
					api.SetDelay(100 * time.Millisecond)
				} else {
					api.SetDelay(0)
				}
			},
			Received: func() []string {
				var out []string
				for _, c := range api.Posted("chat.postMessage") {
					out = append(out, c.EventIDs...)
				}
				return out
			},
			Calls: func() []time.Time {
				var out []time.Time
				for _, c := range api.Calls() {
					out = append(out, c.At)
				}
				return out
			},
			Expect: map[sinktest.Failure]sinktest.Want{
				sinktest.RateLimited: {Reason: sink.ReasonRateLimited, RetryAfter: true},
				sinktest.ServerError: {Reason: sink.ReasonServerError},
				// Slack names what is wrong with our request: retrying cannot help.
				sinktest.ClientError: {Reason: sink.ReasonClientError, Permanent: true},
				sinktest.Timeout:     {Reason: sink.ReasonTimeout},
				sinktest.Broken:      {Reason: sink.ReasonOther},
			},
			Secrets: []string{token},
			Logs:    logs.String,
		}
	})
}
