package eventtest

import (
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/accountwatch/accountwatch/pkg/event"
)

// Journey is one account's way through bad standing, each event with the
// standing it leaves the account in, in chain order, a minute apart from
// at: its debt past 80% of its 600 EUR threshold (a warning), a credit
// hold at 620 EUR, active again while still over the threshold, and the
// debt paid down under it (good standing).
type Journey struct {
	Ladder, Hold, Active, Paid *event.Event
}

// NewJourney builds the journey of account acct ("Acme Hosting GmbH").
func NewJourney(t testing.TB, acct string, at time.Time) Journey {
	t.Helper()
	seq := uint64(0)
	meta := func(problems []string, since *time.Time, debt string) event.Meta {
		seq++
		m := Meta(acct, map[string]string{"team": "emea"})
		m.AccountName = "Acme Hosting GmbH"
		m.ObservedAt = at.Add(time.Duration(seq-1) * time.Minute).UTC()
		m.Revision, m.Chain = seq, event.Chain{Seq: seq}
		if seq > 1 {
			m.Chain.Prev = strings.Repeat("ab", 32)
		}
		if problems == nil {
			problems = []string{}
		}
		m.Standing = &event.Standing{Problems: problems, Since: since, Status: "active", Debt: debt, Threshold: "600", Currency: "EUR"}
		return m
	}
	th := decimal.RequireFromString("600")
	step := decimal.RequireFromString("80")
	d := func(s string) decimal.Decimal { return decimal.RequireFromString(s) }
	var j Journey
	j.Ladder = Must(t)(event.DebtChanged(meta(nil, nil, "490"), event.DebtChange{Previous: d("400"), Current: d("490"),
		Threshold: &th, ThresholdSource: "account", Crossed: "above", Step: &step, Currency: "EUR"}))
	since := at.Add(time.Minute).UTC()
	hm := meta([]string{event.ProblemCreditHold, event.ProblemOverThreshold}, &since, "620")
	hm.Standing.Status = "credit_hold"
	j.Hold = Status(t, hm, "active", "credit_hold")
	j.Active = Status(t, meta([]string{event.ProblemOverThreshold}, &since, "620"), "credit_hold", "active")
	j.Paid = Must(t)(event.DebtChanged(meta(nil, nil, "150"), event.DebtChange{Previous: d("620"), Current: d("150"),
		Threshold: &th, ThresholdSource: "account", Crossed: "below", Currency: "EUR"}))
	return j
}
