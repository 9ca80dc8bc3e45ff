package app_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/eventbus"
	"github.com/accountwatch/accountwatch/pkg/eventbus/bustest"
	"github.com/accountwatch/accountwatch/pkg/sim/simtest"
	"github.com/accountwatch/accountwatch/pkg/state"
	"github.com/accountwatch/accountwatch/pkg/watch"
	"github.com/accountwatch/accountwatch/services/poller/internal/app"
)

// TestTheSettledMarkSparesTheOutboxChecks: a poller writes its
// connection's Settled mark (the highest revision of its records) after a
// cycle that commits, and as it stops, with every commit acknowledged; the
// next start checks only the outboxes of later revisions: an outbox left
// unpublished at a revision the mark covers is taken as published, one past
// it is published by the start, as after a crash
// (TestSIGKILLLosesNoChangeAndDuplicatesNone holds the rest). A record
// stored while a poller ran that it did not write keeps it from writing the
// mark.
func TestTheSettledMarkSparesTheOutboxChecks(t *testing.T) {
	bus := bustest.Start(t, bustest.Config(t, "127.0.0.1:0"))
	srv, url := simtest.Start(t, simtest.Seed())
	cfg := writeConfig(t, url, "")
	ctx := t.Context()
	ws, err := watch.Open(ctx, bus.JS)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := state.Open(ctx, bus.JS)
	run := func() (stop func()) {
		settings := app.Settings{Config: eventbus.DefaultConfig(), ConfigFile: cfg, OpsListen: "127.0.0.1:0",
			ReplicaID: "test-replica", Workers: 8, LeaseRenew: 200 * time.Millisecond}
		settings.URL, settings.NKeySeedFile = bus.ClientURL(), bus.SeedFile(eventbus.RolePoller)
		rctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- app.Run(rctx, settings, slog.New(slog.DiscardHandler)) }()
		return func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("poller: %v", err)
			}
		}
	}
	progress := func() watch.Progress {
		p, _, err := ws.LoadProgress(ctx, "ap-main")
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	settled := func() watch.Settled {
		m, err := ws.LoadSettled(ctx, "ap-main")
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
		}
	}

	stop := run()
	waitFor("two cycles", func() bool { return progress().Cycles >= 2 })
	// A cycle that commits a change marks it while the poller runs: a
	// start after a crash checks the outboxes of the cycles after the
	// mark, not of every change since the last clean stop.
	key := state.Key(event.ProviderActivePlatform, "ap-main", "1000123")
	if err := srv.State.SetAP(1000123, map[string]any{"status": "credit hold"}); err != nil {
		t.Fatal(err)
	}
	var changed *state.Entry
	waitFor("the change committed", func() bool {
		changed, err = st.Get(ctx, key)
		return err == nil && changed.Record.Chain.Seq >= 1
	})
	waitFor("a mark covering the change, written while the poller runs", func() bool { return settled().Revision >= changed.Rev })
	stop()
	m := settled()
	last, created, err := st.Position(ctx)
	if err != nil || m.Revision == 0 || m.Revision > last || !m.Stream.Equal(created) {
		t.Fatalf("after a clean stop: settled %d (stream at %d, %v), created %v vs %v", m.Revision, last, err, m.Stream, created)
	}

	// An outbox staged and never published, as a crash leaves it.
	stage := func(name string) string {
		t.Helper()
		cur, err := st.Get(ctx, key)
		if err != nil || cur.Rev == 0 {
			t.Fatalf("record: %+v %v", cur, err)
		}
		ev, err := event.StatusChanged(event.Meta{Provider: event.ProviderActivePlatform, Instance: "ap-main", AccountID: "1000123", AccountName: name,
			ObservedAt: time.Now().UTC(), Revision: cur.Rev, Chain: event.Chain{Seq: cur.Record.Chain.Seq + 1, Prev: cur.Record.Chain.Prev}}, event.EnumValue("active"), event.EnumValue("credit_hold"))
		if err != nil {
			t.Fatal(err)
		}
		m, err := eventbus.Encode(ev)
		if err != nil {
			t.Fatal(err)
		}
		cur.Pending = []state.Pending{{Subject: m.Subject, Header: m.Header, Data: m.Data}}
		b, _ := json.Marshal(cur)
		kv, _ := bus.JS.KeyValue(ctx, eventbus.BucketState)
		if _, err := kv.Update(ctx, key, b, cur.Rev); err != nil {
			t.Fatal(err)
		}
		return ev.ID()
	}
	published := func(id string) bool {
		s, _ := bus.JS.Stream(ctx, eventbus.StreamEvents)
		m, err := s.GetLastMsgForSubject(ctx, event.FilterSubject("", "", event.TypeStatusChanged, ""))
		return err == nil && m.Header.Get(jetstream.MsgIDHeader) == id
	}

	// Covered by a mark (as if the last owner had stopped after writing
	// it): taken as published.
	covered := stage("covered")
	p := progress()
	m.Revision, _, _ = st.Position(ctx)
	if err := ws.SaveSettled(ctx, "ap-main", m); err != nil {
		t.Fatal(err)
	}
	stop = run()
	waitFor("a cycle", func() bool { return progress().Cycles >= p.Cycles+1 })
	stop()
	if published(covered) {
		t.Fatal("an outbox at a revision the Settled mark covers was checked and published")
	}

	// Past the mark: published by the start.
	past := stage("past")
	stop = run()
	waitFor("the outbox past the mark published", func() bool { return published(past) })
	p = progress()
	waitFor("a cycle after the start", func() bool { return progress().Cycles >= p.Cycles+1 })

	// Stored while it ran, not by it: a write of the previous owner whose
	// answer was lost, stored once the cluster had its quorum again. Its
	// stop must not vouch for it: the start after publishes it.
	behind := stage("behind")
	p = progress()
	waitFor("a cycle after the write", func() bool { return progress().Cycles >= p.Cycles+1 })
	stop()
	if published(behind) {
		t.Fatal("the outbox written behind the poller's back was published by it; the case tests nothing")
	}
	stop = run()
	waitFor("the outbox stored behind the last owner's back published", func() bool { return published(behind) })
	stop()
}
