package subscription

import (
	"fmt"
	"regexp"
	"strings"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"
)

// Filter is one filter expression of the CloudEvents Subscriptions API: exactly
// one dialect per object. exact, prefix and suffix map attribute names to
// values (every pair must hold); all, any and not combine filters.
type Filter struct {
	Exact  map[string]string `json:"exact,omitempty"`
	Prefix map[string]string `json:"prefix,omitempty"`
	Suffix map[string]string `json:"suffix,omitempty"`
	All    []Filter          `json:"all,omitempty"`
	Any    []Filter          `json:"any,omitempty"`
	Not    *Filter           `json:"not,omitempty"`
}

var attrRE = regexp.MustCompile(`^[a-z0-9]{1,20}$`)

// size counts the filter's expressions, nested ones included.
func (f *Filter) size() int {
	n := 1
	for i := range f.All {
		n += f.All[i].size()
	}
	for i := range f.Any {
		n += f.Any[i].size()
	}
	if f.Not != nil {
		n += f.Not.size()
	}
	return n
}

// Validate checks that the filter uses exactly one dialect, with valid
// attribute names (lower-case letters and digits, as CloudEvents requires).
func (f *Filter) Validate(where string) error {
	n := 0
	for _, set := range []bool{f.Exact != nil, f.Prefix != nil, f.Suffix != nil, f.All != nil, f.Any != nil, f.Not != nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		return fmt.Errorf("%s: a filter has exactly one of exact, prefix, suffix, all, any, not (has %d)", where, n)
	}
	for dialect, m := range map[string]map[string]string{"exact": f.Exact, "prefix": f.Prefix, "suffix": f.Suffix} {
		if m != nil && len(m) == 0 {
			return fmt.Errorf("%s.%s: empty", where, dialect)
		}
		for k, v := range m {
			if !attrRE.MatchString(k) {
				return fmt.Errorf("%s.%s: attribute %.40q (lower-case letters and digits)", where, dialect, k)
			}
			if len(v) > MaxFilterValue {
				return fmt.Errorf("%s.%s.%s: longer than %d bytes", where, dialect, k, MaxFilterValue)
			}
		}
	}
	for i := range f.All {
		if err := f.All[i].Validate(fmt.Sprintf("%s.all[%d]", where, i)); err != nil {
			return err
		}
	}
	for i := range f.Any {
		if err := f.Any[i].Validate(fmt.Sprintf("%s.any[%d]", where, i)); err != nil {
			return err
		}
	}
	if f.Not != nil {
		return f.Not.Validate(where + ".not")
	}
	if f.All != nil && len(f.All) == 0 || f.Any != nil && len(f.Any) == 0 {
		return fmt.Errorf("%s: all/any need at least one filter", where)
	}
	return nil
}

// Attribute is a context attribute or extension of ce as a string, and
// whether ce has it.
func Attribute(ce *cloudevents.Event, name string) (string, bool) {
	switch name {
	case "id":
		return ce.ID(), true
	case "source":
		return ce.Source(), true
	case "type":
		return ce.Type(), true
	case "subject":
		return ce.Subject(), ce.Subject() != ""
	case "specversion":
		return ce.SpecVersion(), true
	case "datacontenttype":
		return ce.DataContentType(), ce.DataContentType() != ""
	case "dataschema":
		return ce.DataSchema(), ce.DataSchema() != ""
	case "time":
		if ce.Time().IsZero() {
			return "", false
		}
		s, _ := types.Format(types.Timestamp{Time: ce.Time()})
		return s, true
	}
	v, ok := ce.Extensions()[name]
	if !ok {
		return "", false
	}
	s, err := types.Format(v)
	return s, err == nil
}

// Match evaluates the filter on ce; a missing attribute never matches exact,
// prefix or suffix.
func (f *Filter) Match(ce *cloudevents.Event) bool {
	pairs := func(m map[string]string, ok func(have, want string) bool) bool {
		for k, want := range m {
			have, present := Attribute(ce, k)
			if !present || !ok(have, want) {
				return false
			}
		}
		return true
	}
	switch {
	case f.Exact != nil:
		return pairs(f.Exact, func(h, w string) bool { return h == w })
	case f.Prefix != nil:
		return pairs(f.Prefix, strings.HasPrefix)
	case f.Suffix != nil:
		return pairs(f.Suffix, strings.HasSuffix)
	case f.All != nil:
		for i := range f.All {
			if !f.All[i].Match(ce) {
				return false
			}
		}
		return true
	case f.Any != nil:
		for i := range f.Any {
			if f.Any[i].Match(ce) {
				return true
			}
		}
		return false
	case f.Not != nil:
		return !f.Not.Match(ce)
	}
	return false
}
