package route

import (
	"fmt"
	"strconv"

	"github.com/accountwatch/accountwatch/pkg/event"
)

// InhibitRule is one of Alertmanager's inhibit_rules: while an event
// matching SourceMatchers holds (it is the latest of its account and
// condition, see Condition), events matching TargetMatchers with the same
// values of every Equal attribute are not sent. An event never inhibits
// itself.
type InhibitRule struct {
	// Name says the rule in the delivery log (default inhibit_rules[i]).
	Name           string   `yaml:"name"`
	SourceMatchers []string `yaml:"source_matchers"`
	TargetMatchers []string `yaml:"target_matchers"`
	Equal          []string `yaml:"equal"`

	source, target Matchers
}

func (ir *InhibitRule) compile(i int) error {
	where := "inhibit_rules[" + strconv.Itoa(i) + "]"
	if ir.Name == "" {
		ir.Name = where
	}
	var err error
	if len(ir.SourceMatchers) == 0 || len(ir.TargetMatchers) == 0 {
		return fmt.Errorf("%w: %s: source_matchers and target_matchers are both required", ErrInvalid, where)
	}
	if ir.source, err = ParseMatchers(ir.SourceMatchers); err != nil {
		return fmt.Errorf("%s.source_matchers: %w", where, err)
	}
	if ir.target, err = ParseMatchers(ir.TargetMatchers); err != nil {
		return fmt.Errorf("%s.target_matchers: %w", where, err)
	}
	for _, f := range ir.Equal {
		if !nameRE.MatchString(f) {
			return fmt.Errorf("%w: %s.equal: %q", ErrInvalid, where, f)
		}
	}
	return nil
}

// Source reports whether attrs (Attributes of an event) are a source of the rule.
func (ir *InhibitRule) Source(attrs map[string]string) bool {
	return ir.source.MatchesAttributes(attrs)
}

// Target reports whether the rule may inhibit e.
func (ir *InhibitRule) Target(e *event.Event) bool { return ir.target.Matches(e) }

// Inhibits reports whether a source's attrs inhibit target e: e is a
// target, attrs a source, and every Equal attribute has the same value.
func (ir *InhibitRule) Inhibits(attrs map[string]string, e *event.Event) bool {
	if !ir.Target(e) || !ir.Source(attrs) {
		return false
	}
	for _, f := range ir.Equal {
		v, _ := Field(e, f)
		if attribute(attrs, f) != v {
			return false
		}
	}
	return true
}

// Condition names what an event is about within its account, so that the
// account's next event about it replaces it as a source: the field that
// changed, "poll" for reading the upstream, else the type.
func Condition(e *event.Event) string {
	switch {
	case e.Data.Poll != nil:
		return "poll"
	case e.Data.Field != "":
		return e.Data.Field
	}
	return e.Type().Tail()
}
