package route

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// TimeInterval is a named set of periods (Alertmanager's time_intervals): a
// route muted by it holds its notifications while any period is active.
type TimeInterval struct {
	Name    string   `yaml:"name"`
	Periods []Period `yaml:"time_intervals"`
}

// Period is active when every list it sets contains the moment (an empty list
// means always). Lists take single values or inclusive ranges "a:b".
type Period struct {
	// Times are "HH:MM" ranges; an end before the start wraps past midnight.
	Times       []TimeRange `yaml:"times"`
	Weekdays    []string    `yaml:"weekdays"`      // "monday", "monday:friday"
	DaysOfMonth []string    `yaml:"days_of_month"` // "1", "1:7", "-1" (the last day)
	Months      []string    `yaml:"months"`        // "january", "1:3"
	// Location is an IANA zone name; default UTC.
	Location string `yaml:"location"`

	loc      *time.Location
	times    [][2]int // minutes of the day
	weekdays [][2]int
	mdays    [][2]int
	months   [][2]int
}

// TimeRange is a daily window.
type TimeRange struct {
	Start string `yaml:"start_time"`
	End   string `yaml:"end_time"`
}

var weekdayNames = map[string]int{"sunday": 0, "monday": 1, "tuesday": 2, "wednesday": 3, "thursday": 4, "friday": 5, "saturday": 6}
var monthNames = map[string]int{"january": 1, "february": 2, "march": 3, "april": 4, "may": 5, "june": 6, "july": 7, "august": 8, "september": 9, "october": 10, "november": 11, "december": 12}

func (ti *TimeInterval) compile() error {
	if !nameRE.MatchString(ti.Name) {
		return fmt.Errorf("%w: name %q", ErrInvalid, ti.Name)
	}
	if len(ti.Periods) == 0 {
		return fmt.Errorf("%w: %s: no time_intervals", ErrInvalid, ti.Name)
	}
	for i := range ti.Periods {
		if err := ti.Periods[i].compile(); err != nil {
			return fmt.Errorf("%s.time_intervals[%d]: %w", ti.Name, i, err)
		}
	}
	return nil
}

func (p *Period) compile() error {
	p.loc = time.UTC
	if p.Location != "" {
		loc, err := time.LoadLocation(p.Location)
		if err != nil {
			return fmt.Errorf("%w: location %q: %v", ErrInvalid, p.Location, err)
		}
		p.loc = loc
	}
	p.times = nil
	for _, tr := range p.Times {
		s, err1 := clock(tr.Start)
		e, err2 := clock(tr.End)
		if err1 != nil || err2 != nil || s == e {
			return fmt.Errorf("%w: times: %q to %q (want HH:MM, start and end different)", ErrInvalid, tr.Start, tr.End)
		}
		p.times = append(p.times, [2]int{s, e})
	}
	var err error
	if p.weekdays, err = ranges("weekdays", p.Weekdays, weekdayNames, 0, 6); err != nil {
		return err
	}
	if p.mdays, err = ranges("days_of_month", p.DaysOfMonth, nil, -31, 31); err != nil {
		return err
	}
	p.months, err = ranges("months", p.Months, monthNames, 1, 12)
	return err
}

func clock(s string) (int, error) {
	h, m, ok := strings.Cut(s, ":")
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if !ok || err1 != nil || err2 != nil || hh < 0 || hh > 24 || mm < 0 || mm > 59 || hh == 24 && mm != 0 {
		return 0, fmt.Errorf("%w: time %q", ErrInvalid, s)
	}
	return hh*60 + mm, nil
}

func ranges(key string, in []string, names map[string]int, lo, hi int) ([][2]int, error) {
	val := func(s string) (int, error) {
		s = strings.ToLower(strings.TrimSpace(s))
		if v, ok := names[s]; ok {
			return v, nil
		}
		v, err := strconv.Atoi(s)
		if err != nil || v < lo || v > hi || v == 0 && lo < 0 {
			return 0, fmt.Errorf("%w: %s: %q", ErrInvalid, key, s)
		}
		return v, nil
	}
	var out [][2]int
	for _, r := range in {
		a, b, isRange := strings.Cut(r, ":")
		x, err := val(a)
		if err != nil {
			return nil, err
		}
		y := x
		if isRange {
			if y, err = val(b); err != nil {
				return nil, err
			}
		}
		out = append(out, [2]int{x, y})
	}
	return out, nil
}

func inRanges(rs [][2]int, v int) bool {
	if len(rs) == 0 {
		return true
	}
	for _, r := range rs {
		if v >= r[0] && v <= r[1] {
			return true
		}
	}
	return false
}

// Active reports whether the period contains t.
func (p *Period) Active(t time.Time) bool {
	t = t.In(p.loc)
	if !inRanges(p.weekdays, int(t.Weekday())) || !inRanges(p.months, int(t.Month())) {
		return false
	}
	if len(p.mdays) > 0 {
		last := time.Date(t.Year(), t.Month()+1, 0, 0, 0, 0, 0, p.loc).Day()
		ok := false
		for _, r := range p.mdays {
			a, b := r[0], r[1]
			if a < 0 {
				a += last + 1
			}
			if b < 0 {
				b += last + 1
			}
			if t.Day() >= a && t.Day() <= b {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	if len(p.times) == 0 {
		return true
	}
	m := t.Hour()*60 + t.Minute()
	for _, r := range p.times {
		if r[0] < r[1] && m >= r[0] && m < r[1] || r[0] > r[1] && (m >= r[0] || m < r[1]) {
			return true
		}
	}
	return false
}

// Active reports whether any period of the interval contains t.
func (ti *TimeInterval) Active(t time.Time) bool {
	for i := range ti.Periods {
		if ti.Periods[i].Active(t) {
			return true
		}
	}
	return false
}

// maxMute bounds the search for an interval's end: an interval that is always
// active holds notifications for a week at a time, then looks again.
const maxMute = 7 * 24 * time.Hour

// ActiveUntil reports whether the interval contains t and, if so, the first
// minute boundary after t at which it no longer does (at most a week ahead).
func (ti *TimeInterval) ActiveUntil(t time.Time) (time.Time, bool) {
	if !ti.Active(t) {
		return time.Time{}, false
	}
	next := t.Truncate(time.Minute).Add(time.Minute)
	for limit := t.Add(maxMute); next.Before(limit); next = next.Add(time.Minute) {
		if !ti.Active(next) {
			return next, true
		}
	}
	return t.Add(maxMute), true
}
