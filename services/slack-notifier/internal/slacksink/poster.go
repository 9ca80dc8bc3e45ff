package slacksink

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/slack-go/slack"

	"github.com/accountwatch/accountwatch/pkg/describe"
	"github.com/accountwatch/accountwatch/pkg/sink"
	"github.com/accountwatch/accountwatch/services/slack-notifier/internal/message"
)

// poster is one way of putting a message in front of people.
type poster interface {
	// Post sends m to channel, as a reply when threadTS is set; it returns the
	// channel id and the message ts (empty where the transport has none).
	Post(ctx context.Context, channel, threadTS string, m message.Message) (channelID, ts string, err error)
	// Update replaces the message at channelID/ts.
	Update(ctx context.Context, channelID, ts string, m message.Message) error
	// Threads reports whether Post returns a ts to reply to and update.
	Threads() bool
}

// botPoster is the Web API with a bot token: chat.postMessage and chat.update.
type botPoster struct{ api *slack.Client }

func newBotPoster(token, apiURL string, hc *http.Client) *botPoster {
	return &botPoster{api: slack.New(token, slack.OptionAPIURL(apiURL), slack.OptionHTTPClient(hc))}
}

func (b *botPoster) Post(ctx context.Context, channel, threadTS string, m message.Message) (string, string, error) {
	opts := []slack.MsgOption{slack.MsgOptionText(m.Text, true), slack.MsgOptionAttachments(m.Attachment())}
	if threadTS != "" {
		opts = append(opts, slack.MsgOptionTS(threadTS))
	}
	ch, ts, err := b.api.PostMessageContext(ctx, channel, opts...)
	if err != nil {
		return "", "", classify("chat.postMessage", channel, err)
	}
	return ch, ts, nil
}

func (b *botPoster) Update(ctx context.Context, channelID, ts string, m message.Message) error {
	_, _, _, err := b.api.UpdateMessageContext(ctx, channelID, ts, slack.MsgOptionText(m.Text, true), slack.MsgOptionAttachments(m.Attachment()))
	if err != nil {
		return classify("chat.update", channelID, err)
	}
	return nil
}

func (b *botPoster) Threads() bool { return true }

// webhookPoster is an incoming webhook: one fixed channel, no ts, so no threads
// and no updates.
type webhookPoster struct {
	url string
	hc  *http.Client
}

func (w *webhookPoster) Post(ctx context.Context, _, _ string, m message.Message) (string, string, error) {
	err := slack.PostWebhookCustomHTTPContext(ctx, w.url, w.hc, &slack.WebhookMessage{Text: message.Escape(m.Text), Attachments: []slack.Attachment{m.Attachment()}})
	if err != nil {
		return "", "", classify("incoming webhook", "", err)
	}
	return "", "", nil
}

func (w *webhookPoster) Update(context.Context, string, string, message.Message) error {
	return errors.New("incoming webhooks cannot update messages")
}

func (w *webhookPoster) Threads() bool { return false }

// permanentErrors are Slack API errors no retry can fix, with what to do.
var permanentErrors = map[string]string{
	"channel_not_found":   "the channel does not exist or the bot cannot see it: fix the receiver's channel",
	"not_in_channel":      "the bot is not in the channel: invite it",
	"is_archived":         "the channel is archived",
	"invalid_auth":        "the token is not valid: check AW_SLACK_TOKEN",
	"not_authed":          "no token was sent: set AW_SLACK_TOKEN",
	"account_inactive":    "the token's workspace or user is deactivated",
	"token_revoked":       "the token was revoked",
	"token_expired":       "the token expired",
	"no_permission":       "the token lacks permission",
	"missing_scope":       "the token lacks the chat:write scope",
	"restricted_action":   "the workspace does not allow the bot to post there",
	"invalid_blocks":      "Slack rejected the message's blocks",
	"invalid_attachments": "Slack rejected the message's attachments",
	"msg_too_long":        "the message is too long",
	"invalid_arguments":   "Slack rejected the request's arguments",
	"message_not_found":   "the message to update no longer exists",
	"cant_update_message": "the message cannot be updated",
	"edit_window_closed":  "the message can no longer be edited",
	"invalid_token":       "the incoming webhook URL is not valid",
	"no_service":          "the incoming webhook was removed",
	"no_active_hooks":     "the incoming webhook is disabled",
}

// classify maps a slack-go error onto the sink's policy: 429 → its
// Retry-After exactly (slack-go reads the header); known configuration
// errors → permanent, with a reason a person can act on; other HTTP answers
// by the one HTTP classification (sink.HTTPStatus: a 4xx is our request at
// fault, permanent); 5xx and network errors → retry.
func classify(call, channel string, err error) error {
	where := call
	if channel != "" {
		where += " " + channel
	}
	if rl, ok := errors.AsType[*slack.RateLimitedError](err); ok {
		e := sink.RateLimited(rl.RetryAfter, fmt.Errorf("slack %s: %w", where, err)).(*sink.Error)
		e.Status = http.StatusTooManyRequests
		return e
	}
	if sc, ok := errors.AsType[slack.StatusCodeError](err); ok {
		return sink.HTTPStatus(sc.Code, nil, time.Now(), fmt.Errorf("slack %s: HTTP %d", where, sc.Code), sink.HTTPOptions{})
	}
	if se, ok := errors.AsType[slack.SlackErrorResponse](err); ok {
		if hint, ok := permanentErrors[se.Err]; ok {
			return sink.Permanent(sink.ReasonClientError, fmt.Errorf("slack %s: %s (%s)", where, se.Err, hint))
		}
		if se.Err == "ratelimited" {
			return sink.RateLimited(time.Second, fmt.Errorf("slack %s: %s", where, se.Err))
		}
		return sink.Transient(sink.ReasonServerError, fmt.Errorf("slack %s: %s", where, se.Err))
	}
	return fmt.Errorf("slack %s: %w", where, err)
}

// localPoster is the sink of a stack with no Slack credentials: each message
// is a JSON line in a file and a readable line on out. It hands out ts values
// like Slack's, so threads and in-place updates behave as they would.
type localPoster struct {
	mu   sync.Mutex
	file *os.File
	out  io.Writer
	seq  int64
}

// localRecord is one line of the local sink's file.
type localRecord struct {
	Time     time.Time     `json:"time"`
	Channel  string        `json:"channel"`
	TS       string        `json:"ts"`
	ThreadTS string        `json:"thread_ts,omitempty"`
	Update   bool          `json:"update,omitempty"`
	Text     string        `json:"text"`
	Color    string        `json:"color"`
	Blocks   []slack.Block `json:"blocks"`
}

// LocalFile is the file name of the local sink inside its folder.
const LocalFile = "slack-messages.jsonl"

func newLocalPoster(dir string, out io.Writer) (*localPoster, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("AW_SLACK_LOCAL_DIR: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, LocalFile), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o640)
	if err != nil {
		return nil, fmt.Errorf("AW_SLACK_LOCAL_DIR: %w", err)
	}
	return &localPoster{file: f, out: out, seq: time.Now().UnixMicro()}, nil
}

func (l *localPoster) write(r localRecord) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, err := l.file.Write(append(b, '\n')); err != nil {
		return sink.Transient(sink.ReasonOther, fmt.Errorf("local slack sink: %w", err))
	}
	verb := "post"
	switch {
	case r.Update:
		verb = "update " + r.TS
	case r.ThreadTS != "":
		verb = "reply in " + r.ThreadTS
	}
	// One line per message, whatever the text holds: control characters
	// from upstream names are escaped (the file keeps the text as it is).
	fmt.Fprintf(l.out, "slack %s (%s): %s\n", describe.Printable(r.Channel), verb, describe.Printable(r.Text))
	return nil
}

func (l *localPoster) nextTS() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seq++
	return strconv.FormatInt(l.seq/1e6, 10) + "." + fmt.Sprintf("%06d", l.seq%1e6)
}

func (l *localPoster) Post(_ context.Context, channel, threadTS string, m message.Message) (string, string, error) {
	ts := l.nextTS()
	return channel, ts, l.write(localRecord{Time: time.Now().UTC(), Channel: channel, TS: ts, ThreadTS: threadTS, Text: m.Text, Color: m.Color, Blocks: m.Blocks})
}

func (l *localPoster) Update(_ context.Context, channelID, ts string, m message.Message) error {
	return l.write(localRecord{Time: time.Now().UTC(), Channel: channelID, TS: ts, Update: true, Text: m.Text, Color: m.Color, Blocks: m.Blocks})
}

func (l *localPoster) Threads() bool { return true }

func (l *localPoster) Close() error { return l.file.Close() }
