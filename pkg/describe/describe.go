// Package describe says in words what an event means to a person: a headline
// ("Credit hold", "Debt over threshold"), whether it is a recovery, the change
// on one line, money with its currency, and a link to the provider's console.
// Every notifier renders with it, so Slack, email and the audit console say the
// same thing the same way. It knows the event model, never a transport.
package describe

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"github.com/accountwatch/accountwatch/pkg/event"
)

// Links turns an instance and account into a URL of the provider's console,
// from templates per instance with {account} as the placeholder.
type Links map[string]string

// For returns the account's link, or "" when its instance has none (or the
// event concerns a whole provider connection).
func (l Links) For(instance, account string) string {
	tpl, ok := l[instance]
	if !ok || account == event.ProviderScope || account == event.PollerScope {
		return ""
	}
	return strings.ReplaceAll(tpl, "{account}", url.PathEscape(account))
}

func values(e *event.Event) (prev, cur string) {
	if e.Data.Previous != nil {
		prev = e.Data.Previous.Value
	}
	if e.Data.Current != nil {
		cur = e.Data.Current.Value
	}
	return prev, cur
}

// IsRecovery reports whether e brings an account back to good standing: a hold
// lifted, a freeze thawed, debt back under its threshold, an upstream readable
// again.
func IsRecovery(e *event.Event) bool {
	prev, cur := values(e)
	switch e.Type() {
	case event.TypeStatusChanged:
		return cur == event.StatusActive && prev != event.StatusActive
	case event.TypeCreditLimitStatusChanged:
		return cur == "thaw" || prev == "freeze" && cur != "freeze"
	case event.TypeHostingStatusChanged:
		// TRUSTEESHIP (hosted) is the documented normal state.
		return cur == "trusteeship" && prev != "trusteeship" || prev == "freeze" && cur != "freeze"
	case event.TypeDebtChanged:
		if e.Data.Field == "balance" { // a prepaid balance back over its floor
			return e.Data.Debt != nil && e.Data.Debt.Crossed == "above"
		}
		return e.Data.Debt != nil && e.Data.Debt.Crossed == "below"
	case event.TypePollRecovered, event.TypePollResumed:
		return true
	}
	return false
}

// Headline is a short title of what happened.
func Headline(e *event.Event) string {
	d := e.Data
	_, cur := values(e)
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
	case event.TypeDebtForecast:
		return "Debt reaches its threshold soon"
	case event.TypeDebtChanged:
		switch {
		case d.Debt != nil && d.Field == "balance" && d.Debt.Crossed == "below":
			return "Balance under its floor"
		case d.Debt != nil && d.Field == "balance" && d.Debt.Crossed == "above":
			return "Balance back over its floor"
		case d.Debt != nil && d.Debt.Step != "" && d.Debt.Crossed == "above" && d.Debt.Step != "100":
			return "Debt past " + d.Debt.Step + "% of its threshold"
		case d.Debt != nil && d.Debt.Step != "" && d.Debt.Crossed == "below" && d.Debt.Step != "100":
			return "Debt back under " + d.Debt.Step + "% of its threshold"
		}
		if d.Debt != nil && d.Debt.Crossed == "above" {
			return "Debt over threshold"
		}
		if d.Debt != nil && d.Debt.Crossed == "below" {
			return "Debt back under threshold"
		}
		return "Debt changed"
	case event.TypeHostingStatusChanged:
		switch cur {
		case "freeze":
			return "Hosting frozen"
		case "trusteeship":
			return "Hosted again"
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
	case event.TypePollStalled:
		if d.Stall != nil && d.Stall.Reason == event.StallNoLease {
			return "Polling stopped: no poller holds the connection"
		}
		return "Polling stalled: no cycle completed"
	case event.TypePollResumed:
		return "Polling resumed"
	}
	return e.Type().Tail()
}

// Value shows a value: the normalised one, with the upstream's own spelling
// when it differs; "—" for none.
func Value(v *event.Value) string {
	if v == nil || v.Value == "" {
		return "—"
	}
	if v.Raw != "" && v.Raw != v.Value {
		return v.Value + " (" + v.Raw + ")"
	}
	return v.Value
}

// Account names the account: "Name (id)", the id alone, or the connection for
// a provider-wide event.
func Account(d event.Data) string {
	if d.AccountID == event.ProviderScope {
		return "all accounts of " + d.Instance
	}
	if d.AccountID == event.PollerScope {
		return "the poller of " + d.Instance
	}
	if d.AccountName != "" {
		return d.AccountName + " (" + d.AccountID + ")"
	}
	return d.AccountID
}

// Money renders an exact decimal with two places, thousands grouped, and its
// currency: "1,234,567.89 USD". Text that is not a decimal is returned as is.
func Money(s, currency string) string {
	if s == "" {
		return "—"
	}
	d, err := decimal.NewFromString(s)
	if err != nil {
		return s
	}
	str := d.StringFixed(2)
	neg := strings.HasPrefix(str, "-")
	intPart, frac, _ := strings.Cut(strings.TrimPrefix(str, "-"), ".")
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	for i, r := range intPart {
		if i > 0 && (len(intPart)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	b.WriteString("." + frac)
	if currency != "" {
		b.WriteString(" " + currency)
	}
	return b.String()
}

// Delta renders a debt delta with its sign: "+512.40 USD", "-12.00 USD".
func Delta(s, currency string) string {
	m := Money(s, currency)
	if !strings.HasPrefix(m, "-") && m != "—" {
		m = "+" + m
	}
	return m
}

// Change is what changed, on one line.
func Change(e *event.Event) string {
	d := e.Data
	prev, cur := values(e)
	switch {
	case d.Forecast != nil:
		return "debt " + Money(d.Forecast.Current, d.Forecast.Currency) + " " + Forecast(d.Forecast, e.Cloud.Time())
	case d.Debt != nil:
		what := "debt"
		if d.Field == "balance" {
			what = "balance"
		}
		s := fmt.Sprintf("%s %s → %s", what, Money(prev, d.Debt.Currency), Money(cur, d.Debt.Currency))
		switch {
		case d.Debt.Crossed != "" && d.Debt.Floor != "":
			s += fmt.Sprintf(" (crossed %s the %s floor)", d.Debt.Crossed, Money(d.Debt.Floor, d.Debt.Currency))
		case d.Debt.Crossed != "" && d.Debt.Line != "":
			s += fmt.Sprintf(" (crossed %s %s, %s%% of %s)", d.Debt.Crossed, Money(d.Debt.Line, d.Debt.Currency), d.Debt.Step, Money(d.Debt.Threshold, d.Debt.Currency))
		case d.Debt.Crossed != "":
			s += fmt.Sprintf(" (crossed %s %s)", d.Debt.Crossed, Money(d.Debt.Threshold, d.Debt.Currency))
		}
		return s
	case d.Poll != nil:
		s := fmt.Sprintf("%d failed reads since %s", d.Poll.ConsecutiveFailures, d.Poll.Since.UTC().Format(time.RFC3339))
		if c := Cause(d.Poll); c != "" {
			s += ": " + c
		}
		return s
	case d.Previous != nil || d.Current != nil:
		return fmt.Sprintf("%s %s → %s", d.Field, Value(d.Previous), Value(d.Current))
	}
	return Headline(e)
}

// Cause says why reads failed, on one line: "list accounts page 3: account
// 1000123, field current_debt: not a decimal amount (malformed, HTTP 200,
// request r-1)"; "" when the event names no cause.
func Cause(p *event.Poll) string {
	if p == nil || p.Cause == nil {
		return ""
	}
	c := p.Cause
	var b strings.Builder
	b.WriteString(c.Operation)
	var what []string
	if c.AccountID != "" {
		what = append(what, "account "+c.AccountID)
	}
	if c.Field != "" {
		what = append(what, "field "+c.Field)
	}
	if len(what) > 0 {
		b.WriteString(": " + strings.Join(what, ", "))
	}
	if c.Detail != "" {
		b.WriteString(": " + c.Detail)
	}
	meta := []string{strings.ReplaceAll(c.Kind, "_", " ")}
	if c.Code != "" {
		meta = append(meta, c.Code)
	}
	if c.HTTPStatus != 0 {
		meta = append(meta, fmt.Sprintf("HTTP %d", c.HTTPStatus))
	}
	if c.RequestID != "" {
		meta = append(meta, "request "+c.RequestID)
	}
	b.WriteString(" (" + strings.Join(meta, ", ") + ")")
	return b.String()
}

// Accounts counts the distinct accounts of evs.
func Accounts(evs []*event.Event) int {
	seen := map[string]bool{}
	for _, e := range evs {
		seen[string(e.Data.Provider)+"\x00"+e.Data.Instance+"\x00"+e.Data.AccountID] = true
	}
	return len(seen)
}
