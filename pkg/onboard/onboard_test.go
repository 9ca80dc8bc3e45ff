package onboard_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/accountwatch/accountwatch/pkg/alibaba"
	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/eventbus"
	"github.com/accountwatch/accountwatch/pkg/eventbus/bustest"
	"github.com/accountwatch/accountwatch/pkg/onboard"
	"github.com/accountwatch/accountwatch/pkg/schemas"
	"github.com/accountwatch/accountwatch/pkg/sim"
	"github.com/accountwatch/accountwatch/pkg/sim/simtest"
	"github.com/accountwatch/accountwatch/pkg/state"
	"github.com/accountwatch/accountwatch/pkg/upstream"
	"github.com/accountwatch/accountwatch/pkg/watch"
)

// fixture is what an onboarding test works against: a bus, the simulator,
// a BSS client of it, and the stores an onboarding writes.
type fixture struct {
	b   *eventbus.Bus
	sim *sim.Server
	bss *alibaba.BSS
	st  *state.Store
	ws  *watch.Store
}

func newFixture(t *testing.T) fixture {
	t.Helper()
	ctx := context.Background()
	f := fixture{b: bustest.New(t)}
	var url string
	f.sim, url = simtest.Start(t, simtest.Seed())
	var err error
	if f.bss, err = alibaba.NewBSS(alibaba.Config{AccessKeyID: simtest.AccessKeyID, AccessKeySecret: simtest.AccessSecret, Endpoint: strings.TrimPrefix(url, "http://"), Protocol: "http"}); err != nil {
		t.Fatal(err)
	}
	if f.st, err = state.Open(ctx, f.b.JS); err != nil {
		t.Fatal(err)
	}
	if f.ws, err = watch.Open(ctx, f.b.JS); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestOnboard(t *testing.T) {
	f := newFixture(t)
	b, bss, st, ws, ctx := f.b, f.bss, f.st, f.ws, context.Background()
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
	f := newFixture(t)
	b, s, bss, st, ws, ctx := f.b, f.sim, f.bss, f.st, f.ws, context.Background()
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
	f := newFixture(t)
	b, bss, st, ws, ctx := f.b, f.bss, f.st, f.ws, context.Background()
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

// discoveredMeanwhile is a client whose own retry got the account created
// by a lost attempt (Retried), while the poller listed the account and
// announced it as account.discovered before the onboarding committed.
type discoveredMeanwhile struct {
	real onboard.Creator
	t    *testing.T
	st   *state.Store
}

func (d discoveredMeanwhile) CreateAgAccount(ctx context.Context, a alibaba.AgAccount) (*alibaba.AgRelation, error) {
	rel, err := d.real.CreateAgAccount(ctx, a)
	if err != nil {
		return rel, err
	}
	rel.Retried = true
	key := state.Key(event.ProviderAlibabaBSS, "bss", rel.Pk)
	cur, err := d.st.Get(ctx, key)
	if err != nil {
		d.t.Fatal(err)
	}
	m := event.Meta{Provider: event.ProviderAlibabaBSS, Instance: "bss", AccountID: rel.Pk, ObservedAt: time.Now().UTC(), Revision: cur.Rev, Chain: event.Chain{Seq: 1}}
	ev, err := event.Discovered(m, nil)
	if err != nil {
		d.t.Fatal(err)
	}
	next := cur.Record
	next.Version, next.Provider, next.Instance, next.AccountID = 1, event.ProviderAlibabaBSS, "bss", rel.Pk
	next.Chain = event.Chain{Seq: 1, Prev: ev.Hash()}
	if err := d.st.Commit(ctx, key, cur, next, []*event.Event{ev}); err != nil {
		d.t.Fatal(err)
	}
	return rel, nil
}

// TestOnboardDiscoveredMeanwhile: an account of this onboarding that the
// poller discovered first is still announced as created, after its
// discovery and in its chain; onboarding it again announces nothing more.
func TestOnboardDiscoveredMeanwhile(t *testing.T) {
	f := newFixture(t)
	b, bss, st, ws, ctx := f.b, f.bss, f.st, f.ws, context.Background()
	req := alibaba.AgAccount{LoginEmail: "listed-first@partner.example", AccountAttr: "1"}
	res, err := onboard.Onboard(ctx, discoveredMeanwhile{bss, t, st}, st, ws, "bss", req, nil)
	if err != nil || !res.Created || !res.Reconciled || res.EventID == "" {
		t.Fatalf("onboarding %+v %v", res, err)
	}
	str, _ := b.JS.Stream(ctx, eventbus.StreamEvents)
	var types []event.Type
	var prev string
	for seq := uint64(1); ; seq++ {
		m, err := str.GetMsg(ctx, seq)
		if err != nil {
			break
		}
		ev, err := eventbus.Decode(natsMsg(m))
		if err != nil {
			t.Fatal(err)
		}
		if ev.Data.Chain.Seq != seq || ev.Data.Chain.Prev != prev {
			t.Fatalf("event %d: chain %+v, want seq %d after %q", seq, ev.Data.Chain, seq, prev)
		}
		prev = ev.Hash()
		types = append(types, ev.Type())
	}
	if want := []event.Type{event.TypeDiscovered, event.TypeCreated}; fmt.Sprint(types) != fmt.Sprint(want) {
		t.Fatalf("events %v, want %v", types, want)
	}
	// Reconciled again (its intent was deleted, so this is a used email):
	// nothing more is announced.
	again, err := onboard.Onboard(ctx, bss, st, ws, "bss", req, nil)
	if err != nil || again.Created {
		t.Fatalf("again: %+v %v", again, err)
	}
	if info, _ := str.Info(ctx); info.State.Msgs != 2 {
		t.Fatalf("%d events after onboarding again, want 2", info.State.Msgs)
	}
}
