package describe

import (
	"fmt"
	"math"
	"net/url"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"github.com/accountwatch/accountwatch/pkg/event"
)

// What a finance team reads in an alert besides the change: who the account
// is, where it stands now, what is still wrong after a recovery, when its
// debt reaches the blocking threshold, and where to look.

// providerWording is how each provider calls an account, for an account
// that has no display name.
var providerWording = map[event.Provider]string{
	event.ProviderActivePlatform: "ActivePlatform account",
	event.ProviderAlibabaBSS:     "Alibaba Cloud BSS account",
	event.ProviderAlibabaCAMS:    "Alibaba Cloud CAMS customer",
}

// Name names the account in an alert: its display name with its id, else
// the id in its provider's wording ("Alibaba Cloud BSS account
// 1234567890123456"), or the connection for a provider-wide event.
func Name(d event.Data) string {
	if d.AccountID == event.ProviderScope || d.AccountName != "" {
		return Account(d)
	}
	if w, ok := providerWording[d.Provider]; ok {
		return w + " " + d.AccountID
	}
	return d.AccountID
}

// Console is the audit console's base URL ("" when none is configured).
type Console string

// Account is the console's page of the event's account ("" without a
// console, or for a provider-wide event).
func (c Console) Account(d event.Data) string {
	if c == "" || d.AccountID == event.ProviderScope || d.AccountID == "" {
		return ""
	}
	return strings.TrimSuffix(string(c), "/") + "/accounts/" + url.PathEscape(string(d.Provider)) + "/" + url.PathEscape(d.Instance) + "/" + url.PathEscape(d.AccountID)
}

var problemWords = map[string]string{
	event.ProblemCreditHold:         "credit hold",
	event.ProblemFrozen:             "frozen",
	event.ProblemOverThreshold:      "over threshold",
	event.ProblemAdministrativeHold: "administrative hold",
	event.ProblemBelowFloor:         "balance below floor",
	event.ProblemDegraded:           "not readable",
}

// Problem says a standing's problem in words.
func Problem(p string) string {
	if w, ok := problemWords[p]; ok {
		return w
	}
	return strings.ReplaceAll(p, "_", " ")
}

// problemDetail is one problem with its figures: "debt 620.00 EUR over the
// 600.00 EUR threshold".
func problemDetail(s *event.Standing, p, still string) string {
	switch p {
	case event.ProblemOverThreshold:
		if s.Debt != "" && s.Threshold != "" {
			return fmt.Sprintf("debt %s %sover the %s threshold", Money(s.Debt, s.Currency), still, Money(s.Threshold, s.Currency))
		}
	case event.ProblemBelowFloor:
		if s.Balance != "" && s.Floor != "" {
			return fmt.Sprintf("balance %s %sunder the %s floor", Money(s.Balance, s.Currency), still, Money(s.Floor, s.Currency))
		}
	case event.ProblemFrozen:
		var what []string
		if s.HostingStatus == "freeze" {
			what = append(what, "hosting")
		}
		if s.CreditLimitStatus == "freeze" {
			what = append(what, "credit limit")
		}
		if len(what) > 0 {
			return strings.Join(what, " and ") + " " + still + "frozen"
		}
	}
	if still != "" {
		return "still " + Problem(p)
	}
	return Problem(p)
}

// Standing says where the account stands: "Good standing", or its problems
// with their figures ("Credit hold; debt 620.00 EUR over the 600.00 EUR
// threshold"); "" when the event says nothing of it.
func Standing(s *event.Standing) string {
	if s == nil {
		return ""
	}
	if !s.Bad() {
		return "Good standing"
	}
	parts := make([]string, len(s.Problems))
	for i, p := range s.Problems {
		parts[i] = problemDetail(s, p, "")
	}
	out := strings.Join(parts, "; ")
	return strings.ToUpper(out[:1]) + out[1:]
}

// lifts is the problem a recovery event takes away.
func lifts(e *event.Event) string {
	switch e.Type() {
	case event.TypeStatusChanged:
		if prev, _ := values(e); prev == event.StatusAdministrativeHold {
			return event.ProblemAdministrativeHold
		}
		return event.ProblemCreditHold
	case event.TypeHostingStatusChanged, event.TypeCreditLimitStatusChanged:
		return event.ProblemFrozen
	case event.TypeDebtChanged:
		if e.Data.Field == "balance" {
			return event.ProblemBelowFloor
		}
		return event.ProblemOverThreshold
	case event.TypePollRecovered:
		return event.ProblemDegraded
	}
	return ""
}

// StillWrong is what is still wrong with the account after e, a recovery,
// in words ("debt 620.00 EUR still over the 600.00 EUR threshold"): ""
// when nothing is, or e is no recovery.
func StillWrong(e *event.Event) string {
	s := e.Data.Standing
	if !IsRecovery(e) || !s.Bad() {
		return ""
	}
	lifted := lifts(e)
	var parts []string
	for _, p := range s.Problems {
		if p != lifted || p == event.ProblemFrozen {
			// A thaw of one status may leave the other frozen.
			parts = append(parts, problemDetail(s, p, "still "))
		}
	}
	return strings.Join(parts, "; ")
}

// Title is the headline with what is still wrong after a recovery:
// "Account active again; debt 620.00 EUR still over the 600.00 EUR threshold".
func Title(e *event.Event) string {
	if w := StillWrong(e); w != "" {
		return Headline(e) + "; " + w
	}
	return Headline(e)
}

// Forecast says when the debt reaches its threshold: "reaches its 600.00
// EUR threshold in ~3 days (2026-12-04) at +45.00 EUR/day"; now is when it is read.
func Forecast(f *event.Forecast, now time.Time) string {
	if f == nil {
		return ""
	}
	rate := f.RatePerDay
	if d, err := decimal.NewFromString(rate); err == nil {
		rate = d.Round(2).String()
	}
	return fmt.Sprintf("reaches its %s threshold %s (%s) at %s/day", Money(f.Threshold, f.Currency), In(f.ETA.Sub(now)), f.ETA.UTC().Format("2006-01-02"), Delta(rate, f.Currency))
}

// ForecastMethod says how a forecast was made: "least-squares line through
// 6 observations over 5 days".
func ForecastMethod(f *event.Forecast) string {
	n := len(f.Observations)
	s := fmt.Sprintf("%s line through %d observations", strings.ReplaceAll(strings.ReplaceAll(f.Method, "least_squares", "least-squares"), "_", " "), n)
	if n > 1 {
		s += " over " + strings.TrimPrefix(In(f.Observations[n-1].At.Sub(f.Observations[0].At)), "in ~")
	}
	return s
}

// In says a duration ahead roughly: "in ~3 days", "in ~5 hours", "now".
func In(d time.Duration) string {
	switch h := d.Hours(); {
	case d <= 0:
		return "now"
	case h >= 48:
		return fmt.Sprintf("in ~%d days", int(math.Round(h/24)))
	case h >= 2:
		return fmt.Sprintf("in ~%d hours", int(math.Round(h)))
	default:
		return fmt.Sprintf("in ~%d minutes", max(1, int(math.Round(d.Minutes()))))
	}
}

// Still says a standing for a reminder: "still credit hold; debt 620.00 EUR
// over the 600.00 EUR threshold" ("" in good standing).
func Still(s *event.Standing) string {
	if !s.Bad() {
		return ""
	}
	st := Standing(s)
	return "still " + strings.ToLower(st[:1]) + st[1:]
}

// ParseConsole checks a console base URL (AW_CONSOLE_URL; "" is none).
func ParseConsole(s string) (Console, error) {
	if s == "" {
		return "", nil
	}
	if u, err := url.Parse(s); err != nil || u.Scheme != "https" && u.Scheme != "http" || u.Host == "" {
		return "", fmt.Errorf("AW_CONSOLE_URL: %q is not an http(s) URL", s)
	}
	return Console(s), nil
}
