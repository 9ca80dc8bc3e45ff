package event

import (
	"path"
	"regexp"
	"strconv"
	"strings"
)

// AllowList decides which account attributes may travel in an event. Everything
// not on it is left out: personal data (custom_attributes, contact persons' names,
// emails, phones, login emails) is kept out by default, not by a deny-list that a
// new upstream field could slip past.
//
// A custom attribute of an account is allow-listed by its name, as the
// upstream spells it (names are free text: "Passport number"), matched
// without regard to case: `custom_attributes["Tier"]`, a glob inside the
// quotes (`custom_attributes["Billing *"]`), or the older
// `custom_attributes.tier`. Its key in attributes is AttributeKey(name).
type AllowList struct {
	patterns  []string
	exact     map[string]bool // the patterns without glob characters
	globs     []string        // the others, tried with path.Match
	attrExact map[string]bool // custom attribute names, lower-cased
	attrGlobs []string        // custom attribute name globs, lower-cased
}

// attrPrefix starts the key of a custom attribute.
const attrPrefix = "custom_attributes"

// AttributeKey is the attributes key of the custom attribute named name:
// custom_attributes["Passport number"].
func AttributeKey(name string) string { return attrPrefix + "[" + strconv.Quote(name) + "]" }

// attributeName is the name in a custom attribute's key or pattern
// (custom_attributes["X"], or custom_attributes.X), lower-cased.
func attributeName(s string) (string, bool) {
	rest, ok := strings.CutPrefix(s, attrPrefix)
	if !ok {
		return "", false
	}
	if name, ok := strings.CutPrefix(rest, "."); ok && name != "" {
		return strings.ToLower(strings.TrimSpace(name)), true
	}
	if len(rest) >= 4 && rest[0] == '[' && rest[len(rest)-1] == ']' {
		if name, err := strconv.Unquote(rest[1 : len(rest)-1]); err == nil {
			return strings.ToLower(strings.TrimSpace(name)), true
		}
	}
	return "", false
}

// DefaultAllowList holds the account attributes that are not personal data.
var DefaultAllowList = NewAllowList(
	"status", "balance", "current_debt", "financial_blocking_threshold", "subscription_credit_limit",
	"currency", "owner_id", "manager_id", "updated_at",
	"account_type", "is_certified", "hosting_status", "credit_limit_status", "mpk",
	"cust_space_id", "vertical", "account_class", "account_type", "default_payment_model",
)

// NewAllowList builds an allow-list of attribute keys; a key may be a path.Match
// glob ("custom_attributes.tier", "billing.*").
func NewAllowList(patterns ...string) *AllowList {
	a := &AllowList{exact: map[string]bool{}, attrExact: map[string]bool{}}
	for _, p := range patterns {
		if p = strings.TrimSpace(p); p != "" {
			a.patterns = append(a.patterns, p)
			if p == attrPrefix+".*" || p == attrPrefix+"[*]" {
				a.attrGlobs = append(a.attrGlobs, "*")
				continue
			}
			if name, ok := attributeName(p); ok {
				if strings.ContainsAny(name, `*?[\\`) {
					a.attrGlobs = append(a.attrGlobs, name)
				} else {
					a.attrExact[name] = true
				}
				continue
			}
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
	if strings.HasPrefix(key, attrPrefix) {
		name, ok := attributeName(key)
		if !ok {
			return false
		}
		if a.attrExact[name] {
			return true
		}
		for _, g := range a.attrGlobs {
			if ok, _ := path.Match(g, name); ok {
				return true
			}
		}
		return false
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

var (
	emailRE = regexp.MustCompile(`[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+`)
	phoneRE = regexp.MustCompile(`\+[0-9][0-9 ().-]{6,}[0-9]`)
)

// ScrubPII masks what looks like personal data in free text that reaches an
// event (an upstream's error message may echo a login email or a phone):
// email addresses and international phone numbers.
func ScrubPII(s string) string {
	if !strings.ContainsAny(s, "@+") {
		return s
	}
	s = emailRE.ReplaceAllString(s, "[email]")
	return phoneRE.ReplaceAllString(s, "[phone]")
}
