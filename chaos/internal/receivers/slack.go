package receivers

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"

	"github.com/slack-go/slack/slacktest"
)

// Slack is slacktest with chat.postMessage and chat.update answered as the Web
// API reference documents them (form-encoded arguments; {"ok": true,
// "channel", "ts", "message"}), recording the event ids of each message.
type Slack struct {
	*slacktest.Server
	// Posts tallies chat.postMessage: each event is posted once per delivery
	// (an update of a thread's opening message is not a delivery).
	Posts *Tally
	seq   atomic.Int64
}

// StartSlack starts the Slack fake on a loopback port.
func StartSlack() *Slack {
	s := &Slack{Posts: newTally()}
	s.seq.Store(1_700_000_000_000_000)
	s.Server = slacktest.NewTestServer(func(c slacktest.Customize) {
		c.Handle("/chat.postMessage", s.handle(true))
		c.Handle("/chat.update", s.handle(false))
	})
	s.Server.Start()
	return s
}

// URL is the Web API base for AW_SLACK_API_URL.
func (s *Slack) URL() string { return s.GetAPIURL() }

func (s *Slack) handle(post bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		if !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer xoxb-") && !strings.HasPrefix(r.FormValue("token"), "xoxb-") {
			_ = json.NewEncoder(w).Encode(map[string]any{"ok": false, "error": "not_authed"})
			return
		}
		channel := r.FormValue("channel")
		if channel == "" {
			_ = json.NewEncoder(w).Encode(map[string]any{"ok": false, "error": "channel_not_found"})
			return
		}
		content := r.FormValue("attachments") + r.FormValue("blocks") + r.FormValue("text")
		s.Posts.content([]byte(content))
		ids := IDPattern.FindAllString(content, -1)
		ts := r.FormValue("ts")
		if post {
			n := s.seq.Add(1)
			ts = fmt.Sprintf("%d.%06d", n/1_000_000, n%1_000_000)
			s.Posts.accept(dedup(ids))
		}
		if strings.HasPrefix(channel, "#") {
			channel = "C" + strings.ToUpper(channel[1:])
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"ok": true, "channel": channel, "ts": ts,
			"message": map[string]any{"type": "message", "text": r.FormValue("text"), "ts": ts}})
	}
}

// dedup keeps the first of each id: a message names its event more than once.
func dedup(ids []string) []string {
	seen := map[string]bool{}
	out := ids[:0]
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}
