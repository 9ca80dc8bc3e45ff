// Package detect turns provider observations into the changes of the event
// contract: every real change once, nothing else. It compares an observation
// with the last-known Record of the account, keeps debt from flapping around a
// threshold (hysteresis), treats the first observation as a baseline, and keeps
// upstream failures apart from state changes. It is pure: no I/O.
package detect

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"github.com/accountwatch/accountwatch/pkg/event"
)

// Enum fields of the observations.
const (
	FieldStatus            = "status"
	FieldHostingStatus     = "HostingStatus"
	FieldCreditLimitStatus = "CreditLimitStatus"
)

// enumField is a row of the detection table: the event a change of the field
// is, and the values its provider documents (any other passes through,
// counted as unknown).
type enumField struct {
	Type  event.Type
	Known func(normalised string) bool
}

// enumFields is the detection table: every watched enum field of every
// provider. A provider with a field of its own adds a row.
var enumFields = map[string]enumField{
	FieldStatus:            {event.TypeStatusChanged, event.KnownStatus},           // ActivePlatform
	FieldHostingStatus:     {event.TypeHostingStatusChanged, knownHosting},         // BSS
	FieldCreditLimitStatus: {event.TypeCreditLimitStatusChanged, knownCreditLimit}, // BSS
}

// Observation is one successful read of an account, normalised by the poller's
// provider adapter.
type Observation struct {
	Name string
	// Enums holds status (ActivePlatform) or HostingStatus and CreditLimitStatus (BSS).
	Enums map[string]event.Value
	// Debt is nil when the provider has no debt or sent null.
	Debt *Debt
	// Profile holds CAMS business-profile fields (event.ProfileFields).
	Profile map[string]event.Value
	// Attrs are account attributes; the poller stores only the allow-listed ones.
	Attrs    map[string]string
	Evidence event.Evidence
	At       time.Time
}

// Debt is an observed debt.
type Debt struct {
	Current   decimal.Decimal
	Raw       string
	Threshold *decimal.Decimal // the account's own line (financial_blocking_threshold), if any
	Balance   *decimal.Decimal
	Currency  string
}

// Record is the last-known state of one account, stored in KV.
type Record struct {
	Version   int            `json:"v"`
	Provider  event.Provider `json:"provider"`
	Instance  string         `json:"instance"`
	AccountID string         `json:"account_id"`
	Name      string         `json:"name,omitempty"`
	// Baseline is false until the account has been read once: the first
	// observation is stored, never alerted on.
	Baseline bool                   `json:"baseline"`
	Enums    map[string]event.Value `json:"enums,omitempty"`
	Debt     *DebtState             `json:"debt,omitempty"`
	Profile  map[string]event.Value `json:"profile,omitempty"`
	Attrs    map[string]string      `json:"attrs,omitempty"`
	// ChangedAt is when the last change was observed (previous_observed_at of the next).
	ChangedAt time.Time `json:"changed_at,omitzero"`
	// Chain is the account's hash chain: Seq events so far, Prev the hash of the last.
	Chain event.Chain `json:"chain"`
	// Failures counts consecutive failed polls; Degraded is set once they reach the policy's limit.
	Failures     int       `json:"failures,omitempty"`
	FailingSince time.Time `json:"failing_since,omitzero"`
	Degraded     bool      `json:"degraded,omitempty"`
	LastError    string    `json:"last_error,omitempty"`
	// Removed: the account vanished from its provider's listing.
	Removed bool `json:"removed,omitempty"`
}

// DebtState is the last reported debt: small moves accumulate against it until
// they reach the step.
type DebtState struct {
	Value string `json:"value"`
	Raw   string `json:"raw,omitempty"`
	// Above: the debt is over its threshold (the hysteresis state).
	Above bool `json:"above,omitempty"`
}

// Policy configures detection.
type Policy struct {
	// DebtStep is the least move of current_debt that is reported (0: any move).
	DebtStep decimal.Decimal
	// DebtThreshold is used for accounts without their own financial_blocking_threshold (nil: none).
	DebtThreshold *decimal.Decimal
	// DebtHysteresis is the fraction of the threshold the debt must fall below it
	// before a new crossing above counts (default 0.02: 2%).
	DebtHysteresis decimal.Decimal
	// DegradedAfter is how many consecutive failed polls make an account (or a
	// connection) degraded (default 3).
	DegradedAfter int
}

// DefaultPolicy: report every debt move of at least 1, 2% hysteresis, degraded after 3 failures.
func DefaultPolicy() Policy {
	return Policy{DebtStep: decimal.NewFromInt(1), DebtHysteresis: decimal.RequireFromString("0.02"), DegradedAfter: 3}
}

// Change is one detected change, ready to become an event.
type Change struct {
	Type     event.Type
	Field    string
	Previous event.Value
	Current  event.Value
	Debt     *event.DebtChange
	Poll     *event.Poll
	Attrs    map[string]string
	// Unknown marks an enum value outside the documented set (it passes through).
	Unknown bool
}

// Observe compares obs with prev and returns the changes and the next record.
// prev may be the zero Record (never seen): that observation is the baseline.
// A success after failures also yields poll.recovered if the account was degraded.
func Observe(prev Record, obs Observation, pol Policy) ([]Change, Record) {
	next := prev
	next.Version = 1
	next.Name = obs.Name
	next.Attrs = obs.Attrs
	next.Removed = false
	var changes []Change
	if prev.Degraded {
		changes = append(changes, Change{Type: event.TypePollRecovered, Poll: &event.Poll{Scope: "account", ConsecutiveFailures: prev.Failures, Since: prev.FailingSince}})
	}
	next.Failures, next.FailingSince, next.Degraded, next.LastError = 0, time.Time{}, false, ""

	if !prev.Baseline {
		next.Baseline = true
		next.Enums = maps.Clone(obs.Enums)
		next.Profile = maps.Clone(obs.Profile)
		if obs.Debt != nil {
			th := threshold(obs.Debt, pol)
			next.Debt = &DebtState{Value: obs.Debt.Current.String(), Raw: obs.Debt.Raw, Above: th != nil && obs.Debt.Current.GreaterThanOrEqual(*th)}
		}
		return changes, next
	}

	next.Enums = writable(prev.Enums)
	for _, f := range slices.Sorted(maps.Keys(obs.Enums)) {
		cur := obs.Enums[f]
		old, seen := prev.Enums[f]
		if !seen {
			next.Enums[f] = cur // a field first seen now is part of the baseline
			continue
		}
		if old.Value == cur.Value {
			continue // only the raw spelling may have moved ("credit hold" → "credit_hold"): not a change
		}
		next.Enums[f] = cur
		ef, watched := enumFields[f]
		if !watched {
			continue
		}
		changes = append(changes, Change{Type: ef.Type, Field: f, Previous: old, Current: cur, Unknown: !ef.Known(cur.Value)})
	}

	if obs.Debt != nil {
		if c, st := debt(prev.Debt, obs.Debt, pol); c != nil {
			changes = append(changes, *c)
			next.Debt = st
		} else if next.Debt == nil {
			next.Debt = st
		} else {
			next.Debt = &DebtState{Value: prev.Debt.Value, Raw: prev.Debt.Raw, Above: st.Above}
		}
	}

	next.Profile = writable(prev.Profile)
	for _, f := range event.ProfileFields {
		cur, ok := obs.Profile[f]
		if !ok {
			continue
		}
		old := prev.Profile[f]
		next.Profile[f] = cur
		if old.Value != cur.Value || strings.Join(old.Items, "\x00") != strings.Join(cur.Items, "\x00") {
			changes = append(changes, Change{Type: event.TypePhoneProfileChanged, Field: f, Previous: old, Current: cur})
		}
	}
	return changes, next
}

func threshold(d *Debt, pol Policy) *decimal.Decimal {
	if d.Threshold != nil {
		return d.Threshold
	}
	return pol.DebtThreshold
}

// debt decides whether a debt move is reported: a move of at least the step
// from the last reported value, or a crossing of the threshold. Crossing above
// happens at the threshold; crossing back below needs the debt under
// threshold × (1 − hysteresis), so a debt hovering at the line does not flap.
func debt(prev *DebtState, d *Debt, pol Policy) (*Change, *DebtState) {
	th := threshold(d, pol)
	st := &DebtState{Value: d.Current.String(), Raw: d.Raw}
	if prev == nil {
		st.Above = th != nil && d.Current.GreaterThanOrEqual(*th)
		return nil, st
	}
	last, err := decimal.NewFromString(prev.Value)
	if err != nil {
		return nil, st
	}
	crossed := ""
	st.Above = prev.Above
	if th != nil {
		hyst := pol.DebtHysteresis
		if hyst.IsZero() {
			hyst = decimal.RequireFromString("0.02")
		}
		lower := th.Sub(th.Abs().Mul(hyst))
		switch {
		case !prev.Above && d.Current.GreaterThanOrEqual(*th):
			crossed, st.Above = "above", true
		case prev.Above && d.Current.LessThan(lower):
			crossed, st.Above = "below", false
		}
	} else {
		st.Above = false
	}
	moved := !d.Current.Equal(last) && d.Current.Sub(last).Abs().GreaterThanOrEqual(pol.DebtStep)
	if crossed == "" && !moved {
		return nil, st
	}
	if d.Current.Equal(last) {
		return nil, st // a crossing needs a move; the hysteresis state is kept
	}
	c := &Change{Type: event.TypeDebtChanged, Field: "current_debt", Debt: &event.DebtChange{
		Previous: last, Current: d.Current, PreviousRaw: prev.Raw, CurrentRaw: d.Raw,
		Threshold: th, Crossed: crossed, Balance: d.Balance, Currency: d.Currency,
	}}
	if th != nil {
		c.Debt.ThresholdSource = "config"
		if d.Threshold != nil {
			c.Debt.ThresholdSource = "account"
		}
	}
	c.Previous, c.Current = event.MoneyValue(last, prev.Raw), event.MoneyValue(d.Current, d.Raw)
	return c, st
}

// Fail records a failed poll. After pol.DegradedAfter consecutive failures it
// returns a poll.degraded change, once, naming cause (the failure that made
// it degraded; may be nil). A failure never changes observed state.
func Fail(prev Record, now time.Time, code, msg string, cause *event.PollCause, pol Policy) ([]Change, Record) {
	next := prev
	next.Version = 1
	if next.Failures == 0 {
		next.FailingSince = now.UTC()
	}
	next.Failures++
	next.LastError = truncate(msg, 300)
	limit := pol.DegradedAfter
	if limit <= 0 {
		limit = 3
	}
	if !prev.Degraded && next.Failures >= limit {
		next.Degraded = true
		scope := "account"
		if prev.AccountID == event.ProviderScope {
			scope = "provider"
		}
		return []Change{{Type: event.TypePollDegraded, Poll: &event.Poll{Scope: scope, ConsecutiveFailures: next.Failures, Since: next.FailingSince, ErrorCode: code, LastError: next.LastError, Cause: cause}}}, next
	}
	return nil, next
}

// Recover records a success of a whole connection (provider scope).
func Recover(prev Record) ([]Change, Record) {
	next := prev
	var changes []Change
	if prev.Degraded {
		changes = append(changes, Change{Type: event.TypePollRecovered, Poll: &event.Poll{Scope: "provider", ConsecutiveFailures: prev.Failures, Since: prev.FailingSince}})
	}
	next.Failures, next.FailingSince, next.Degraded, next.LastError = 0, time.Time{}, false, ""
	return changes, next
}

// Event builds the event of a change. m carries the account, time, evidence,
// the previous record's revision and the chain position.
func (c Change) Event(m event.Meta) (*event.Event, error) {
	build, ok := constructors[c.Type]
	if !ok {
		return nil, fmt.Errorf("%w: no constructor for %s", event.ErrInvalid, c.Type)
	}
	return build(c, m)
}

// constructors builds each type's event from a change.
var constructors = map[event.Type]func(Change, event.Meta) (*event.Event, error){
	event.TypeStatusChanged: func(c Change, m event.Meta) (*event.Event, error) {
		return event.StatusChanged(m, c.Previous, c.Current)
	},
	event.TypeHostingStatusChanged: func(c Change, m event.Meta) (*event.Event, error) {
		return event.HostingStatusChanged(m, c.Previous, c.Current)
	},
	event.TypeCreditLimitStatusChanged: func(c Change, m event.Meta) (*event.Event, error) {
		return event.CreditLimitStatusChanged(m, c.Previous, c.Current)
	},
	event.TypeDebtChanged: func(c Change, m event.Meta) (*event.Event, error) { return event.DebtChanged(m, *c.Debt) },
	event.TypePhoneProfileChanged: func(c Change, m event.Meta) (*event.Event, error) {
		return event.PhoneProfileChanged(m, c.Field, c.Previous, c.Current)
	},
	event.TypePollDegraded:  func(c Change, m event.Meta) (*event.Event, error) { return event.PollDegraded(m, *c.Poll) },
	event.TypePollRecovered: func(c Change, m event.Meta) (*event.Event, error) { return event.PollRecovered(m, *c.Poll) },
	event.TypeDiscovered:    func(c Change, m event.Meta) (*event.Event, error) { return event.Discovered(m, c.Attrs) },
	event.TypeRemoved:       func(c Change, m event.Meta) (*event.Event, error) { return event.Removed(m, c.Attrs) },
}

func knownHosting(v string) bool {
	switch v {
	case "freeze", "trusteeship", "trusteeship_cancel", "trusteeshipcancel", "":
		return true
	}
	return false
}

func knownCreditLimit(v string) bool {
	switch v {
	case "freeze", "thaw", "trusteeship", "trusteeship_cancel", "trusteeshipcancel", "":
		return true
	}
	return false
}

// writable copies a record's values for the next record, as a map that can
// take new fields even when the record had none.
func writable(m map[string]event.Value) map[string]event.Value {
	if m == nil {
		return map[string]event.Value{}
	}
	return maps.Clone(m)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
