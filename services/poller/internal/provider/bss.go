package provider

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/accountwatch/accountwatch/pkg/alibaba"
	"github.com/accountwatch/accountwatch/pkg/detect"
	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/upstream"
	"github.com/accountwatch/accountwatch/pkg/watch"
	"github.com/accountwatch/accountwatch/services/poller/internal/config"
	"github.com/accountwatch/accountwatch/services/poller/internal/source"
)

func init() {
	source.Register(event.ProviderAlibabaBSS, config.Provider{Check: checkAlibaba}, func(c config.Connection, allow *event.AllowList, now func() time.Time) (source.Source, error) {
		cl, err := alibaba.NewBSS(alibabaConfig(c))
		if err != nil {
			return nil, err
		}
		return &bss{c: cl, allow: allow, now: now}, nil
	})
}

// checkAlibaba checks a connection of BSS or CAMS.
func checkAlibaba(c *config.Connection) []error {
	var errs []error
	if c.Endpoint == "" {
		errs = append(errs, fmt.Errorf("endpoint: required for %s", c.Provider))
	}
	sec, err := config.Secret(c.AccessKeySecret, c.AccessKeySecretEnv, c.AccessKeySecretFile)
	if err != nil || sec == "" || c.AccessKeyID == "" {
		errs = append(errs, fmt.Errorf("access_key_id and access_key_secret (or _env, _file): %v", config.OrMissing(err)))
	}
	c.AccessKeySecret = sec
	return errs
}

func alibabaConfig(c config.Connection) alibaba.Config {
	retry := upstream.DefaultRetry
	return alibaba.Config{AccessKeyID: c.AccessKeyID, AccessKeySecret: c.AccessKeySecret, Endpoint: c.Endpoint, Protocol: c.Protocol,
		Timeout: c.Timeout.Duration, QPS: c.QPS, Retry: &retry, LegacySignature: c.LegacySignature}
}

// bss reads a reseller's customers from BSS OpenAPI: GetCustomerList lists
// their ids only (each is read with GetCustomerAccountInfo), and every one.
type bss struct {
	c     *alibaba.BSS
	allow *event.AllowList
	now   func() time.Time
}

func (s *bss) Caps() source.Caps { return source.Caps{Lists: true, Authoritative: true} }

func (s *bss) Observe(ctx context.Context, e watch.Entry) (detect.Observation, error) {
	c, err := s.c.GetCustomerAccountInfo(ctx, e.AccountID)
	if err != nil {
		return detect.Observation{}, err
	}
	return detect.Observation{
		Enums: map[string]event.Value{detect.FieldHostingStatus: event.EnumValue(c.HostingStatus), detect.FieldCreditLimitStatus: event.EnumValue(c.CreditLimitStatus)},
		Attrs: s.allow.Filter(map[string]string{"account_type": c.AccountType, "is_certified": strconv.FormatBool(c.IsCertified), "mpk": c.Mpk,
			"hosting_status": event.NormalizeEnum(c.HostingStatus), "credit_limit_status": event.NormalizeEnum(c.CreditLimitStatus), "login_email": c.LoginEmail}),
		Evidence: source.Evidence(c.Evidence), At: s.now().UTC(),
	}, nil
}

// List lists the customers. VnoNoDataError ("no data by this request") is not
// taken for an empty listing: every customer vanishing at once is a listing
// that failed, and each customer's own read says whether it is gone.
func (s *bss) List(ctx context.Context, _ bool, _ time.Time, _ source.Memory, fn func(source.Listed)) (bool, error) {
	uids, err := s.c.GetCustomerList(ctx)
	if errors.Is(err, upstream.ErrNotFound) {
		return false, fmt.Errorf("the listing of customers is empty: %w", err)
	}
	if err != nil {
		return false, err
	}
	for _, u := range uids {
		fn(source.Listed{AccountID: u})
	}
	return true, nil
}
