// Package route decides who hears about an event: a YAML routing tree in the
// spirit of Alertmanager's (matchers, continue, per-route receivers, grouping,
// mute time intervals), and the matchers that silences share. It knows the event
// model, never a sink's transport.
package route

import (
	"errors"
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"

	"github.com/accountwatch/accountwatch/pkg/event"
)

// ErrInvalid is returned for a routing configuration, matcher or interval that
// cannot be used.
var ErrInvalid = errors.New("invalid routing")

// Field names an event attribute that routes, matchers and group_by refer to.
// Any other name is a watch-entry label ("team", or explicitly "labels.team").
const (
	FieldType     = "type"
	FieldProvider = "provider"
	FieldInstance = "instance"
	FieldAccount  = "account"
	FieldSeverity = "severity"
	// FieldField is the field that changed (status, HostingStatus,
	// current_debt, …); FieldPrevious and FieldCurrent its values
	// (normalised: credit_hold, freeze).
	FieldField    = "field"
	FieldPrevious = "previous"
	FieldCurrent  = "current"
	// FieldStanding is the account's problems once the event happened,
	// comma-separated in order ("credit_hold,over_threshold"; "" good).
	FieldStanding = "standing"
	// FieldScope is a poll event's scope: account or provider.
	FieldScope = "scope"
)

// Field is the value of a named attribute of e; ok is false when e has none
// (an absent label).
func Field(e *event.Event, name string) (string, bool) {
	switch name {
	case FieldType:
		return e.Type().Tail(), true
	case FieldProvider:
		return string(e.Data.Provider), true
	case FieldInstance:
		return e.Data.Instance, true
	case FieldAccount:
		return e.Data.AccountID, true
	case FieldSeverity:
		return string(e.Data.Severity), true
	case FieldField:
		return e.Data.Field, true
	case FieldPrevious:
		if e.Data.Previous == nil {
			return "", true
		}
		return e.Data.Previous.Value, true
	case FieldCurrent:
		if e.Data.Current == nil {
			return "", true
		}
		return e.Data.Current.Value, true
	case FieldStanding:
		if e.Data.Standing == nil {
			return "", true
		}
		return strings.Join(e.Data.Standing.Problems, ","), true
	case FieldScope:
		if e.Data.Poll == nil {
			return "", true
		}
		return e.Data.Poll.Scope, true
	}
	v, ok := e.Data.Labels[strings.TrimPrefix(name, "labels.")]
	return v, ok
}

// Glob is a path.Match pattern; a type pattern may be written with or without
// the "com.accountwatch." prefix.
type Glob string

func (g Glob) validate() error {
	if _, err := path.Match(string(g), ""); err != nil {
		return fmt.Errorf("%w: pattern %q: %v", ErrInvalid, g, err)
	}
	return nil
}

func (g Glob) match(v string) bool {
	ok, _ := path.Match(string(g), v)
	return ok
}

// anyGlob reports whether v matches one of gs; an empty list matches everything.
func anyGlob(gs []Glob, v string) bool {
	if len(gs) == 0 {
		return true
	}
	for _, g := range gs {
		if g.match(v) {
			return true
		}
	}
	return false
}

// MatchOp is a matcher's operator.
type MatchOp string

// The operators of Alertmanager's matcher syntax.
const (
	OpEqual    MatchOp = "="
	OpNotEqual MatchOp = "!="
	OpRegex    MatchOp = "=~"
	OpNotRegex MatchOp = "!~"
)

// Matcher tests one attribute: `account=1000123`, `type=~account\..*`,
// `team!=emea`. Regular expressions are anchored, as in Alertmanager.
type Matcher struct {
	Name  string  `json:"name"`
	Op    MatchOp `json:"op"`
	Value string  `json:"value"`

	re *regexp.Regexp
}

var nameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]*$`)

// ParseMatcher reads `name<op>value`, op being =, !=, =~ or !~.
func ParseMatcher(s string) (Matcher, error) {
	i := strings.IndexAny(s, "=!")
	if i <= 0 {
		return Matcher{}, fmt.Errorf("%w: matcher %q: want name=value, name!=value, name=~regex or name!~regex", ErrInvalid, s)
	}
	name, rest := strings.TrimSpace(s[:i]), s[i:]
	var op MatchOp
	for _, o := range []MatchOp{OpRegex, OpNotRegex, OpNotEqual, OpEqual} {
		if strings.HasPrefix(rest, string(o)) {
			op = o
			break
		}
	}
	if op == "" {
		return Matcher{}, fmt.Errorf("%w: matcher %q: unknown operator", ErrInvalid, s)
	}
	m := Matcher{Name: name, Op: op, Value: strings.Trim(strings.TrimSpace(rest[len(op):]), `"`)}
	return m, m.Compile()
}

// Compile checks the matcher and prepares its regular expression; a matcher
// decoded from JSON must be compiled before use.
func (m *Matcher) Compile() error {
	if !nameRE.MatchString(m.Name) {
		return fmt.Errorf("%w: matcher name %q", ErrInvalid, m.Name)
	}
	switch m.Op {
	case OpEqual, OpNotEqual:
	case OpRegex, OpNotRegex:
		re, err := regexp.Compile("^(?:" + m.Value + ")$")
		if err != nil {
			return fmt.Errorf("%w: matcher %s: %v", ErrInvalid, m, err)
		}
		m.re = re
	default:
		return fmt.Errorf("%w: matcher %s%s%s: unknown operator", ErrInvalid, m.Name, m.Op, m.Value)
	}
	return nil
}

// Matches reports whether e satisfies the matcher. An absent label equals "".
func (m *Matcher) Matches(e *event.Event) bool {
	v, _ := Field(e, m.Name)
	if m.Name == FieldType && strings.HasPrefix(m.Value, "com.") {
		v = string(e.Type())
	}
	return m.matchValue(v)
}

// fieldNames are the attributes Attributes holds besides labels.
var fieldNames = []string{FieldType, FieldProvider, FieldInstance, FieldAccount, FieldSeverity, FieldField, FieldPrevious, FieldCurrent, FieldStanding, FieldScope}

// Attributes are e's attributes as matchers see them: every field by its
// name, each label as "labels.<name>". They are what is kept of an event
// that inhibits others (MatchesAttributes).
func Attributes(e *event.Event) map[string]string {
	out := make(map[string]string, len(fieldNames)+len(e.Data.Labels))
	for _, f := range fieldNames {
		if v, _ := Field(e, f); v != "" {
			out[f] = v
		}
	}
	for k, v := range e.Data.Labels {
		out["labels."+k] = v
	}
	return out
}

// attribute is one of Attributes' by a matcher's name.
func attribute(attrs map[string]string, name string) string {
	if v, ok := attrs[name]; ok || slices.Contains(fieldNames, name) {
		return v
	}
	return attrs["labels."+strings.TrimPrefix(name, "labels.")]
}

// MatchesAttributes is Matches on what Attributes kept of an event.
func (m *Matcher) MatchesAttributes(attrs map[string]string) bool {
	v := attribute(attrs, m.Name)
	if m.Name == FieldType && strings.HasPrefix(m.Value, "com.") {
		v = "com.accountwatch." + v
	}
	return m.matchValue(v)
}

func (m *Matcher) matchValue(v string) bool {
	switch m.Op {
	case OpEqual:
		return v == m.Value
	case OpNotEqual:
		return v != m.Value
	case OpRegex:
		return m.re != nil && m.re.MatchString(v)
	case OpNotRegex:
		return m.re != nil && !m.re.MatchString(v)
	}
	return false
}

func (m Matcher) String() string { return m.Name + string(m.Op) + m.Value }

// Matchers is a conjunction: every matcher must match.
type Matchers []Matcher

// ParseMatchers parses each of ss.
func ParseMatchers(ss []string) (Matchers, error) {
	out := make(Matchers, 0, len(ss))
	for _, s := range ss {
		m, err := ParseMatcher(s)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

// Matches reports whether every matcher matches e.
func (ms Matchers) Matches(e *event.Event) bool {
	for i := range ms {
		if !ms[i].Matches(e) {
			return false
		}
	}
	return true
}

// MatchesAttributes reports whether every matcher matches attrs (Attributes).
func (ms Matchers) MatchesAttributes(attrs map[string]string) bool {
	for i := range ms {
		if !ms[i].MatchesAttributes(attrs) {
			return false
		}
	}
	return true
}
