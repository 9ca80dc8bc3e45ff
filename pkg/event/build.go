package event

import (
	"fmt"
	"strings"
	"time"

	"github.com/shopspring/decimal"
)

// Meta is what every constructor needs besides the change itself: who, where,
// when, the evidence, and the account's place in its hash chain.
type Meta struct {
	Provider           Provider
	Instance           string
	AccountID          string
	AccountName        string
	Labels             map[string]string
	ObservedAt         time.Time
	PreviousObservedAt time.Time
	Evidence           Evidence
	// Revision is the revision of the stored state the change was detected against
	// (0 when there was none); it keeps ids of a value that flips back and forth distinct.
	Revision uint64
	Chain    Chain
	// Severity overrides the type's default severity policy when set.
	Severity Severity
	// Allow decides which account attributes may travel; nil means DefaultAllowList.
	Allow *AllowList
	// Standing is the account's standing after the change.
	Standing *Standing
}

func (m Meta) validate() error {
	if !m.Provider.Valid() {
		return fmt.Errorf("%w: unknown provider %q", ErrInvalid, m.Provider)
	}
	if err := ValidateInstance(m.Instance); err != nil {
		return err
	}
	if m.AccountID == "" {
		return fmt.Errorf("%w: empty account id", ErrInvalid)
	}
	if m.ObservedAt.IsZero() {
		return fmt.Errorf("%w: zero observed time", ErrInvalid)
	}
	return nil
}

// Account statuses of ActivePlatform, normalised.
const (
	StatusActive             = "active"
	StatusAdministrativeHold = "administrative_hold"
	StatusCreditHold         = "credit_hold"
	StatusDeleted            = "deleted"
)

// enumFolder is built once: every decoded account's enums pass through it.
var enumFolder = strings.NewReplacer(" ", "_", "-", "_")

// NormalizeEnum lower-cases an upstream enum and folds spaces and dashes to '_'
// ("credit hold", "Credit-Hold" → "credit_hold").
func NormalizeEnum(raw string) string {
	s := strings.ToLower(strings.TrimSpace(raw))
	s = enumFolder.Replace(s)
	for strings.Contains(s, "__") {
		s = strings.ReplaceAll(s, "__", "_")
	}
	return s
}

// EnumValue builds a Value from an upstream enum, keeping the raw spelling when it
// differs from the normalised one.
func EnumValue(raw string) Value {
	v := Value{Value: NormalizeEnum(raw)}
	if v.Value != raw {
		v.Raw = raw
	}
	return v
}

// MoneyValue builds a Value from an exact amount; raw is the upstream spelling ("453.2", 453.20).
func MoneyValue(d decimal.Decimal, raw string) Value {
	v := Value{Value: d.String()}
	if raw != "" && raw != v.Value {
		v.Raw = raw
	}
	return v
}

// KnownStatus reports whether a normalised ActivePlatform status is one of the four documented ones.
func KnownStatus(s string) bool {
	switch s {
	case StatusActive, StatusAdministrativeHold, StatusCreditHold, StatusDeleted:
		return true
	}
	return false
}

func requireChange(prev, cur Value) error {
	if prev.Value == cur.Value && strings.Join(prev.Items, "\x00") == strings.Join(cur.Items, "\x00") {
		return fmt.Errorf("%w: previous and current are both %q", ErrInvalid, cur.Value)
	}
	return nil
}

// StatusChanged is an ActivePlatform account status change. Unknown statuses pass
// through normalised, with the raw value kept.
func StatusChanged(m Meta, prev, cur Value) (*Event, error) {
	if err := requireChange(prev, cur); err != nil {
		return nil, err
	}
	sev := SeverityWarning
	switch cur.Value {
	case StatusCreditHold:
		sev = SeverityCritical
	case StatusActive:
		sev = SeverityInfo
	}
	return build(TypeStatusChanged, m, Data{Field: "status", Previous: &prev, Current: &cur}, sev)
}

// DebtChange is the debt part of a debt.changed event.
type DebtChange struct {
	Previous, Current decimal.Decimal
	// PreviousRaw and CurrentRaw are the upstream spellings, if they differ.
	PreviousRaw, CurrentRaw string
	Threshold               *decimal.Decimal
	ThresholdSource         string
	// Crossed is "above", "below" or "" (see Debt).
	Crossed string
	// Step, when set, is the ladder step crossed (a percentage of Threshold).
	Step *decimal.Decimal
	// Floor, when set, makes this a prepaid balance crossing its floor:
	// Previous and Current are balances.
	Floor    *decimal.Decimal
	Balance  *decimal.Decimal
	Currency string
}

// DebtChanged is a change of current_debt by at least the configured step, or a
// threshold crossing. Crossing the threshold is critical, crossing a lower
// ladder step or growing debt a warning, shrinking debt info. With c.Floor it
// is a prepaid balance crossing its floor: below is a warning, back above info.
func DebtChanged(m Meta, c DebtChange) (*Event, error) {
	prev, cur := MoneyValue(c.Previous, c.PreviousRaw), MoneyValue(c.Current, c.CurrentRaw)
	if c.Previous.Equal(c.Current) {
		return nil, fmt.Errorf("%w: debt unchanged at %s", ErrInvalid, cur.Value)
	}
	d := &Debt{Delta: c.Current.Sub(c.Previous).String(), ThresholdSource: c.ThresholdSource, Crossed: c.Crossed, Currency: c.Currency}
	if c.Threshold != nil {
		d.Threshold = c.Threshold.String()
	}
	if c.Balance != nil {
		d.Balance = c.Balance.String()
	}
	switch c.Crossed {
	case "", "above", "below":
	default:
		return nil, fmt.Errorf("%w: crossed %q (want above, below or empty)", ErrInvalid, c.Crossed)
	}
	field := "current_debt"
	if c.Floor != nil {
		// A prepaid account's balance against its floor: falling below it wants a look.
		if c.Crossed == "" || c.Step != nil {
			return nil, fmt.Errorf("%w: a balance change crosses its floor", ErrInvalid)
		}
		d.Floor, d.Threshold, d.ThresholdSource = c.Floor.String(), "", ""
		sev := SeverityWarning
		if c.Crossed == "above" {
			sev = SeverityInfo
		}
		return build(TypeDebtChanged, m, Data{Field: "balance", Previous: &prev, Current: &cur, Debt: d}, sev)
	}
	if c.Crossed != "" && c.Threshold == nil {
		return nil, fmt.Errorf("%w: crossed %q without a threshold", ErrInvalid, c.Crossed)
	}
	full := true // the line crossed is the threshold itself
	if c.Step != nil {
		if c.Crossed == "" || c.Threshold == nil || !c.Step.IsPositive() {
			return nil, fmt.Errorf("%w: step %s without a crossing of a threshold", ErrInvalid, c.Step)
		}
		d.Step = c.Step.String()
		d.Line = c.Threshold.Mul(*c.Step).Div(hundred).Round(2).String()
		full = c.Step.GreaterThanOrEqual(hundred)
	}
	sev := SeverityInfo
	switch {
	case c.Crossed == "above" && full:
		sev = SeverityCritical
	case c.Crossed == "above":
		sev = SeverityWarning
	case c.Current.GreaterThan(c.Previous) && c.Crossed == "":
		sev = SeverityWarning
	}
	return build(TypeDebtChanged, m, Data{Field: field, Previous: &prev, Current: &cur, Debt: d}, sev)
}

var hundred = decimal.NewFromInt(100)

// DebtForecast is a projection of the debt reaching its blocking threshold
// inside the horizon; it needs two observations at least, a rising line and
// an ETA in the future.
func DebtForecast(m Meta, f Forecast) (*Event, error) {
	if f.Method == "" || len(f.Observations) < 2 {
		return nil, fmt.Errorf("%w: a forecast needs a method and two observations at least", ErrInvalid)
	}
	rate, err := decimal.NewFromString(f.RatePerDay)
	if err != nil || !rate.IsPositive() {
		return nil, fmt.Errorf("%w: forecast rate %q (want a positive decimal)", ErrInvalid, f.RatePerDay)
	}
	for _, s := range []string{f.Threshold, f.Current} {
		if _, err := decimal.NewFromString(s); err != nil {
			return nil, fmt.Errorf("%w: forecast amount %q", ErrInvalid, s)
		}
	}
	if f.ETA.IsZero() {
		return nil, fmt.Errorf("%w: forecast without an eta", ErrInvalid)
	}
	f.ETA = f.ETA.UTC()
	for i := range f.Observations {
		f.Observations[i].At = f.Observations[i].At.UTC()
	}
	cur := Value{Value: f.Current}
	return build(TypeDebtForecast, m, Data{Field: "current_debt", Current: &cur, Forecast: &f}, SeverityWarning)
}

// HostingStatusChanged is an Alibaba HostingStatus change (FREEZE, TRUSTEESHIP,
// and the older Trusteeship / TrusteeshipCancel spellings).
func HostingStatusChanged(m Meta, prev, cur Value) (*Event, error) {
	if err := requireChange(prev, cur); err != nil {
		return nil, err
	}
	return build(TypeHostingStatusChanged, m, Data{Field: "HostingStatus", Previous: &prev, Current: &cur}, alibabaSeverity(cur.Value))
}

// CreditLimitStatusChanged is an Alibaba CreditLimitStatus change (Freeze, Thaw,
// Trusteeship, TrusteeshipCancel).
func CreditLimitStatusChanged(m Meta, prev, cur Value) (*Event, error) {
	if err := requireChange(prev, cur); err != nil {
		return nil, err
	}
	return build(TypeCreditLimitStatusChanged, m, Data{Field: "CreditLimitStatus", Previous: &prev, Current: &cur}, alibabaSeverity(cur.Value))
}

// alibabaSeverity follows the documents' meaning of a normalised
// HostingStatus or CreditLimitStatus: frozen is critical; hosted
// (TRUSTEESHIP, the normal state: Alibaba Cloud runs the credit control) and
// unfrozen (Thaw) are the account working, so reaching them is a recovery;
// not hosted (TrusteeshipCancel) and a value no document names want a look.
func alibabaSeverity(normalised string) Severity {
	switch normalised {
	case "freeze":
		return SeverityCritical
	case "trusteeship", "thaw":
		return SeverityInfo
	}
	return SeverityWarning
}

// Discovered is an account that appeared in a provider's listing. attrs pass
// through m.Allow; what is not allowed is left out.
func Discovered(m Meta, attrs map[string]string) (*Event, error) {
	return build(TypeDiscovered, m, Data{Attributes: m.allow().Filter(attrs)}, SeverityInfo)
}

// Removed is an account that vanished from a provider's listing.
func Removed(m Meta, attrs map[string]string) (*Event, error) {
	return build(TypeRemoved, m, Data{Attributes: m.allow().Filter(attrs)}, SeverityWarning)
}

// Created is an account created through CreateAgAccount onboarding.
func Created(m Meta, o Onboarding, attrs map[string]string) (*Event, error) {
	if o.RelationType == "" {
		return nil, fmt.Errorf("%w: onboarding without relation type", ErrInvalid)
	}
	return build(TypeCreated, m, Data{Onboarding: &o, Attributes: m.allow().Filter(attrs)}, SeverityInfo)
}

// ProfileFields are the CAMS business-profile fields that are watched.
var ProfileFields = []string{"Vertical", "Description", "Email", "Address", "ProfilePictureUrl", "Websites", "About"}

// ListValue builds the Value of a list-valued field.
func ListValue(items []string) Value {
	return Value{Value: strings.Join(items, ", "), Items: append([]string{}, items...)}
}

// PhoneProfileChanged is a change of one CAMS business-profile field. A business
// profile is public business data, so its values travel as they are.
func PhoneProfileChanged(m Meta, field string, prev, cur Value) (*Event, error) {
	known := false
	for _, f := range ProfileFields {
		known = known || f == field
	}
	if !known {
		return nil, fmt.Errorf("%w: profile field %q", ErrInvalid, field)
	}
	if err := requireChange(prev, cur); err != nil {
		return nil, err
	}
	return build(TypePhoneProfileChanged, m, Data{Field: field, Previous: &prev, Current: &cur}, SeverityInfo)
}

// PollDegraded says an account (or, with AccountID ProviderScope, a whole
// connection) could not be read for p.ConsecutiveFailures polls. It is never a
// state change. A provider-wide outage is critical, one account a warning.
func PollDegraded(m Meta, p Poll) (*Event, error) {
	if err := checkPoll(m, &p); err != nil {
		return nil, err
	}
	sev := SeverityWarning
	if p.Scope == "provider" {
		sev = SeverityCritical
	}
	return build(TypePollDegraded, m, Data{Poll: &p}, sev)
}

// PollRecovered says a degraded account or connection is readable again; p.Since
// is the start of the outage that ended.
func PollRecovered(m Meta, p Poll) (*Event, error) {
	if err := checkPoll(m, &p); err != nil {
		return nil, err
	}
	return build(TypePollRecovered, m, Data{Poll: &p}, SeverityInfo)
}

// Stall reasons.
const (
	StallNoCycle = "no_cycle"
	StallNoLease = "no_lease"
)

// PollStalled says a connection's poll cycles stopped: none completed
// within st.Intervals intervals, or no replica holds its lease. m names the
// connection with AccountID PollerScope.
func PollStalled(m Meta, st Stall) (*Event, error) {
	if err := checkStall(m, &st); err != nil {
		return nil, err
	}
	return build(TypePollStalled, m, Data{Stall: &st}, SeverityCritical)
}

// PollResumed says a stalled connection's cycles complete again; st is the
// stall that ended (its Since), with the resuming cycle in LastCycleAt.
func PollResumed(m Meta, st Stall) (*Event, error) {
	if err := checkStall(m, &st); err != nil {
		return nil, err
	}
	return build(TypePollResumed, m, Data{Stall: &st}, SeverityInfo)
}

func checkStall(m Meta, st *Stall) error {
	switch {
	case m.AccountID != PollerScope:
		return fmt.Errorf("%w: a stall concerns account %q, not %q", ErrInvalid, PollerScope, m.AccountID)
	case st.Reason != StallNoCycle && st.Reason != StallNoLease:
		return fmt.Errorf("%w: stall reason %q (want %s or %s)", ErrInvalid, st.Reason, StallNoCycle, StallNoLease)
	case st.Since.IsZero():
		return fmt.Errorf("%w: stall without its start", ErrInvalid)
	case st.Intervals < 1:
		return fmt.Errorf("%w: stall after %d intervals", ErrInvalid, st.Intervals)
	}
	if _, err := time.ParseDuration(st.Interval); err != nil {
		return fmt.Errorf("%w: stall interval %q", ErrInvalid, st.Interval)
	}
	st.Since = st.Since.UTC()
	if st.LastCycleAt != nil {
		t := st.LastCycleAt.UTC()
		st.LastCycleAt = &t
	}
	return nil
}

func checkPoll(m Meta, p *Poll) error {
	want := "account"
	if m.AccountID == ProviderScope {
		want = "provider"
	}
	if p.Scope == "" {
		p.Scope = want
	}
	if p.Scope != want {
		return fmt.Errorf("%w: poll scope %q for account id %q", ErrInvalid, p.Scope, m.AccountID)
	}
	if p.Since.IsZero() {
		return fmt.Errorf("%w: poll event without the outage start", ErrInvalid)
	}
	p.Since = p.Since.UTC()
	return nil
}

func (m Meta) allow() *AllowList {
	if m.Allow == nil {
		return DefaultAllowList
	}
	return m.Allow
}
