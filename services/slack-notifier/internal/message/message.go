// Package message renders events as Slack messages: Block Kit inside a
// coloured attachment (the severity colour), with a readable fallback text for
// notifications and clients that show no blocks. It renders only the fields a
// person needs and never the account's attributes beyond the allow-listed ones
// the event already carries.
package message

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/slack-go/slack"

	"github.com/accountwatch/accountwatch/pkg/describe"
	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/standing"
)

// Colours of the attachment bar.
const (
	ColorCritical  = "#D40E0D"
	ColorWarning   = "#F2A100"
	ColorInfo      = "#2EB67D"
	ColorRecovered = "#2EB67D"
)

// Slack's limits this package stays within.
const (
	maxChangesPerMessage = 10
	maxAccountsListed    = 20
	maxFieldText         = 1900
)

// Message is a rendered notification.
type Message struct {
	// Text is the fallback: push notifications, screen readers, the log sink.
	Text   string
	Color  string
	Blocks []slack.Block
}

// Attachment is the message as one coloured attachment holding the blocks.
func (m Message) Attachment() slack.Attachment {
	return slack.Attachment{Color: m.Color, Fallback: Escape(m.Text), Blocks: slack.Blocks{BlockSet: m.Blocks}}
}

// Links are console URL templates per instance ({account} the placeholder).
type Links = describe.Links

func emoji(e *event.Event) string {
	if IsRecovery(e) {
		return "✅"
	}
	switch e.Data.Severity {
	case event.SeverityCritical:
		return "🔴"
	case event.SeverityWarning:
		return "🟠"
	}
	return "🔵"
}

// IsRecovery reports whether e brings an account back to good standing; a
// recovery updates the account's opening message in place.
func IsRecovery(e *event.Event) bool { return describe.IsRecovery(e) }

// Headline is a short title of what happened.
func Headline(e *event.Event) string { return describe.Headline(e) }

// Accounts counts the distinct accounts of evs.
func Accounts(evs []*event.Event) int { return describe.Accounts(evs) }

func money(s, currency string) string { return escape(describe.Money(s, currency)) }

// Color is the attachment colour of e.
func Color(e *event.Event) string {
	if IsRecovery(e) {
		return ColorRecovered
	}
	switch e.Data.Severity {
	case event.SeverityCritical:
		return ColorCritical
	case event.SeverityWarning:
		return ColorWarning
	}
	return ColorInfo
}

// Escape makes text inert in mrkdwn: no mentions, no links (Slack's three
// entities). Upstream account names are not trusted.
func Escape(s string) string { return escape(s) }

var (
	mrkdwnEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")
	plainEscaper  = strings.NewReplacer("<", "‹", ">", "›")
)

func escape(s string) string { return mrkdwnEscaper.Replace(s) }

func clip(s string) string {
	if len(s) > maxFieldText {
		return s[:maxFieldText] + "…"
	}
	return s
}

// plain makes text safe for plain_text objects, which Slack does not unescape.
func plain(s string) string { return plainEscaper.Replace(s) }

func mrkdwn(s string) *slack.TextBlockObject {
	return slack.NewTextBlockObject(slack.MarkdownType, clip(s), false, false)
}

func field(label, value string) *slack.TextBlockObject {
	return mrkdwn("*" + label + "*\n" + value)
}

func slackDate(t time.Time) string {
	return fmt.Sprintf("<!date^%d^{date_short_pretty} {time}|%s>", t.Unix(), t.UTC().Format("2006-01-02 15:04 UTC"))
}

func changeFields(e *event.Event, now time.Time) []*slack.TextBlockObject {
	d := e.Data
	var fs []*slack.TextBlockObject
	switch {
	case d.Forecast != nil:
		f := d.Forecast
		fs = append(fs, field("Debt", money(f.Current, f.Currency)))
		fs = append(fs, field("Forecast", escape(describe.Forecast(f, now))))
		fs = append(fs, field("Method", escape(describe.ForecastMethod(f))))
	case d.Debt != nil:
		fs = append(fs, field("Debt", money(val(d.Current), d.Debt.Currency)+"\nwas "+money(val(d.Previous), d.Debt.Currency)))
		fs = append(fs, field("Change", escape(describe.Delta(d.Debt.Delta, d.Debt.Currency))))
		if d.Debt.Floor != "" {
			fs = append(fs, field("Floor", money(d.Debt.Floor, d.Debt.Currency)))
		}
		if d.Debt.Step != "" {
			fs = append(fs, field("Step", escape(d.Debt.Step)+"% of the threshold: "+money(d.Debt.Line, d.Debt.Currency)))
		}
		if d.Debt.Threshold != "" {
			th := money(d.Debt.Threshold, d.Debt.Currency)
			if d.Debt.ThresholdSource != "" {
				th += " (" + escape(d.Debt.ThresholdSource) + ")"
			}
			if d.Debt.Crossed != "" {
				th += "\ncrossed *" + d.Debt.Crossed + "*"
			}
			fs = append(fs, field("Threshold", th))
		}
		if d.Debt.Balance != "" {
			fs = append(fs, field("Balance", money(d.Debt.Balance, d.Debt.Currency)))
		}
	case d.Poll != nil:
		fs = append(fs, field("Failed reads", fmt.Sprintf("%d in a row (%s scope)", d.Poll.ConsecutiveFailures, escape(d.Poll.Scope))))
		fs = append(fs, field("Since", slackDate(d.Poll.Since)))
		if d.Poll.ErrorCode != "" {
			fs = append(fs, field("Last error", "`"+escape(d.Poll.ErrorCode)+"`"))
		}
		if c := describe.Cause(d.Poll); c != "" {
			fs = append(fs, field("Cause", escape(c)))
		}
	case d.Previous != nil || d.Current != nil:
		fs = append(fs, field(escape(d.Field), "`"+escape(describe.Value(d.Previous))+"` → `"+escape(describe.Value(d.Current))+"`"))
	}
	if d.Onboarding != nil {
		fs = append(fs, field("Relation", escape(d.Onboarding.RelationType)))
	}
	keys := make([]string, 0, len(d.Attributes))
	for k := range d.Attributes {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if len(fs) >= 9 {
			break
		}
		fs = append(fs, field(escape(k), escape(d.Attributes[k])))
	}
	return fs
}

func val(v *event.Value) string {
	if v == nil {
		return ""
	}
	return v.Value
}

func labelText(labels map[string]string) string {
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = escape(k + "=" + labels[k])
	}
	return strings.Join(parts, " · ")
}

// Context is what a message says besides its events: where the account's
// page is, the route's runbook line, what kind of notification it is.
type Context struct {
	Links   Links
	Console describe.Console
	// Runbook is the route's line or link for an event ("" for none).
	Runbook func(*event.Event) string
	Redrive bool
	// Reminder: the accounts are still in bad standing (repeat_interval).
	Reminder bool
	// Now is when the message is rendered (forecasts say "in ~3 days").
	Now time.Time
}

func (c Context) now() time.Time {
	if c.Now.IsZero() {
		return time.Now()
	}
	return c.Now
}

func (c Context) runbook(e *event.Event) string {
	if c.Runbook == nil {
		return ""
	}
	return c.Runbook(e)
}

// Account renders the changes of one account (a group of one account, in the
// order they happened). redrive marks a message an operator re-sent.
func Account(evs []*event.Event, links Links, redrive bool) Message {
	return AccountWith(evs, Context{Links: links, Redrive: redrive})
}

// worst is the most severe of evs, the latest of those.
func worst(evs []*event.Event) *event.Event {
	w := evs[0]
	for _, e := range evs {
		if e.Data.Severity.Rank() >= w.Data.Severity.Rank() {
			w = e
		}
	}
	return w
}

// runbookText renders a runbook line, a bare link as a link.
func runbookText(rb string) string {
	if strings.HasPrefix(rb, "https://") || strings.HasPrefix(rb, "http://") {
		return "<" + rb + "|" + escape(rb) + ">"
	}
	return escape(rb)
}

// AccountWith renders the changes of one account with what c adds: its
// standing now, its forecast, the route's runbook line, the console link.
// The colour and severity are the worst event's: a notification never says
// less than the worst thing in it.
func AccountWith(evs []*event.Event, c Context) Message {
	last := evs[len(evs)-1]
	bad := worst(evs)
	d := last.Data
	name := escape(describe.Name(d))
	if link := c.Links.For(d.Instance, d.AccountID); link != "" {
		name = "<" + link + "|" + name + ">"
	}
	head := emoji(bad) + " " + describe.Title(last)
	if c.Reminder {
		head = "⏰ S" + strings.TrimPrefix(describe.Still(d.Standing), "s")
		if !d.Standing.Bad() {
			head = "⏰ Reminder: " + Headline(last)
		}
	}
	title := head + " — " + describe.Name(d)
	if len(title) > 150 {
		title = title[:147] + "…"
	}
	accountFields := []*slack.TextBlockObject{
		field("Account", name),
		field("Provider", escape(string(d.Provider))+" / "+escape(d.Instance)),
	}
	if st := describe.Standing(d.Standing); st != "" {
		since := ""
		if d.Standing.Since != nil && d.Standing.Bad() {
			since = "\nsince " + slackDate(*d.Standing.Since)
		}
		accountFields = append(accountFields, field("Standing now", escape(st)+since))
	}
	blocks := []slack.Block{
		slack.NewHeaderBlock(slack.NewTextBlockObject(slack.PlainTextType, plain(title), true, false)),
		slack.NewSectionBlock(nil, accountFields, nil),
	}
	shown := evs
	if c.Reminder {
		shown = nil // a reminder says where the account stands, not the changes again
	}
	if len(shown) > maxChangesPerMessage {
		shown = shown[len(shown)-maxChangesPerMessage:]
	}
	var text []string
	for _, e := range shown {
		if len(evs) > 1 {
			blocks = append(blocks, slack.NewContextBlock("", mrkdwn(emoji(e)+" *"+Headline(e)+"* · "+slackDate(e.Cloud.Time())+" · `"+e.ID()+"`")))
		}
		if fs := changeFields(e, c.now()); len(fs) > 0 {
			blocks = append(blocks, slack.NewSectionBlock(nil, fs, nil))
		}
		text = append(text, describe.Change(e))
	}
	if n := len(evs) - len(shown); n > 0 && !c.Reminder {
		blocks = append(blocks, slack.NewSectionBlock(mrkdwn(fmt.Sprintf("_…and %d earlier changes (see the audit log)_", n)), nil, nil))
	}
	if rb := c.runbook(bad); rb != "" {
		blocks = append(blocks, slack.NewSectionBlock(mrkdwn("📘 *What to do:* "+runbookText(rb)), nil, nil))
	}
	if link := c.Console.Account(d); link != "" {
		blocks = append(blocks, slack.NewSectionBlock(mrkdwn("<"+link+"|Open the account in the accountwatch console>"), nil, nil))
	}
	ctx := []slack.MixedElement{
		mrkdwn(fmt.Sprintf("*%s* · observed %s", bad.Data.Severity, slackDate(last.Cloud.Time()))),
	}
	if l := labelText(d.Labels); l != "" {
		ctx = append(ctx, mrkdwn(l))
	}
	if len(evs) == 1 {
		ctx = append(ctx, mrkdwn("event `"+last.ID()+"`"))
	}
	if c.Redrive {
		ctx = append(ctx, mrkdwn("_re-sent by an operator (dead letter or replay)_"))
	}
	blocks = append(blocks, slack.NewContextBlock("", ctx...))
	fallback := fmt.Sprintf("[%s] %s — %s (%s/%s): %s", bad.Data.Severity, describe.Title(last), describe.Name(d), d.Provider, d.Instance, strings.Join(text, "; "))
	if c.Reminder {
		fallback = fmt.Sprintf("[%s] reminder: %s — %s (%s/%s)", bad.Data.Severity, describe.Standing(d.Standing), describe.Name(d), d.Provider, d.Instance)
	}
	color := Color(bad)
	if IsRecovery(last) && bad == last {
		color = ColorRecovered
	}
	return Message{Text: fallback, Color: color, Blocks: blocks}
}

// Opening renders an account's thread-opening message as the account
// stands now (e, its latest event): updated in place on every change of
// standing, so the thread's first message never shows a stale state. Its
// colour is the standing's: red on a hold or freeze, orange for another
// problem, green in good standing (an account active again but still over
// its threshold stays orange).
func Opening(e *event.Event, c Context) Message {
	m := AccountWith([]*event.Event{e}, c)
	s := e.Data.Standing
	if s == nil {
		return m
	}
	mark := "✅"
	switch {
	case s.Has(event.ProblemCreditHold) || s.Has(event.ProblemFrozen):
		m.Color, mark = ColorCritical, "🔴"
	case s.Bad():
		m.Color, mark = ColorWarning, "🟠"
	default:
		m.Color = ColorRecovered
	}
	title := mark + " " + describe.Title(e) + " — " + describe.Name(e.Data)
	if len(title) > 150 {
		title = title[:147] + "…"
	}
	m.Blocks[0] = slack.NewHeaderBlock(slack.NewTextBlockObject(slack.PlainTextType, plain(title), true, false))
	return m
}

// Summary renders a group of several accounts (500 accounts frozen in one
// poll) as one message listing them.
func Summary(evs []*event.Event, links Links) Message {
	return SummaryWith(evs, Context{Links: links})
}

// accountLink is the account's name, linked to the console's page (else the
// provider's console).
func accountLink(d event.Data, c Context) string {
	name := escape(describe.Name(d))
	link := c.Console.Account(d)
	if link == "" {
		link = c.Links.For(d.Instance, d.AccountID)
	}
	if link != "" {
		name = "<" + link + "|" + name + ">"
	}
	return name
}

// SummaryWith renders a group of several accounts with what c adds; a
// reminder lists where each account stands now.
func SummaryWith(evs []*event.Event, c Context) Message {
	worst := worst(evs)
	types := map[string]int{}
	for _, e := range evs {
		types[Headline(e)]++
	}
	kinds := make([]string, 0, len(types))
	for k, n := range types {
		kinds = append(kinds, fmt.Sprintf("%s ×%d", k, n))
	}
	slices.Sort(kinds)
	accounts := Accounts(evs)
	head := fmt.Sprintf("%s %d accounts: %s", emoji(worst), accounts, strings.Join(kinds, ", "))
	if c.Reminder {
		head = fmt.Sprintf("⏰ %d accounts still in bad standing", accounts)
	}
	title := head
	if len(title) > 150 {
		title = title[:147] + "…"
	}
	var lines []string
	for i, e := range evs {
		if i == maxAccountsListed {
			lines = append(lines, fmt.Sprintf("_…and %d more_", len(evs)-maxAccountsListed))
			break
		}
		what := describe.Change(e)
		if c.Reminder {
			what = describe.Standing(e.Data.Standing)
		} else if w := describe.StillWrong(e); w != "" {
			what += "; " + w
		}
		lines = append(lines, "• "+accountLink(e.Data, c)+": "+escape(what))
	}
	blocks := []slack.Block{
		slack.NewHeaderBlock(slack.NewTextBlockObject(slack.PlainTextType, plain(title), true, false)),
		slack.NewSectionBlock(mrkdwn(strings.Join(lines, "\n")), nil, nil),
	}
	if rb := c.runbook(worst); rb != "" {
		blocks = append(blocks, slack.NewSectionBlock(mrkdwn("📘 *What to do:* "+runbookText(rb)), nil, nil))
	}
	blocks = append(blocks, slack.NewContextBlock("", mrkdwn(fmt.Sprintf("*%s* at worst · %d events · first observed %s", worst.Data.Severity, len(evs), slackDate(evs[0].Cloud.Time())))))
	fallback := fmt.Sprintf("[%s] %d accounts: %s", worst.Data.Severity, accounts, strings.Join(kinds, ", "))
	if c.Reminder {
		fallback = fmt.Sprintf("[%s] reminder: %d accounts still in bad standing", worst.Data.Severity, accounts)
	}
	return Message{Text: fallback, Color: Color(worst), Blocks: blocks}
}

// Report renders a standing report: every account in bad standing, worst
// first, with since when, its figures, trend, forecast and last alert.
func Report(r *standing.Report, c Context) Message {
	every := r.Every
	if every == "" {
		every = "scheduled"
	}
	noun := "accounts"
	if len(r.Lines) == 1 {
		noun = "account"
	}
	title := fmt.Sprintf("📋 %s%s standing report: %d %s in bad standing", strings.ToUpper(every[:1]), every[1:], len(r.Lines), noun)
	if len(r.Lines) == 0 {
		title = fmt.Sprintf("📋 %s%s standing report: every account in good standing", strings.ToUpper(every[:1]), every[1:])
	}
	blocks := []slack.Block{slack.NewHeaderBlock(slack.NewTextBlockObject(slack.PlainTextType, plain(title), true, false))}
	var text []string
	for i, l := range r.Lines {
		if i == maxAccountsListed {
			blocks = append(blocks, slack.NewSectionBlock(mrkdwn(fmt.Sprintf("_…and %d more (see the console)_", len(r.Lines)-maxAccountsListed)), nil, nil))
			break
		}
		rl := l.Words(r.At)
		d := event.Data{Provider: l.Provider, Instance: l.Instance, AccountID: l.ID, AccountName: l.Name}
		fs := []*slack.TextBlockObject{
			field("Account", accountLink(d, c)),
			field("Standing", escape(rl.Standing)+"\nsince "+escape(rl.Since)),
		}
		if rl.Debt != "" {
			fs = append(fs, field("Debt", escape(rl.Debt)))
		}
		if rl.Trend != "" {
			fs = append(fs, field("Trend", escape(rl.Trend)))
		}
		if rl.Forecast != "" {
			fs = append(fs, field("Forecast", escape(rl.Forecast)))
		}
		fs = append(fs, field("Last alert", escape(rl.LastAlert)))
		blocks = append(blocks, slack.NewSectionBlock(nil, fs, nil))
		if i < len(r.Lines)-1 {
			blocks = append(blocks, slack.NewDividerBlock())
		}
		text = append(text, describe.Name(d)+": "+rl.Standing)
	}
	blocks = append(blocks, slack.NewContextBlock("", mrkdwn(fmt.Sprintf("route %s · for %s · as of %s", escape(r.Route), r.Scheduled.Format("Mon 2006-01-02 15:04 MST"), slackDate(r.At)))))
	color := ColorInfo
	if len(r.Lines) > 0 {
		color = ColorWarning
	}
	return Message{Text: strings.TrimPrefix(title, "📋 ") + ": " + strings.Join(text, "; "), Color: color, Blocks: blocks}
}
