package sim

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"
)

// WithStateFile keeps the simulator's world in a file: at start it resumes
// from what the file holds (the seed then gives only credentials, tokens and
// limits), and every change (admin API, scenario, onboarding) is written
// back, with the scenario's next step. A second run then continues where
// the first stopped, rather than undoing what happened meanwhile (a user's
// PATCH, an onboarded account) and making the poller report changes nobody
// made. Remove the file to start from the seed again.
func WithStateFile(path string) Option { return func(s *Server) { s.stateFile = path } }

// saved is the state file.
type saved struct {
	Version        int                `json:"version"`
	SavedAt        time.Time          `json:"saved_at"`
	ActivePlatform []APAccount        `json:"activeplatform"`
	Customers      []BSSCustomer      `json:"bss_customers"`
	CustSpaces     map[string][]Phone `json:"cams"`
	// ScenarioStep is the scenario's next step.
	ScenarioStep int `json:"scenario_step"`
}

const savedVersion = 1

// Resumed reports whether the state came from the state file.
func (s *Server) Resumed() bool { return s.resumed }

// resume loads the state file into the state, if there is one.
func (s *Server) resume() error {
	b, err := os.ReadFile(s.stateFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("upstream-sim state %s: %w", s.stateFile, err)
	}
	var v saved
	if err := json.Unmarshal(b, &v); err != nil {
		return fmt.Errorf("upstream-sim state %s: %w (remove it to start from the seed)", s.stateFile, err)
	}
	if v.Version != savedVersion {
		return fmt.Errorf("upstream-sim state %s: version %d, want %d (remove it to start from the seed)", s.stateFile, v.Version, savedVersion)
	}
	st := s.State
	st.mu.Lock()
	defer st.mu.Unlock()
	st.ap, st.bss, st.cams = map[int64]*APAccount{}, map[string]*BSSCustomer{}, map[string]map[string]*Phone{}
	for i := range v.ActivePlatform {
		a := v.ActivePlatform[i]
		st.ap[a.ID] = &a
	}
	st.reindexAP()
	for i := range v.Customers {
		c := v.Customers[i]
		st.bss[c.UID] = &c
	}
	st.reindexBSS()
	for sp, phones := range v.CustSpaces {
		m := map[string]*Phone{}
		for i := range phones {
			p := phones[i]
			m[p.Number] = &p
		}
		st.cams[sp] = m
	}
	st.step = v.ScenarioStep
	s.resumed = true
	return nil
}

// save writes the whole state to the state file: to a temporary file
// beside it, then renamed over it, so that a crash leaves the old or the
// new state, never half of one. Saves are serialised; each writes the
// state as it is when it runs.
func (s *Server) save() {
	s.saveMu.Lock()
	defer s.saveMu.Unlock()
	snap := s.State.Snapshot(0)
	s.State.mu.RLock()
	step := s.State.step
	s.State.mu.RUnlock()
	v := saved{Version: savedVersion, SavedAt: time.Now().UTC(), ActivePlatform: snap.ActivePlatform, Customers: snap.Customers, CustSpaces: snap.CustSpaces, ScenarioStep: step}
	sort.Slice(v.ActivePlatform, func(i, j int) bool { return v.ActivePlatform[i].ID < v.ActivePlatform[j].ID })
	b, err := json.MarshalIndent(v, "", " ")
	if err != nil {
		s.log.Error("upstream-sim state not saved", "err", err)
		return
	}
	if err := writeAtomic(s.stateFile, b); err != nil {
		s.log.Error("upstream-sim state not saved", "file", s.stateFile, "err", err)
	}
}

func writeAtomic(path string, b []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".upstream-sim-*.json")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// setStep records the scenario's next step (and saves it).
func (st *State) setStep(n int) {
	defer st.changed()
	st.mu.Lock()
	st.step = n
	st.mu.Unlock()
}

// nextStep is the scenario's next step.
func (st *State) nextStep() int {
	st.mu.RLock()
	defer st.mu.RUnlock()
	return st.step
}
