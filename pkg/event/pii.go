package event

import (
	"path"
	"strings"
)

// AllowList decides which account attributes may travel in an event. Everything
// not on it is left out: personal data (custom_attributes, contact persons' names,
// emails, phones, login emails) is kept out by default, not by a deny-list that a
// new upstream field could slip past.
type AllowList struct {
	patterns []string
	exact    map[string]bool // the patterns without glob characters
	globs    []string        // the others, tried with path.Match
}

// DefaultAllowList holds the account attributes that are not personal data.
var DefaultAllowList = NewAllowList(
	"status", "balance", "current_debt", "financial_blocking_threshold", "subscription_credit_limit",
	"currency", "owner_id", "manager_id", "updated_at",
	"account_type", "is_certified", "hosting_status", "credit_limit_status", "mpk",
	"cust_space_id", "vertical",
)

// NewAllowList builds an allow-list of attribute keys; a key may be a path.Match
// glob ("custom_attributes.tier", "billing.*").
func NewAllowList(patterns ...string) *AllowList {
	a := &AllowList{exact: map[string]bool{}}
	for _, p := range patterns {
		if p = strings.TrimSpace(p); p != "" {
			a.patterns = append(a.patterns, p)
			if strings.ContainsAny(p, `*?[\\`) {
				a.globs = append(a.globs, p)
			} else {
				a.exact[p] = true
			}
		}
	}
	return a
}

// With returns a copy of a extended by more patterns (operator configuration).
func (a *AllowList) With(patterns ...string) *AllowList {
	return NewAllowList(append(append([]string{}, a.patterns...), patterns...)...)
}

// Allowed reports whether an attribute key may travel.
func (a *AllowList) Allowed(key string) bool {
	if a.exact[key] {
		return true // every attribute of every decoded account asks: a map, not a glob each
	}
	for _, p := range a.globs {
		if ok, _ := path.Match(p, key); ok {
			return true
		}
	}
	return false
}

// Filter returns the allowed subset of attrs (nil when nothing is left).
func (a *AllowList) Filter(attrs map[string]string) map[string]string {
	var out map[string]string
	for k, v := range attrs {
		if a.Allowed(k) {
			if out == nil {
				out = make(map[string]string)
			}
			out[k] = v
		}
	}
	return out
}
