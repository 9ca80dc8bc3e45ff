package onboard_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/accountwatch/accountwatch/pkg/alibaba"
	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/eventbus"
	"github.com/accountwatch/accountwatch/pkg/eventbus/bustest"
	"github.com/accountwatch/accountwatch/pkg/onboard"
	"github.com/accountwatch/accountwatch/pkg/schemas"
	"github.com/accountwatch/accountwatch/pkg/sim/simtest"
	"github.com/accountwatch/accountwatch/pkg/state"
	"github.com/accountwatch/accountwatch/pkg/upstream"
	"github.com/accountwatch/accountwatch/pkg/watch"
)

func TestOnboard(t *testing.T) {
	b := bustest.New(t)
	_, url := simtest.Start(t, simtest.Seed())
	ctx := context.Background()
	bss, err := alibaba.NewBSS(alibaba.Config{AccessKeyID: simtest.AccessKeyID, AccessKeySecret: simtest.AccessSecret, Endpoint: strings.TrimPrefix(url, "http://"), Protocol: "http"})
	if err != nil {
		t.Fatal(err)
	}
	st, _ := state.Open(ctx, b.JS)
	ws, _ := watch.Open(ctx, b.JS)
	labels := map[string]string{"manager": "bob"}
	res, err := onboard.Onboard(ctx, bss, st, ws, "bss", alibaba.AgAccount{LoginEmail: "newbie@partner.example", AccountAttr: "1", EnterpriseName: "Newbie Ltd"}, labels)
	if err != nil || !res.Created || res.UID == "" {
		t.Fatalf("%+v %v", res, err)
	}
	e, err := ws.Get(ctx, event.ProviderAlibabaBSS, "bss", res.UID)
	if err != nil || e.Source != watch.SourceOnboarding || e.Labels["manager"] != "bob" {
		t.Fatalf("watch entry %+v %v", e, err)
	}
	again, err := onboard.Onboard(ctx, bss, st, ws, "bss", alibaba.AgAccount{LoginEmail: "newbie@partner.example", AccountAttr: "1"}, nil)
	if err != nil || again.Created || again.UID != res.UID {
		t.Fatalf("used email: %+v %v", again, err)
	}
	s, _ := b.JS.Stream(ctx, eventbus.StreamEvents)
	info, _ := s.Info(ctx)
	if info.State.Msgs != 1 {
		t.Fatalf("%d events, want exactly one account.created", info.State.Msgs)
	}
	m, _ := s.GetMsg(ctx, 1)
	ev, err := eventbus.Decode(natsMsg(m))
	if err != nil {
		t.Fatal(err)
	}
	if ev.Type() != event.TypeCreated || ev.ID() != res.EventID || ev.Data.Onboarding.RelationType != "FINACE_CLOUD" || ev.Data.Chain.Seq != 1 {
		t.Fatalf("%+v", ev.Data)
	}
	if strings.Contains(string(ev.Cloud.Data()), "newbie@partner.example") {
		t.Fatal("the login email is personal data and must not travel by default")
	}
	v, _ := schemas.Default()
	if err := v.Validate(string(ev.Type()), ev.Cloud.Data()); err != nil {
		t.Fatal(err)
	}
	rec, _ := st.Get(ctx, state.Key(event.ProviderAlibabaBSS, "bss", res.UID))
	if rec.Record.Chain.Prev != ev.Hash() || rec.Record.Baseline {
		t.Fatalf("the poller must continue the chain from the created event and take a baseline: %+v", rec.Record)
	}
}

// lossy creates the account upstream, then fails as a try can after that:
// the answer lost, or the commit of account.created failing (its context
// ends before the poller's state is written).
type lossy struct {
	real   onboard.Creator
	cancel context.CancelFunc // ends the try's context once the upstream created it
}

func (l lossy) CreateAgAccount(ctx context.Context, a alibaba.AgAccount) (*alibaba.AgRelation, error) {
	rel, err := l.real.CreateAgAccount(ctx, a)
	if l.cancel != nil {
		l.cancel()
		return rel, err
	}
	return nil, &upstream.Error{Kind: upstream.ErrTransient, Op: "CreateAgAccount", Msg: "connection reset"}
}

// TestOnboardReconciles: a try that fails after the upstream created the
// account (its answer lost, or the commit failing) ends, on the next try, in
// exactly one account.created: the "already exists" answer for an email this
// onboarding asked for is its own account. An email used before is not.
func TestOnboardReconciles(t *testing.T) {
	b := bustest.New(t)
	s, url := simtest.Start(t, simtest.Seed())
	bss, err := alibaba.NewBSS(alibaba.Config{AccessKeyID: simtest.AccessKeyID, AccessKeySecret: simtest.AccessSecret, Endpoint: strings.TrimPrefix(url, "http://"), Protocol: "http"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st, _ := state.Open(ctx, b.JS)
	ws, _ := watch.Open(ctx, b.JS)
	for i, fail := range []string{"answer lost", "commit failed"} {
		email := fmt.Sprintf("retry%d@partner.example", i)
		req := alibaba.AgAccount{LoginEmail: email, AccountAttr: "1"}
		tryCtx, cancel := context.WithCancel(ctx)
		l := lossy{real: bss}
		if fail == "commit failed" {
			l.cancel = cancel
		}
		if _, err := onboard.Onboard(tryCtx, l, st, ws, "bss", req, nil); err == nil {
			t.Fatalf("%s: the first try succeeded", fail)
		}
		cancel()
		uid, created := s.State.UIDs(), false
		for _, u := range uid {
			c, _ := s.State.Customer(u)
			created = created || c.LoginEmail == email
		}
		if !created {
			t.Fatalf("%s: the upstream did not create the account", fail)
		}
		res, err := onboard.Onboard(ctx, bss, st, ws, "bss", req, nil)
		if err != nil || !res.Created || !res.Reconciled || res.EventID == "" {
			t.Fatalf("%s: retry %+v %v", fail, res, err)
		}
		if _, err := ws.Get(ctx, event.ProviderAlibabaBSS, "bss", res.UID); err != nil {
			t.Fatalf("%s: not watched: %v", fail, err)
		}
		again, err := onboard.Onboard(ctx, bss, st, ws, "bss", req, nil)
		if err != nil || again.Created || again.UID != res.UID {
			t.Fatalf("%s: a third try announces nothing more: %+v %v", fail, again, err)
		}
	}
	str, _ := b.JS.Stream(ctx, eventbus.StreamEvents)
	info, _ := str.Info(ctx)
	if info.State.Msgs != 2 {
		t.Fatalf("%d events, want one account.created per account", info.State.Msgs)
	}
	// An email used before this onboarding ever asked for it: nothing.
	res, err := onboard.Onboard(ctx, bss, st, ws, "bss", alibaba.AgAccount{LoginEmail: "ops@partner.example", AccountAttr: "1"}, nil)
	if err != nil || res.Created || res.UID != "1234567890123456" {
		t.Fatalf("a used email: %+v %v", res, err)
	}
	// Required parameters are checked before the upstream is asked.
	before := s.Stats()["bss.CreateAgAccount"]
	if _, err := onboard.Onboard(ctx, bss, st, ws, "bss", alibaba.AgAccount{LoginEmail: "x@partner.example"}, nil); !errors.Is(err, alibaba.ErrMissing) {
		t.Fatalf("without AccountAttr: %v", err)
	}
	if s.Stats()["bss.CreateAgAccount"] != before {
		t.Fatal("asked the upstream without AccountAttr")
	}
}

// retried answers as the BSS client does when its own retry, after an
// attempt whose answer was lost, is told LOGIN_EMAIL_HAS_BEEN_USED: the
// relation of the account that attempt created, Retried.
type retried struct{ real onboard.Creator }

func (r retried) CreateAgAccount(ctx context.Context, a alibaba.AgAccount) (*alibaba.AgRelation, error) {
	rel, err := r.real.CreateAgAccount(ctx, a)
	if err == nil {
		rel.Retried = true
	}
	return rel, err
}

// TestOnboardRetriedWithinOneTry: an account created by a lost attempt of
// the same try (the client retried) is this onboarding's: announced once,
// as account.created, and watched; not reported as someone else's.
func TestOnboardRetriedWithinOneTry(t *testing.T) {
	b := bustest.New(t)
	_, url := simtest.Start(t, simtest.Seed())
	bss, err := alibaba.NewBSS(alibaba.Config{AccessKeyID: simtest.AccessKeyID, AccessKeySecret: simtest.AccessSecret, Endpoint: strings.TrimPrefix(url, "http://"), Protocol: "http"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st, _ := state.Open(ctx, b.JS)
	ws, _ := watch.Open(ctx, b.JS)
	res, err := onboard.Onboard(ctx, retried{bss}, st, ws, "bss", alibaba.AgAccount{LoginEmail: "lost-answer@partner.example", AccountAttr: "1"}, nil)
	if err != nil || !res.Created || !res.Reconciled || res.EventID == "" {
		t.Fatalf("onboarding %+v %v", res, err)
	}
	if _, err := ws.Get(ctx, event.ProviderAlibabaBSS, "bss", res.UID); err != nil {
		t.Fatalf("not watched: %v", err)
	}
	str, _ := b.JS.Stream(ctx, eventbus.StreamEvents)
	if info, _ := str.Info(ctx); info.State.Msgs != 1 {
		t.Fatalf("%d events, want one account.created", info.State.Msgs)
	}
}
