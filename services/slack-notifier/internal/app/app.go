// Package app wires the Slack notifier: settings, the routing file, JetStream,
// silences, the sink runtime and the Slack sender, and the ops endpoints.
package app

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/url"

	"github.com/accountwatch/accountwatch/pkg/deadletter"
	"github.com/accountwatch/accountwatch/pkg/eventbus"
	"github.com/accountwatch/accountwatch/pkg/route"
	"github.com/accountwatch/accountwatch/pkg/sink"
	"github.com/accountwatch/accountwatch/services/slack-notifier/internal/slacksink"
)

// SinkName names this notifier's consumers and dead letters.
const SinkName = "slack"

// Settings are the notifier's environment (AW_ prefix).
type Settings struct {
	sink.ProcessSettings
	// Token is a bot token (xoxb-…); without it, receivers without a webhook
	// write to the local sink.
	Token  string `envconfig:"SLACK_TOKEN" secret:"true"`
	APIURL string `envconfig:"SLACK_API_URL" default:"https://slack.com/api/"`
	// ConfigFile holds receivers, routes, mute intervals and links; without it
	// every event goes to Channel.
	ConfigFile string `envconfig:"SLACK_CONFIG"`
	Channel    string `envconfig:"SLACK_CHANNEL" default:"#accountwatch"`
	LocalDir   string `envconfig:"SLACK_LOCAL_DIR" default:"./data/sinks/slack"`
	OpsListen  string `envconfig:"OPS_LISTEN" default:"127.0.0.1:9103"`
}

// Validate checks the settings, naming the key at fault.
func (s *Settings) Validate() error {
	if err := s.ProcessSettings.Validate(); err != nil {
		return err
	}
	if u, err := url.Parse(s.APIURL); err != nil || u.Scheme == "" || u.Host == "" {
		return fmt.Errorf("AW_SLACK_API_URL: %q is not an absolute URL", s.APIURL)
	}
	return nil
}

// File is the notifier's YAML file: receivers, routes, time intervals, links.
type File = sink.File[slacksink.Receiver]

// LoadFile reads the YAML file, or builds the default (one receiver, "default",
// posting to channel) when path is empty.
func LoadFile(path, channel string) (*File, *route.Tree, error) {
	f := &File{}
	if path == "" {
		f.Receivers = []slacksink.Receiver{{Name: "default", Channel: channel, RateLimit: 1, Burst: 5}}
		f.Route = &route.Route{Receiver: "default"}
	}
	tree, err := sink.LoadFile(path, "AW_SLACK_CHANNEL", f)
	if err != nil {
		return nil, nil, err
	}
	return f, tree, nil
}

// Run runs the notifier until ctx ends, then drains. Readable lines of the
// local sink go to out.
func Run(ctx context.Context, s Settings, log *slog.Logger, out io.Writer) error {
	file, tree, err := LoadFile(s.ConfigFile, s.Channel)
	if err != nil {
		return err
	}
	return sink.Serve(ctx, sink.Service{
		Sink: SinkName, Process: "slack-notifier", Role: eventbus.RoleSlack, Settings: s.ProcessSettings,
		OpsListen: s.OpsListen, Log: log, Adhoc: deadletter.AddressSlackChannel,
		Setup: func(ctx context.Context, env *sink.Env) (*sink.Plan, error) {
			sender, err := slacksink.New(ctx, env.Bus.JS, file.Receivers, slacksink.Options{
				Token: s.Token, APIURL: s.APIURL, LocalDir: s.LocalDir, LocalOut: out, Links: file.Links, Log: log,
			})
			if err != nil {
				return nil, err
			}
			for _, r := range file.Receivers {
				if sender.Mode(r.Name) == slacksink.ModeLocal {
					log.Warn("no AW_SLACK_TOKEN and no webhook_url: messages go to the local sink", "receiver", r.Name, "file", s.LocalDir+"/"+slacksink.LocalFile)
				} else {
					log.Info("slack receiver", "receiver", r.Name, "mode", sender.Mode(r.Name), "channel", r.Channel)
				}
			}
			return &sink.Plan{Sender: sender, Tree: tree, Receivers: file.RuntimeReceivers(), Close: func() { _ = sender.Close() }}, nil
		},
	})
}
