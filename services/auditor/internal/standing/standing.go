// Package standing keeps every account's current standing in memory — on
// credit hold, frozen, over its debt threshold, unreadable, removed, or in
// good standing — from the poller's last-known state (AW_STATE), followed
// live, so the console's overview answers from memory at 100,000 accounts.
package standing

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/accountwatch/accountwatch/pkg/detect"
	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/eventbus"
	"github.com/accountwatch/accountwatch/pkg/state"
)

// Standings, worst first.
const (
	CreditHold         = "credit_hold"
	Frozen             = "frozen"
	OverThreshold      = "over_threshold"
	AdministrativeHold = "administrative_hold"
	Degraded           = "degraded"
	Removed            = "removed"
	Good               = "good"
)

// All lists the standings in display order.
var All = []string{CreditHold, Frozen, OverThreshold, AdministrativeHold, Degraded, Removed, Good}

// Account is one account's current standing.
type Account struct {
	Provider    event.Provider `json:"provider"`
	Instance    string         `json:"instance"`
	ID          string         `json:"account_id"`
	Name        string         `json:"name,omitempty"`
	Standings   []string       `json:"standings"`
	Status      string         `json:"status,omitempty"`
	Hosting     string         `json:"hosting_status,omitempty"`
	CreditLimit string         `json:"credit_limit_status,omitempty"`
	Debt        string         `json:"debt,omitempty"`
	// Currency is the debt's, as the upstream gave it ("" none given).
	Currency  string    `json:"currency,omitempty"`
	ChangedAt time.Time `json:"changed_at,omitzero"`
	Events    uint64    `json:"events"`
	LastError string    `json:"last_error,omitempty"`
	search    string
}

// Of derives an account's standing from its record.
func Of(r detect.Record) Account {
	a := Account{Provider: r.Provider, Instance: r.Instance, ID: r.AccountID, Name: r.Name, ChangedAt: r.ChangedAt, Events: r.Chain.Seq, LastError: r.LastError}
	a.Status = r.Enums[detect.FieldStatus].Value
	a.Hosting = r.Enums[detect.FieldHostingStatus].Value
	a.CreditLimit = r.Enums[detect.FieldCreditLimitStatus].Value
	if r.Debt != nil {
		a.Debt = r.Debt.Value
	}
	a.Currency = r.Attrs["currency"]
	switch a.Status {
	case event.StatusCreditHold:
		a.Standings = append(a.Standings, CreditHold)
	case event.StatusAdministrativeHold:
		a.Standings = append(a.Standings, AdministrativeHold)
	}
	if a.Hosting == "freeze" || a.CreditLimit == "freeze" {
		a.Standings = append(a.Standings, Frozen)
	}
	if r.Debt != nil && r.Debt.Above {
		a.Standings = append(a.Standings, OverThreshold)
	}
	if r.Degraded {
		a.Standings = append(a.Standings, Degraded)
	}
	if r.Removed {
		a.Standings = append(a.Standings, Removed)
	}
	if len(a.Standings) == 0 {
		a.Standings = []string{Good}
	}
	slices.SortFunc(a.Standings, func(x, y string) int { return slices.Index(All, x) - slices.Index(All, y) })
	a.search = strings.ToLower(a.ID + " " + a.Name + " " + a.Instance)
	return a
}

// Index holds every account's standing, and beside the accounts the
// records of the pseudo-accounts of every connection: the provider scope
// ("*", the poller's: the connection as a whole readable or not) and the
// poller scope ("*poller", the dead-man's: its cycles stalled or not).
type Index struct {
	mu       sync.RWMutex
	accounts map[string]*Account
	scopes   map[string]detect.Record
}

// Follow loads AW_STATE and keeps the index current until ctx ends.
func Follow(ctx context.Context, js jetstream.JetStream) (*Index, error) {
	kv, err := js.KeyValue(ctx, eventbus.BucketState)
	if err != nil {
		return nil, fmt.Errorf("state bucket: %w", err)
	}
	w, err := kv.WatchAll(ctx)
	if err != nil {
		return nil, fmt.Errorf("watch state: %w", err)
	}
	ix := &Index{accounts: map[string]*Account{}, scopes: map[string]detect.Record{}}
	return ix, eventbus.Follow(ctx, w, true, func(e jetstream.KeyValueEntry) {
		if e.Operation() != jetstream.KeyValuePut {
			ix.mu.Lock()
			delete(ix.accounts, e.Key())
			delete(ix.scopes, e.Key())
			ix.mu.Unlock()
			return
		}
		var st state.Entry
		if json.Unmarshal(e.Value(), &st) != nil || st.Record.AccountID == "" {
			return
		}
		if id := st.Record.AccountID; id == event.ProviderScope || id == event.PollerScope {
			ix.mu.Lock()
			ix.scopes[e.Key()] = st.Record
			ix.mu.Unlock()
			return
		}
		a := Of(st.Record)
		ix.mu.Lock()
		ix.accounts[e.Key()] = &a
		ix.mu.Unlock()
	})
}

// NewIndex is an index of the given accounts (tests, benchmarks).
func NewIndex(accounts []Account) *Index {
	ix := &Index{accounts: make(map[string]*Account, len(accounts)), scopes: map[string]detect.Record{}}
	for i := range accounts {
		a := accounts[i]
		a.search = strings.ToLower(a.ID + " " + a.Name + " " + a.Instance)
		ix.accounts[state.Key(a.Provider, a.Instance, a.ID)] = &a
	}
	return ix
}

// Query selects accounts: of a standing ("" any), whose id, name or
// instance contains q; a page of them, most recently changed first.
type Query struct {
	Standing string
	Q        string
	Page     int // from 1
	PerPage  int
}

// Result is a page of accounts with the counts of every standing.
type Result struct {
	Accounts []Account      `json:"accounts"`
	Total    int            `json:"total"`
	Counts   map[string]int `json:"counts"`
	Page     int            `json:"page"`
	Pages    int            `json:"pages"`
}

// Find answers a query.
func (ix *Index) Find(q Query) Result {
	q.PerPage = min(max(q.PerPage, 1), 500)
	q.Page = max(q.Page, 1)
	needle := strings.ToLower(strings.TrimSpace(q.Q))
	res := Result{Counts: make(map[string]int, len(All))}
	var hits []*Account
	ix.mu.RLock()
	for _, a := range ix.accounts {
		for _, s := range a.Standings {
			res.Counts[s]++
		}
		if q.Standing != "" && !slices.Contains(a.Standings, q.Standing) || needle != "" && !strings.Contains(a.search, needle) {
			continue
		}
		hits = append(hits, a)
	}
	ix.mu.RUnlock()
	slices.SortFunc(hits, func(x, y *Account) int {
		if c := y.ChangedAt.Compare(x.ChangedAt); c != 0 {
			return c
		}
		return strings.Compare(x.ID, y.ID)
	})
	res.Total = len(hits)
	res.Pages = max(1, (len(hits)+q.PerPage-1)/q.PerPage)
	res.Page = min(q.Page, res.Pages)
	lo := (res.Page - 1) * q.PerPage
	for _, a := range hits[lo:min(lo+q.PerPage, len(hits))] {
		res.Accounts = append(res.Accounts, *a)
	}
	return res
}

// Get returns one account.
func (ix *Index) Get(p event.Provider, instance, id string) (Account, bool) {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	a, ok := ix.accounts[state.Key(p, instance, id)]
	if !ok {
		return Account{}, false
	}
	return *a, true
}

// Len is how many accounts the index holds.
func (ix *Index) Len() int {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return len(ix.accounts)
}

// Scope is a connection's pseudo-accounts: the provider scope the poller
// keeps ("*": readable as a whole, or degraded) and the poller scope the
// dead-man keeps ("*poller": its cycles stalled, or not). A record that is
// missing is zero (nothing ever went wrong).
type Scope struct {
	Provider event.Provider
	Instance string
	Upstream detect.Record
	Poller   detect.Record
}

// Scopes lists every connection's pseudo-accounts, by instance.
func (ix *Index) Scopes() []Scope {
	ix.mu.RLock()
	byInst := map[string]*Scope{}
	for _, r := range ix.scopes {
		sc := byInst[r.Instance]
		if sc == nil {
			sc = &Scope{Provider: r.Provider, Instance: r.Instance}
			byInst[r.Instance] = sc
		}
		if r.AccountID == event.PollerScope {
			sc.Poller = r
		} else {
			sc.Upstream = r
		}
	}
	ix.mu.RUnlock()
	out := make([]Scope, 0, len(byInst))
	for _, sc := range byInst {
		out = append(out, *sc)
	}
	slices.SortFunc(out, func(a, b Scope) int { return strings.Compare(a.Instance, b.Instance) })
	return out
}

// Degraded reports whether a connection as a whole is unreadable: its
// provider scope's record says degraded (poll.degraded emitted, no
// poll.recovered yet).
func (ix *Index) Degraded(p event.Provider, instance string) bool {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return ix.scopes[state.Key(p, instance, event.ProviderScope)].Degraded
}

var descAccounts = prometheus.NewDesc("aw_auditor_accounts", "Accounts in the standings index, by standing (an account can have several).", []string{"standing"}, nil)

// Collector exports the counts of every standing.
func (ix *Index) Collector() prometheus.Collector { return collector{ix} }

type collector struct{ ix *Index }

func (c collector) Describe(ch chan<- *prometheus.Desc) { ch <- descAccounts }

func (c collector) Collect(ch chan<- prometheus.Metric) {
	counts := make(map[string]int, len(All))
	c.ix.mu.RLock()
	for _, a := range c.ix.accounts {
		for _, s := range a.Standings {
			counts[s]++
		}
	}
	c.ix.mu.RUnlock()
	for _, s := range All {
		ch <- prometheus.MustNewConstMetric(descAccounts, prometheus.GaugeValue, float64(counts[s]), s)
	}
}
