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
	"github.com/accountwatch/accountwatch/pkg/forecast"
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
	// Balance is the account's balance, when the provider has one; a
	// prepaid account's is watched against the policy's BalanceFloor.
	Balance *Balance
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
	// CreditLimit is the account's subscription_credit_limit: its line where
	// it has no blocking threshold (a limit of 0 is none).
	CreditLimit *decimal.Decimal
	Balance     *decimal.Decimal
	Currency    string
}

// Balance is an observed balance.
type Balance struct {
	Amount decimal.Decimal
	Raw    string
	// Prepaid: the account pays in advance (default_payment_model prepay);
	// only a prepaid balance is held against a floor.
	Prepaid  bool
	Currency string
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
	// Balance is a prepaid account's balance against its floor.
	Balance *BalanceState `json:"balance,omitempty"`
	// BadSince is when the account entered bad standing (Problems), zero
	// while it is in good standing.
	BadSince time.Time `json:"bad_since,omitzero"`
	// Labels are the account's watch-entry and connection labels as its
	// last event carried them (reports select accounts by them).
	Labels map[string]string `json:"labels,omitempty"`
}

// BalanceState is the last reported balance and whether it is under the floor.
type BalanceState struct {
	Value    string `json:"value"`
	Current  string `json:"current,omitempty"`
	Below    bool   `json:"below,omitempty"`
	Floor    string `json:"floor,omitempty"`
	Currency string `json:"currency,omitempty"`
}

// DebtState is the last reported debt: small moves accumulate against it until
// they reach the step.
type DebtState struct {
	Value string `json:"value"`
	Raw   string `json:"raw,omitempty"`
	// Above: the debt is over its threshold (the hysteresis state).
	Above bool `json:"above,omitempty"`
	// Step is the highest ladder step the debt is at (a percentage of the
	// threshold; "" none): each is crossed once until the debt falls
	// clearly back under it.
	Step string `json:"step,omitempty"`
	// Current is the debt last observed; Threshold, ThresholdSource and
	// Currency what it is measured against.
	Current         string `json:"current,omitempty"`
	Threshold       string `json:"threshold,omitempty"`
	ThresholdSource string `json:"threshold_source,omitempty"`
	Currency        string `json:"currency,omitempty"`
	// History is the recent debt, sampled for the forecast, oldest first.
	History []Sample `json:"history,omitempty"`
	// Forecast is the projection last announced, while it holds.
	Forecast *ForecastState `json:"forecast,omitempty"`
}

// Sample is one observed debt of the history.
type Sample struct {
	At    time.Time `json:"at"`
	Value string    `json:"value"`
}

// ForecastState is a projection announced by a debt.forecast event.
type ForecastState struct {
	ETA        time.Time `json:"eta"`
	RatePerDay string    `json:"rate_per_day"`
	At         time.Time `json:"at"`
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
	// DebtLadder are percentages of the threshold (50, 80, 100) that are
	// each reported once when the debt climbs past them, with the
	// hysteresis of the threshold when it falls back; 100 is always one.
	// Empty: the threshold alone.
	DebtLadder []decimal.Decimal
	// BalanceFloor is the least balance of a prepaid account (nil: not watched).
	BalanceFloor *decimal.Decimal
	// Forecast projects when the debt reaches its threshold (zero Horizon: off).
	Forecast ForecastPolicy
}

// ForecastPolicy configures the time-to-threshold projection.
type ForecastPolicy struct {
	// Horizon: a projection reaching the threshold within it is announced.
	Horizon time.Duration
	// SampleEvery is the least time between two points of the history
	// (default: an hour), Window how far back the points go (default: 7
	// days), MaxPoints how many are kept at most (default: 48).
	SampleEvery time.Duration
	Window      time.Duration
	MaxPoints   int
	// Options are what a projection needs (forecast.Options).
	Options forecast.Options
}

func (f ForecastPolicy) withDefaults() ForecastPolicy {
	if f.SampleEvery <= 0 {
		f.SampleEvery = time.Hour
	}
	if f.Window <= 0 {
		f.Window = 7 * 24 * time.Hour
	}
	if f.MaxPoints <= 0 {
		f.MaxPoints = 48
	}
	return f
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
	Forecast *event.Forecast
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
			_, next.Debt = debt(nil, obs.Debt, pol)
			next.Debt.History, next.Debt.Forecast = sample(nil, obs.Debt.Current, obs.At, pol.Forecast), nil
		}
		_, next.Balance = balance(nil, obs.Balance, pol)
		next.settle(obs.At)
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
		c, st := debt(prev.Debt, obs.Debt, pol)
		if c != nil {
			changes = append(changes, *c)
		}
		var hist []Sample
		var fc *ForecastState
		if prev.Debt != nil {
			hist, fc = prev.Debt.History, prev.Debt.Forecast
		}
		st.History = sample(hist, obs.Debt.Current, obs.At, pol.Forecast)
		st.Forecast = fc
		if f := project(st, obs.At, pol.Forecast); f != nil {
			changes = append(changes, Change{Type: event.TypeDebtForecast, Field: "current_debt", Forecast: f})
		}
		next.Debt = st
	}
	if c, st := balance(prev.Balance, obs.Balance, pol); c != nil {
		changes = append(changes, *c)
		next.Balance = st
	} else if st != nil || obs.Balance == nil {
		next.Balance = st
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
	next.settle(obs.At)
	return changes, next
}

// threshold is the line the debt is measured against and where it comes
// from: the account's blocking threshold, else its subscription credit
// limit, else the configured one. A line of 0 or less is none (every debt
// would be over it).
func threshold(d *Debt, pol Policy) (*decimal.Decimal, string) {
	switch {
	case d.Threshold != nil && d.Threshold.IsPositive():
		return d.Threshold, "account"
	case d.CreditLimit != nil && d.CreditLimit.IsPositive():
		return d.CreditLimit, "subscription_credit_limit"
	case pol.DebtThreshold != nil && pol.DebtThreshold.IsPositive():
		return pol.DebtThreshold, "config"
	}
	return nil, ""
}

var (
	hundred        = decimal.NewFromInt(100)
	defaultHyst    = decimal.RequireFromString("0.02")
	thresholdSteps = []decimal.Decimal{hundred}
)

// steps are the ladder's percentages, ascending, 100 among them.
func (pol Policy) steps() []decimal.Decimal {
	if len(pol.DebtLadder) == 0 {
		return thresholdSteps
	}
	out := slices.Clone(pol.DebtLadder)
	if !slices.ContainsFunc(out, func(d decimal.Decimal) bool { return d.Equal(hundred) }) {
		out = append(out, hundred)
	}
	slices.SortFunc(out, func(a, b decimal.Decimal) int { return a.Cmp(b) })
	return slices.CompactFunc(out, func(a, b decimal.Decimal) bool { return a.Equal(b) })
}

func (pol Policy) hysteresis() decimal.Decimal {
	if pol.DebtHysteresis.IsZero() {
		return defaultHyst
	}
	return pol.DebtHysteresis
}

// level is the highest step whose line the debt reached (0: none); with a
// band, the line less the band (the hysteresis of a falling debt).
func level(debt, th decimal.Decimal, steps []decimal.Decimal, band decimal.Decimal) decimal.Decimal {
	lvl := decimal.Zero
	for _, s := range steps {
		if debt.GreaterThanOrEqual(th.Mul(s).Div(hundred).Sub(band)) {
			lvl = s
		}
	}
	return lvl
}

// prevLevel is the step a record was at; a record from before ladders knows
// only whether it was over its threshold.
func (st *DebtState) level() decimal.Decimal {
	if st.Step != "" {
		if d, err := decimal.NewFromString(st.Step); err == nil {
			return d
		}
	}
	if st.Above {
		return hundred
	}
	return decimal.Zero
}

// debt decides whether a debt move is reported: a move of at least the step
// from the last reported value, or a crossing of a line. Each ladder step
// (the threshold alone without a ladder) is crossed above once, at its line;
// crossing back below needs the debt under the line less threshold ×
// hysteresis, so a debt hovering at a line does not flap.
func debt(prev *DebtState, d *Debt, pol Policy) (*Change, *DebtState) {
	th, source := threshold(d, pol)
	st := &DebtState{Value: d.Current.String(), Raw: d.Raw, Current: d.Current.String(), Currency: d.Currency, ThresholdSource: source}
	steps := pol.steps()
	ladder := len(pol.DebtLadder) > 0
	setLevel := func(l decimal.Decimal) {
		st.Above = l.GreaterThanOrEqual(hundred)
		st.Step = ""
		if ladder && l.IsPositive() {
			st.Step = l.String()
		}
	}
	if th != nil {
		st.Threshold = th.String()
	}
	if prev == nil {
		if th != nil {
			setLevel(level(d.Current, *th, steps, decimal.Zero))
		}
		return nil, st
	}
	last, err := decimal.NewFromString(prev.Value)
	if err != nil {
		return nil, st
	}
	crossed := ""
	var crossedStep decimal.Decimal
	st.Above, st.Step = prev.Above, prev.Step
	if th != nil {
		was := prev.level()
		up := level(d.Current, *th, steps, decimal.Zero)
		down := level(d.Current, *th, steps, th.Abs().Mul(pol.hysteresis()))
		switch {
		case up.GreaterThan(was):
			crossed, crossedStep = "above", up
			setLevel(up)
		case down.LessThan(was):
			crossed, crossedStep = "below", was
			setLevel(down)
		default:
			setLevel(was)
		}
	} else {
		st.Above, st.Step = false, ""
	}
	moved := !d.Current.Equal(last) && d.Current.Sub(last).Abs().GreaterThanOrEqual(pol.DebtStep)
	if crossed == "" && !moved || d.Current.Equal(last) {
		// Unreported: the last reported value stays what moves are measured
		// against (a crossing needs a move; its level is kept).
		st.Value, st.Raw = prev.Value, prev.Raw
		return nil, st
	}
	c := &Change{Type: event.TypeDebtChanged, Field: "current_debt", Debt: &event.DebtChange{
		Previous: last, Current: d.Current, PreviousRaw: prev.Raw, CurrentRaw: d.Raw,
		Threshold: th, ThresholdSource: source, Crossed: crossed, Balance: d.Balance, Currency: d.Currency,
	}}
	if crossed != "" && ladder {
		c.Debt.Step = &crossedStep
	}
	c.Previous, c.Current = event.MoneyValue(last, prev.Raw), event.MoneyValue(d.Current, d.Raw)
	return c, st
}

// balance holds a prepaid account's balance against the floor: falling
// under it is reported once, and coming back once it is at least the floor
// plus the debt step (so a balance at the floor does not flap).
func balance(prev *BalanceState, b *Balance, pol Policy) (*Change, *BalanceState) {
	if b == nil || !b.Prepaid || pol.BalanceFloor == nil {
		return nil, nil
	}
	floor := *pol.BalanceFloor
	st := &BalanceState{Value: b.Amount.String(), Current: b.Amount.String(), Floor: floor.String(), Currency: b.Currency}
	if prev == nil {
		st.Below = b.Amount.LessThan(floor)
		return nil, st
	}
	st.Below = prev.Below
	crossed := ""
	switch {
	case !prev.Below && b.Amount.LessThan(floor):
		crossed, st.Below = "below", true
	case prev.Below && b.Amount.GreaterThanOrEqual(floor.Add(pol.DebtStep)):
		crossed, st.Below = "above", false
	}
	last, err := decimal.NewFromString(prev.Value)
	if crossed == "" || err != nil || last.Equal(b.Amount) {
		st.Value = prev.Value
		return nil, st
	}
	c := &Change{Type: event.TypeDebtChanged, Field: "balance", Debt: &event.DebtChange{
		Previous: last, Current: b.Amount, CurrentRaw: b.Raw, Floor: &floor, Crossed: crossed, Balance: &b.Amount, Currency: b.Currency,
	}}
	c.Previous, c.Current = event.MoneyValue(last, ""), event.MoneyValue(b.Amount, b.Raw)
	return c, st
}

// sample adds the debt observed at to the history when SampleEvery has
// passed since the last point, and keeps the points of the window.
func sample(h []Sample, v decimal.Decimal, at time.Time, f ForecastPolicy) []Sample {
	if f.Horizon <= 0 {
		return nil
	}
	f = f.withDefaults()
	out := slices.Clone(h)
	if n := len(out); n == 0 || !at.Before(out[n-1].At.Add(f.SampleEvery)) {
		out = append(out, Sample{At: at.UTC(), Value: v.String()})
	}
	cut := 0
	for cut < len(out) && (at.Sub(out[cut].At) > f.Window || len(out)-cut > f.MaxPoints) {
		cut++
	}
	return out[cut:]
}

// project announces a projection of the debt reaching its threshold inside
// the horizon, once: while one holds, none is announced again; it is
// forgotten once the projection leaves one and a half horizons (or the debt
// is over the threshold), so an account that comes back is announced again.
func project(st *DebtState, now time.Time, f ForecastPolicy) *event.Forecast {
	if f.Horizon <= 0 || st.Threshold == "" {
		st.Forecast = nil
		return nil
	}
	f = f.withDefaults()
	th := decimal.RequireFromString(st.Threshold)
	pts := make([]forecast.Point, 0, len(st.History))
	for _, s := range st.History {
		v, err := decimal.NewFromString(s.Value)
		if err != nil {
			return nil
		}
		pts = append(pts, forecast.Point{At: s.At, Value: v})
	}
	p, err := forecast.Project(pts, th, f.Options)
	if err != nil || st.Above {
		st.Forecast = nil
		return nil
	}
	ahead := p.ETA.Sub(now)
	if st.Forecast != nil {
		if ahead > f.Horizon+f.Horizon/2 {
			st.Forecast = nil
		} else {
			st.Forecast.ETA, st.Forecast.RatePerDay = p.ETA.UTC(), p.RatePerDay.String()
		}
		return nil
	}
	if ahead > f.Horizon {
		return nil
	}
	st.Forecast = &ForecastState{ETA: p.ETA.UTC(), RatePerDay: p.RatePerDay.String(), At: now.UTC()}
	out := &event.Forecast{Method: forecast.Method, Threshold: st.Threshold, ThresholdSource: st.ThresholdSource, Currency: st.Currency,
		Current: st.Current, RatePerDay: p.RatePerDay.String(), ETA: p.ETA, HorizonHours: f.Horizon.Hours()}
	for _, s := range st.History {
		out.Observations = append(out.Observations, event.Point{At: s.At, Value: s.Value})
	}
	return out
}

// Problems says what is wrong with the account, worst first (event.Problems);
// none is good standing.
func (r Record) Problems() []string {
	var out []string
	switch r.Enums[FieldStatus].Value {
	case event.StatusCreditHold:
		out = append(out, event.ProblemCreditHold)
	case event.StatusAdministrativeHold:
		out = append(out, event.ProblemAdministrativeHold)
	}
	if r.Enums[FieldHostingStatus].Value == "freeze" || r.Enums[FieldCreditLimitStatus].Value == "freeze" {
		out = append(out, event.ProblemFrozen)
	}
	if r.Debt != nil && r.Debt.Above {
		out = append(out, event.ProblemOverThreshold)
	}
	if r.Balance != nil && r.Balance.Below {
		out = append(out, event.ProblemBelowFloor)
	}
	if r.Degraded {
		out = append(out, event.ProblemDegraded)
	}
	slices.SortFunc(out, func(a, b string) int { return slices.Index(event.Problems, a) - slices.Index(event.Problems, b) })
	return out
}

// settle keeps BadSince: set when the account enters bad standing, cleared
// when it leaves it.
func (r *Record) settle(at time.Time) {
	switch bad := len(r.Problems()) > 0; {
	case bad && r.BadSince.IsZero():
		r.BadSince = at.UTC()
	case !bad:
		r.BadSince = time.Time{}
	}
}

// Standing is the record as the standing events carry.
func (r Record) Standing() *event.Standing {
	s := &event.Standing{Problems: r.Problems()}
	if s.Problems == nil {
		s.Problems = []string{}
	}
	if !r.BadSince.IsZero() && len(s.Problems) > 0 {
		t := r.BadSince
		s.Since = &t
	}
	s.Status = r.Enums[FieldStatus].Value
	s.HostingStatus = r.Enums[FieldHostingStatus].Value
	s.CreditLimitStatus = r.Enums[FieldCreditLimitStatus].Value
	if d := r.Debt; d != nil {
		s.Debt, s.Threshold, s.Currency = d.Current, d.Threshold, d.Currency
		if s.Debt == "" {
			s.Debt = d.Value
		}
	}
	if b := r.Balance; b != nil {
		s.Balance, s.Floor = b.Current, b.Floor
		if s.Currency == "" {
			s.Currency = b.Currency
		}
	}
	return s
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
		next.settle(now)
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
	next.settle(time.Time{})
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
	event.TypeDebtChanged:  func(c Change, m event.Meta) (*event.Event, error) { return event.DebtChanged(m, *c.Debt) },
	event.TypeDebtForecast: func(c Change, m event.Meta) (*event.Event, error) { return event.DebtForecast(m, *c.Forecast) },
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
