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
	"github.com/accountwatch/accountwatch/pkg/describe"
	"github.com/accountwatch/accountwatch/pkg/egress"
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
	SMTPHost     string `envconfig:"SMTP_HOST" desc:"SMTP relay; empty writes .eml files to AW_EMAIL_LOCAL_DIR"`
	SMTPPort     int    `envconfig:"SMTP_PORT" default:"587" desc:"SMTP port"`
	SMTPTLS      string `envconfig:"SMTP_TLS" default:"starttls" desc:"starttls, implicit (TLS from the first byte, port 465) or none"`
	SMTPCA       string `envconfig:"SMTP_TLS_CA" desc:"CA bundle (PEM) that verifies the relay"`
	SMTPAuth     string `envconfig:"SMTP_AUTH" default:"none" desc:"none, plain, login or cram-md5"`
	SMTPUsername string `envconfig:"SMTP_USERNAME" desc:"SMTP user"`
	SMTPPassword string `envconfig:"SMTP_PASSWORD" secret:"true" desc:"SMTP password"`
	SMTPHELO     string `envconfig:"SMTP_HELO" desc:"name given in HELO/EHLO (default: the host name)"`
	SMTPPool     int    `envconfig:"SMTP_POOL" default:"4" desc:"SMTP connections kept open"`
	// SMTPAllow is the egress guard's allow-list (CIDRs).
	SMTPAllow   string        `envconfig:"SMTP_ALLOW_CIDRS" default:"127.0.0.0/8,::1/128" desc:"ranges the relay may be in besides public addresses (comma-separated CIDRs; empty refuses loopback too)"`
	SMTPTimeout time.Duration `envconfig:"SMTP_TIMEOUT" default:"30s" desc:"one SMTP command or message"`
	From        string        `envconfig:"EMAIL_FROM" default:"accountwatch <accountwatch@localhost>" desc:"From: of every message"`
	ReplyTo     string        `envconfig:"EMAIL_REPLY_TO" desc:"Reply-To: of every message"`
	// To is the default receiver's recipients (comma-separated) when there is no ConfigFile.
	To         string `envconfig:"EMAIL_TO" desc:"the default receiver's recipients, comma-separated (required without AW_EMAIL_CONFIG)"`
	ConfigFile string `envconfig:"EMAIL_CONFIG" desc:"YAML file of receivers, routes, mute intervals and links"`
	// Templates is a folder of <type>.<subject|txt|html>.tmpl overriding the embedded ones.
	Templates string `envconfig:"EMAIL_TEMPLATES" desc:"folder of <type>.<subject|txt|html>.tmpl overriding the embedded templates"`
	LocalDir  string `envconfig:"EMAIL_LOCAL_DIR" default:"./data/sinks/email" desc:"where .eml files go without AW_SMTP_HOST"`
	OpsListen string `envconfig:"OPS_LISTEN" default:"127.0.0.1:9104" desc:"/metrics, /healthz and /readyz"`
	// ConsoleURL is the audit console's base URL: alerts link the account's
	// page there ("": no link).
	ConsoleURL string `envconfig:"CONSOLE_URL" desc:"the audit console's base URL: alerts link the account's page there (empty: no link)"`
}

// Validate checks the settings, naming the key at fault.
func (s *Settings) Validate() error {
	if err := s.ProcessSettings.Validate(); err != nil {
		return err
	}
	if _, err := describe.ParseConsole(s.ConsoleURL); err != nil {
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
	if _, err := egress.New(strings.Split(s.SMTPAllow, ","), false); err != nil {
		return fmt.Errorf("AW_SMTP_ALLOW_CIDRS: %w", err)
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
	comp.Console = describe.Console(s.ConsoleURL)
	return sink.Serve(ctx, sink.Service{
		Sink: SinkName, Process: "email-notifier", Role: eventbus.RoleEmail, Settings: s.ProcessSettings,
		OpsListen: s.OpsListen, Log: log, Adhoc: deadletter.AddressEmail,
		Setup: func(context.Context, *sink.Env) (*sink.Plan, error) {
			sender, err := mailer.New(file.Receivers, comp, mailer.Options{
				SMTP: mailer.SMTP{Host: s.SMTPHost, Port: s.SMTPPort, TLS: s.SMTPTLS, CAFile: s.SMTPCA, Auth: s.SMTPAuth, Username: s.SMTPUsername,
					Password: s.SMTPPassword, HELO: s.SMTPHELO, Pool: s.SMTPPool, Timeout: s.SMTPTimeout,
					Allow: strings.Split(s.SMTPAllow, ",")},
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
