package provider

import (
	"context"
	"errors"
	"time"

	"github.com/accountwatch/accountwatch/pkg/alibaba"
	"github.com/accountwatch/accountwatch/pkg/detect"
	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/watch"
	"github.com/accountwatch/accountwatch/services/poller/internal/config"
	"github.com/accountwatch/accountwatch/services/poller/internal/source"
)

func init() {
	source.Register(event.ProviderAlibabaCAMS, config.Provider{Check: checkCAMS, Spaces: true}, func(c config.Connection, _ *event.AllowList, now func() time.Time) (source.Source, error) {
		cl, err := alibaba.NewCAMS(alibabaConfig(c))
		if err != nil {
			return nil, err
		}
		return &cams{c: cl, spaces: c.Spaces, now: now}, nil
	})
}

func checkCAMS(c *config.Connection) []error {
	errs := checkAlibaba(c)
	if len(c.Spaces) == 0 {
		errs = append(errs, errors.New("spaces: CAMS needs at least one CustSpaceId"))
	}
	return errs
}

// cams reads WhatsApp business profiles from CAMS: QueryChatappPhoneNumbers
// lists a space's numbers (each profile is read on its own), all of them.
type cams struct {
	c      *alibaba.CAMS
	spaces []string
	now    func() time.Time
}

func (s *cams) Caps() source.Caps { return source.Caps{Lists: true, Authoritative: true} }

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
	return detect.Observation{Name: e.AccountID, Profile: prof, Evidence: source.Evidence(p.Evidence), At: s.now().UTC()}, nil
}

func (s *cams) List(ctx context.Context, _ bool, _ time.Time, _ source.Memory, fn func(source.Listed)) (bool, error) {
	var out []source.Listed
	for _, sp := range s.spaces {
		nums, err := s.c.QueryChatappPhoneNumbers(ctx, sp)
		if err != nil {
			return false, err
		}
		for _, n := range nums {
			out = append(out, source.Listed{AccountID: n.PhoneNumber, Space: sp})
		}
	}
	for _, l := range out { // only once every space answered: a partial listing is no listing
		fn(l)
	}
	return true, nil
}
