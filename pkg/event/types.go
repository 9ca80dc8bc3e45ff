// Package event is the accountwatch event model: the CloudEvents every producer
// emits and every consumer reads. It is a leaf: it knows CloudEvents, not NATS and
// not any provider's wire format.
package event

import (
	"fmt"
	"strings"
)

// Type is a CloudEvents type of the accountwatch contract.
type Type string

// The event types of the contract (see ../shared/DESIGN.md, "The event contract").
const (
	TypeStatusChanged Type = "com.accountwatch.account.status.changed"
	TypeDebtChanged   Type = "com.accountwatch.account.debt.changed"
	// TypeDebtForecast: the debt is projected to reach its blocking threshold
	// inside the configured horizon.
	TypeDebtForecast             Type = "com.accountwatch.account.debt.forecast"
	TypeHostingStatusChanged     Type = "com.accountwatch.account.hosting_status.changed"
	TypeCreditLimitStatusChanged Type = "com.accountwatch.account.credit_limit_status.changed"
	TypeDiscovered               Type = "com.accountwatch.account.discovered"
	TypeRemoved                  Type = "com.accountwatch.account.removed"
	TypeCreated                  Type = "com.accountwatch.account.created"
	TypePhoneProfileChanged      Type = "com.accountwatch.phone_profile.changed"
	TypePollDegraded             Type = "com.accountwatch.poll.degraded"
	TypePollRecovered            Type = "com.accountwatch.poll.recovered"
	// TypePollStalled and TypePollResumed come from the auditor's dead-man,
	// not the poller: a connection's cycles stopped, and started again.
	TypePollStalled Type = "com.accountwatch.poll.stalled"
	TypePollResumed Type = "com.accountwatch.poll.resumed"
)

// Types lists every type of the contract, in a stable order.
var Types = []Type{
	TypeStatusChanged, TypeDebtChanged, TypeHostingStatusChanged, TypeCreditLimitStatusChanged,
	TypeDiscovered, TypeRemoved, TypeCreated, TypePhoneProfileChanged, TypePollDegraded, TypePollRecovered,
	TypeDebtForecast,
	TypePollStalled, TypePollResumed,
}

const typePrefix = "com.accountwatch."

// Tail is the type without its "com.accountwatch." prefix, e.g. "account.status.changed".
func (t Type) Tail() string { return strings.TrimPrefix(string(t), typePrefix) }

// Token is the type as one NATS subject token: the tail with dots replaced by '-'
// ("account-status-changed"). One token keeps every event subject the same width,
// so a consumer can filter on any position with a single '*'.
func (t Type) Token() string { return strings.ReplaceAll(t.Tail(), ".", "-") }

// Valid reports whether t is a type of the contract.
func (t Type) Valid() bool {
	for _, k := range Types {
		if k == t {
			return true
		}
	}
	return false
}

// TypeFromToken is the inverse of Type.Token.
func TypeFromToken(tok string) (Type, error) {
	for _, k := range Types {
		if k.Token() == tok {
			return k, nil
		}
	}
	return "", fmt.Errorf("%w: unknown type token %q", ErrInvalid, tok)
}

// Provider identifies an upstream API family.
type Provider string

// The providers accountwatch reads.
const (
	ProviderActivePlatform Provider = "activeplatform"
	ProviderAlibabaBSS     Provider = "alibaba-bss"
	ProviderAlibabaCAMS    Provider = "alibaba-cams"
)

// Providers lists the known providers.
var Providers = []Provider{ProviderActivePlatform, ProviderAlibabaBSS, ProviderAlibabaCAMS}

// Valid reports whether p is a known provider.
func (p Provider) Valid() bool {
	for _, k := range Providers {
		if k == p {
			return true
		}
	}
	return false
}

// Severity ranks how urgently a person should look at an event.
type Severity string

// Severities, from least to most urgent.
const (
	SeverityInfo     Severity = "info"
	SeverityWarning  Severity = "warning"
	SeverityCritical Severity = "critical"
)

// Rank orders severities: info 1, warning 2, critical 3, anything else 0.
func (s Severity) Rank() int {
	switch s {
	case SeverityInfo:
		return 1
	case SeverityWarning:
		return 2
	case SeverityCritical:
		return 3
	}
	return 0
}

// ParseSeverity accepts the three severities, case-insensitively.
func ParseSeverity(s string) (Severity, error) {
	v := Severity(strings.ToLower(strings.TrimSpace(s)))
	if v.Rank() == 0 {
		return "", fmt.Errorf("%w: severity %q (want info, warning or critical)", ErrInvalid, s)
	}
	return v, nil
}
