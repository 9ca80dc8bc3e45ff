package mailer_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/accountwatch/accountwatch/pkg/describe"
	"github.com/accountwatch/accountwatch/pkg/egress"
	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/event/eventtest"
	"github.com/accountwatch/accountwatch/pkg/sink"
	"github.com/accountwatch/accountwatch/services/email-notifier/internal/compose"
	"github.com/accountwatch/accountwatch/services/email-notifier/internal/mailer"
)

func composer(t *testing.T) *compose.Composer {
	c, err := compose.New("", describe.Links{}, "acme.example")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestSMTPHostGuarded: the relay is refused when it is (or spells) an
// internal address outside the allow-list; loopback is allowed by default.
func TestSMTPHostGuarded(t *testing.T) {
	rcvs := []mailer.Receiver{{Name: "default", To: []string{"ops@acme.example"}}}
	allow := egress.Loopback
	open := func(host string) error {
		s, err := mailer.New(rcvs, composer(t), mailer.Options{From: "alerts@acme.example",
			SMTP: mailer.SMTP{Host: host, Port: 25, TLS: mailer.TLSNone, Timeout: time.Second, Allow: allow}})
		if err == nil {
			s.Close()
		}
		return err
	}
	for host, want := range map[string]string{
		"169.254.169.254":          "Link Local",
		"100.100.100.200":          "Shared Address Space",
		"10.1.2.3":                 "Private-Use",
		"metadata.google.internal": "site-local name",
		"0x7f000001":               "other than in dotted decimal",
		"fe80::1%eth0":             "zone",
	} {
		if err := open(host); err == nil || !strings.Contains(err.Error(), "AW_SMTP_HOST") || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want refused naming %q", host, err, want)
		}
	}
	for _, host := range []string{"127.0.0.1", "smtp.example.com"} {
		if err := open(host); err != nil {
			t.Errorf("%s: %v", host, err)
		}
	}
	allow = nil
	if err := open("127.0.0.1"); err == nil || !strings.Contains(err.Error(), "Loopback") {
		t.Errorf("loopback with an empty allow-list: %v", err)
	}
	allow = []string{"10.0.0.0/8"}
	if err := open("10.1.2.3"); err != nil {
		t.Errorf("an allow-listed relay: %v", err)
	}
}

// TestLocalLineEscaped: the local sink's line escapes what an upstream name
// carries; the .eml file is written as composed.
func TestLocalLineEscaped(t *testing.T) {
	var out bytes.Buffer
	s, err := mailer.New([]mailer.Receiver{{Name: "default", To: []string{"ops@acme.example"}}}, composer(t),
		mailer.Options{From: "alerts@acme.example", LocalDir: t.TempDir(), LocalOut: &out})
	if err != nil {
		t.Fatal(err)
	}
	m := eventtest.Meta("1000123", nil)
	m.AccountName = "\x1b[2JAcme\x1b]0;owned\a\u202eevil"
	n := &sink.Notification{Sink: "email", Receiver: "default", Events: []*event.Event{eventtest.Status(t, m, "active", "credit_hold")}}
	if err := s.Send(context.Background(), n); err != nil {
		t.Fatal(err)
	}
	line := out.String()
	if strings.ContainsAny(line, "\x1b\a\u202e") || strings.Count(line, "\n") != 1 || !strings.Contains(line, `\x1b[2JAcme`) {
		t.Errorf("local line %q", line)
	}
}
