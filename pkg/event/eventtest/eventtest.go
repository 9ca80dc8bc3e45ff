// Package eventtest builds contract events for the tests of consumers: valid,
// schema-conformant events of each type with the fields a test cares about.
package eventtest

import (
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/accountwatch/accountwatch/pkg/event"
)

// T0 is the observation time of events built here, unless a Meta says otherwise.
var T0 = time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)

// Meta is a valid ActivePlatform meta for account acct on instance "ap-main".
func Meta(acct string, labels map[string]string) event.Meta {
	return event.Meta{
		Provider: event.ProviderActivePlatform, Instance: "ap-main", AccountID: acct, AccountName: "Acme " + acct,
		Labels: labels, ObservedAt: T0,
		Evidence: event.Evidence{RequestID: "req-" + acct, Endpoint: "GetAccount"},
	}
}

// Must fails the test on a constructor's error:
// eventtest.Must(t)(event.PollDegraded(m, p)).
func Must(t testing.TB) func(*event.Event, error) *event.Event {
	return func(e *event.Event, err error) *event.Event {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
}

// Status is a status.changed event of m's account, prev → cur (raw spellings).
func Status(t testing.TB, m event.Meta, prev, cur string) *event.Event {
	t.Helper()
	return Must(t)(event.StatusChanged(m, event.EnumValue(prev), event.EnumValue(cur)))
}

// Debt is a debt.changed event prev → cur against threshold (crossed "above",
// "below" or "").
func Debt(t testing.TB, m event.Meta, prev, cur, threshold, crossed string) *event.Event {
	t.Helper()
	th := decimal.RequireFromString(threshold)
	return Must(t)(event.DebtChanged(m, event.DebtChange{
		Previous: decimal.RequireFromString(prev), Current: decimal.RequireFromString(cur),
		Threshold: &th, ThresholdSource: "account", Crossed: crossed, Currency: "USD",
	}))
}

// Hosting is an Alibaba BSS hosting_status.changed event for uid.
func Hosting(t testing.TB, uid, prev, cur string) *event.Event {
	t.Helper()
	m := Meta(uid, nil)
	m.Provider, m.Instance, m.AccountName = event.ProviderAlibabaBSS, "bss-main", "Member "+uid
	return Must(t)(event.HostingStatusChanged(m, event.EnumValue(prev), event.EnumValue(cur)))
}

// CreditLimit is an Alibaba BSS credit_limit_status.changed event for uid.
func CreditLimit(t testing.TB, uid, prev, cur string) *event.Event {
	t.Helper()
	m := Meta(uid, nil)
	m.Provider, m.Instance, m.AccountName = event.ProviderAlibabaBSS, "bss-main", "Member "+uid
	return Must(t)(event.CreditLimitStatusChanged(m, event.EnumValue(prev), event.EnumValue(cur)))
}
