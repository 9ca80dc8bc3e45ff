// Package source adapts the provider clients to the poller: each turns one
// upstream connection's answers into detect.Observations, and lists accounts
// for discovery. Provider wire formats stop here.
package source

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/accountwatch/accountwatch/pkg/activeplatform"
	"github.com/accountwatch/accountwatch/pkg/alibaba"
	"github.com/accountwatch/accountwatch/pkg/detect"
	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/upstream"
	"github.com/accountwatch/accountwatch/pkg/watch"
	"github.com/accountwatch/accountwatch/services/poller/internal/config"
)

// Listed is one account of a listing, already observed when the listing
// carries its full state (ActivePlatform), or nil (ids only).
type Listed struct {
	AccountID string
	Space     string
	Obs       *detect.Observation
	// Sum fingerprints the account's raw JSON in the listing (Size bytes);
	// Unchanged is set (and Obs left nil) when Memory.Known recognised it: the
	// same bytes as when the account was last processed.
	Sum       activeplatform.Fingerprint
	Size      int
	Unchanged bool
}

// Memory is what the poller remembers of the listing bytes it processed.
type Memory interface {
	// Known maps the sum of an account's raw JSON to the account whose last
	// processing saw exactly those bytes.
	Known(sum activeplatform.Fingerprint) (accountID string, ok bool)
	// Predict guesses the size and sum of the listing's next account from
	// the last scan (activeplatform.ListOptions.Predict).
	Predict() (size int, sum activeplatform.Fingerprint, ok bool)
}

// Source reads one upstream connection.
type Source interface {
	// Observe reads one account.
	Observe(ctx context.Context, e watch.Entry) (detect.Observation, error)
	// List streams the connection's accounts to fn as pages arrive. full=false
	// may list only those updated since `since` (ActivePlatform's incremental
	// scan); complete reports whether that was the whole listing (absence then
	// means removal).
	List(ctx context.Context, full bool, since time.Time, mem Memory, fn func(Listed)) (complete bool, err error)
}

// New builds the source of a connection.
func New(c config.Connection, allow *event.AllowList, now func() time.Time) (Source, error) {
	retry := upstream.DefaultRetry
	switch c.Provider {
	case event.ProviderActivePlatform:
		cl, err := activeplatform.New(c.URL, c.APIToken, activeplatform.WithRateLimit(c.QPS, 1), activeplatform.WithRetry(retry))
		if err != nil {
			return nil, err
		}
		return &ap{c: cl, conn: c, allow: allow, now: now}, nil
	case event.ProviderAlibabaBSS, event.ProviderAlibabaCAMS:
		cfg := alibaba.Config{AccessKeyID: c.AccessKeyID, AccessKeySecret: c.AccessKeySecret, Endpoint: c.Endpoint, Protocol: c.Protocol,
			Timeout: c.Timeout.Duration, QPS: c.QPS, Retry: &retry, LegacySignature: c.LegacySignature}
		if c.Provider == event.ProviderAlibabaBSS {
			cl, err := alibaba.NewBSS(cfg)
			if err != nil {
				return nil, err
			}
			return &bss{c: cl, conn: c, allow: allow, now: now}, nil
		}
		cl, err := alibaba.NewCAMS(cfg)
		if err != nil {
			return nil, err
		}
		return &cams{c: cl, conn: c, now: now}, nil
	}
	return nil, fmt.Errorf("unknown provider %q", c.Provider)
}

func evidence(e upstream.Evidence) event.Evidence {
	return event.Evidence{RequestID: e.RequestID, ResponseSHA256: e.ResponseSHA256, Endpoint: e.Endpoint}
}

type ap struct {
	c     *activeplatform.Client
	conn  config.Connection
	allow *event.AllowList
	now   func() time.Time
}

func (s *ap) Observe(ctx context.Context, e watch.Entry) (detect.Observation, error) {
	a, err := s.c.Get(ctx, e.AccountID)
	if err != nil {
		return detect.Observation{}, err
	}
	return s.observation(a), nil
}

// List lists the accounts; one whose raw JSON is byte for byte what the poller
// last processed is not even decoded (99% of a steady-state full scan).
func (s *ap) List(ctx context.Context, full bool, since time.Time, mem Memory, fn func(Listed)) (bool, error) {
	o := activeplatform.ListOptions{PerPage: s.conn.PerPage, Predict: mem.Predict}
	if !full {
		o.UpdatedSince = since
	}
	err := s.c.ListRaw(ctx, o, func(item []byte, sum activeplatform.Fingerprint, ev upstream.Evidence) error {
		if id, ok := mem.Known(sum); ok {
			fn(Listed{AccountID: id, Sum: sum, Size: len(item), Unchanged: true})
			return nil
		}
		a, err := activeplatform.DecodeItem(item, ev)
		if err != nil {
			return &upstream.Error{Kind: upstream.ErrMalformed, Op: "list accounts", RequestID: ev.RequestID, Msg: err.Error()}
		}
		obs := s.observation(a)
		fn(Listed{AccountID: a.ID, Obs: &obs, Sum: sum, Size: len(item)})
		return nil
	})
	return full && err == nil, err
}

// observation keeps only allow-listed attributes: personal data never reaches
// the stored state, let alone an event.
func (s *ap) observation(a *activeplatform.Account) detect.Observation {
	o := detect.Observation{Name: a.Name, Enums: map[string]event.Value{detect.FieldStatus: event.EnumValue(a.Status)},
		Evidence: evidence(a.Evidence), At: s.now().UTC()}
	if a.CurrentDebt != nil {
		o.Debt = &detect.Debt{Current: *a.CurrentDebt, Raw: a.CurrentDebtRaw, Threshold: a.FinancialBlockingThreshold, Balance: a.Balance, Currency: a.Currency}
	}
	attrs := map[string]string{"status": a.Status, "currency": a.Currency, "owner_id": a.OwnerID, "manager_id": a.ManagerID}
	if a.Balance != nil {
		attrs["balance"] = a.Balance.String()
	}
	if a.CurrentDebt != nil {
		attrs["current_debt"] = a.CurrentDebt.String()
	}
	if a.FinancialBlockingThreshold != nil {
		attrs["financial_blocking_threshold"] = a.FinancialBlockingThreshold.String()
	}
	for k, v := range a.CustomAttributes {
		attrs["custom_attributes."+k] = v
	}
	o.Attrs = s.allow.Filter(attrs)
	return o
}

type bss struct {
	c     *alibaba.BSS
	conn  config.Connection
	allow *event.AllowList
	now   func() time.Time
}

func (s *bss) Observe(ctx context.Context, e watch.Entry) (detect.Observation, error) {
	c, err := s.c.GetCustomerAccountInfo(ctx, e.AccountID)
	if err != nil {
		return detect.Observation{}, err
	}
	return detect.Observation{
		Enums: map[string]event.Value{detect.FieldHostingStatus: event.EnumValue(c.HostingStatus), detect.FieldCreditLimitStatus: event.EnumValue(c.CreditLimitStatus)},
		Attrs: s.allow.Filter(map[string]string{"account_type": c.AccountType, "is_certified": strconv.FormatBool(c.IsCertified), "mpk": c.Mpk,
			"hosting_status": c.HostingStatus, "credit_limit_status": c.CreditLimitStatus, "login_email": c.LoginEmail}),
		Evidence: evidence(c.Evidence), At: s.now().UTC(),
	}, nil
}

func (s *bss) List(ctx context.Context, _ bool, _ time.Time, _ Memory, fn func(Listed)) (bool, error) {
	uids, err := s.c.GetCustomerList(ctx)
	if err != nil {
		return false, err
	}
	for _, u := range uids {
		fn(Listed{AccountID: u})
	}
	return true, nil
}

type cams struct {
	c    *alibaba.CAMS
	conn config.Connection
	now  func() time.Time
}

func (s *cams) Observe(ctx context.Context, e watch.Entry) (detect.Observation, error) {
	p, err := s.c.QueryPhoneBusinessProfile(ctx, e.Space, e.AccountID)
	if err != nil {
		return detect.Observation{}, err
	}
	fields, sites := p.Fields()
	prof := make(map[string]event.Value, len(fields)+1)
	for k, v := range fields {
		prof[k] = event.Value{Value: v}
	}
	prof["Websites"] = event.ListValue(sites)
	return detect.Observation{Name: e.AccountID, Profile: prof, Evidence: evidence(p.Evidence), At: s.now().UTC()}, nil
}

func (s *cams) List(ctx context.Context, _ bool, _ time.Time, _ Memory, fn func(Listed)) (bool, error) {
	var out []Listed
	for _, sp := range s.conn.Spaces {
		nums, err := s.c.QueryChatappPhoneNumbers(ctx, sp)
		if err != nil {
			return false, err
		}
		for _, n := range nums {
			out = append(out, Listed{AccountID: n.PhoneNumber, Space: sp})
		}
	}
	for _, l := range out { // only once every space answered: a partial listing is no listing
		fn(l)
	}
	return true, nil
}
