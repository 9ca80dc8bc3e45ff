package onboard_test

import (
	"context"
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
	res, err := onboard.Onboard(ctx, bss, st, ws, "bss", alibaba.AgAccount{LoginEmail: "newbie@partner.example", EnterpriseName: "Newbie Ltd"}, labels)
	if err != nil || !res.Created || res.UID == "" {
		t.Fatalf("%+v %v", res, err)
	}
	e, err := ws.Get(ctx, event.ProviderAlibabaBSS, "bss", res.UID)
	if err != nil || e.Source != watch.SourceOnboarding || e.Labels["manager"] != "bob" {
		t.Fatalf("watch entry %+v %v", e, err)
	}
	again, err := onboard.Onboard(ctx, bss, st, ws, "bss", alibaba.AgAccount{LoginEmail: "newbie@partner.example"}, nil)
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
