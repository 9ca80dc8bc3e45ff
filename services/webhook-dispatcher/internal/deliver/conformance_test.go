package deliver

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/accountwatch/accountwatch/pkg/egress"
	"github.com/accountwatch/accountwatch/pkg/eventbus"
	"github.com/accountwatch/accountwatch/pkg/ops"
	"github.com/accountwatch/accountwatch/pkg/ops/opstest"
	"github.com/accountwatch/accountwatch/pkg/sink"
	"github.com/accountwatch/accountwatch/pkg/sink/sinktest"
	"github.com/accountwatch/accountwatch/services/webhook-dispatcher/internal/subscription"
)

// subscriber is an HTTP receiver answering as the suite says.
type subscriber struct {
	stop     chan struct{} // closed at the end of the test: stalled answers end
	mu       sync.Mutex
	answer   sinktest.Failure
	calls    []time.Time
	received []string
}

func (s *subscriber) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.calls = append(s.calls, time.Now())
	f := s.answer
	s.mu.Unlock()
	switch f {
	case sinktest.Slowly:
		time.Sleep(100 * time.Millisecond)
	case sinktest.RateLimited:
		w.Header().Set("Retry-After", strconv.Itoa(int(sinktest.RetryAfter/time.Second)))
		w.WriteHeader(http.StatusTooManyRequests)
		return
	case sinktest.ServerError:
		w.WriteHeader(http.StatusInternalServerError)
		return
	case sinktest.ClientError:
		http.NotFound(w, r)
		return
	case sinktest.Timeout:
		select {
		case <-r.Context().Done():
		case <-s.stop:
		}
		return
	case sinktest.Broken:
		c, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			c.Close()
		}
		return
	}
	s.mu.Lock()
	s.received = append(s.received, r.Header.Get("Webhook-Id"))
	s.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// TestConformance runs the sink conformance suite against the webhook
// sender posting to an HTTP receiver, in fan-out mode as the dispatcher runs.
func TestConformance(t *testing.T) {
	sinktest.Run(t, func(t *testing.T, bus *eventbus.Bus) *sinktest.Target {
		sub := &subscriber{stop: make(chan struct{})}
		srv := httptest.NewServer(sub)
		t.Cleanup(srv.Close)
		t.Cleanup(func() { close(sub.stop) }) // runs first
		guard, err := egress.New([]string{"127.0.0.0/8"}, false)
		if err != nil {
			t.Fatal(err)
		}
		secret := subscription.NewSecret()
		token := "query-token-0123456789"
		ep := &subscription.Endpoint{ID: "ep_conformance", URL: srv.URL + "/hooks?token=" + token, Status: subscription.StatusActive,
			Secrets: []subscription.Secret{{Value: secret}}}
		logs := &opstest.Buffer{}
		log, _ := ops.NewLogger(logs, "debug", "deliver")
		s := New(endpoints{ep.ID: ep}, noHealth{}, Options{Transport: guard.Client(5*time.Second, 8).Transport, Timeout: 5 * time.Second, Guard: guard, UserAgent: "aw-test", Logger: log})
		return &sinktest.Target{
			Sender: s, Receiver: ep.ID, Fanout: true,
			Answer: func(f sinktest.Failure) { sub.mu.Lock(); sub.answer = f; sub.mu.Unlock() },
			Received: func() []string {
				sub.mu.Lock()
				defer sub.mu.Unlock()
				return append([]string(nil), sub.received...)
			},
			Calls: func() []time.Time {
				sub.mu.Lock()
				defer sub.mu.Unlock()
				return append([]time.Time(nil), sub.calls...)
			},
			Expect: map[sinktest.Failure]sinktest.Want{
				sinktest.RateLimited: {Reason: sink.ReasonRateLimited, RetryAfter: true},
				sinktest.ServerError: {Reason: sink.ReasonServerError},
				// A subscriber's 4xx is retried on the schedule.
				sinktest.ClientError: {Reason: sink.ReasonClientError},
				sinktest.Timeout:     {Reason: sink.ReasonTimeout},
				sinktest.Broken:      {Reason: sink.ReasonOther},
			},
			Secrets: []string{secret, token},
			Logs:    logs.String,
		}
	})
}
