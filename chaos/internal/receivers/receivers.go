// Package receivers are the loopback ends of the three sinks in the chaos
// run: a Slack Web API (slack-go's slacktest, with chat.postMessage and
// chat.update answered as the Web API documents them), an HTTP endpoint for
// webhooks whose behaviour the run scripts (healthy, 503, hanging), and an
// SMTP server (emersion/go-smtp). Each keeps a tally of the event ids it
// accepted, and how often.
package receivers

import (
	"regexp"
	"sync"
	"time"
)

// IDPattern matches an accountwatch event id wherever a sink puts it (the
// Slack message's context, the webhook-id header, X-Accountwatch-Events).
var IDPattern = regexp.MustCompile(`aw1-[0-9a-f]{32}`)

// Tally counts what a receiver accepted, per event id.
type Tally struct {
	mu       sync.Mutex
	accepted map[string]int
	first    map[string]time.Time
	attempts int // requests, accepted or not
	refused  int
	tap      func(content []byte)
}

// Tap makes fn see the readable content of every request the receiver
// accepts (a Slack message's text and blocks, a webhook's body, a mail's
// headers and decoded parts): the conformance run scans it for personal
// data.
func (t *Tally) Tap(fn func(content []byte)) {
	t.mu.Lock()
	t.tap = fn
	t.mu.Unlock()
}

func (t *Tally) content(b []byte) {
	t.mu.Lock()
	fn := t.tap
	t.mu.Unlock()
	if fn != nil {
		fn(b)
	}
}

func newTally() *Tally { return &Tally{accepted: map[string]int{}, first: map[string]time.Time{}} }

// accept records one accepted delivery of ids.
func (t *Tally) accept(ids []string) {
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.attempts++
	for _, id := range ids {
		if t.accepted[id] == 0 {
			t.first[id] = now
		}
		t.accepted[id]++
	}
}

// refuse records an attempt the receiver did not accept.
func (t *Tally) refuse() {
	t.mu.Lock()
	t.attempts++
	t.refused++
	t.mu.Unlock()
}

// Accepted is how often each id was accepted.
func (t *Tally) Accepted() map[string]int {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[string]int, len(t.accepted))
	for k, v := range t.accepted {
		out[k] = v
	}
	return out
}

// First is when id was first accepted.
func (t *Tally) First(id string) (time.Time, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	at, ok := t.first[id]
	return at, ok
}

// Attempts counts requests; Refused those not accepted.
func (t *Tally) Attempts() (attempts, refused int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.attempts, t.refused
}

// Set is the three receivers a run starts together.
type Set struct {
	Slack   *Slack
	Webhook *Webhook
	SMTP    *SMTP
}

// StartAll starts a receiver of each sink.
func StartAll() (*Set, error) {
	s := &Set{Slack: StartSlack()}
	var err error
	if s.Webhook, err = StartWebhook(); err != nil {
		s.Close()
		return nil, err
	}
	if s.SMTP, err = StartSMTP(); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Close stops every receiver that was started.
func (s *Set) Close() {
	if s == nil {
		return
	}
	if s.Slack != nil {
		s.Slack.Stop()
	}
	if s.Webhook != nil {
		s.Webhook.Close()
	}
	if s.SMTP != nil {
		s.SMTP.Close()
	}
}
