package slacksink_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/accountwatch/accountwatch/pkg/egress"
	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/event/eventtest"
	"github.com/accountwatch/accountwatch/pkg/eventbus/bustest"
	"github.com/accountwatch/accountwatch/pkg/sink"
	"github.com/accountwatch/accountwatch/services/slack-notifier/internal/slacksink"
)

// TestDestinationsGuarded: the API base and incoming webhooks may not be
// internal addresses outside AW_SLACK_ALLOW_CIDRS (loopback by default).
func TestDestinationsGuarded(t *testing.T) {
	b := bustest.New(t)
	ctx := context.Background()
	allow := egress.Loopback
	open := func(apiURL string, rcvs ...slacksink.Receiver) error {
		if len(rcvs) == 0 {
			rcvs = []slacksink.Receiver{{Name: "ops", Channel: "#ops"}}
		}
		s, err := slacksink.New(ctx, b.JS, rcvs, slacksink.Options{Token: "xoxb-test", APIURL: apiURL, Allow: allow, LocalDir: t.TempDir()})
		if err == nil {
			s.Close()
		}
		return err
	}
	cases := []struct{ name, api, hook, want string }{
		{"metadata API", "http://169.254.169.254/api/", "", "AW_SLACK_API_URL: destination refused: 169.254.169.254 is Link Local"},
		{"private API", "http://10.0.0.7/api/", "", "Private-Use"},
		{"IPv6 loopback with a zone", "http://[::1%25lo]:8080/api/", "", "zone"},
		{"metadata webhook", "https://slack.com/api/", "http://[::ffff:169.254.169.254]/services/T0/B0/x", "receiver hooks: webhook_url: destination refused"},
		{"public", "https://slack.com/api/", "https://hooks.slack.com/services/T0/B0/x", ""},
		{"loopback capture server", "http://127.0.0.1:9/api/", "", ""},
	}
	for _, c := range cases {
		rcvs := []slacksink.Receiver{{Name: "ops", Channel: "#ops"}}
		if c.hook != "" {
			rcvs = append(rcvs, slacksink.Receiver{Name: "hooks", WebhookURL: c.hook})
		}
		err := open(c.api, rcvs...)
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "/services/T0/B0/x") {
			t.Errorf("%s: the webhook's secret path is in the error: %v", c.name, err)
		}
	}
	allow = nil
	if err := open("http://127.0.0.1:9/api/"); err == nil || !strings.Contains(err.Error(), "Loopback") {
		t.Errorf("loopback with an empty allow-list: %v", err)
	}
}

// TestLocalLineEscaped: the local sink's readable line escapes control
// characters from upstream names; the JSON lines file keeps the text.
func TestLocalLineEscaped(t *testing.T) {
	b := bustest.New(t)
	var out bytes.Buffer
	dir := t.TempDir()
	s, err := slacksink.New(context.Background(), b.JS, []slacksink.Receiver{{Name: "ops", Channel: "#ops"}}, slacksink.Options{LocalDir: dir, LocalOut: &out})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	m := eventtest.Meta("1000123", nil)
	m.AccountName = "Acme\r\nslack #ops (post): forged\x1b[2J\x1b]0;owned\a"
	n := &sink.Notification{Sink: "slack", Receiver: "ops", Events: []*event.Event{eventtest.Status(t, m, "active", "credit_hold")}}
	if err := s.Send(context.Background(), n); err != nil {
		t.Fatal(err)
	}
	if line := out.String(); strings.ContainsAny(line, "\r\x1b\a") || strings.Count(line, "\n") != 1 || !strings.Contains(line, `Acme\r\nslack`) {
		t.Errorf("local line %q", line)
	}
	file, _ := os.ReadFile(filepath.Join(dir, slacksink.LocalFile))
	if !strings.Contains(string(file), `Acme\r\nslack #ops (post): forged\u001b[2J`) {
		t.Errorf("the file does not keep the text: %s", file)
	}
}
