// Package app wires the email notifier: settings, the routing file, templates,
// JetStream, silences, the sink runtime and the mailer, and the ops endpoints.
package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/mail"
	"strings"
	"time"

	"github.com/accountwatch/accountwatch/pkg/config"
	"github.com/accountwatch/accountwatch/pkg/deadletter"
	"github.com/accountwatch/accountwatch/pkg/eventbus"
	"github.com/accountwatch/accountwatch/pkg/route"
	"github.com/accountwatch/accountwatch/pkg/sink"
	"github.com/accountwatch/accountwatch/services/email-notifier/internal/compose"
	"github.com/accountwatch/accountwatch/services/email-notifier/internal/mailer"
)

// SinkName names this notifier's consumers and dead letters.
const SinkName = "email"

// Settings are the notifier's environment (AW_ prefix).
type Settings struct {
	sink.ProcessSettings
	// SMTP server; without a host, messages are written as .eml files to LocalDir.
	SMTPHost     string        `envconfig:"SMTP_HOST"`
	SMTPPort     int           `envconfig:"SMTP_PORT" default:"587"`
	SMTPTLS      string        `envconfig:"SMTP_TLS" default:"starttls"`
	SMTPCA       string        `envconfig:"SMTP_TLS_CA"`
	SMTPAuth     string        `envconfig:"SMTP_AUTH" default:"none"`
	SMTPUsername string        `envconfig:"SMTP_USERNAME"`
	SMTPPassword string        `envconfig:"SMTP_PASSWORD" secret:"true"`
	SMTPHELO     string        `envconfig:"SMTP_HELO"`
	SMTPPool     int           `envconfig:"SMTP_POOL" default:"4"`
	SMTPTimeout  time.Duration `envconfig:"SMTP_TIMEOUT" default:"30s"`
	From         string        `envconfig:"EMAIL_FROM" default:"accountwatch <accountwatch@localhost>"`
	ReplyTo      string        `envconfig:"EMAIL_REPLY_TO"`
	// To is the default receiver's recipients (comma-separated) when there is no ConfigFile.
	To         string `envconfig:"EMAIL_TO"`
	ConfigFile string `envconfig:"EMAIL_CONFIG"`
	// Templates is a folder of <type>.<subject|txt|html>.tmpl overriding the embedded ones.
	Templates string `envconfig:"EMAIL_TEMPLATES"`
	LocalDir  string `envconfig:"EMAIL_LOCAL_DIR" default:"./data/sinks/email"`
	OpsListen string `envconfig:"OPS_LISTEN" default:"127.0.0.1:9104"`
}

// Validate checks the settings, naming the key at fault.
func (s *Settings) Validate() error {
	if err := s.ProcessSettings.Validate(); err != nil {
		return err
	}
	if s.SMTPHost != "" {
		if s.SMTPPort < 1 || s.SMTPPort > 65535 {
			return fmt.Errorf("AW_SMTP_PORT: %d", s.SMTPPort)
		}
		if s.SMTPPool < 1 || s.SMTPPool > 64 {
			return fmt.Errorf("AW_SMTP_POOL: %d (want 1 to 64)", s.SMTPPool)
		}
		if s.SMTPTimeout <= 0 {
			return fmt.Errorf("AW_SMTP_TIMEOUT: %s (want > 0)", s.SMTPTimeout)
		}
	}
	if s.ConfigFile == "" && s.To == "" {
		return errors.New("AW_EMAIL_TO: required without AW_EMAIL_CONFIG (who receives the mail?)")
	}
	return nil
}

// File is the notifier's YAML file: receivers, routes, time intervals, links.
type File = sink.File[mailer.Receiver]

// LoadFile reads the YAML file, or builds the default (one receiver,
// "default", to the addresses of to, a digest per 5 minutes with critical
// events at once) when path is empty.
func LoadFile(path, to string) (*File, *route.Tree, error) {
	f := &File{}
	if path == "" {
		var rcpts []string
		for _, a := range strings.Split(to, ",") {
			if a = strings.TrimSpace(a); a != "" {
				rcpts = append(rcpts, a)
			}
		}
		wait := config.Duration{Duration: 5 * time.Minute}
		bypass := true
		f.Receivers = []mailer.Receiver{{Name: "default", To: rcpts}}
		f.Route = &route.Route{Receiver: "default", GroupBy: []string{}, GroupWait: &wait, GroupInterval: &wait, CriticalBypassesGrouping: &bypass}
	}
	tree, err := sink.LoadFile(path, "AW_EMAIL_TO", f)
	if err != nil {
		return nil, nil, err
	}
	return f, tree, nil
}

// Run runs the notifier until ctx ends, then drains. Lines of the local sink go to out.
func Run(ctx context.Context, s Settings, log *slog.Logger, out io.Writer) error {
	file, tree, err := LoadFile(s.ConfigFile, s.To)
	if err != nil {
		return err
	}
	from, err := mail.ParseAddress(s.From)
	if err != nil {
		return fmt.Errorf("AW_EMAIL_FROM: %q: %v", s.From, err)
	}
	domain := from.Address[strings.LastIndexByte(from.Address, '@')+1:]
	comp, err := compose.New(s.Templates, file.Links, domain)
	if err != nil {
		return err
	}
	return sink.Serve(ctx, sink.Service{
		Sink: SinkName, Process: "email-notifier", Role: eventbus.RoleEmail, Settings: s.ProcessSettings,
		OpsListen: s.OpsListen, Log: log, Adhoc: deadletter.AddressEmail,
		Setup: func(context.Context, *sink.Env) (*sink.Plan, error) {
			sender, err := mailer.New(file.Receivers, comp, mailer.Options{
				SMTP: mailer.SMTP{Host: s.SMTPHost, Port: s.SMTPPort, TLS: s.SMTPTLS, CAFile: s.SMTPCA, Auth: s.SMTPAuth, Username: s.SMTPUsername,
					Password: s.SMTPPassword, HELO: s.SMTPHELO, Pool: s.SMTPPool, Timeout: s.SMTPTimeout},
				From: s.From, ReplyTo: s.ReplyTo, LocalDir: s.LocalDir, LocalOut: out,
			})
			if err != nil {
				return nil, err
			}
			if sender.Local() {
				log.Warn("no AW_SMTP_HOST: messages are written as .eml files", "dir", s.LocalDir)
			} else {
				log.Info("smtp", "host", s.SMTPHost, "port", s.SMTPPort, "tls", s.SMTPTLS, "auth", s.SMTPAuth, "pool", s.SMTPPool)
			}
			return &sink.Plan{Sender: sender, Tree: tree, Receivers: file.RuntimeReceivers(), Close: sender.Close}, nil
		},
	})
}
