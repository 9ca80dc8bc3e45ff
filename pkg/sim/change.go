package sim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/accountwatch/accountwatch/pkg/config"
)

// Change is one scripted mutation, used by the admin API and by scenarios.
// Exactly one of its parts is set.
type Change struct {
	ActivePlatform *APChange   `yaml:"activeplatform" json:"activeplatform,omitempty"`
	BSS            *BSSChange  `yaml:"bss" json:"bss,omitempty"`
	CAMS           *CAMSChange `yaml:"cams" json:"cams,omitempty"`
	Fault          *FaultSet   `yaml:"fault" json:"fault,omitempty"`
}

// APChange sets fields of, adds or removes an ActivePlatform account.
type APChange struct {
	ID     int64          `yaml:"id" json:"id"`
	Set    map[string]any `yaml:"set" json:"set,omitempty"`
	Add    *APAccount     `yaml:"add" json:"add,omitempty"`
	Remove bool           `yaml:"remove" json:"remove,omitempty"`
}

// BSSChange sets fields of, adds or removes a BSS customer.
type BSSChange struct {
	UID    string         `yaml:"uid" json:"uid"`
	Set    map[string]any `yaml:"set" json:"set,omitempty"`
	Add    *BSSCustomer   `yaml:"add" json:"add,omitempty"`
	Remove bool           `yaml:"remove" json:"remove,omitempty"`
}

// CAMSChange sets profile fields of, adds or removes a WhatsApp number.
type CAMSChange struct {
	Space  string         `yaml:"space" json:"space"`
	Number string         `yaml:"number" json:"number"`
	Set    map[string]any `yaml:"set" json:"set,omitempty"`
	Add    *Phone         `yaml:"add" json:"add,omitempty"`
	Remove bool           `yaml:"remove" json:"remove,omitempty"`
}

// FaultSet injects (or, with Clear, removes) a fault.
type FaultSet struct {
	Endpoint string `yaml:"endpoint" json:"endpoint"`
	Fault    Fault  `yaml:"fault" json:"fault"`
	Clear    bool   `yaml:"clear" json:"clear,omitempty"`
}

// Apply carries out a change.
func (s *Server) Apply(c Change) error {
	n := 0
	for _, set := range []bool{c.ActivePlatform != nil, c.BSS != nil, c.CAMS != nil, c.Fault != nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		return errors.New("a change sets exactly one of activeplatform, bss, cams, fault")
	}
	switch {
	case c.ActivePlatform != nil:
		a := c.ActivePlatform
		switch {
		case a.Add != nil:
			return s.State.AddAP(*a.Add)
		case a.Remove:
			return s.State.RemoveAP(a.ID)
		default:
			return s.State.SetAP(a.ID, a.Set)
		}
	case c.BSS != nil:
		b := c.BSS
		switch {
		case b.Add != nil:
			return s.State.AddCustomer(*b.Add)
		case b.Remove:
			return s.State.RemoveCustomer(b.UID)
		default:
			return s.State.SetCustomer(b.UID, b.Set)
		}
	case c.CAMS != nil:
		p := c.CAMS
		switch {
		case p.Add != nil:
			return s.State.AddPhone(p.Space, *p.Add)
		case p.Remove:
			return s.State.RemovePhone(p.Space, p.Number)
		default:
			return s.State.SetProfile(p.Space, p.Number, p.Set)
		}
	default:
		if c.Fault.Clear {
			s.Faults.Clear(c.Fault.Endpoint)
			return nil
		}
		return s.Faults.Set(c.Fault.Endpoint, c.Fault.Fault)
	}
}

// Scenario is a timed script of changes, so demos and end-to-end tests see
// status, debt, HostingStatus and CreditLimitStatus move.
type Scenario struct {
	// Repeat starts the script over after its last step.
	Repeat bool   `yaml:"repeat"`
	Steps  []Step `yaml:"steps"`
}

// Step is a change after a delay (counted from the previous step).
type Step struct {
	After  time.Duration `yaml:"after"`
	Note   string        `yaml:"note"`
	Change `yaml:",inline"`
}

// LoadScenario reads a scenario file strictly.
func LoadScenario(path string) (*Scenario, error) {
	var sc Scenario
	if err := config.LoadYAML(path, &sc); err != nil {
		return nil, err
	}
	if len(sc.Steps) == 0 {
		return nil, fmt.Errorf("%w: %s: no steps", config.ErrInvalid, path)
	}
	if sc.Repeat {
		var total time.Duration
		for _, st := range sc.Steps {
			total += st.After
		}
		if total <= 0 {
			return nil, fmt.Errorf("%w: %s: a repeating scenario needs steps with a positive 'after'", config.ErrInvalid, path)
		}
	}
	return &sc, nil
}

// Run plays a scenario until it ends or ctx is done. A step that fails is
// logged and skipped: a demo goes on.
func (s *Server) Run(ctx context.Context, sc *Scenario, log *slog.Logger) {
	if len(sc.Steps) == 0 {
		return
	}
	// A resumed state resumes its scenario at the step after the last done.
	first := s.State.nextStep()
	if first >= len(sc.Steps) {
		if !sc.Repeat {
			return
		}
		first %= len(sc.Steps)
	}
	for {
		for i := first; i < len(sc.Steps); i++ {
			st := sc.Steps[i]
			select {
			case <-ctx.Done():
				return
			case <-time.After(st.After):
			}
			if err := s.Apply(st.Change); err != nil {
				log.Warn("scenario step failed", "step", i+1, "note", st.Note, "err", err)
			} else {
				log.Info("scenario step", "step", i+1, "note", st.Note)
			}
			next := i + 1
			if next == len(sc.Steps) && sc.Repeat {
				next = 0
			}
			s.State.setStep(next)
		}
		if !sc.Repeat {
			return
		}
		first = 0
	}
}
