package app_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/accountwatch/accountwatch/pkg/audit"
	"github.com/accountwatch/accountwatch/pkg/deadletter"
	"github.com/accountwatch/accountwatch/pkg/deliverylog"
	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/event/eventtest"
	"github.com/accountwatch/accountwatch/pkg/eventbus"
	"github.com/accountwatch/accountwatch/pkg/eventbus/bustest"
	"github.com/accountwatch/accountwatch/pkg/ops"
	"github.com/accountwatch/accountwatch/pkg/ops/opstest"
	"github.com/accountwatch/accountwatch/pkg/sink"
	"github.com/accountwatch/accountwatch/services/email-notifier/internal/app"
	"github.com/accountwatch/accountwatch/services/email-notifier/internal/smtpcapture"
)

const password = "s3cret-smtp-pass"

type stack struct {
	bus  *eventbus.Bus
	smtp *smtpcapture.Server
	out  *opstest.Buffer
	logs *opstest.Buffer
}

// start runs the notifier in-process with yaml as its routing file against a
// fresh bus and an SMTP capture server (nil opts: no server, local .eml files).
func start(t *testing.T, yaml string, opts *smtpcapture.Options, mod ...func(*app.Settings)) *stack {
	t.Helper()
	st, s := prepare(t, yaml, opts, mod...)
	st.run(t, s)
	return st
}

// prepare is start without running the notifier: a test publishes first.
func prepare(t *testing.T, yaml string, opts *smtpcapture.Options, mod ...func(*app.Settings)) (*stack, app.Settings) {
	t.Helper()
	st := &stack{bus: bustest.Start(t, bustest.Config(t, "127.0.0.1:0")), out: &opstest.Buffer{}, logs: &opstest.Buffer{}}
	var s app.Settings
	s.Config = st.bus.Cfg
	s.URL, s.NKeySeedFile = st.bus.ClientURL(), st.bus.SeedFile(eventbus.RoleEmail)
	s.Settings = sink.DefaultSettings()
	s.Start = "all"
	s.BackoffInitial, s.BackoffMax = 50*time.Millisecond, 200*time.Millisecond
	s.AckWait = 5 * time.Second
	s.SMTPPool, s.SMTPTimeout, s.SMTPTLS, s.SMTPAuth = 2, 5*time.Second, "none", "none"
	s.From = "accountwatch <alerts@reseller.example>"
	s.ReplyTo = "billing-team@reseller.example"
	s.LocalDir = filepath.Join(t.TempDir(), "eml")
	s.OpsListen = "127.0.0.1:0"
	s.LogLevel = "debug"
	if opts != nil {
		srv, err := smtpcapture.Start(t.TempDir(), *opts)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(srv.Stop)
		st.smtp = srv
		s.SMTPHost, s.SMTPPort = srv.Host(), srv.Port()
		if opts.TLS != "none" && opts.TLS != "" {
			s.SMTPTLS, s.SMTPCA = opts.TLS, srv.CAFile
		}
	}
	p := filepath.Join(t.TempDir(), "email.yaml")
	if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	s.ConfigFile = p
	for _, m := range mod {
		m(&s)
	}
	return st, s
}

func (st *stack) run(t *testing.T, s app.Settings) {
	t.Helper()
	bustest.Provision(t, st.bus, deliverylog.StreamConfig(st.bus.Cfg, s.LogRetention)) // the admin's, as awctl provision does
	log, err := ops.NewLogger(st.logs, s.LogLevel, "email-notifier")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx, s, log, st.out) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("notifier: %v", err)
		}
		if strings.Contains(st.logs.String(), password) {
			t.Error("the SMTP password appears in the logs")
		}
	})
}

// parsed is a received message taken apart.
type parsed struct {
	h     mail.Header
	text  string
	html  string
	rcpts []string
	user  string
}

func parse(t *testing.T, m smtpcapture.Message) parsed {
	t.Helper()
	return parseBytes(t, m.Data, m.To, m.User)
}

func parseBytes(t *testing.T, data []byte, to []string, user string) parsed {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	p := parsed{h: msg.Header, rcpts: to, user: user}
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/alternative" {
		t.Fatalf("content type %q (%v), want multipart/alternative", msg.Header.Get("Content-Type"), err)
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(part) // multipart.Reader decodes quoted-printable
		switch ct, _, _ := mime.ParseMediaType(part.Header.Get("Content-Type")); ct {
		case "text/plain":
			p.text = string(b)
		case "text/html":
			p.html = string(b)
		}
	}
	if p.text == "" || p.html == "" {
		t.Fatalf("parts: text %d bytes, html %d bytes", len(p.text), len(p.html))
	}
	dec := new(mime.WordDecoder)
	if s, err := dec.DecodeHeader(p.h.Get("Subject")); err == nil {
		p.h["Subject"] = []string{s}
	}
	return p
}

const immediate = `
receivers:
  - {name: managers, to: ["billing@reseller.example"], cc: ["audit@reseller.example"], to_label: manager_email}
route: {receiver: managers, group_wait: 0s, group_interval: 0s}
links: {ap-main: "https://ap.example.com/accounts/{account}"}
`

func TestMIMEAndThreading(t *testing.T) {
	st := start(t, immediate, &smtpcapture.Options{TLS: "none"})
	m := eventtest.Meta("1000123", map[string]string{"team": "emea"})
	hold := eventtest.Status(t, m, "active", "credit hold")
	bustest.Publish(t, st.bus, hold)
	bustest.Eventually(t, "first message", func() bool { return len(st.smtp.Messages()) == 1 })
	m.Revision = 1
	debt := eventtest.Debt(t, m, "0", "1512.4", "1000", "above")
	bustest.Publish(t, st.bus, debt)
	bustest.Eventually(t, "second message", func() bool { return len(st.smtp.Messages()) == 2 })
	a, b := parse(t, st.smtp.Messages()[0]), parse(t, st.smtp.Messages()[1])

	if got := a.h.Get("Subject"); got != "[accountwatch] Credit hold: Acme 1000123 (1000123) (activeplatform/ap-main)" {
		t.Errorf("subject %q", got)
	}
	if got := b.h.Get("Subject"); got != "[accountwatch] Debt over threshold: Acme 1000123 (1000123) owes 1,512.40 USD" {
		t.Errorf("debt subject %q", got)
	}
	for _, want := range []string{"1,512.40 USD (was 0.00 USD, +1,512.40 USD)", "1,000.00 USD (account), crossed above", "https://ap.example.com/accounts/1000123", debt.ID()} {
		if !strings.Contains(b.text, want) {
			t.Errorf("debt text lacks %q:\n%s", want, b.text)
		}
	}
	if !strings.Contains(b.html, `<a href="https://ap.example.com/accounts/1000123">`) || !strings.Contains(b.html, "1,512.40 USD") {
		t.Errorf("debt html:\n%s", b.html)
	}
	if a.h.Get("From") != `"accountwatch" <alerts@reseller.example>` || a.h.Get("Reply-To") != "<billing-team@reseller.example>" {
		t.Errorf("from %q reply-to %q", a.h.Get("From"), a.h.Get("Reply-To"))
	}
	if !strings.Contains(strings.Join(a.rcpts, ","), "billing@reseller.example") || !strings.Contains(strings.Join(a.rcpts, ","), "audit@reseller.example") || a.h.Get("Cc") == "" {
		t.Errorf("recipients %v cc %q", a.rcpts, a.h.Get("Cc"))
	}
	thread := a.h.Get("In-Reply-To")
	if thread == "" || thread != a.h.Get("References") || thread != b.h.Get("In-Reply-To") || thread != b.h.Get("References") {
		t.Errorf("not one thread: %q %q %q %q", a.h.Get("In-Reply-To"), a.h.Get("References"), b.h.Get("In-Reply-To"), b.h.Get("References"))
	}
	if a.h.Get("Message-Id") == "" || a.h.Get("Message-Id") == b.h.Get("Message-Id") || !strings.HasSuffix(a.h.Get("Message-Id"), "@reseller.example>") {
		t.Errorf("message ids %q %q", a.h.Get("Message-Id"), b.h.Get("Message-Id"))
	}
	if a.h.Get("X-Accountwatch-Events") != hold.ID() {
		t.Errorf("events header %q", a.h.Get("X-Accountwatch-Events"))
	}
	other := eventtest.Hosting(t, "1500000000000009", "", "FREEZE")
	bustest.Publish(t, st.bus, other)
	bustest.Eventually(t, "third message", func() bool { return len(st.smtp.Messages()) == 3 })
	if c := parse(t, st.smtp.Messages()[2]); c.h.Get("References") == thread {
		t.Error("another account's message joined the first account's thread")
	}
}

func TestLabelRecipients(t *testing.T) {
	st := start(t, immediate, &smtpcapture.Options{TLS: "none"})
	bustest.Publish(t, st.bus, eventtest.Status(t, eventtest.Meta("7", map[string]string{"manager_email": "bob@reseller.example"}), "active", "credit_hold"))
	bustest.Eventually(t, "two messages", func() bool { return len(st.smtp.Messages()) == 2 })
	var to []string
	for _, m := range st.smtp.Messages() {
		to = append(to, strings.Join(m.To, ","))
	}
	if !strings.Contains(strings.Join(to, ";"), "bob@reseller.example") {
		t.Errorf("the account's manager got nothing: %v", to)
	}
}

func TestTemplatesPerTypeAndOverride(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "account.status.changed.subject.tmpl"), []byte("STATUS of {{.AccountID}}: {{.Previous}} to {{.Current}}\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "account.status.changed.txt.tmpl"), []byte("Custom body for {{.Account}}\n"), 0o600)
	st := start(t, immediate, &smtpcapture.Options{TLS: "none"}, func(s *app.Settings) { s.Templates = dir })
	bustest.Publish(t, st.bus, eventtest.Status(t, eventtest.Meta("42", nil), "active", "credit_hold"))
	bustest.Eventually(t, "message", func() bool { return len(st.smtp.Messages()) == 1 })
	p := parse(t, st.smtp.Messages()[0])
	if p.h.Get("Subject") != "STATUS of 42: active to credit_hold" || !strings.Contains(p.text, "Custom body for Acme 42 (42)") {
		t.Errorf("override not used: %q / %q", p.h.Get("Subject"), p.text)
	}
	if !strings.Contains(p.html, "Credit hold") {
		t.Error("the embedded html part was not kept")
	}

	bad := t.TempDir()
	os.WriteFile(filepath.Join(bad, "account.staus.changed.subject.tmpl"), []byte("x"), 0o600)
	var s app.Settings
	s.Templates, s.To, s.From = bad, "a@b.example", "x@y.example"
	err := app.Run(context.Background(), s, nil, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "account.staus.changed.subject.tmpl") {
		t.Errorf("a misspelt template file: %v", err)
	}
}

func TestDigestAndCriticalBypass(t *testing.T) {
	st, s := prepare(t, `
receivers: [{name: digest, to: ["finance@reseller.example"]}]
route: {receiver: digest, group_by: [], group_wait: 2s, group_interval: 2s, critical_bypasses_grouping: true}
`, &smtpcapture.Options{TLS: "none"})
	crit := eventtest.Status(t, eventtest.Meta("c1", nil), "active", "credit_hold")
	var rest []*event.Event
	for _, a := range []string{"d1", "d2", "d3"} {
		rest = append(rest, eventtest.Debt(t, eventtest.Meta(a, nil), "1", "20", "500", ""))
	}
	// Stored before the notifier starts: the digest's window measures how
	// fast the notifier takes them, not how fast fsync'd publishes are.
	bustest.Publish(t, st.bus, rest[0], crit, rest[1], rest[2])
	st.run(t, s)
	bustest.Eventually(t, "the critical one at once", func() bool { return len(st.smtp.Messages()) >= 1 })
	first := parse(t, st.smtp.Messages()[0])
	if first.h.Get("X-Accountwatch-Events") != crit.ID() {
		t.Fatalf("first message carries %q, want the critical event alone", first.h.Get("X-Accountwatch-Events"))
	}
	bustest.Eventually(t, "the digest", func() bool { return len(st.smtp.Messages()) == 2 })
	d := parse(t, st.smtp.Messages()[1])
	if d.h.Get("Subject") != "[accountwatch] 3 changes on 3 accounts" {
		t.Errorf("digest subject %q", d.h.Get("Subject"))
	}
	for _, e := range rest {
		if !strings.Contains(d.text, e.ID()) || !strings.Contains(d.html, e.Data.AccountName) {
			t.Errorf("digest lacks %s", e.Data.AccountID)
		}
	}
	if d.h.Get("References") != "" {
		t.Error("a digest of several accounts joined an account's thread")
	}
}

func TestTransientRetriedPermanentDeadLettered(t *testing.T) {
	fault := func(cmd string, n int, arg string) *smtp.SMTPError {
		switch {
		case cmd == "MAIL" && n == 1:
			return &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 3, 2}, Message: "Service not available, closing channel"}
		case cmd == "RCPT" && strings.Contains(arg, "billing") && n == 1:
			return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Temporary local problem"}
		case cmd == "RCPT" && strings.Contains(arg, "gone"):
			return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "Mailbox gone@reseller.example does not exist"}
		}
		return nil
	}
	st := start(t, `
receivers:
  - {name: ok, to: ["billing@reseller.example"]}
  - {name: gone, to: ["gone@reseller.example"]}
route:
  receiver: ok
  group_wait: 0s
  routes: [{match: {account: ["dead*"]}, receiver: gone}]
`, &smtpcapture.Options{TLS: "none", Fault: fault})
	good := eventtest.Status(t, eventtest.Meta("live1", nil), "active", "credit_hold")
	bad := eventtest.Status(t, eventtest.Meta("dead1", nil), "active", "credit_hold")
	bustest.Publish(t, st.bus, good)
	bustest.Eventually(t, "delivered after 421 and 451", func() bool { return len(st.smtp.Messages()) == 1 })
	bustest.Publish(t, st.bus, bad)
	store, _ := deadletter.Open(context.Background(), st.bus.JS)
	var letters []deadletter.Letter
	bustest.Eventually(t, "550 dead-lettered", func() bool {
		letters, _ = store.List(context.Background(), deadletter.Filter{Sink: "email"})
		return len(letters) == 1
	})
	if l := letters[0]; l.EventID != bad.ID() || l.Reason != "client_error" || !strings.Contains(l.Error, "550") || !strings.Contains(l.Error, "does not exist") || l.Attempts != 1 {
		t.Errorf("letter %+v", l)
	}
}

func TestServerDownThenUp(t *testing.T) {
	st := start(t, immediate, &smtpcapture.Options{TLS: "none"}, func(s *app.Settings) { s.MaxDeliver = 100 })
	st.smtp.Stop()
	var evs []*event.Event
	for _, a := range []string{"u1", "u2", "u3", "u4"} {
		evs = append(evs, eventtest.Status(t, eventtest.Meta(a, nil), "active", "credit_hold"))
	}
	bustest.Publish(t, st.bus, evs...)
	bustest.Eventually(t, "attempts fail while the server is down", func() bool { return strings.Contains(st.logs.String(), "delivery failed") })
	time.Sleep(500 * time.Millisecond)
	if err := st.smtp.Restart(); err != nil {
		t.Fatal(err)
	}
	bustest.Eventually(t, "every event delivered after the server came back", func() bool { return len(st.smtp.Messages()) == 4 })
	seen := map[string]bool{}
	for _, m := range st.smtp.Messages() {
		seen[parse(t, m).h.Get("X-Accountwatch-Events")] = true
	}
	for _, e := range evs {
		if !seen[e.ID()] {
			t.Errorf("%s lost", e.Data.AccountID)
		}
	}
}

func TestAuthAndTLS(t *testing.T) {
	cases := []struct{ tls, auth string }{
		{"starttls", "plain"},
		{"implicit", "login"},
		{"none", "cram-md5"},
	}
	for _, c := range cases {
		t.Run(c.tls+"-"+c.auth, func(t *testing.T) {
			st := start(t, immediate, &smtpcapture.Options{TLS: c.tls, Users: map[string]string{"mailer": password}}, func(s *app.Settings) {
				s.SMTPAuth, s.SMTPUsername, s.SMTPPassword = c.auth, "mailer", password
			})
			bustest.Publish(t, st.bus, eventtest.Status(t, eventtest.Meta("a1", nil), "active", "credit_hold"))
			bustest.Eventually(t, "delivered", func() bool { return len(st.smtp.Messages()) == 1 })
			if u := st.smtp.Messages()[0].User; u != "mailer" {
				t.Errorf("authenticated as %q", u)
			}
		})
	}
	t.Run("wrong password is dead-lettered", func(t *testing.T) {
		st := start(t, immediate, &smtpcapture.Options{TLS: "starttls", Users: map[string]string{"mailer": password}}, func(s *app.Settings) {
			s.SMTPAuth, s.SMTPUsername, s.SMTPPassword = "plain", "mailer", "wrong"
		})
		bustest.Publish(t, st.bus, eventtest.Status(t, eventtest.Meta("a2", nil), "active", "credit_hold"))
		store, _ := deadletter.Open(context.Background(), st.bus.JS)
		bustest.Eventually(t, "dead letter", func() bool {
			l, _ := store.List(context.Background(), deadletter.Filter{Sink: "email"})
			return len(l) == 1 && strings.Contains(l[0].Error, "535")
		})
	})
}

func TestPIINeverInMessage(t *testing.T) {
	st := start(t, immediate, &smtpcapture.Options{TLS: "none"})
	e, err := event.Discovered(eventtest.Meta("1000777", nil), map[string]string{
		"status": "active", "custom_attributes.passport": "P1234567", "login_email": "cfo@acme.example", "contact_phone": "+15550100",
	})
	if err != nil {
		t.Fatal(err)
	}
	bustest.Publish(t, st.bus, e)
	bustest.Eventually(t, "message", func() bool { return len(st.smtp.Messages()) == 1 })
	raw := string(st.smtp.Messages()[0].Data)
	p := parse(t, st.smtp.Messages()[0])
	for _, pii := range []string{"P1234567", "cfo@acme.example", "+15550100", "passport"} {
		if strings.Contains(raw+p.text+p.html, pii) {
			t.Errorf("message carries %q", pii)
		}
	}
	if !strings.Contains(p.text, "status: active") {
		t.Errorf("allow-listed attribute missing:\n%s", p.text)
	}
}

func TestLocalEMLWithoutSMTP(t *testing.T) {
	var dir string
	st := start(t, immediate, nil, func(s *app.Settings) { dir = s.LocalDir })
	bustest.Publish(t, st.bus, eventtest.Status(t, eventtest.Meta("9", nil), "active", "credit_hold"))
	bustest.Eventually(t, "an .eml file", func() bool { f, _ := filepath.Glob(filepath.Join(dir, "*.eml")); return len(f) == 1 })
	files, _ := filepath.Glob(filepath.Join(dir, "*.eml"))
	b, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	p := parseBytes(t, b, nil, "")
	if !strings.Contains(p.h.Get("Subject"), "Credit hold") {
		t.Errorf("subject %q", p.h.Get("Subject"))
	}
	// The readable line follows the file.
	bustest.Eventually(t, "the readable line", func() bool {
		return strings.Contains(st.out.String(), "email to billing@reseller.example, audit@reseller.example: [accountwatch] Credit hold")
	})
	if left, _ := filepath.Glob(filepath.Join(dir, ".*")); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
	if !strings.Contains(st.logs.String(), "no AW_SMTP_HOST: messages are written as .eml files") {
		t.Error("the notifier does not say where mail goes")
	}
}

func TestConfigErrors(t *testing.T) {
	cases := []struct{ yaml, want string }{
		{"receivers: [{name: a}]\nroute: {receiver: a}", "set to or to_label"},
		{"receivers: [{name: a, to: ['not an address']}]\nroute: {receiver: a}", "receivers[0]"},
		{"receivers: [{name: a, to: [x@y.example]}]\nroute: {receiver: b}", `"b" is not defined`},
	}
	for _, c := range cases {
		p := filepath.Join(t.TempDir(), "e.yaml")
		os.WriteFile(p, []byte(c.yaml), 0o600)
		if _, _, err := app.LoadFile(p, ""); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want %q", c.yaml, err, c.want)
		}
	}
	var s app.Settings
	s.Settings = sink.DefaultSettings()
	s.Config = eventbus.DefaultConfig()
	if err := s.Validate(); err == nil || !strings.Contains(err.Error(), "AW_EMAIL_TO") {
		t.Errorf("no recipients: %v", err)
	}
}

func TestConnectionPool(t *testing.T) {
	st := start(t, immediate, &smtpcapture.Options{TLS: "none"}) // pool of 2
	var evs []*event.Event
	for i := range 20 {
		evs = append(evs, eventtest.Status(t, eventtest.Meta(fmt.Sprintf("p%d", i), nil), "active", "credit_hold"))
	}
	bustest.Publish(t, st.bus, evs...)
	bustest.Eventually(t, "20 messages", func() bool { return len(st.smtp.Messages()) == 20 })
	if n := st.smtp.Sessions(); n > 6 {
		t.Errorf("20 messages took %d connections; pooled connections are not reused", n)
	}
	// The server drops every connection; a pooled one found dead is replaced
	// without the delivery failing.
	st.smtp.Stop()
	if err := st.smtp.Restart(); err != nil {
		t.Fatal(err)
	}
	bustest.Publish(t, st.bus, eventtest.Status(t, eventtest.Meta("after", nil), "active", "credit_hold"))
	bustest.Eventually(t, "delivered over a fresh connection", func() bool { return len(st.smtp.Messages()) == 21 })
	if strings.Contains(st.logs.String(), "delivery failed") {
		t.Errorf("a stale pooled connection made a delivery fail:\n%s", st.logs.String())
	}
}

func TestExampleConfigLoads(t *testing.T) {
	f, tree, err := app.LoadFile(filepath.Join("..", "..", "..", "..", "deploy", "examples", "email.yaml"), "")
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Receivers) != 2 {
		t.Errorf("receivers %d", len(f.Receivers))
	}
	managed := eventtest.Status(t, eventtest.Meta("1", map[string]string{"manager_email": "bob@reseller.example"}), "active", "credit_hold")
	var got []string
	for _, l := range tree.Match(managed) {
		got = append(got, l.Receiver)
	}
	if strings.Join(got, ",") != "account-managers,finance" {
		t.Errorf("a managed account's change goes to %v", got)
	}
}

func TestAdhocRedriveToAnAddress(t *testing.T) {
	st := start(t, immediate, &smtpcapture.Options{TLS: "none"})
	ev := eventtest.Status(t, eventtest.Meta("778", nil), "active", "credit_hold")
	bustest.Publish(t, st.bus, ev)
	bustest.Eventually(t, "the normal delivery", func() bool { return len(st.smtp.Messages()) == 1 })
	if _, err := audit.Redrive(context.Background(), st.bus.JS, audit.Selection{Account: "778"}, audit.Target{Sink: "email", To: "auditor@reseller.example"}, false, nil); err != nil {
		t.Fatal(err)
	}
	bustest.Eventually(t, "the re-drive to the chosen address", func() bool { return len(st.smtp.Messages()) == 2 })
	m := st.smtp.Messages()[1]
	p := parse(t, m)
	if strings.Join(m.To, ",") != "auditor@reseller.example" || !strings.Contains(p.text, "Re-sent by an operator") || p.h.Get("X-Accountwatch-Events") != ev.ID() {
		t.Errorf("ad-hoc mail to %v: %s", m.To, p.text)
	}
}
