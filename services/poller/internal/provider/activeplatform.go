package provider

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/accountwatch/accountwatch/pkg/activeplatform"
	"github.com/accountwatch/accountwatch/pkg/detect"
	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/upstream"
	"github.com/accountwatch/accountwatch/pkg/watch"
	"github.com/accountwatch/accountwatch/services/poller/internal/config"
	"github.com/accountwatch/accountwatch/services/poller/internal/source"
)

func init() {
	source.Register(event.ProviderActivePlatform, config.Provider{Check: checkAP}, func(c config.Connection, allow *event.AllowList, now func() time.Time) (source.Source, error) {
		cl, err := activeplatform.New(c.URL, c.APIToken, activeplatform.WithRateLimit(c.QPS, 1), activeplatform.WithRetry(upstream.DefaultRetry))
		if err != nil {
			return nil, err
		}
		return &ap{c: cl, conn: c, allow: allow, now: now, perPage: c.PerPage}, nil
	})
}

func checkAP(c *config.Connection) []error {
	var errs []error
	if c.URL == "" {
		errs = append(errs, errors.New("url: required for activeplatform"))
	}
	tok, err := config.Secret(c.APIToken, c.APITokenEnv, c.APITokenFile)
	if err != nil || tok == "" {
		errs = append(errs, fmt.Errorf("api_token (or api_token_env, api_token_file): %v", config.OrMissing(err)))
	}
	c.APIToken = tok
	if c.FullScanEvery == 0 {
		c.FullScanEvery = 10
	}
	if c.PerPage == 0 {
		c.PerPage = 500
	}
	return errs
}

// ap reads an ActivePlatform vendor API: its listing carries every account
// whole, can be limited to accounts updated since a time, and holds every
// account there is.
type ap struct {
	c     *activeplatform.Client
	conn  config.Connection
	allow *event.AllowList
	now   func() time.Time
	// The document names neither a page cap nor the format of
	// filters[updated_at]: an upstream that refuses the first page with
	// ours (HTTP 4xx) is asked again without the filter (a full listing,
	// from then on) or with its default page size.
	noFilter bool
	perPage  int
}

func (s *ap) Caps() source.Caps {
	return source.Caps{Lists: true, Full: true, Incremental: true, Authoritative: true}
}

func (s *ap) Observe(ctx context.Context, e watch.Entry) (detect.Observation, error) {
	a, err := s.c.Get(ctx, e.AccountID)
	if err != nil {
		return detect.Observation{}, err
	}
	return s.observation(a), nil
}

// List lists the accounts; one whose raw JSON is byte for byte what the poller
// last processed is not even decoded (99% of a steady-state full scan). One
// that cannot be decoded is handed on as that account's failure; without an
// id to name it by, the listing goes on but is not complete.
func (s *ap) List(ctx context.Context, full bool, since time.Time, mem source.Memory, fn func(source.Listed)) (bool, error) {
	full = full || s.noFilter
	complete, err := s.list(ctx, full, since, mem, fn)
	var ue *upstream.Error
	if errors.As(err, &ue) && errors.Is(err, upstream.ErrRejected) && ue.Op == "list accounts page 1" {
		switch {
		case !full:
			s.noFilter = true
			return s.List(ctx, true, since, mem, fn)
		case s.perPage > defaultPerPage:
			s.perPage = defaultPerPage
			return s.List(ctx, full, since, mem, fn)
		}
	}
	return complete, err
}

// defaultPerPage is the page size asked for of an upstream that refused a
// larger one (the published v3 document's default).
const defaultPerPage = 50

func (s *ap) list(ctx context.Context, full bool, since time.Time, mem source.Memory, fn func(source.Listed)) (bool, error) {
	o := activeplatform.ListOptions{PerPage: s.perPage, Predict: mem.Predict}
	if !full {
		o.UpdatedSince = since
	}
	nameless := 0
	var first error
	err := s.c.ListRaw(ctx, o, func(item []byte, sum upstream.Fingerprint, ev upstream.Evidence) error {
		if id, ok := mem.Known(sum, item); ok {
			fn(source.Listed{AccountID: id, Sum: sum, Size: len(item), Unchanged: true})
			return nil
		}
		a, err := activeplatform.DecodeItem(item, ev)
		if err != nil {
			e := upstream.Malformed("list accounts", ev.RequestID, err)
			var de *activeplatform.DecodeError
			if errors.As(err, &de) && de.AccountID != "" {
				e.Account = de.AccountID
				fn(source.Listed{AccountID: de.AccountID, Err: e})
				return nil
			}
			if nameless++; first == nil {
				first = e
			}
			return nil
		}
		obs := s.observation(a)
		fn(source.Listed{AccountID: a.ID, Obs: &obs, Sum: sum, Size: len(item)})
		return nil
	})
	if err == nil && nameless > 0 {
		return false, &source.PartialError{Unnamed: nameless, First: first}
	}
	return full && err == nil, err
}

// observation keeps only allow-listed attributes: personal data never reaches
// the stored state, let alone an event.
func (s *ap) observation(a *activeplatform.Account) detect.Observation {
	o := detect.Observation{Name: a.Name, Enums: map[string]event.Value{detect.FieldStatus: event.EnumValue(a.Status)},
		Evidence: source.Evidence(a.Evidence), At: s.now().UTC()}
	// The document names no currency: an upstream that sends one is
	// believed, else the connection's (every figure is shown with one).
	currency := a.Currency
	if currency == "" {
		currency = s.conn.Currency
	}
	if a.CurrentDebt != nil {
		o.Debt = &detect.Debt{Current: *a.CurrentDebt, Raw: a.CurrentDebtRaw, Threshold: a.FinancialBlockingThreshold, CreditLimit: a.SubscriptionCreditLimit,
			Balance: a.Balance, Currency: currency}
	}
	if a.Balance != nil {
		o.Balance = &detect.Balance{Amount: *a.Balance, Prepaid: event.NormalizeEnum(a.PaymentModel) == "prepay", Currency: currency}
	}
	// status as normalised: an upstream's spelling ("credit hold",
	// "credit_hold") is no change of the account.
	attrs := make(map[string]string, 11+len(a.CustomAttributes))
	attrs["status"], attrs["currency"], attrs["owner_id"], attrs["manager_id"] = event.NormalizeEnum(a.Status), currency, a.OwnerID, a.ManagerID
	for _, f := range [...]struct{ k, v string }{{"account_class", a.Class}, {"account_type", a.Type}, {"default_payment_model", a.PaymentModel}} {
		if f.v != "" {
			attrs[f.k] = f.v
		}
	}
	if a.Balance != nil {
		attrs["balance"] = a.Balance.String()
	}
	if a.CurrentDebt != nil {
		attrs["current_debt"] = a.CurrentDebt.String()
	}
	if a.FinancialBlockingThreshold != nil {
		attrs["financial_blocking_threshold"] = a.FinancialBlockingThreshold.String()
	}
	if a.SubscriptionCreditLimit != nil {
		attrs["subscription_credit_limit"] = a.SubscriptionCreditLimit.String()
	}
	for k, v := range a.CustomAttributes {
		attrs[event.AttributeKey(k)] = v
	}
	o.Attrs = s.allow.Filter(attrs)
	return o
}
