// Package slacksink delivers notifications to Slack: one thread per account
// (the first alert opens it, later changes reply in it, a recovery updates the
// opening message in place), grouped notifications of many accounts as one
// channel message, and a classification of Slack's errors that the sink
// runtime turns into acks, retries and dead letters.
package slacksink

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/accountwatch/accountwatch/pkg/deadletter"
	"github.com/accountwatch/accountwatch/pkg/egress"
	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/eventbus"
	"github.com/accountwatch/accountwatch/pkg/redact"
	"github.com/accountwatch/accountwatch/pkg/sink"
	"github.com/accountwatch/accountwatch/services/slack-notifier/internal/message"
)

// Receiver is one Slack destination.
type Receiver struct {
	Name string `yaml:"name"`
	// Channel is where a bot token posts ("#billing-alerts" or an id).
	Channel string `yaml:"channel"`
	// WebhookURL switches the receiver to an incoming webhook (no threads).
	WebhookURL string `yaml:"webhook_url"`
	// RateLimit is messages per second (Slack allows about 1 per channel); Burst back to back.
	RateLimit float64 `yaml:"rate_limit"`
	Burst     int     `yaml:"burst"`
}

// Runtime is the receiver as the sink runtime paces it.
func (r Receiver) Runtime() sink.Receiver {
	return sink.Receiver{Name: r.Name, RateLimit: r.RateLimit, Burst: r.Burst}
}

// Validate checks the destination.
func (r Receiver) Validate() error {
	if r.Channel == "" && r.WebhookURL == "" {
		return errors.New("set channel or webhook_url")
	}
	if r.WebhookURL != "" {
		if u, err := url.Parse(r.WebhookURL); err != nil || u.Scheme != "https" && u.Scheme != "http" || u.Host == "" {
			return errors.New("webhook_url: not an http(s) URL")
		}
	}
	return nil
}

// AllowEnv names the allow-list of the notifier's egress guard.
const AllowEnv = "AW_SLACK_ALLOW_CIDRS"

// Mode is how a receiver reaches Slack.
type Mode string

// Modes.
const (
	ModeBot     Mode = "bot"
	ModeWebhook Mode = "webhook"
	ModeLocal   Mode = "local"
)

// Options configure the Sender.
type Options struct {
	Token  string
	APIURL string
	// LocalDir is where messages go when a receiver has neither a token nor a webhook.
	LocalDir string
	// LocalOut receives the local sink's readable lines (stdout in make run).
	LocalOut io.Writer
	Links    message.Links
	HTTP     *http.Client
	Log      *slog.Logger
}

// Sender implements sink.Sender for Slack.
type Sender struct {
	receivers map[string]receiver
	// adhoc posts re-drives to a channel no receiver names.
	adhoc   receiver
	threads jetstream.KeyValue
	links   message.Links
	log     *slog.Logger
	closers []io.Closer
}

type receiver struct {
	Receiver
	mode   Mode
	poster poster
}

// destination is what the delivery log says a receiver's messages reach
// (an incoming webhook's URL is a secret: only its mode is said).
func (r receiver) destination() string {
	if r.mode == ModeWebhook {
		return "incoming webhook"
	}
	return string(r.mode) + " " + r.Channel
}

// thread is what AW_SLACK_THREADS keeps per receiver and account.
type thread struct {
	Channel  string    `json:"channel"`
	TS       string    `json:"ts"`
	OpenedAt time.Time `json:"opened_at"`
	OpenedBy string    `json:"opened_by"`
	// Recovered is the standing the opening message shows now.
	Recovered bool `json:"recovered"`
}

// New builds the sender; it opens the local sink only if a receiver needs it.
func New(ctx context.Context, js jetstream.JetStream, rcvs []Receiver, o Options) (*Sender, error) {
	kv, err := js.KeyValue(ctx, eventbus.BucketSlackThreads)
	if err != nil {
		return nil, fmt.Errorf("slack threads bucket: %w", err)
	}
	// The Slack API base and incoming-webhook URLs go through the egress
	// guard: no internal address, unless AW_SLACK_ALLOW_CIDRS allows it
	// (default: loopback, for a local capture server or relay).
	guard, err := egress.FromEnv(AllowEnv, egress.Loopback)
	if err != nil {
		return nil, err
	}
	if o.Token != "" {
		if err := guard.CheckURL(o.APIURL); err != nil {
			return nil, fmt.Errorf("AW_SLACK_API_URL: %w (%s opens a range)", err, AllowEnv)
		}
	}
	for _, r := range rcvs {
		if r.WebhookURL == "" {
			continue
		}
		if err := guard.CheckURL(r.WebhookURL); err != nil {
			return nil, fmt.Errorf("receiver %s: webhook_url: %w (%s opens a range)", r.Name, redact.Error(err), AllowEnv)
		}
	}
	if o.HTTP == nil {
		o.HTTP = guard.Client(20*time.Second, 16)
		// An HTTP proxy (HTTPS_PROXY) is the operator's to choose; its own
		// address is what the dialer then checks.
		o.HTTP.Transport.(*http.Transport).Proxy = http.ProxyFromEnvironment
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	s := &Sender{receivers: map[string]receiver{}, threads: kv, links: o.Links, log: o.Log}
	var local *localPoster
	for _, r := range rcvs {
		rc := receiver{Receiver: r}
		switch {
		case r.WebhookURL != "":
			rc.mode, rc.poster = ModeWebhook, &webhookPoster{url: r.WebhookURL, hc: o.HTTP}
		case o.Token != "":
			rc.mode, rc.poster = ModeBot, newBotPoster(o.Token, o.APIURL, o.HTTP)
		default:
			if local == nil {
				if local, err = newLocalPoster(o.LocalDir, o.LocalOut); err != nil {
					return nil, err
				}
				s.closers = append(s.closers, local)
			}
			rc.mode, rc.poster = ModeLocal, local
		}
		s.receivers[r.Name] = rc
	}
	s.adhoc = receiver{Receiver: Receiver{Name: deadletter.AdhocReceiver}}
	if o.Token != "" {
		s.adhoc.mode, s.adhoc.poster = ModeBot, newBotPoster(o.Token, o.APIURL, o.HTTP)
	} else {
		if local == nil {
			if local, err = newLocalPoster(o.LocalDir, o.LocalOut); err != nil {
				return nil, err
			}
			s.closers = append(s.closers, local)
		}
		s.adhoc.mode, s.adhoc.poster = ModeLocal, local
	}
	return s, nil
}

// Mode tells how a receiver reaches Slack.
func (s *Sender) Mode(receiver string) Mode { return s.receivers[receiver].mode }

// Close closes the local sink's file.
func (s *Sender) Close() error {
	var errs []error
	for _, c := range s.closers {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}

// Send delivers one notification.
func (s *Sender) Send(ctx context.Context, n *sink.Notification) error {
	if n.Receiver == deadletter.AdhocReceiver {
		// A re-drive to a channel of the operator's choice: one message, no thread.
		if n.RedriveTo == "" {
			return sink.Permanent(sink.ReasonClientError, errors.New("an ad-hoc re-drive without a channel"))
		}
		n.Receipt.Destination = string(s.adhoc.mode) + " " + n.RedriveTo
		_, _, err := s.adhoc.poster.Post(ctx, n.RedriveTo, "", message.Account(n.Events, s.links, true))
		return err
	}
	r, ok := s.receivers[n.Receiver]
	if !ok {
		return sink.Permanent(sink.ReasonClientError, fmt.Errorf("no slack receiver %q", n.Receiver))
	}
	n.Receipt.Destination = r.destination()
	if message.Accounts(n.Events) > 1 {
		_, _, err := r.poster.Post(ctx, r.Channel, "", message.Summary(n.Events, s.links))
		return err
	}
	msg := message.Account(n.Events, s.links, n.Redrive)
	if !r.poster.Threads() {
		_, _, err := r.poster.Post(ctx, r.Channel, "", msg)
		return err
	}
	last := n.Events[len(n.Events)-1]
	key := threadKey(n.Receiver, last)
	th, rev, err := s.thread(ctx, key)
	if err != nil {
		return sink.Transient(sink.ReasonOther, err)
	}
	if th == nil {
		ch, ts, err := r.poster.Post(ctx, r.Channel, "", msg)
		if err != nil {
			return err
		}
		s.saveThread(ctx, key, rev, thread{Channel: ch, TS: ts, OpenedAt: time.Now().UTC(), OpenedBy: last.ID(), Recovered: message.IsRecovery(last)})
		return nil
	}
	if _, _, err := r.poster.Post(ctx, th.Channel, th.TS, msg); err != nil {
		return err
	}
	// The opening message shows the account's standing: a recovery turns it
	// green in place, a new problem after a recovery turns it back.
	if recovered := message.IsRecovery(last); recovered != th.Recovered {
		opening := message.Account([]*event.Event{last}, s.links, false)
		if err := r.poster.Update(ctx, th.Channel, th.TS, opening); err != nil {
			// The reply is posted; a stale opening message is not worth re-sending it.
			s.log.Warn("opening message not updated", "receiver", n.Receiver, "err", err)
			return nil
		}
		th.Recovered = recovered
		s.saveThread(ctx, key, rev, *th)
	}
	return nil
}

func threadKey(receiver string, e *event.Event) string {
	return receiver + "." + string(e.Data.Provider) + "." + e.Data.Instance + "." + eventbus.KeyToken(e.Data.AccountID)
}

func (s *Sender) thread(ctx context.Context, key string) (*thread, uint64, error) {
	e, err := s.threads.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("slack thread %s: %w", key, err)
	}
	var th thread
	if err := json.Unmarshal(e.Value(), &th); err != nil || th.TS == "" {
		return nil, e.Revision(), nil // unreadable: open a new thread
	}
	return &th, e.Revision(), nil
}

// saveThread records a thread; failing that, the message is still posted, and
// the account's next alert opens a new thread rather than re-sending this one.
func (s *Sender) saveThread(ctx context.Context, key string, rev uint64, th thread) {
	b, _ := json.Marshal(th)
	var err error
	if rev == 0 {
		_, err = s.threads.Create(ctx, key, b)
	} else {
		_, err = s.threads.Update(ctx, key, b, rev)
	}
	if err != nil {
		s.log.Warn("slack thread not saved", "key", key, "err", err)
	}
}
