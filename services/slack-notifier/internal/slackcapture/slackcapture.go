// Package slackcapture is a Slack Web API for tests and benchmarks: slacktest
// with chat.postMessage and chat.update replaced by handlers that record every
// call and can answer with injected failures (429 with Retry-After, 5xx,
// Slack error codes).
package slackcapture

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"regexp"
	"strconv"
	"sync"
	"time"

	"github.com/slack-go/slack/slacktest"
)

// Call is one recorded API call.
type Call struct {
	At       time.Time
	Method   string // "chat.postMessage" or "chat.update"
	Channel  string
	Text     string
	ThreadTS string
	// TS is the message ts: the one handed out by a post, or the one updated.
	TS          string
	Attachments string
	// EventIDs are the event ids the message names.
	EventIDs []string
	// Status is what the server answered: 200 for ok, else the injected status
	// or Slack error.
	Status int
	Error  string
	// Done is when the answer was written.
	Done time.Time
}

// Failure is an injected answer.
type Failure struct {
	Status     int    // HTTP status (429, 500); 0 with Error means HTTP 200 {"ok":false}
	RetryAfter int    // seconds, with 429
	Error      string // Slack error code, e.g. "channel_not_found"
	// Stall answers nothing until the client gives up; Drop closes the
	// connection without an answer.
	Stall, Drop bool
}

// Server is the capture server.
type Server struct {
	*slacktest.Server

	mu    sync.Mutex
	calls []Call
	seq   int64
	// events counts the event ids of successful posts.
	events int
	// Inject decides, per call (counting from 1), whether it fails.
	inject func(n int, c Call) *Failure
	delay  time.Duration
	limit  *limiter
}

// Limit is Slack's limit on chat.postMessage, per channel: "generally allows
// posting one message per second per channel", "short bursts >1 allowed";
// past it Slack answers HTTP 429 with Retry-After, the seconds to wait
// (docs.slack.dev/apis/web-api/rate-limits). Every ThrottleEvery-th post of
// a channel is also answered 429 with Retry-After ThrottleFor, standing for
// the workspace-wide limit the same page names, so that a client is seen
// honouring a Retry-After longer than its own pace.
type Limit struct {
	PerSecond     float64
	Burst         int
	ThrottleEvery int
	ThrottleFor   int // seconds
}

// Window is a time a channel was told to wait (a Retry-After).
type Window struct{ From, Until time.Time }

type limiter struct {
	Limit
	ch map[string]*bucket
}

type bucket struct {
	tokens  float64
	at      time.Time
	posts   int
	blocked []Window
	// inside counts the requests that came while a Retry-After stood.
	inside int
}

// SetLimit makes chat.postMessage honour l per channel (nil: no limit).
func (s *Server) SetLimit(l *Limit) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.limit = nil
	if l != nil {
		s.limit = &limiter{Limit: *l, ch: map[string]*bucket{}}
	}
}

// admit decides a post to channel at now under the limit: nil, or the 429.
// s.mu is held.
func (l *limiter) admit(channel string, now time.Time) *Failure {
	b := l.ch[channel]
	if b == nil {
		b = &bucket{tokens: float64(max(l.Burst, 1)), at: now}
		l.ch[channel] = b
	}
	if n := len(b.blocked); n > 0 && now.Before(b.blocked[n-1].Until) {
		b.inside++
		return &Failure{Status: http.StatusTooManyRequests, RetryAfter: max(1, int(math.Ceil(b.blocked[n-1].Until.Sub(now).Seconds())))}
	}
	b.tokens = min(float64(max(l.Burst, 1)), b.tokens+now.Sub(b.at).Seconds()*l.PerSecond)
	b.at = now
	b.posts++
	wait := 0
	switch {
	case l.ThrottleEvery > 0 && b.posts%l.ThrottleEvery == 0:
		wait = max(l.ThrottleFor, 1)
	case b.tokens < 1:
		wait = max(1, int(math.Ceil((1-b.tokens)/l.PerSecond)))
	default:
		b.tokens--
		return nil
	}
	b.blocked = append(b.blocked, Window{From: now, Until: now.Add(time.Duration(wait) * time.Second)})
	return &Failure{Status: http.StatusTooManyRequests, RetryAfter: wait}
}

// Blocked returns, per channel, the Retry-After windows it was given.
func (s *Server) Blocked() map[string][]Window {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string][]Window{}
	if s.limit != nil {
		for ch, b := range s.limit.ch {
			out[ch] = append([]Window(nil), b.blocked...)
		}
	}
	return out
}

// InsideRetryAfter counts the posts that came to a channel while a
// Retry-After it was given still stood: a client honouring it makes none.
func (s *Server) InsideRetryAfter() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	if s.limit != nil {
		for _, b := range s.limit.ch {
			n += b.inside
		}
	}
	return n
}

var idRE = regexp.MustCompile(`aw1-[0-9a-f]{32}`)

// Start starts a capture server; inject may be nil.
func Start(inject func(n int, c Call) *Failure) *Server {
	s := &Server{inject: inject, seq: 1700000000000000}
	s.Server = slacktest.NewTestServer(func(c slacktest.Customize) {
		c.Handle("/chat.postMessage", s.handle("chat.postMessage"))
		c.Handle("/chat.update", s.handle("chat.update"))
	})
	s.Server.Start()
	return s
}

// SetDelay makes every answer wait d (a slow Slack).
func (s *Server) SetDelay(d time.Duration) {
	s.mu.Lock()
	s.delay = d
	s.mu.Unlock()
}

// SetInject replaces the failure injector.
func (s *Server) SetInject(f func(n int, c Call) *Failure) {
	s.mu.Lock()
	s.inject = f
	s.mu.Unlock()
}

func (s *Server) handle(method string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		c := Call{
			At: time.Now(), Method: method, Channel: r.FormValue("channel"), Text: r.FormValue("text"),
			ThreadTS: r.FormValue("thread_ts"), TS: r.FormValue("ts"), Attachments: r.FormValue("attachments"),
		}
		c.EventIDs = idRE.FindAllString(c.Attachments, -1)
		s.mu.Lock()
		n := len(s.calls) + 1
		var f *Failure
		if s.inject != nil {
			f = s.inject(n, c)
		}
		if f == nil && s.limit != nil && method == "chat.postMessage" {
			f = s.limit.admit(c.Channel, c.At)
		}
		delay := s.delay
		if f == nil && method == "chat.postMessage" {
			s.seq++
			c.TS = fmt.Sprintf("%d.%06d", s.seq/1e6, s.seq%1e6)
		}
		c.Status = 200
		if f != nil {
			c.Status, c.Error = f.Status, f.Error
			if c.Status == 0 {
				c.Status = 200
			}
			if f.Stall || f.Drop {
				c.Status, c.Error = 0, "no answer"
			}
		}
		s.calls = append(s.calls, c)
		if f == nil && method == "chat.postMessage" {
			s.events += len(c.EventIDs)
		}
		s.mu.Unlock()
		if delay > 0 {
			select {
			case <-time.After(delay):
			case <-r.Context().Done():
			}
		}
		switch {
		case f != nil && f.Stall:
			<-r.Context().Done()
			return
		case f != nil && f.Drop:
			if conn, _, err := w.(http.Hijacker).Hijack(); err == nil {
				conn.Close()
			}
			return
		}
		defer func() {
			s.mu.Lock()
			s.calls[n-1].Done = time.Now()
			s.mu.Unlock()
		}()
		w.Header().Set("Content-Type", "application/json")
		switch {
		case f != nil && f.Status != 0 && f.Status != 200:
			if f.RetryAfter > 0 {
				w.Header().Set("Retry-After", strconv.Itoa(f.RetryAfter))
			}
			w.WriteHeader(f.Status)
			_, _ = w.Write([]byte(`{"ok":false}`))
		case f != nil:
			_ = json.NewEncoder(w).Encode(map[string]any{"ok": false, "error": f.Error})
		default:
			ch := c.Channel
			if len(ch) > 0 && ch[0] == '#' {
				ch = "C" + ch[1:]
			}
			_ = json.NewEncoder(w).Encode(map[string]any{"ok": true, "channel": ch, "ts": c.TS})
		}
	}
}

// Calls returns every call so far.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Call(nil), s.calls...)
}

// Posted returns the successful calls of method.
func (s *Server) Posted(method string) []Call {
	var out []Call
	for _, c := range s.Calls() {
		if c.Method == method && c.Status == 200 && c.Error == "" {
			out = append(out, c)
		}
	}
	return out
}

// Events counts the event ids that successful posts carried (repeats included).
func (s *Server) Events() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.events
}

// URL is the API URL to give a client (ends in '/').
func (s *Server) URL() string { return s.GetAPIURL() }
