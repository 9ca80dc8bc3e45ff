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

func changeFields(e *event.Event) []*slack.TextBlockObject {
	d := e.Data
	var fs []*slack.TextBlockObject
	switch {
	case d.Debt != nil:
		fs = append(fs, field("Debt", money(val(d.Current), d.Debt.Currency)+"\nwas "+money(val(d.Previous), d.Debt.Currency)))
		fs = append(fs, field("Change", escape(describe.Delta(d.Debt.Delta, d.Debt.Currency))))
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

// Account renders the changes of one account (a group of one account, in the
// order they happened). redrive marks a message an operator re-sent.
func Account(evs []*event.Event, links Links, redrive bool) Message {
	last := evs[len(evs)-1]
	d := last.Data
	name := escape(describe.Account(d))
	if link := links.For(d.Instance, d.AccountID); link != "" {
		name = "<" + link + "|" + name + ">"
	}
	title := emoji(last) + " " + Headline(last) + " — " + describe.Account(d)
	if len(title) > 150 {
		title = title[:147] + "…"
	}
	blocks := []slack.Block{
		slack.NewHeaderBlock(slack.NewTextBlockObject(slack.PlainTextType, plain(title), true, false)),
		slack.NewSectionBlock(nil, []*slack.TextBlockObject{
			field("Account", name),
			field("Provider", escape(string(d.Provider))+" / "+escape(d.Instance)),
		}, nil),
	}
	shown := evs
	if len(shown) > maxChangesPerMessage {
		shown = shown[len(shown)-maxChangesPerMessage:]
	}
	var text []string
	for _, e := range shown {
		if len(evs) > 1 {
			blocks = append(blocks, slack.NewContextBlock("", mrkdwn(emoji(e)+" *"+Headline(e)+"* · "+slackDate(e.Cloud.Time())+" · `"+e.ID()+"`")))
		}
		if fs := changeFields(e); len(fs) > 0 {
			blocks = append(blocks, slack.NewSectionBlock(nil, fs, nil))
		}
		text = append(text, describe.Change(e))
	}
	if n := len(evs) - len(shown); n > 0 {
		blocks = append(blocks, slack.NewSectionBlock(mrkdwn(fmt.Sprintf("_…and %d earlier changes (see the audit log)_", n)), nil, nil))
	}
	ctx := []slack.MixedElement{
		mrkdwn(fmt.Sprintf("*%s* · observed %s", d.Severity, slackDate(last.Cloud.Time()))),
	}
	if l := labelText(d.Labels); l != "" {
		ctx = append(ctx, mrkdwn(l))
	}
	if len(evs) == 1 {
		ctx = append(ctx, mrkdwn("event `"+last.ID()+"`"))
	}
	if redrive {
		ctx = append(ctx, mrkdwn("_re-sent by an operator (dead letter or replay)_"))
	}
	blocks = append(blocks, slack.NewContextBlock("", ctx...))
	fallback := fmt.Sprintf("[%s] %s — %s (%s/%s): %s", d.Severity, Headline(last), describe.Account(d), d.Provider, d.Instance, strings.Join(text, "; "))
	return Message{Text: fallback, Color: Color(last), Blocks: blocks}
}

// Summary renders a group of several accounts (500 accounts frozen in one
// poll) as one message listing them.
func Summary(evs []*event.Event, links Links) Message {
	worst := evs[0]
	types := map[string]int{}
	for _, e := range evs {
		if e.Data.Severity.Rank() > worst.Data.Severity.Rank() {
			worst = e
		}
		types[Headline(e)]++
	}
	kinds := make([]string, 0, len(types))
	for k, n := range types {
		kinds = append(kinds, fmt.Sprintf("%s ×%d", k, n))
	}
	slices.Sort(kinds)
	accounts := Accounts(evs)
	title := fmt.Sprintf("%s %d accounts: %s", emoji(worst), accounts, strings.Join(kinds, ", "))
	if len(title) > 150 {
		title = title[:147] + "…"
	}
	var lines []string
	for i, e := range evs {
		if i == maxAccountsListed {
			lines = append(lines, fmt.Sprintf("_…and %d more_", len(evs)-maxAccountsListed))
			break
		}
		name := escape(describe.Account(e.Data))
		if link := links.For(e.Data.Instance, e.Data.AccountID); link != "" {
			name = "<" + link + "|" + name + ">"
		}
		lines = append(lines, "• "+name+": "+escape(describe.Change(e)))
	}
	blocks := []slack.Block{
		slack.NewHeaderBlock(slack.NewTextBlockObject(slack.PlainTextType, plain(title), true, false)),
		slack.NewSectionBlock(mrkdwn(strings.Join(lines, "\n")), nil, nil),
		slack.NewContextBlock("", mrkdwn(fmt.Sprintf("*%s* at worst · %d events · first observed %s", worst.Data.Severity, len(evs), slackDate(evs[0].Cloud.Time())))),
	}
	fallback := fmt.Sprintf("[%s] %d accounts: %s", worst.Data.Severity, accounts, strings.Join(kinds, ", "))
	return Message{Text: fallback, Color: Color(worst), Blocks: blocks}
}
