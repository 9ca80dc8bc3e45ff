package route

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/accountwatch/accountwatch/pkg/config"
	"github.com/accountwatch/accountwatch/pkg/event"
)

// Defaults of the root route; a child inherits its parent's values.
const (
	DefaultGroupWait     = 10 * time.Second
	DefaultGroupInterval = time.Minute
)

// DefaultGroupBy keeps each account's changes together: one notification (and,
// in Slack, one thread) per account.
var DefaultGroupBy = []string{FieldProvider, FieldInstance, FieldAccount}

// Config is the routing part of a notifier's YAML file. The notifier adds its
// own receivers section; Validate checks every route names one of them.
type Config struct {
	Route         *Route         `yaml:"route"`
	TimeIntervals []TimeInterval `yaml:"time_intervals"`
}

// Route is one node of the routing tree.
type Route struct {
	Receiver string `yaml:"receiver"`
	Match    Match  `yaml:"match"`
	// MinSeverity drops events below it (info < warning < critical).
	MinSeverity event.Severity `yaml:"min_severity"`
	// Matchers are extra Alertmanager-style matchers ("team!=emea", "account=~100.*").
	Matchers []string `yaml:"matchers"`
	// GroupBy lists the fields whose values form a group: provider, instance,
	// account, type, severity or a label; ["..."] sends every event on its own.
	GroupBy       []string         `yaml:"group_by"`
	GroupWait     *config.Duration `yaml:"group_wait"`
	GroupInterval *config.Duration `yaml:"group_interval"`
	// MuteTimeIntervals name time_intervals during which notifications wait
	// (are deferred to the interval's end, never dropped).
	MuteTimeIntervals []string `yaml:"mute_time_intervals"`
	// CriticalBypassesMute lets critical events through a mute interval.
	CriticalBypassesMute *bool `yaml:"critical_bypasses_mute"`
	// CriticalBypassesGrouping sends critical events at once, each on its own,
	// rather than waiting for the group (an email digest's window).
	CriticalBypassesGrouping *bool `yaml:"critical_bypasses_grouping"`
	// Continue goes on to the next sibling after this route matched.
	Continue bool     `yaml:"continue"`
	Routes   []*Route `yaml:"routes"`

	matchers Matchers
}

// Match holds a route's globs; each list matches when any of its patterns
// does, an empty list matches everything, and all lists must match.
type Match struct {
	Types     []Glob          `yaml:"type"`
	Providers []Glob          `yaml:"provider"`
	Instances []Glob          `yaml:"instance"`
	Accounts  []Glob          `yaml:"account"`
	Labels    map[string]Glob `yaml:"labels"`
}

func (m *Match) empty() bool {
	return len(m.Types)+len(m.Providers)+len(m.Instances)+len(m.Accounts)+len(m.Labels) == 0
}

func (m *Match) validate() error {
	for _, list := range [][]Glob{m.Types, m.Providers, m.Instances, m.Accounts} {
		for _, g := range list {
			if err := g.validate(); err != nil {
				return err
			}
		}
	}
	for _, g := range m.Labels {
		if err := g.validate(); err != nil {
			return err
		}
	}
	return nil
}

func (m *Match) matches(e *event.Event) bool {
	if len(m.Types) > 0 {
		tail, full := e.Type().Tail(), string(e.Type())
		ok := false
		for _, g := range m.Types {
			if g.match(tail) || g.match(full) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	if !anyGlob(m.Providers, string(e.Data.Provider)) || !anyGlob(m.Instances, e.Data.Instance) || !anyGlob(m.Accounts, e.Data.AccountID) {
		return false
	}
	for k, g := range m.Labels {
		v, ok := e.Data.Labels[k]
		if !ok || !g.match(v) {
			return false
		}
	}
	return true
}

// Leaf is a route an event ended on, with everything inherited resolved.
type Leaf struct {
	// ID is the route's position in the tree ("0" the root, "0.2.1" the second
	// child of the third child): stable while the file is unchanged.
	ID                       string
	Receiver                 string
	GroupBy                  []string
	GroupWait                time.Duration
	GroupInterval            time.Duration
	Mute                     []*TimeInterval
	CriticalBypassesMute     bool
	CriticalBypassesGrouping bool
}

// Immediate reports whether e skips grouping on this leaf.
func (l *Leaf) Immediate(e *event.Event) bool {
	return l.CriticalBypassesGrouping && e.Data.Severity == event.SeverityCritical
}

// GroupKey is the key of e's group on this leaf.
func (l *Leaf) GroupKey(e *event.Event) string {
	var b strings.Builder
	b.WriteString(l.ID)
	for _, f := range l.GroupBy {
		if f == "..." {
			b.WriteString("|id=" + e.ID())
			continue
		}
		v, _ := Field(e, f)
		b.WriteString("|" + f + "=" + v)
	}
	return b.String()
}

// Muted reports whether e is held back at t, and until when. Critical events
// pass when the route lets them bypass.
func (l *Leaf) Muted(e *event.Event, t time.Time) (time.Time, bool) {
	until, _, ok := l.MutedBy(e, t)
	return until, ok
}

// MutedBy is Muted with the name of the interval that holds e longest (the
// delivery log says which one muted it).
func (l *Leaf) MutedBy(e *event.Event, t time.Time) (until time.Time, interval string, muted bool) {
	if l.CriticalBypassesMute && e.Data.Severity == event.SeverityCritical {
		return time.Time{}, "", false
	}
	for _, ti := range l.Mute {
		if end, ok := ti.ActiveUntil(t); ok && end.After(until) {
			until, interval = end, ti.Name
		}
	}
	return until, interval, !until.IsZero()
}

// Tree is a validated routing tree.
type Tree struct {
	root *node
}

type node struct {
	route    *Route
	leaf     Leaf
	children []*node
}

var receiverRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// ValidName reports whether a receiver or sink name can be part of a consumer
// name and a subject token.
func ValidName(s string) bool { return receiverRE.MatchString(s) }

// NewTree validates c against the receivers a notifier defines and builds the
// tree. Every error names the route by its path (route.routes[1].routes[0]).
func NewTree(c Config, receivers []string) (*Tree, error) {
	if c.Route == nil {
		return nil, fmt.Errorf("%w: route: missing (the root route names the default receiver)", ErrInvalid)
	}
	if !c.Route.Match.empty() || len(c.Route.Matchers) > 0 || c.Route.MinSeverity != "" {
		return nil, fmt.Errorf("%w: route: the root route matches every event; put match, matchers and min_severity on a child route", ErrInvalid)
	}
	known := map[string]bool{}
	for _, r := range receivers {
		known[r] = true
	}
	intervals := map[string]*TimeInterval{}
	for i := range c.TimeIntervals {
		ti := &c.TimeIntervals[i]
		if err := ti.compile(); err != nil {
			return nil, fmt.Errorf("time_intervals[%d]: %w", i, err)
		}
		if intervals[ti.Name] != nil {
			return nil, fmt.Errorf("%w: time_intervals[%d]: name %q used twice", ErrInvalid, i, ti.Name)
		}
		intervals[ti.Name] = ti
	}
	root := Leaf{ID: "0", GroupBy: DefaultGroupBy, GroupWait: DefaultGroupWait, GroupInterval: DefaultGroupInterval}
	n, err := build(c.Route, root, "route", known, intervals)
	if err != nil {
		return nil, err
	}
	return &Tree{root: n}, nil
}

func build(r *Route, parent Leaf, where string, receivers map[string]bool, intervals map[string]*TimeInterval) (*node, error) {
	if r == nil {
		return nil, fmt.Errorf("%w: %s: empty route", ErrInvalid, where)
	}
	l := parent
	if r.Receiver != "" {
		l.Receiver = r.Receiver
	}
	if l.Receiver == "" {
		return nil, fmt.Errorf("%w: %s.receiver: missing", ErrInvalid, where)
	}
	if !receivers[l.Receiver] {
		return nil, fmt.Errorf("%w: %s.receiver: %q is not defined in receivers", ErrInvalid, where, l.Receiver)
	}
	if err := r.Match.validate(); err != nil {
		return nil, fmt.Errorf("%s.match: %w", where, err)
	}
	ms, err := ParseMatchers(r.Matchers)
	if err != nil {
		return nil, fmt.Errorf("%s.matchers: %w", where, err)
	}
	r.matchers = ms
	if r.MinSeverity != "" {
		s, err := event.ParseSeverity(string(r.MinSeverity))
		if err != nil {
			return nil, fmt.Errorf("%w: %s.min_severity: %v", ErrInvalid, where, err)
		}
		r.MinSeverity = s
	}
	if r.GroupBy != nil {
		for _, f := range r.GroupBy {
			if f != "..." && !nameRE.MatchString(f) {
				return nil, fmt.Errorf("%w: %s.group_by: %q", ErrInvalid, where, f)
			}
		}
		l.GroupBy = r.GroupBy
	}
	if r.GroupWait != nil {
		if r.GroupWait.Duration < 0 {
			return nil, fmt.Errorf("%w: %s.group_wait: %s (want >= 0)", ErrInvalid, where, r.GroupWait.Duration)
		}
		l.GroupWait = r.GroupWait.Duration
	}
	if r.GroupInterval != nil {
		if r.GroupInterval.Duration < 0 {
			return nil, fmt.Errorf("%w: %s.group_interval: %s (want >= 0)", ErrInvalid, where, r.GroupInterval.Duration)
		}
		l.GroupInterval = r.GroupInterval.Duration
	}
	if r.MuteTimeIntervals != nil {
		l.Mute = nil
		for _, name := range r.MuteTimeIntervals {
			ti := intervals[name]
			if ti == nil {
				return nil, fmt.Errorf("%w: %s.mute_time_intervals: %q is not defined in time_intervals", ErrInvalid, where, name)
			}
			l.Mute = append(l.Mute, ti)
		}
	}
	if r.CriticalBypassesMute != nil {
		l.CriticalBypassesMute = *r.CriticalBypassesMute
	}
	if r.CriticalBypassesGrouping != nil {
		l.CriticalBypassesGrouping = *r.CriticalBypassesGrouping
	}
	n := &node{route: r, leaf: l}
	for i, c := range r.Routes {
		cl := l
		cl.ID = l.ID + "." + strconv.Itoa(i)
		cn, err := build(c, cl, fmt.Sprintf("%s.routes[%d]", where, i), receivers, intervals)
		if err != nil {
			return nil, err
		}
		n.children = append(n.children, cn)
	}
	return n, nil
}

func (n *node) matches(e *event.Event) bool {
	r := n.route
	if r.MinSeverity != "" && e.Data.Severity.Rank() < r.MinSeverity.Rank() {
		return false
	}
	return r.Match.matches(e) && r.matchers.Matches(e)
}

// Match returns the leaves e ends on, in tree order: the deepest matching route
// of each branch taken, following Alertmanager: children are tried in order,
// the first match wins unless it says continue, and a node none of whose
// children match is itself the leaf.
func (t *Tree) Match(e *event.Event) []*Leaf {
	return t.root.match(e, nil)
}

func (n *node) match(e *event.Event, out []*Leaf) []*Leaf {
	matched := false
	for _, c := range n.children {
		if !c.matches(e) {
			continue
		}
		out = c.match(e, out)
		matched = true
		if !c.route.Continue {
			break
		}
	}
	if !matched {
		out = append(out, &n.leaf)
	}
	return out
}

// Receivers lists the receivers some route of the tree names.
func (t *Tree) Receivers() []string {
	seen := map[string]bool{}
	var out []string
	var walk func(*node)
	walk = func(n *node) {
		if !seen[n.leaf.Receiver] {
			seen[n.leaf.Receiver] = true
			out = append(out, n.leaf.Receiver)
		}
		for _, c := range n.children {
			walk(c)
		}
	}
	walk(t.root)
	return out
}
