// Package message renders events as Slack messages: Block Kit inside a
// coloured attachment (the severity colour), with a readable fallback text for
// notifications and clients that show no blocks. It renders only the fields a
// person needs and never the account's attributes beyond the allow-listed ones
// the event already carries.
package message

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/shopspring/decimal"
	"github.com/slack-go/slack"

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

// Links turns an instance and account into a URL of the provider's console,
// from templates per instance with {account} as the placeholder.
type Links map[string]string

// For returns the account's link, or "" when its instance has none.
func (l Links) For(instance, account string) string {
	tpl, ok := l[instance]
	if !ok {
		return ""
	}
	return strings.ReplaceAll(tpl, "{account}", url.PathEscape(account))
}

// IsRecovery reports whether e brings an account back to good standing: a hold
// lifted, a freeze thawed, debt back under its threshold, an upstream readable
// again. A recovery updates the account's opening message in place.
func IsRecovery(e *event.Event) bool {
	d := e.Data
	prev, cur := "", ""
	if d.Previous != nil {
		prev = d.Previous.Value
	}
	if d.Current != nil {
		cur = d.Current.Value
	}
	switch e.Type() {
	case event.TypeStatusChanged:
		return cur == event.StatusActive && prev != event.StatusActive
	case event.TypeCreditLimitStatusChanged:
		return cur == "thaw" || prev == "freeze" && cur != "freeze"
	case event.TypeHostingStatusChanged:
		return prev == "freeze" && cur != "freeze"
	case event.TypeDebtChanged:
		return d.Debt != nil && d.Debt.Crossed == "below"
	case event.TypePollRecovered:
		return true
	}
	return false
}

// Headline is a short human title of what happened ("Credit hold", "Debt over threshold").
func Headline(e *event.Event) string {
	d := e.Data
	cur := ""
	if d.Current != nil {
		cur = d.Current.Value
	}
	switch e.Type() {
	case event.TypeStatusChanged:
		switch cur {
		case event.StatusCreditHold:
			return "Credit hold"
		case event.StatusAdministrativeHold:
			return "Administrative hold"
		case event.StatusActive:
			return "Account active again"
		case event.StatusDeleted:
			return "Account deleted"
		}
		return "Status is now " + cur
	case event.TypeDebtChanged:
		if d.Debt != nil && d.Debt.Crossed == "above" {
			return "Debt over threshold"
		}
		if d.Debt != nil && d.Debt.Crossed == "below" {
			return "Debt back under threshold"
		}
		return "Debt changed"
	case event.TypeHostingStatusChanged:
		if cur == "freeze" {
			return "Hosting frozen"
		}
		return "Hosting status is now " + cur
	case event.TypeCreditLimitStatusChanged:
		switch cur {
		case "freeze":
			return "Credit limit frozen"
		case "thaw":
			return "Credit limit thawed"
		}
		return "Credit limit status is now " + cur
	case event.TypePhoneProfileChanged:
		return "WhatsApp profile: " + d.Field + " changed"
	case event.TypeDiscovered:
		return "New account discovered"
	case event.TypeRemoved:
		return "Account no longer listed"
	case event.TypeCreated:
		return "Account created"
	case event.TypePollDegraded:
		return "Cannot read upstream"
	case event.TypePollRecovered:
		return "Upstream readable again"
	}
	return e.Type().Tail()
}

func display(v *event.Value) string {
	if v == nil || v.Value == "" {
		return "—"
	}
	if v.Raw != "" && v.Raw != v.Value {
		return v.Value + " (" + v.Raw + ")"
	}
	return v.Value
}

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

func accountName(d event.Data) string {
	if d.AccountID == event.ProviderScope {
		return "all accounts of " + d.Instance
	}
	if d.AccountName != "" {
		return d.AccountName + " (" + d.AccountID + ")"
	}
	return d.AccountID
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

// money renders an exact decimal with its currency, grouping thousands.
func money(s, currency string) string {
	if s == "" {
		return "—"
	}
	d, err := decimal.NewFromString(s)
	if err != nil {
		return escape(s)
	}
	str := d.StringFixed(2)
	neg := strings.HasPrefix(str, "-")
	str = strings.TrimPrefix(str, "-")
	intPart, frac, _ := strings.Cut(str, ".")
	var b strings.Builder
	for i, r := range intPart {
		if i > 0 && (len(intPart)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	out := b.String() + "." + frac
	if neg {
		out = "-" + out
	}
	if currency != "" {
		out += " " + escape(currency)
	}
	return out
}

// changeLine is the one-line "what changed" of e, for the fallback text and summaries.
func changeLine(e *event.Event) string {
	d := e.Data
	switch {
	case d.Debt != nil:
		s := fmt.Sprintf("debt %s → %s", money(display0(d.Previous), d.Debt.Currency), money(display0(d.Current), d.Debt.Currency))
		if d.Debt.Crossed != "" {
			s += fmt.Sprintf(" (crossed %s %s)", d.Debt.Crossed, money(d.Debt.Threshold, d.Debt.Currency))
		}
		return s
	case d.Poll != nil:
		return fmt.Sprintf("%d failed reads since %s", d.Poll.ConsecutiveFailures, d.Poll.Since.UTC().Format(time.RFC3339))
	case d.Previous != nil || d.Current != nil:
		return fmt.Sprintf("%s %s → %s", d.Field, display(d.Previous), display(d.Current))
	}
	return Headline(e)
}

func display0(v *event.Value) string {
	if v == nil {
		return ""
	}
	return v.Value
}

func changeFields(e *event.Event) []*slack.TextBlockObject {
	d := e.Data
	var fs []*slack.TextBlockObject
	switch {
	case d.Debt != nil:
		fs = append(fs, field("Debt", money(display0(d.Current), d.Debt.Currency)+"\nwas "+money(display0(d.Previous), d.Debt.Currency)))
		delta := money(d.Debt.Delta, d.Debt.Currency)
		if !strings.HasPrefix(delta, "-") {
			delta = "+" + delta
		}
		fs = append(fs, field("Change", delta))
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
	case d.Previous != nil || d.Current != nil:
		fs = append(fs, field(escape(d.Field), "`"+escape(display(d.Previous))+"` → `"+escape(display(d.Current))+"`"))
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
	name := escape(accountName(d))
	if link := links.For(d.Instance, d.AccountID); link != "" && d.AccountID != event.ProviderScope {
		name = "<" + link + "|" + name + ">"
	}
	title := emoji(last) + " " + Headline(last) + " — " + accountName(d)
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
		text = append(text, changeLine(e))
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
		ctx = append(ctx, mrkdwn("_re-sent from the dead letters_"))
	}
	blocks = append(blocks, slack.NewContextBlock("", ctx...))
	fallback := fmt.Sprintf("[%s] %s — %s (%s/%s): %s", d.Severity, Headline(last), accountName(d), d.Provider, d.Instance, strings.Join(text, "; "))
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
		name := escape(accountName(e.Data))
		if link := links.For(e.Data.Instance, e.Data.AccountID); link != "" {
			name = "<" + link + "|" + name + ">"
		}
		lines = append(lines, "• "+name+": "+escape(changeLine(e)))
	}
	blocks := []slack.Block{
		slack.NewHeaderBlock(slack.NewTextBlockObject(slack.PlainTextType, plain(title), true, false)),
		slack.NewSectionBlock(mrkdwn(strings.Join(lines, "\n")), nil, nil),
		slack.NewContextBlock("", mrkdwn(fmt.Sprintf("*%s* at worst · %d events · first observed %s", worst.Data.Severity, len(evs), slackDate(evs[0].Cloud.Time())))),
	}
	fallback := fmt.Sprintf("[%s] %d accounts: %s", worst.Data.Severity, accounts, strings.Join(kinds, ", "))
	return Message{Text: fallback, Color: Color(worst), Blocks: blocks}
}

// Accounts counts the distinct accounts of evs.
func Accounts(evs []*event.Event) int {
	seen := map[string]bool{}
	for _, e := range evs {
		seen[string(e.Data.Provider)+"\x00"+e.Data.Instance+"\x00"+e.Data.AccountID] = true
	}
	return len(seen)
}
