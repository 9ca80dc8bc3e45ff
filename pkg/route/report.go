package route

import (
	"fmt"
	"strings"
	"time"

	"github.com/accountwatch/accountwatch/pkg/event"
)

// Schedule is when a route's standing report goes out: every day, or every
// week on Weekday, at At ("HH:MM") in Location (an IANA zone; default UTC).
type Schedule struct {
	Every    string `yaml:"every"` // daily or weekly
	At       string `yaml:"at"`
	Weekday  string `yaml:"weekday"`
	Location string `yaml:"location"`

	loc     *time.Location
	minute  int
	weekday time.Weekday
}

func (s *Schedule) compile() error {
	switch s.Every {
	case "daily", "weekly":
	default:
		return fmt.Errorf("%w: every: %q (want daily or weekly)", ErrInvalid, s.Every)
	}
	at := s.At
	if at == "" {
		at = "08:00"
	}
	m, err := clock(at)
	if err != nil || m >= 24*60 {
		return fmt.Errorf("%w: at: %q (want HH:MM)", ErrInvalid, s.At)
	}
	s.minute = m
	s.loc = time.UTC
	if s.Location != "" {
		if s.loc, err = time.LoadLocation(s.Location); err != nil {
			return fmt.Errorf("%w: location: %q: %v", ErrInvalid, s.Location, err)
		}
	}
	s.weekday = time.Monday
	if s.Every == "weekly" && s.Weekday != "" {
		d, ok := weekdayNames[strings.ToLower(s.Weekday)]
		if !ok {
			return fmt.Errorf("%w: weekday: %q", ErrInvalid, s.Weekday)
		}
		s.weekday = time.Weekday(d)
	} else if s.Weekday != "" {
		return fmt.Errorf("%w: weekday: %q is for every: weekly", ErrInvalid, s.Weekday)
	}
	return nil
}

// Period is how long one report covers: a day or a week.
func (s *Schedule) Period() time.Duration {
	if s.Every == "weekly" {
		return 7 * 24 * time.Hour
	}
	return 24 * time.Hour
}

// Last is the latest scheduled moment at or before t, in the schedule's zone
// (a clock time a daylight-saving change skips is taken as time.Date does).
func (s *Schedule) Last(t time.Time) time.Time {
	lt := t.In(s.loc)
	for d := 0; d <= 8; d++ {
		day := lt.AddDate(0, 0, -d)
		at := time.Date(day.Year(), day.Month(), day.Day(), s.minute/60, s.minute%60, 0, 0, s.loc)
		if at.After(t) || s.Every == "weekly" && at.Weekday() != s.weekday {
			continue
		}
		return at
	}
	return time.Time{}
}

// Next is the first scheduled moment after t.
func (s *Schedule) Next(t time.Time) time.Time {
	lt := t.In(s.loc)
	for d := 0; d <= 8; d++ {
		day := lt.AddDate(0, 0, d)
		at := time.Date(day.Year(), day.Month(), day.Day(), s.minute/60, s.minute%60, 0, 0, s.loc)
		if !at.After(t) || s.Every == "weekly" && at.Weekday() != s.weekday {
			continue
		}
		return at
	}
	return time.Time{}
}

// Zone is the schedule's time zone.
func (s *Schedule) Zone() *time.Location { return s.loc }

// ReportRoute is a route with a report: its receiver (Leaf), schedule and
// the matches of the route and its parents, which select its accounts.
type ReportRoute struct {
	Leaf     *Leaf
	Schedule *Schedule
	path     []*node
}

// Takes reports whether the route's matches (and its parents') accept an
// account by its provider, instance, id and labels; the types, severities
// and event fields they name do not apply to an account.
func (rr *ReportRoute) Takes(p event.Provider, instance, account string, labels map[string]string) bool {
	e := &event.Event{Data: event.Data{Provider: p, Instance: instance, AccountID: account, Labels: labels}}
	for _, n := range rr.path {
		m := n.route.Match
		if !anyGlob(m.Providers, string(p)) || !anyGlob(m.Instances, instance) || !anyGlob(m.Accounts, account) {
			return false
		}
		for k, g := range m.Labels {
			if v, ok := labels[k]; !ok || !g.match(v) {
				return false
			}
		}
		for i := range n.route.matchers {
			mt := &n.route.matchers[i]
			switch mt.Name {
			case FieldType, FieldSeverity, FieldField, FieldPrevious, FieldCurrent, FieldStanding, FieldScope:
				continue
			}
			if !mt.Matches(e) {
				return false
			}
		}
	}
	return true
}
