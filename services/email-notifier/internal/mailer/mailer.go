// Package mailer delivers notifications as email: recipients per receiver and
// per label, a pool of SMTP connections (STARTTLS or implicit TLS, PLAIN,
// LOGIN or CRAM-MD5), SMTP replies classified for the sink runtime (4xx
// retried, 5xx dead-lettered with the server's reply), and a local sink that
// writes .eml files when no SMTP server is configured.
package mailer

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/mail"
	"net/textproto"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	gomail "github.com/wneessen/go-mail"
	gosmtp "github.com/wneessen/go-mail/smtp"

	"github.com/accountwatch/accountwatch/pkg/deadletter"
	"github.com/accountwatch/accountwatch/pkg/describe"
	"github.com/accountwatch/accountwatch/pkg/egress"
	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/sink"
	"github.com/accountwatch/accountwatch/services/email-notifier/internal/compose"
)

// Receiver is one set of recipients.
type Receiver struct {
	Name string   `yaml:"name"`
	To   []string `yaml:"to"`
	Cc   []string `yaml:"cc"`
	// ToLabel names a watch-entry label holding an address (e.g. manager_email):
	// each event also goes to the address its account carries there.
	ToLabel   string  `yaml:"to_label"`
	RateLimit float64 `yaml:"rate_limit"`
	Burst     int     `yaml:"burst"`
}

// Validate checks the addresses.
func (r Receiver) Validate() error {
	if len(r.To) == 0 && r.ToLabel == "" {
		return errors.New("set to or to_label")
	}
	for _, a := range append(slices.Clone(r.To), r.Cc...) {
		if _, err := mail.ParseAddress(a); err != nil {
			return fmt.Errorf("address %q: %v", a, err)
		}
	}
	return nil
}

// Runtime is the receiver as the sink runtime paces it.
func (r Receiver) Runtime() sink.Receiver {
	return sink.Receiver{Name: r.Name, RateLimit: r.RateLimit, Burst: r.Burst}
}

// TLS modes of the SMTP connection.
const (
	TLSStartTLS = "starttls" // STARTTLS required
	TLSImplicit = "implicit" // TLS from the first byte (port 465)
	TLSNone     = "none"     // plain text (a local relay or mail catcher)
)

// SMTP is the server connection.
type SMTP struct {
	Host     string
	Port     int
	TLS      string
	CAFile   string // verify the server with this CA bundle instead of the system's
	Auth     string // none, plain, login, cram-md5
	Username string
	Password string
	HELO     string
	Pool     int
	Timeout  time.Duration
	// Allow is the egress guard's allow-list (CIDRs): the ranges the relay
	// may be in besides globally reachable addresses.
	Allow []string
}

// Options configure the Sender.
type Options struct {
	SMTP    SMTP
	From    string
	ReplyTo string
	// LocalDir receives .eml files when SMTP.Host is empty.
	LocalDir string
	LocalOut io.Writer
}

// Sender implements sink.Sender for email.
type Sender struct {
	receivers map[string]Receiver
	comp      *compose.Composer
	from      string
	replyTo   string

	client *gomail.Client
	pool   chan *gosmtp.Client

	localDir string
	localOut io.Writer
	localMu  sync.Mutex
}

// Local reports whether messages go to .eml files rather than a server.
func (s *Sender) Local() bool { return s.client == nil }

// New builds the sender.
func New(rcvs []Receiver, comp *compose.Composer, o Options) (*Sender, error) {
	if _, err := mail.ParseAddress(o.From); err != nil {
		return nil, fmt.Errorf("AW_EMAIL_FROM: %q: %v", o.From, err)
	}
	if o.ReplyTo != "" {
		if _, err := mail.ParseAddress(o.ReplyTo); err != nil {
			return nil, fmt.Errorf("AW_EMAIL_REPLY_TO: %q: %v", o.ReplyTo, err)
		}
	}
	s := &Sender{receivers: map[string]Receiver{}, comp: comp, from: o.From, replyTo: o.ReplyTo, localDir: o.LocalDir, localOut: o.LocalOut}
	for _, r := range rcvs {
		s.receivers[r.Name] = r
	}
	if o.SMTP.Host == "" {
		if err := os.MkdirAll(o.LocalDir, 0o750); err != nil {
			return nil, fmt.Errorf("AW_EMAIL_LOCAL_DIR: %w", err)
		}
		if s.localOut == nil {
			s.localOut = io.Discard
		}
		return s, nil
	}
	c, err := newClient(o.SMTP)
	if err != nil {
		return nil, err
	}
	s.client = c
	s.pool = make(chan *gosmtp.Client, max(1, o.SMTP.Pool))
	return s, nil
}

// AllowKey names the setting of the SMTP connection's egress guard's allow-list.
const AllowKey = "AW_SMTP_ALLOW_CIDRS"

func newClient(o SMTP) (*gomail.Client, error) {
	// The relay goes through the egress guard: no internal address unless
	// o.Allow (AW_SMTP_ALLOW_CIDRS) allows it.
	guard, err := egress.New(o.Allow, false)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", AllowKey, err)
	}
	if err := guard.CheckHost(o.Host); err != nil {
		return nil, fmt.Errorf("AW_SMTP_HOST: %w (%s opens a range)", err, AllowKey)
	}
	opts := []gomail.Option{gomail.WithPort(o.Port), gomail.WithTimeout(o.Timeout)}
	if o.HELO != "" {
		opts = append(opts, gomail.WithHELO(o.HELO))
	}
	tc := &tls.Config{ServerName: o.Host, MinVersion: tls.VersionTLS12}
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("AW_SMTP_TLS_CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("AW_SMTP_TLS_CA: %s holds no PEM certificate", o.CAFile)
		}
		tc.RootCAs = pool
	}
	opts = append(opts, gomail.WithTLSConfig(tc))
	// Every address the host resolves to is checked as it is dialled.
	dialer := guard.Dialer(max(o.Timeout, time.Second))
	dial := dialer.DialContext
	switch o.TLS {
	case TLSStartTLS:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
	case TLSImplicit:
		// go-mail leaves a custom dialer's TLS to it.
		dial = (&tls.Dialer{NetDialer: dialer, Config: tc}).DialContext
		opts = append(opts, gomail.WithSSL())
	case TLSNone:
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
	default:
		return nil, fmt.Errorf("AW_SMTP_TLS: %q (want starttls, implicit or none)", o.TLS)
	}
	switch strings.ToLower(o.Auth) {
	case "", "none":
	case "plain":
		opts = append(opts, gomail.WithSMTPAuth(gomail.SMTPAuthPlain))
	case "login":
		opts = append(opts, gomail.WithSMTPAuth(gomail.SMTPAuthLogin))
	case "cram-md5":
		opts = append(opts, gomail.WithSMTPAuth(gomail.SMTPAuthCramMD5))
	default:
		return nil, fmt.Errorf("AW_SMTP_AUTH: %q (want none, plain, login or cram-md5)", o.Auth)
	}
	if a := strings.ToLower(o.Auth); a != "" && a != "none" {
		if o.Username == "" {
			return nil, errors.New("AW_SMTP_USERNAME: required with AW_SMTP_AUTH")
		}
		opts = append(opts, gomail.WithUsername(o.Username), gomail.WithPassword(o.Password))
	}
	opts = append(opts, gomail.WithDialContextFunc(dial))
	c, err := gomail.NewClient(o.Host, opts...)
	if err != nil {
		return nil, fmt.Errorf("AW_SMTP_HOST: %w", err)
	}
	return c, nil
}

// Close closes the pooled connections.
func (s *Sender) Close() {
	if s.pool == nil {
		return
	}
	for {
		select {
		case c := <-s.pool:
			_ = s.client.CloseWithSMTPClient(c)
		default:
			return
		}
	}
}

// message is one mail of a notification: its recipients and events.
type message struct {
	to, cc []string
	events []*event.Event
}

// split gives the receiver's fixed recipients every event, and each label
// recipient the events of the accounts that name it.
func (r Receiver) split(evs []*event.Event) []message {
	var out []message
	if len(r.To) > 0 {
		out = append(out, message{to: r.To, cc: r.Cc, events: evs})
	}
	if r.ToLabel == "" {
		return out
	}
	byAddr := map[string][]*event.Event{}
	var order []string
	for _, e := range evs {
		a := strings.TrimSpace(e.Data.Labels[r.ToLabel])
		if a == "" || slices.Contains(r.To, a) {
			continue
		}
		if _, err := mail.ParseAddress(a); err != nil {
			continue // a label that is no address reaches nobody extra
		}
		if byAddr[a] == nil {
			order = append(order, a)
		}
		byAddr[a] = append(byAddr[a], e)
	}
	for _, a := range order {
		out = append(out, message{to: []string{a}, events: byAddr[a]})
	}
	return out
}

// Send delivers a notification: one message per recipient set.
func (s *Sender) Send(ctx context.Context, n *sink.Notification) error {
	r, ok := s.receivers[n.Receiver]
	if n.Receiver == deadletter.AdhocReceiver {
		// A re-drive to an address of the operator's choice.
		if _, err := mail.ParseAddress(n.RedriveTo); err != nil {
			return sink.Permanent(sink.ReasonClientError, fmt.Errorf("an ad-hoc re-drive to %q: %v", n.RedriveTo, err))
		}
		r, ok = Receiver{Name: deadletter.AdhocReceiver, To: []string{n.RedriveTo}}, true
	}
	if !ok {
		return sink.Permanent(sink.ReasonClientError, fmt.Errorf("no email receiver %q", n.Receiver))
	}
	parts := r.split(n.Events)
	if n.Kind == sink.KindReport {
		// A report goes to the receiver's own addresses, not per account.
		parts = []message{{to: r.To, cc: r.Cc}}
		if len(r.To) == 0 {
			return sink.Permanent(sink.ReasonClientError, fmt.Errorf("receiver %s: a standing report needs to: addresses", r.Name))
		}
	}
	o := compose.Options{Redrive: n.Redrive, Reminder: n.Kind == sink.KindReminder}
	if n.Leaf != nil {
		o.Runbook = n.Leaf.Runbook
	}
	var to []string
	for _, m := range parts {
		to = append(append(to, m.to...), m.cc...)
	}
	n.Receipt.Destination = strings.Join(to, ", ")
	if s.client == nil {
		n.Receipt.Destination += " (an .eml file)"
	}
	for _, m := range parts {
		var mail compose.Mail
		var err error
		if n.Kind == sink.KindReport {
			mail, err = s.comp.Report(n.Report, append(slices.Clone(m.to), m.cc...))
		} else {
			mail, err = s.comp.ComposeWith(m.events, append(slices.Clone(m.to), m.cc...), o)
		}
		if err != nil {
			return sink.Permanent(sink.ReasonInvalidEvent, err)
		}
		msg, err := s.build(mail, m.to, m.cc)
		if err != nil {
			return sink.Permanent(sink.ReasonClientError, err)
		}
		if s.client == nil {
			err = s.writeLocal(mail, msg)
		} else {
			err = s.deliver(ctx, msg)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (s *Sender) build(m compose.Mail, to, cc []string) (*gomail.Msg, error) {
	msg := gomail.NewMsg()
	if err := msg.From(s.from); err != nil {
		return nil, fmt.Errorf("from %q: %w", s.from, err)
	}
	if err := msg.To(to...); err != nil {
		return nil, fmt.Errorf("to %v: %w", to, err)
	}
	if len(cc) > 0 {
		if err := msg.Cc(cc...); err != nil {
			return nil, fmt.Errorf("cc %v: %w", cc, err)
		}
	}
	if s.replyTo != "" {
		if err := msg.ReplyTo(s.replyTo); err != nil {
			return nil, fmt.Errorf("reply-to: %w", err)
		}
	}
	msg.Subject(m.Subject)
	msg.SetMessageIDWithValue(m.MessageID)
	if m.ThreadID != "" {
		msg.SetGenHeader(gomail.HeaderInReplyTo, "<"+m.ThreadID+">")
		msg.SetGenHeader(gomail.HeaderReferences, "<"+m.ThreadID+">")
	}
	msg.SetGenHeader("X-Accountwatch-Events", strings.Join(m.EventIDs, " "))
	msg.SetBulk()
	msg.SetDate()
	msg.SetUserAgent("accountwatch")
	msg.SetBodyString(gomail.TypeTextPlain, m.Text)
	msg.AddAlternativeString(gomail.TypeTextHTML, m.HTML)
	return msg, nil
}

// deliver sends msg over a pooled connection. Pooled connections the server
// has closed meanwhile are discarded (there are at most Pool of them) until a
// live or fresh one carries the message; only a fresh connection's failure counts.
func (s *Sender) deliver(ctx context.Context, msg *gomail.Msg) error {
	for {
		c, reused, err := s.conn(ctx)
		if err != nil {
			return classify(err)
		}
		err = s.client.SendWithSMTPClient(c, msg)
		if err == nil {
			select {
			case s.pool <- c:
			default:
				_ = s.client.CloseWithSMTPClient(c)
			}
			return nil
		}
		_ = s.client.CloseWithSMTPClient(c)
		if reused && staleConn(err) {
			continue
		}
		return classify(err)
	}
}

func (s *Sender) conn(ctx context.Context) (*gosmtp.Client, bool, error) {
	select {
	case c := <-s.pool:
		return c, true, nil
	default:
	}
	c, err := s.client.DialToSMTPClientWithContext(ctx)
	return c, false, err
}

// staleConn reports an error of a connection that died while pooled, not an
// answer of the server about the message.
func staleConn(err error) bool {
	if se, ok := errors.AsType[*gomail.SendError](err); ok {
		return se.Reason == gomail.ErrConnCheck || se.Reason == gomail.ErrSMTPReset
	}
	return errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed)
}

// classify maps SMTP failures onto the sink policy: a 4xx reply is
// temporary (retried with backoff), a 5xx reply permanent (dead-lettered
// with the server's words), a connection failure transient.
func classify(err error) error {
	code, reply := 0, err.Error()
	if te, ok := errors.AsType[*textproto.Error](err); ok {
		code, reply = te.Code, fmt.Sprintf("%d %s", te.Code, te.Msg)
	}
	if se, ok := errors.AsType[*gomail.SendError](err); ok && se.ErrorCode() != 0 {
		code = se.ErrorCode()
	}
	wrapped := fmt.Errorf("smtp: %s", reply)
	switch {
	case code >= 500:
		return &sink.Error{Reason: sink.ReasonClientError, Permanent: true, Status: code, Err: wrapped}
	case code >= 400:
		return &sink.Error{Reason: sink.ReasonServerError, Status: code, Err: wrapped}
	}
	if se, ok := errors.AsType[*gomail.SendError](err); ok {
		// A SendError keeps the network error it wraps to itself (no
		// Unwrap): a deadline is known by its text, the one os gives it.
		if strings.Contains(se.Error(), os.ErrDeadlineExceeded.Error()) {
			return sink.Transient(sink.ReasonTimeout, wrapped)
		}
		if se.IsTemp() {
			return sink.Transient(sink.ReasonServerError, wrapped)
		}
	}
	return sink.Classify(fmt.Errorf("smtp: %w", err))
}

// writeLocal puts a message in <dir>/<time>-<message id>.eml. It writes a
// hidden temporary file and renames it: a reader (a mail client watching
// the folder, a test) never sees half a message.
func (s *Sender) writeLocal(m compose.Mail, msg *gomail.Msg) error {
	name := time.Now().UTC().Format("20060102T150405.000000") + "-" + strings.SplitN(m.MessageID, "@", 2)[0] + ".eml"
	path := filepath.Join(s.localDir, name)
	tmp := filepath.Join(s.localDir, "."+name+".tmp")
	if err := msg.WriteToFile(tmp); err != nil {
		_ = os.Remove(tmp)
		return sink.Transient(sink.ReasonOther, fmt.Errorf("local email sink: %w", err))
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return sink.Transient(sink.ReasonOther, fmt.Errorf("local email sink: %w", err))
	}
	s.localMu.Lock()
	// One line per message: control characters in the subject (account
	// names from upstream) or an address are escaped.
	fmt.Fprintf(s.localOut, "email to %s: %s (%s)\n", describe.Printable(strings.Join(m.To, ", ")), describe.Printable(m.Subject), path)
	s.localMu.Unlock()
	return nil
}
