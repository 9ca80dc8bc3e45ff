// Package standing keeps every account's current standing in memory — on
// credit hold, frozen, over its debt threshold, under its balance floor,
// unreadable, removed, or in good standing — from the poller's last-known
// state (AW_STATE), followed live, so the console's overview answers from
// memory at 100,000 accounts and a notifier's standing report lists every
// account in bad standing, those already so when watching began included.
package standing

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/shopspring/decimal"

	"github.com/accountwatch/accountwatch/pkg/describe"
	"github.com/accountwatch/accountwatch/pkg/detect"
	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/eventbus"
	"github.com/accountwatch/accountwatch/pkg/forecast"
	"github.com/accountwatch/accountwatch/pkg/state"
)

// Standings, worst first: the problems of event.Problems, then removed and good.
const (
	CreditHold         = event.ProblemCreditHold
	Frozen             = event.ProblemFrozen
	OverThreshold      = event.ProblemOverThreshold
	AdministrativeHold = event.ProblemAdministrativeHold
	BelowFloor         = event.ProblemBelowFloor
	Degraded           = event.ProblemDegraded
	Removed            = "removed"
	Good               = "good"
)

// All lists the standings in display order.
var All = []string{CreditHold, Frozen, OverThreshold, AdministrativeHold, BelowFloor, Degraded, Removed, Good}

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
	// Threshold is the line the debt is measured against; Currency the
	// amounts' (every figure is shown with it).
	Threshold string `json:"threshold,omitempty"`
	Balance   string `json:"balance,omitempty"`
	Floor     string `json:"balance_floor,omitempty"`
	Currency  string `json:"currency,omitempty"`
	// Trend is the debt's fitted growth per day over its recent history
	// ("" when there are too few points for one).
	Trend string `json:"trend_per_day,omitempty"`
	// Forecast is when the debt is projected to reach the threshold, while
	// a debt.forecast announced it holds.
	Forecast *detect.ForecastState `json:"forecast,omitempty"`
	// Since is when the account entered bad standing.
	Since     time.Time         `json:"since,omitzero"`
	ChangedAt time.Time         `json:"changed_at,omitzero"`
	Events    uint64            `json:"events"`
	LastError string            `json:"last_error,omitempty"`
	Labels    map[string]string `json:"labels,omitempty"`
	search    string
}

// Bad reports whether the account is in bad standing (a problem; removed is not one).
func (a Account) Bad() bool {
	return slices.ContainsFunc(a.Standings, func(s string) bool { return slices.Contains(event.Problems, s) })
}

// Problems are the account's problems (its standings less removed and good).
func (a Account) Problems() []string {
	var out []string
	for _, s := range a.Standings {
		if slices.Contains(event.Problems, s) {
			out = append(out, s)
		}
	}
	return out
}

// Of derives an account's standing from its record.
func Of(r detect.Record) Account {
	a := Account{Provider: r.Provider, Instance: r.Instance, ID: r.AccountID, Name: r.Name, ChangedAt: r.ChangedAt, Events: r.Chain.Seq,
		LastError: r.LastError, Since: r.BadSince, Labels: r.Labels}
	if a.Name == a.ID {
		a.Name = ""
	}
	if a.Name == "" {
		a.Name = r.Labels["display_name"]
	}
	a.Status = r.Enums[detect.FieldStatus].Value
	a.Hosting = r.Enums[detect.FieldHostingStatus].Value
	a.CreditLimit = r.Enums[detect.FieldCreditLimitStatus].Value
	if d := r.Debt; d != nil {
		a.Debt, a.Threshold, a.Currency, a.Forecast = d.Current, d.Threshold, d.Currency, d.Forecast
		if a.Debt == "" {
			a.Debt = d.Value
		}
		a.Trend = trend(d.History)
	}
	if b := r.Balance; b != nil {
		a.Balance, a.Floor = b.Current, b.Floor
		if a.Currency == "" {
			a.Currency = b.Currency
		}
	}
	if a.Currency == "" {
		a.Currency = r.Attrs["currency"]
	}
	a.Standings = r.Problems()
	if r.Removed {
		a.Standings = append(a.Standings, Removed)
	}
	if len(a.Standings) == 0 {
		a.Standings = []string{Good}
	}
	a.search = strings.ToLower(a.ID + " " + a.Name + " " + a.Instance)
	return a
}

// trend is the fitted daily growth of a debt history, any direction.
func trend(h []detect.Sample) string {
	if len(h) < 2 {
		return ""
	}
	pts := make([]forecast.Point, 0, len(h))
	for _, s := range h {
		v, err := decimal.NewFromString(s.Value)
		if err != nil {
			return ""
		}
		pts = append(pts, forecast.Point{At: s.At, Value: v})
	}
	r, ok := forecast.Slope(pts)
	if !ok {
		return ""
	}
	return r.String()
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
func Follow(ctx context.Context, js jetstream.JetStream) (*Index, error) { return open(ctx, js, true) }

// Load reads AW_STATE once (a notifier's standing report).
func Load(ctx context.Context, js jetstream.JetStream) (*Index, error) { return open(ctx, js, false) }

func open(ctx context.Context, js jetstream.JetStream, follow bool) (*Index, error) {
	ix := &Index{accounts: map[string]*Account{}, scopes: map[string]detect.Record{}}
	// LoadKV, not a KV watcher: a watcher's creation on a million records
	// outlasts the request's deadline on a busy server (see LoadKV).
	return ix, eventbus.LoadKV(ctx, js, eventbus.BucketState, ">", eventbus.LoadOptions{Follow: follow, What: "account standings"}, func(e eventbus.KVEntry) {
		if e.Deleted {
			ix.mu.Lock()
			delete(ix.accounts, e.Key)
			delete(ix.scopes, e.Key)
			ix.mu.Unlock()
			return
		}
		var st state.Entry
		if json.Unmarshal(e.Value, &st) != nil || st.Record.AccountID == "" {
			return
		}
		if id := st.Record.AccountID; id == event.ProviderScope || id == event.PollerScope {
			ix.mu.Lock()
			ix.scopes[e.Key] = st.Record
			ix.mu.Unlock()
			return
		}
		a := Of(st.Record)
		ix.mu.Lock()
		ix.accounts[e.Key] = &a
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

// Bad lists the accounts in bad standing that keep accepts (nil: all),
// worst first, then longest in bad standing first.
func (ix *Index) Bad(keep func(Account) bool) []Account {
	var out []Account
	ix.mu.RLock()
	for _, a := range ix.accounts {
		if a.Bad() && (keep == nil || keep(*a)) {
			out = append(out, *a)
		}
	}
	ix.mu.RUnlock()
	slices.SortFunc(out, func(x, y Account) int {
		if c := slices.Index(All, x.Standings[0]) - slices.Index(All, y.Standings[0]); c != 0 {
			return c
		}
		if c := x.Since.Compare(y.Since); c != 0 {
			return c
		}
		return strings.Compare(string(x.Provider)+x.Instance+x.ID, string(y.Provider)+y.Instance+y.ID)
	})
	return out
}

// Report is a standing report: every account in bad standing a route
// takes, worst first, as of At; Scheduled is the moment it is for, in the
// schedule's zone.
type Report struct {
	Route     string
	Every     string
	Scheduled time.Time
	At        time.Time
	Lines     []ReportLine
}

// ReportLine is one account of a report and when the receiver last alerted on it.
type ReportLine struct {
	Account
	LastAlert time.Time
}

// Words is a report line as a person reads it, every figure with its currency.
type Words struct {
	Name, Standing, Since, Debt, Trend, Forecast, LastAlert string
}

// Words renders the line as of at (the report's time).
func (l ReportLine) Words(at time.Time) Words {
	a := l.Account
	d := event.Data{Provider: a.Provider, Instance: a.Instance, AccountID: a.ID, AccountName: a.Name}
	s := &event.Standing{Problems: a.Problems(), Status: a.Status, HostingStatus: a.Hosting, CreditLimitStatus: a.CreditLimit,
		Debt: a.Debt, Threshold: a.Threshold, Balance: a.Balance, Floor: a.Floor, Currency: a.Currency}
	w := Words{Name: describe.Name(d), Standing: describe.Standing(s), Since: "unknown", LastAlert: "none since it went bad"}
	if !a.Since.IsZero() {
		w.Since = a.Since.UTC().Format("2006-01-02 15:04 UTC") + " (" + strings.TrimPrefix(describe.In(at.Sub(a.Since)), "in ~") + " ago)"
	}
	switch {
	case a.Debt != "" && a.Threshold != "":
		w.Debt = describe.Money(a.Debt, a.Currency) + " of " + describe.Money(a.Threshold, a.Currency)
	case a.Debt != "":
		w.Debt = describe.Money(a.Debt, a.Currency)
	}
	if a.Trend != "" {
		w.Trend = describe.Delta(a.Trend, a.Currency) + "/day"
	}
	if f := a.Forecast; f != nil && a.Threshold != "" {
		w.Forecast = describe.Forecast(&event.Forecast{Threshold: a.Threshold, Currency: a.Currency, RatePerDay: f.RatePerDay, ETA: f.ETA}, at)
	}
	if !l.LastAlert.IsZero() {
		w.LastAlert = l.LastAlert.UTC().Format("2006-01-02 15:04 UTC")
	}
	return w
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
