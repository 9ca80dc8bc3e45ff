package sim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ErrNotFound is returned for an account, customer or phone the state lacks.
var ErrNotFound = errors.New("not found")

// State is the simulator's mutable world. Every method is safe for concurrent use.
type State struct {
	mu    sync.RWMutex
	now   func() time.Time
	ap    map[int64]*APAccount
	apIDs []int64      // sorted, for paging
	apAll []*APAccount // in apIDs' order
	bss   map[string]*BSSCustomer
	uids  []string
	cams  map[string]map[string]*Phone // space → number → phone
	seed  *Seed
	// step is the scenario's next step (Server.Run), kept with the state.
	step int
	// onChange runs after every change, outside the lock (persistence).
	onChange func()
}

// changed tells onChange of a change; callers defer it before they lock,
// so that it runs once the lock is released.
func (s *State) changed() {
	if s.onChange != nil {
		s.onChange()
	}
}

// NewState builds the state of a seed (synthetic accounts included).
func NewState(seed *Seed, now func() time.Time) (*State, error) {
	if err := seed.Validate(); err != nil {
		return nil, err
	}
	if now == nil {
		now = time.Now
	}
	s := &State{now: now, ap: map[int64]*APAccount{}, bss: map[string]*BSSCustomer{}, cams: map[string]map[string]*Phone{}, seed: seed}
	t := now().UTC().Truncate(time.Second)
	accounts := append(append([]APAccount{}, seed.ActivePlatform.Accounts...), generatedAP(seed.ActivePlatform.Generate.Count, seed.ActivePlatform.Generate.StartID, t)...)
	for i := range accounts {
		a := accounts[i]
		if a.UpdatedAt.IsZero() {
			a.UpdatedAt = t
		}
		if a.CreatedAt.IsZero() {
			a.CreatedAt = a.UpdatedAt
		}
		if _, dup := s.ap[a.ID]; dup {
			return nil, fmt.Errorf("activeplatform: duplicate account id %d (seed and generated ranges overlap)", a.ID)
		}
		s.ap[a.ID] = &a
	}
	s.reindexAP()
	for _, c := range append(append([]BSSCustomer{}, seed.Alibaba.Customers...), generatedBSS(seed.Alibaba.Generate.Count, seed.Alibaba.Generate.StartUID)...) {
		c := c.withDefaults()
		s.bss[c.UID] = &c
	}
	s.reindexBSS()
	for _, sp := range seed.Alibaba.CustSpaces {
		m := map[string]*Phone{}
		for _, p := range sp.Phones {
			p := p
			if p.Status == "" {
				p.Status = "CONNECTED"
			}
			m[p.Number] = &p
		}
		s.cams[sp.ID] = m
	}
	return s, nil
}

func (s *State) reindexAP() {
	s.apIDs = s.apIDs[:0]
	for id := range s.ap {
		s.apIDs = append(s.apIDs, id)
	}
	sort.Slice(s.apIDs, func(i, j int) bool { return s.apIDs[i] < s.apIDs[j] })
	s.apAll = s.apAll[:0]
	for _, id := range s.apIDs {
		s.apAll = append(s.apAll, s.ap[id])
	}
}

func (s *State) reindexBSS() {
	s.uids = s.uids[:0]
	for id := range s.bss {
		s.uids = append(s.uids, id)
	}
	sort.Strings(s.uids)
}

// APAccount returns a copy of an ActivePlatform account.
func (s *State) APAccount(id int64) (APAccount, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	a, ok := s.ap[id]
	if !ok {
		return APAccount{}, false
	}
	return *a, true
}

// APFilter selects and orders accounts of a listing.
type APFilter struct {
	UpdatedSince, CreatedSince time.Time
	Status                     string // either spelling matches
	Email                      string
	SortField                  string // id (""), name, status, created_at, updated_at
	Reversed                   bool
}

// APPage returns one page (1-based) of accounts in the filter's order, and
// the total matched.
func (s *State) APPage(page, perPage int, f APFilter) ([]APAccount, int) {
	var out []APAccount
	total := s.eachAPPage(page, perPage, f, func(a *APAccount) { out = append(out, *a) })
	return out, total
}

// eachAPPage calls fn with each account of one page (1-based) in the
// filter's order, under the state's read lock (fn must not keep it), and
// returns the total matched. Unfiltered and by id, the page is a slice of
// the sorted accounts: walking all of them for every page made a full
// listing quadratic in the accounts, and copying each a million times a
// listing kept the simulator's garbage collector marking a heap of a
// million accounts over and over: costs no real upstream has, which would
// crowd the poller out of the CPU it shares with the simulator in
// benchmarks.
func (s *State) eachAPPage(page, perPage int, f APFilter, fn func(*APAccount)) int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	skip := (page - 1) * perPage
	byID := f.SortField == "" || f.SortField == "id"
	if f == (APFilter{SortField: f.SortField}) && byID {
		for _, a := range s.apAll[min(skip, len(s.apAll)):min(skip+perPage, len(s.apAll))] {
			fn(a)
		}
		return len(s.apAll)
	}
	var all []*APAccount
	status := foldStatus(f.Status)
	for _, id := range s.apIDs {
		a := s.ap[id]
		if !f.UpdatedSince.IsZero() && a.UpdatedAt.Before(f.UpdatedSince) ||
			!f.CreatedSince.IsZero() && a.CreatedAt.Before(f.CreatedSince) ||
			f.Status != "" && foldStatus(a.Status) != status ||
			f.Email != "" && !strings.EqualFold(a.Email, f.Email) {
			continue
		}
		all = append(all, a)
	}
	if !byID {
		key := func(a *APAccount) string {
			switch f.SortField {
			case "name":
				return a.Name
			case "status":
				return foldStatus(a.Status)
			case "created_at":
				return a.CreatedAt.UTC().Format(time.RFC3339Nano)
			}
			return a.UpdatedAt.UTC().Format(time.RFC3339Nano)
		}
		sort.SliceStable(all, func(i, j int) bool { return key(all[i]) < key(all[j]) })
	}
	if f.Reversed {
		slices.Reverse(all)
	}
	for _, a := range all[min(skip, len(all)):min(skip+perPage, len(all))] {
		fn(a)
	}
	return len(all)
}

// foldStatus makes "credit hold" and "credit_hold" one status.
func foldStatus(s string) string {
	return strings.ReplaceAll(strings.ToLower(strings.TrimSpace(s)), " ", "_")
}

// moneyFields are set from numbers or strings through the admin API.
var moneyFields = map[string]bool{"balance": true, "current_debt": true, "financial_blocking_threshold": true, "subscription_credit_limit": true}

// patch overlays fields (JSON names of T) onto v; an unknown field is an error.
func patch[T any](v *T, fields map[string]any) (T, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return *v, err
	}
	m := map[string]any{}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		return *v, err
	}
	for k, val := range fields {
		if _, ok := m[k]; !ok {
			return *v, fmt.Errorf("unknown field %q", k)
		}
		if n, ok := val.(json.Number); ok && moneyFields[k] {
			val = n.String()
		}
		if f, ok := val.(float64); ok && moneyFields[k] {
			val = strconv.FormatFloat(f, 'f', -1, 64)
		}
		m[k] = val
	}
	b, err = json.Marshal(m)
	if err != nil {
		return *v, err
	}
	var out T
	dec = json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&out); err != nil {
		return *v, fmt.Errorf("bad value: %w", err)
	}
	return out, nil
}

// SetAP changes fields of an ActivePlatform account (JSON names: status,
// balance, current_debt, ...) and bumps its updated_at, as the real API does.
func (s *State) SetAP(id int64, fields map[string]any) error {
	defer s.changed()
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.ap[id]
	if !ok {
		return fmt.Errorf("activeplatform account %d: %w", id, ErrNotFound)
	}
	n, err := patch(a, fields)
	if err != nil {
		return fmt.Errorf("activeplatform account %d: %w", id, err)
	}
	n.ID = id
	n.UpdatedAt = s.now().UTC()
	*a = n
	return nil
}

// AddAP adds (or replaces) an ActivePlatform account.
func (s *State) AddAP(a APAccount) error {
	defer s.changed()
	if a.ID <= 0 {
		return errors.New("activeplatform account: id must be positive")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a.UpdatedAt = s.now().UTC()
	if a.CreatedAt.IsZero() {
		a.CreatedAt = a.UpdatedAt
	}
	s.ap[a.ID] = &a
	s.reindexAP()
	return nil
}

// RemoveAP deletes an ActivePlatform account.
func (s *State) RemoveAP(id int64) error {
	defer s.changed()
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.ap[id]; !ok {
		return fmt.Errorf("activeplatform account %d: %w", id, ErrNotFound)
	}
	delete(s.ap, id)
	s.reindexAP()
	return nil
}

// APCount is the number of ActivePlatform accounts.
func (s *State) APCount() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.ap)
}

// Customer returns a copy of a BSS customer.
func (s *State) Customer(uid string) (BSSCustomer, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	c, ok := s.bss[uid]
	if !ok {
		return BSSCustomer{}, false
	}
	return *c, true
}

// UIDs lists the BSS customers' uids.
func (s *State) UIDs() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return append([]string{}, s.uids...)
}

// SetCustomer changes fields of a BSS customer (hosting_status, credit_limit_status, ...).
func (s *State) SetCustomer(uid string, fields map[string]any) error {
	defer s.changed()
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.bss[uid]
	if !ok {
		return fmt.Errorf("bss customer %s: %w", uid, ErrNotFound)
	}
	n, err := patch(c, fields)
	if err != nil {
		return fmt.Errorf("bss customer %s: %w", uid, err)
	}
	n.UID = uid
	*c = n
	return nil
}

// AddCustomer adds a BSS customer; it fails if the login email is taken.
func (s *State) AddCustomer(c BSSCustomer) error {
	defer s.changed()
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.UID == "" {
		return errors.New("bss customer: uid required")
	}
	c = c.withDefaults()
	s.bss[c.UID] = &c
	s.reindexBSS()
	return nil
}

// RemoveCustomer deletes a BSS customer.
func (s *State) RemoveCustomer(uid string) error {
	defer s.changed()
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.bss[uid]; !ok {
		return fmt.Errorf("bss customer %s: %w", uid, ErrNotFound)
	}
	delete(s.bss, uid)
	s.reindexBSS()
	return nil
}

// withDefaults fills what the document always answers: AccountType "1"
// (enterprise) or "0".
func (c BSSCustomer) withDefaults() BSSCustomer {
	if c.AccountType == "" {
		c.AccountType = "1"
	}
	return c
}

// customerByEmail finds a customer by login email (CreateAgAccount).
func (s *State) customerByEmail(email string) (string, bool) {
	for uid, c := range s.bss {
		if c.LoginEmail == email {
			return uid, true
		}
	}
	return "", false
}

// Phone returns a copy of a CAMS phone.
func (s *State) Phone(space, number string) (Phone, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	p, ok := s.cams[space][number]
	if !ok {
		return Phone{}, false
	}
	c := *p
	c.Profile.Websites = append([]string(nil), p.Profile.Websites...)
	return c, true
}

// Phones lists a space's numbers, sorted; ok is false for an unknown space.
func (s *State) Phones(space string) ([]Phone, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	m, ok := s.cams[space]
	if !ok {
		return nil, false
	}
	out := make([]Phone, 0, len(m))
	for _, p := range m {
		out = append(out, *p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Number < out[j].Number })
	return out, true
}

// SetProfile changes fields of a business profile (JSON names: Vertical, Websites, ...).
func (s *State) SetProfile(space, number string, fields map[string]any) error {
	defer s.changed()
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.cams[space][number]
	if !ok {
		return fmt.Errorf("cams %s/%s: %w", space, number, ErrNotFound)
	}
	n, err := patch(&p.Profile, fields)
	if err != nil {
		return fmt.Errorf("cams %s/%s: %w", space, number, err)
	}
	p.Profile = n
	return nil
}

// AddPhone adds a number to a space (creating the space).
func (s *State) AddPhone(space string, p Phone) error {
	defer s.changed()
	if space == "" || p.Number == "" {
		return errors.New("cams: space and number required")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cams[space] == nil {
		s.cams[space] = map[string]*Phone{}
	}
	if p.Status == "" {
		p.Status = "CONNECTED"
	}
	s.cams[space][p.Number] = &p
	return nil
}

// RemovePhone deletes a number.
func (s *State) RemovePhone(space, number string) error {
	defer s.changed()
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.cams[space][number]; !ok {
		return fmt.Errorf("cams %s/%s: %w", space, number, ErrNotFound)
	}
	delete(s.cams[space], number)
	return nil
}

// Snapshot is the whole state, for the admin API.
type Snapshot struct {
	ActivePlatform []APAccount        `json:"activeplatform"`
	Customers      []BSSCustomer      `json:"bss_customers"`
	CustSpaces     map[string][]Phone `json:"cams"`
	Counts         map[string]int     `json:"counts"`
}

// Snapshot copies the state; limit bounds the accounts listed (0: all).
func (s *State) Snapshot(limit int) Snapshot {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := Snapshot{CustSpaces: map[string][]Phone{}, Counts: map[string]int{"activeplatform": len(s.ap), "bss_customers": len(s.bss)}}
	for i, id := range s.apIDs {
		if limit > 0 && i >= limit {
			break
		}
		out.ActivePlatform = append(out.ActivePlatform, *s.ap[id])
	}
	for i, uid := range s.uids {
		if limit > 0 && i >= limit {
			break
		}
		out.Customers = append(out.Customers, *s.bss[uid])
	}
	for sp, m := range s.cams {
		for _, p := range m {
			out.CustSpaces[sp] = append(out.CustSpaces[sp], *p)
		}
		sort.Slice(out.CustSpaces[sp], func(i, j int) bool { return out.CustSpaces[sp][i].Number < out.CustSpaces[sp][j].Number })
	}
	return out
}
