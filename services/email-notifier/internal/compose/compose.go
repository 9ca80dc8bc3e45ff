// Package compose turns notifications into email: a subject that says the
// account and the change, a plain-text and an HTML part from templates per
// event type (embedded defaults, overridable from a folder), digests of many
// events, and Message-ID / In-Reply-To / References that keep each account's
// messages in one thread.
package compose

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	texttemplate "text/template"
	"time"

	"github.com/accountwatch/accountwatch/pkg/describe"
	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/standing"
)

//go:embed templates/*.tmpl
var embedded embed.FS

// ErrTemplate is returned for a template that cannot be used.
var ErrTemplate = errors.New("email template")

// Parts of a message, each a template file <name>.<part>.tmpl.
const (
	PartSubject = "subject"
	PartText    = "txt"
	PartHTML    = "html"
)

// Template names besides the type tails ("account.status.changed").
const (
	NameDefault = "default"
	NameDigest  = "digest"
	// NameReport is the standing report's.
	NameReport = "report"
)

// Mail is a composed message.
type Mail struct {
	To      []string
	Subject string
	Text    string
	HTML    string
	// MessageID (without angle brackets) is derived from the events and the
	// recipients: a message re-sent after a crash keeps its id.
	MessageID string
	// ThreadID is the account's thread root, referenced by In-Reply-To and
	// References; empty for a digest of several accounts.
	ThreadID string
	// EventIDs are the events the message carries.
	EventIDs []string
}

// Composer renders mail from templates.
type Composer struct {
	text   map[string]*texttemplate.Template // "<name>.<part>" for subject and txt
	html   map[string]*htmltemplate.Template // "<name>.html"
	links  describe.Links
	domain string
	// Console is the audit console's base URL: each account links its page.
	Console describe.Console
}

// New loads the embedded templates, then those of dir (if not empty), which
// replace embedded ones of the same name. Every file must be named
// <type tail|default|digest>.<subject|txt|html>.tmpl and parse; a stray or
// broken file is an error naming it, so a typo never silently falls back.
func New(dir string, links describe.Links, domain string) (*Composer, error) {
	c := &Composer{text: map[string]*texttemplate.Template{}, html: map[string]*htmltemplate.Template{}, links: links, domain: domain}
	if err := c.load(embedded, "templates", "embedded"); err != nil {
		return nil, err
	}
	if dir != "" {
		if _, err := os.Stat(dir); err != nil {
			return nil, fmt.Errorf("%w: AW_EMAIL_TEMPLATES: %v", ErrTemplate, err)
		}
		if err := c.load(os.DirFS(dir), ".", dir); err != nil {
			return nil, err
		}
	}
	for _, need := range []string{NameDefault + "." + PartSubject, NameDefault + "." + PartText, NameDefault + "." + PartHTML, NameDigest + "." + PartSubject, NameDigest + "." + PartText, NameDigest + "." + PartHTML,
		NameReport + "." + PartSubject, NameReport + "." + PartText, NameReport + "." + PartHTML} {
		if c.text[need] == nil && c.html[need] == nil {
			return nil, fmt.Errorf("%w: %s.tmpl missing", ErrTemplate, need)
		}
	}
	return c, nil
}

func validName(name string) bool {
	if name == NameDefault || name == NameDigest || name == NameReport {
		return true
	}
	return event.Type("com.accountwatch." + name).Valid()
}

func (c *Composer) load(fsys fs.FS, root, where string) error {
	files, err := fs.Glob(fsys, filepath.Join(root, "*.tmpl"))
	if err != nil {
		return err
	}
	for _, f := range files {
		base := strings.TrimSuffix(filepath.Base(f), ".tmpl")
		i := strings.LastIndexByte(base, '.')
		if i < 0 {
			return fmt.Errorf("%w: %s/%s: want <type>.<subject|txt|html>.tmpl", ErrTemplate, where, filepath.Base(f))
		}
		name, part := base[:i], base[i+1:]
		if !validName(name) || part != PartSubject && part != PartText && part != PartHTML {
			return fmt.Errorf("%w: %s/%s: want <type tail, default or digest>.<subject|txt|html>.tmpl (e.g. account.status.changed.subject.tmpl)", ErrTemplate, where, filepath.Base(f))
		}
		b, err := fs.ReadFile(fsys, f)
		if err != nil {
			return err
		}
		if part == PartHTML {
			t, err := htmltemplate.New(base).Option("missingkey=error").Parse(string(b))
			if err != nil {
				return fmt.Errorf("%w: %s/%s: %v", ErrTemplate, where, filepath.Base(f), err)
			}
			c.html[base] = t
			continue
		}
		t, err := texttemplate.New(base).Option("missingkey=error").Parse(string(b))
		if err != nil {
			return fmt.Errorf("%w: %s/%s: %v", ErrTemplate, where, filepath.Base(f), err)
		}
		c.text[base] = t
	}
	return nil
}

// View is what a template sees of one event.
type View struct {
	EventID, Type, Headline, Severity, Color            string
	Account, AccountID, AccountName, Provider, Instance string
	Field, Previous, Current, Change                    string
	ObservedAt, Link                                    string
	Recovery, Redrive                                   bool
	// Title is the headline with what is still wrong after a recovery.
	Title string
	// Standing is where the account stands now ("Credit hold; debt 620.00
	// EUR over the 600.00 EUR threshold"), Since since when it is in bad
	// standing; Console its page in the audit console; Runbook the route's
	// line for the event; Reminder marks a reminder (repeat_interval).
	Standing, Since, Console, Runbook string
	Reminder                          bool
	Forecast                          *ForecastView
	Labels, Attributes                map[string]string
	Debt                              *DebtView
	Poll                              *PollView
}

// ForecastView says when the debt reaches its threshold, and how that was worked out.
type ForecastView struct {
	Current, Says, Method string
}

// DebtView holds a debt change's amounts, formatted exactly.
type DebtView struct {
	Current, Previous, Delta, Threshold, ThresholdSource, Crossed, Balance string
	// Step is the ladder step crossed ("80% of the threshold: 480.00 EUR"); Floor a prepaid balance's.
	Step, Floor string
}

// PollView holds a degraded or recovered upstream's counts, and what could
// not be read (describe.Cause).
type PollView struct {
	Failures  int
	Since     string
	ErrorCode string
	Cause     string
}

// DigestView is what the digest templates see.
type DigestView struct {
	Events                    []View
	Count, Accounts, Critical int
	Redrive, Reminder         bool
	// Severity and Color are the worst event's: a digest never says less.
	Severity, Color string
}

// ReportView is what the report templates see.
type ReportView struct {
	Route, Every, Scheduled, At string
	Lines                       []ReportLineView
}

// ReportLineView is one account of a report.
type ReportLineView struct {
	Name, Console, Provider, Instance                 string
	Standing, Since, Debt, Trend, Forecast, LastAlert string
}

// Options are what a message says besides its events.
type Options struct {
	Redrive bool
	// Reminder: the accounts are still in bad standing (repeat_interval).
	Reminder bool
	// Runbook is the route's line or link per event (nil: none).
	Runbook func(*event.Event) string
	// Now is when the message is composed (a reminder's id, a forecast's "in ~3 days").
	Now time.Time
}

func color(e *event.Event) string {
	switch {
	case describe.IsRecovery(e):
		return "#2EB67D"
	case e.Data.Severity == event.SeverityCritical:
		return "#D40E0D"
	case e.Data.Severity == event.SeverityWarning:
		return "#F2A100"
	}
	return "#1D9BD1"
}

func (c *Composer) view(e *event.Event, o Options) View {
	redrive := o.Redrive
	d := e.Data
	v := View{
		EventID: e.ID(), Type: e.Type().Tail(), Headline: describe.Headline(e), Severity: string(d.Severity), Color: color(e),
		Title: describe.Title(e), Standing: describe.Standing(d.Standing), Console: c.Console.Account(d), Reminder: o.Reminder,
		Account: describe.Name(d), AccountID: d.AccountID, AccountName: d.AccountName, Provider: string(d.Provider), Instance: d.Instance,
		Field: d.Field, Change: describe.Change(e), ObservedAt: e.Cloud.Time().UTC().Format("Mon, 02 Jan 2006 15:04 MST"),
		Link: c.links.For(d.Instance, d.AccountID), Recovery: describe.IsRecovery(e), Redrive: redrive,
		Labels: d.Labels, Attributes: d.Attributes,
	}
	if d.Previous != nil || d.Current != nil {
		v.Previous, v.Current = describe.Value(d.Previous), describe.Value(d.Current)
	}
	if db := d.Debt; db != nil {
		cur, prev := "", ""
		if d.Current != nil {
			cur = d.Current.Value
		}
		if d.Previous != nil {
			prev = d.Previous.Value
		}
		v.Debt = &DebtView{Current: describe.Money(cur, db.Currency), Previous: describe.Money(prev, db.Currency), Delta: describe.Delta(db.Delta, db.Currency),
			ThresholdSource: db.ThresholdSource, Crossed: db.Crossed}
		if db.Threshold != "" {
			v.Debt.Threshold = describe.Money(db.Threshold, db.Currency)
		}
		if db.Balance != "" {
			v.Debt.Balance = describe.Money(db.Balance, db.Currency)
		}
	}
	if d.Standing.Bad() && d.Standing.Since != nil {
		v.Since = d.Standing.Since.UTC().Format("Mon, 02 Jan 2006 15:04 MST")
	}
	if o.Runbook != nil {
		v.Runbook = o.Runbook(e)
	}
	if o.Reminder {
		if d.Standing.Bad() {
			v.Headline = "Reminder: " + describe.Still(d.Standing)
		} else {
			v.Headline = "Reminder: " + v.Headline
		}
		v.Title = v.Headline
	}
	if f := d.Forecast; f != nil {
		v.Forecast = &ForecastView{Current: describe.Money(f.Current, f.Currency), Says: describe.Forecast(f, o.now()), Method: describe.ForecastMethod(f)}
	}
	if db := d.Debt; db != nil && v.Debt != nil {
		if db.Step != "" {
			v.Debt.Step = db.Step + "% of the threshold: " + describe.Money(db.Line, db.Currency)
		}
		if db.Floor != "" {
			v.Debt.Floor = describe.Money(db.Floor, db.Currency)
		}
	}
	if p := d.Poll; p != nil {
		v.Poll = &PollView{Failures: p.ConsecutiveFailures, Since: p.Since.UTC().Format(time.RFC3339), ErrorCode: p.ErrorCode, Cause: describe.Cause(p)}
	}
	return v
}

// ThreadID is the Message-ID every message about one account refers to, so
// mail clients keep the account's messages in one thread.
func (c *Composer) ThreadID(p event.Provider, instance, account string) string {
	sum := sha256.Sum256([]byte(string(p) + "\x00" + instance + "\x00" + account))
	return "account-" + hex.EncodeToString(sum[:12]) + "@" + c.domain
}

func (o Options) now() time.Time {
	if o.Now.IsZero() {
		return time.Now()
	}
	return o.Now
}

// Compose renders evs (in order) for the recipients to: one event with its
// type's templates, several with the digest's.
func (c *Composer) Compose(evs []*event.Event, to []string, redrive bool) (Mail, error) {
	return c.ComposeWith(evs, to, Options{Redrive: redrive})
}

// messageID derives a message's id from what it carries and its
// recipients: a message re-sent after a crash keeps its id.
func (c *Composer) messageID(to []string, parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p + "\n"))
	}
	rcpt := slices.Clone(to)
	slices.Sort(rcpt)
	h.Write([]byte(strings.Join(rcpt, ",")))
	return "aw-" + hex.EncodeToString(h.Sum(nil)[:16]) + "@" + c.domain
}

// ComposeWith renders evs with what o adds.
func (c *Composer) ComposeWith(evs []*event.Event, to []string, o Options) (Mail, error) {
	if len(evs) == 0 {
		return Mail{}, fmt.Errorf("%w: no events", ErrTemplate)
	}
	m := Mail{To: to}
	var ids []string
	for _, e := range evs {
		m.EventIDs = append(m.EventIDs, e.ID())
		ids = append(ids, e.ID())
	}
	if o.Reminder {
		// A reminder of the same events is a message of its own.
		ids = append(ids, "reminder "+o.now().UTC().Format(time.RFC3339))
	}
	m.MessageID = c.messageID(to, ids...)
	if describe.Accounts(evs) == 1 {
		d := evs[0].Data
		m.ThreadID = c.ThreadID(d.Provider, d.Instance, d.AccountID)
	}
	var (
		data any
		name string
	)
	if len(evs) == 1 {
		data, name = c.view(evs[0], o), evs[0].Type().Tail()
	} else {
		dv := DigestView{Count: len(evs), Accounts: describe.Accounts(evs), Redrive: o.Redrive, Reminder: o.Reminder}
		worst := evs[0]
		for _, e := range evs {
			dv.Events = append(dv.Events, c.view(e, o))
			if e.Data.Severity == event.SeverityCritical {
				dv.Critical++
			}
			if e.Data.Severity.Rank() >= worst.Data.Severity.Rank() {
				worst = e
			}
		}
		dv.Severity, dv.Color = string(worst.Data.Severity), color(worst)
		data, name = dv, NameDigest
	}
	return c.render(m, name, data)
}

func (c *Composer) render(m Mail, name string, data any) (Mail, error) {
	var err error
	if m.Subject, err = c.renderText(name, PartSubject, data); err != nil {
		return Mail{}, err
	}
	m.Subject = strings.Join(strings.Fields(m.Subject), " ") // one line, whatever the template
	if m.Text, err = c.renderText(name, PartText, data); err != nil {
		return Mail{}, err
	}
	if m.HTML, err = c.renderHTML(name, data); err != nil {
		return Mail{}, err
	}
	return m, nil
}

// Report renders a standing report for the recipients to.
func (c *Composer) Report(r *standing.Report, to []string) (Mail, error) {
	rv := ReportView{Route: r.Route, Every: r.Every, Scheduled: r.Scheduled.Format("Mon, 02 Jan 2006 15:04 MST"), At: r.At.UTC().Format("Mon, 02 Jan 2006 15:04 MST")}
	if rv.Every == "" {
		rv.Every = "scheduled"
	}
	for _, l := range r.Lines {
		w := l.Words(r.At)
		d := event.Data{Provider: l.Provider, Instance: l.Instance, AccountID: l.ID, AccountName: l.Name}
		rv.Lines = append(rv.Lines, ReportLineView{Name: w.Name, Console: c.Console.Account(d), Provider: string(l.Provider), Instance: l.Instance,
			Standing: w.Standing, Since: w.Since, Debt: w.Debt, Trend: w.Trend, Forecast: w.Forecast, LastAlert: w.LastAlert})
	}
	m := Mail{To: to, MessageID: c.messageID(to, "report", r.Route, r.Scheduled.UTC().Format(time.RFC3339))}
	return c.render(m, NameReport, rv)
}

func (c *Composer) renderText(name, part string, data any) (string, error) {
	t := c.text[name+"."+part]
	if t == nil {
		t = c.text[NameDefault+"."+part]
	}
	var b bytes.Buffer
	if err := t.Execute(&b, data); err != nil {
		return "", fmt.Errorf("%w: %s: %v", ErrTemplate, t.Name(), err)
	}
	return b.String(), nil
}

func (c *Composer) renderHTML(name string, data any) (string, error) {
	t := c.html[name+"."+PartHTML]
	if t == nil {
		t = c.html[NameDefault+"."+PartHTML]
	}
	var b bytes.Buffer
	if err := t.Execute(&b, data); err != nil {
		return "", fmt.Errorf("%w: %s: %v", ErrTemplate, t.Name(), err)
	}
	return b.String(), nil
}
