// Package audittest builds audit logs as the poller writes them, and breaks
// them the ways an insider would, for the tests of verification (pkg/audit,
// awctl verify, the audit console).
package audittest

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/accountwatch/accountwatch/pkg/audit"
	"github.com/accountwatch/accountwatch/pkg/checkpoint"
	"github.com/accountwatch/accountwatch/pkg/detect"
	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/event/eventtest"
	"github.com/accountwatch/accountwatch/pkg/eventbus"
	"github.com/accountwatch/accountwatch/pkg/eventbus/bustest"
	"github.com/accountwatch/accountwatch/pkg/state"
)

// Skew is the clock skew for verifying these logs: the test's "poller" and
// its server share one clock, so an event observed before its stream was
// created by any margin shows a recreated stream.
const Skew = time.Nanosecond

// Accounts are the accounts of a built log.
var Accounts = []string{"1000", "2000", "3000"}

func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// Bus is a provisioned embedded bus (listening on listen when given) whose
// event stream allows message deletes: the power of an admin who edits the
// server's store on disk, which no NATS permission can take away.
func Bus(t testing.TB, listen string) *eventbus.Bus {
	t.Helper()
	cfg := bustest.Config(t, listen)
	b, err := eventbus.Connect(ctx(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	sc := eventbus.EventStreamConfig(b.Cfg)
	sc.DenyDelete, sc.DenyPurge = false, false
	if _, err := b.JS.CreateStream(ctx(t), sc); err != nil {
		t.Fatal(err)
	}
	// Provision checks the existing stream against the real configuration;
	// the others are created as usual.
	for _, s := range eventbus.StreamConfigs(b.Cfg)[1:] {
		if err := eventbus.EnsureStream(ctx(t), b.JS, s); err != nil {
			t.Fatal(err)
		}
	}
	for _, kc := range eventbus.BucketConfigs(b.Cfg) {
		if _, err := eventbus.EnsureBucket(ctx(t), b.JS, kc); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

// Commit records n status changes of each account in turn, observed now, as
// the poller does: each account's record and outbox in AW_STATE first, then
// its event. It returns the events in stream order.
func Commit(t testing.TB, b *eventbus.Bus, n int, accounts ...string) []*event.Event {
	t.Helper()
	st, err := state.Open(ctx(t), b.JS)
	if err != nil {
		t.Fatal(err)
	}
	var out []*event.Event
	for i := 0; i < n; i++ {
		for _, a := range accounts {
			out = append(out, commitOne(t, st, a, "active", "credit_hold", i))
		}
	}
	return out
}

func commitOne(t testing.TB, st *state.Store, acct, from, to string, i int) *event.Event {
	t.Helper()
	m := eventtest.Meta(acct, nil)
	key := state.Key(m.Provider, m.Instance, m.AccountID)
	cur, err := st.Get(ctx(t), key)
	if err != nil {
		t.Fatal(err)
	}
	states := []string{from, to}
	m.ObservedAt = time.Now().UTC()
	m.Revision = cur.Rev
	m.Chain = event.Chain{Seq: cur.Record.Chain.Seq + 1, Prev: cur.Record.Chain.Prev}
	ev := eventtest.Status(t, m, states[i%2], states[(i+1)%2])
	next := cur.Record
	next.Version, next.Provider, next.Instance, next.AccountID = 1, m.Provider, m.Instance, m.AccountID
	next.Baseline, next.ChangedAt = true, m.ObservedAt
	next.Enums = map[string]event.Value{detect.FieldStatus: *ev.Data.Current}
	next.Chain = event.Chain{Seq: ev.Data.Chain.Seq, Prev: ev.Hash()}
	if err := st.Commit(ctx(t), key, cur, next, []*event.Event{ev}); err != nil {
		t.Fatal(err)
	}
	return ev
}

// Key writes a checkpoint signing key pair under dir.
func Key(t testing.TB, dir string) (ed25519.PrivateKey, string) {
	t.Helper()
	priv, pub := filepath.Join(dir, "checkpoint.key"), filepath.Join(dir, "checkpoint.pub")
	if _, err := checkpoint.GenerateKey(priv, pub); err != nil {
		t.Fatal(err)
	}
	k, err := checkpoint.LoadPrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return k, pub
}

// Checkpoint verifies the log as the auditor does, signs a checkpoint of it,
// stores it in AW_CHECKPOINTS and exports it to a file, whose path it returns.
func Checkpoint(t testing.TB, b *eventbus.Bus, key ed25519.PrivateKey, dir string) string {
	t.Helper()
	info, err := b.JS.Stream(ctx(t), eventbus.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	v := audit.NewVerifier(info.CachedInfo(), Skew, time.Now())
	if err := v.Walk(ctx(t), b.JS, info.CachedInfo().State.LastSeq, nil); err != nil {
		t.Fatal(err)
	}
	s, err := checkpoint.Sign(v.Checkpoint(time.Now()), key)
	if err != nil {
		t.Fatal(err)
	}
	seq, err := checkpoint.Publish(ctx(t), b.JS, s, 0)
	if err != nil {
		t.Fatal(err)
	}
	f, err := s.MarshalFile(seq)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "checkpoint.json")
	if err := writeFile(path, f); err != nil {
		t.Fatal(err)
	}
	return path
}

// Case is one way an insider rewrites history, and what verify must name.
type Case struct {
	Name string
	// Kind is the problem verify must report.
	Kind string
	// Checkpoint: only an exported checkpoint catches this one.
	Checkpoint bool
	// Tamper breaks a log built by Commit(t, b, 3, Accounts...) (evs), as admin.
	Tamper func(t testing.TB, b *eventbus.Bus, evs []*event.Event)
}

// Cases are every tampering the verification catches.
func Cases() []Case {
	return []Case{
		{"deleted and recreated stream", audit.ProblemRecreated, false, func(t testing.TB, b *eventbus.Bus, evs []*event.Event) {
			msgs := rawMessages(t, b)
			recreate(t, b, 0)
			republish(t, b, msgs, true)
		}},
		{"trimmed head", audit.ProblemTrimmed, false, func(t testing.TB, b *eventbus.Bus, evs []*event.Event) {
			s := stream(t, b)
			for seq := uint64(1); seq <= 2; seq++ {
				if err := s.DeleteMsg(ctx(t), seq); err != nil {
					t.Fatal(err)
				}
			}
		}},
		{"recreated with FirstSeq 100 and a made-up link", audit.ProblemTrimmed, false, func(t testing.TB, b *eventbus.Bus, evs []*event.Event) {
			recreate(t, b, 100)
			m := eventtest.Meta(Accounts[0], nil)
			m.ObservedAt, m.Chain = time.Now().UTC(), event.Chain{Seq: 4, Prev: strings.Repeat("ab", 32)}
			bustest.Publish(t, b, eventtest.Status(t, m, "credit_hold", "active"))
		}},
		{"altered event", audit.ProblemAltered, false, func(t testing.TB, b *eventbus.Bus, evs []*event.Event) {
			// An event replaced by a copy that says what never happened.
			orig := rawMessages(t, b)[1]
			if err := stream(t, b).DeleteMsg(ctx(t), 2); err != nil {
				t.Fatal(err)
			}
			orig.Data = bytes.Replace(orig.Data, []byte(`"credit_hold"`), []byte(`"closed"`), 1)
			republish(t, b, []*nats.Msg{orig}, false)
		}},
		{"removed event", audit.ProblemMissing, false, func(t testing.TB, b *eventbus.Bus, evs []*event.Event) {
			if err := stream(t, b).DeleteMsg(ctx(t), 4); err != nil { // the first account's second link
				t.Fatal(err)
			}
		}},
		{"forged link", audit.ProblemForgedLink, false, func(t testing.TB, b *eventbus.Bus, evs []*event.Event) {
			// A made-up event that extends the account's chain correctly:
			// the chain alone cannot tell, the poller's record can.
			last := evs[len(evs)-len(Accounts)]
			m := eventtest.Meta(last.Data.AccountID, nil)
			m.ObservedAt, m.Revision = time.Now().UTC(), 99
			m.Chain = event.Chain{Seq: last.Data.Chain.Seq + 1, Prev: last.Hash()}
			bustest.Publish(t, b, eventtest.Status(t, m, "credit_hold", "active"))
		}},
		{"rewritten chain with a new genesis", audit.ProblemNewGenesis, false, func(t testing.TB, b *eventbus.Bus, evs []*event.Event) {
			m := eventtest.Meta(Accounts[1], nil)
			m.ObservedAt, m.Revision = time.Now().UTC(), 77
			bustest.Publish(t, b, eventtest.Status(t, m, "active", "closed"))
		}},
		{"state/stream mismatch", audit.ProblemStateMismatch, false, func(t testing.TB, b *eventbus.Bus, evs []*event.Event) {
			// The poller's record of the last account is rewritten to name
			// another head than the stream's.
			kv, err := b.JS.KeyValue(ctx(t), eventbus.BucketState)
			if err != nil {
				t.Fatal(err)
			}
			m := eventtest.Meta(Accounts[2], nil)
			key := state.Key(m.Provider, m.Instance, m.AccountID)
			e, err := kv.Get(ctx(t), key)
			if err != nil {
				t.Fatal(err)
			}
			v := bytes.Replace(e.Value(), []byte(evs[len(evs)-1].Hash()), []byte(strings.Repeat("0", 64)), 1)
			if _, err := kv.Put(ctx(t), key, v); err != nil {
				t.Fatal(err)
			}
		}},
		{"full rewrite of stream, state and stored checkpoints", audit.ProblemCheckpoint, true, func(t testing.TB, b *eventbus.Bus, evs []*event.Event) {
			// The admin replaces everything: the stream, every account's
			// chain and record, and the checkpoints kept in NATS. What it
			// holds now is a consistent, different history.
			recreate(t, b, 0)
			if err := b.JS.DeleteStream(ctx(t), eventbus.StreamCheckpoints); err != nil {
				t.Fatal(err)
			}
			if err := eventbus.EnsureStream(ctx(t), b.JS, eventbus.CheckpointStreamConfig(b.Cfg)); err != nil {
				t.Fatal(err)
			}
			if err := b.JS.DeleteKeyValue(ctx(t), eventbus.BucketState); err != nil {
				t.Fatal(err)
			}
			if _, err := eventbus.EnsureBucket(ctx(t), b.JS, eventbus.BucketConfigs(b.Cfg)[0]); err != nil {
				t.Fatal(err)
			}
			st, err := state.Open(ctx(t), b.JS)
			if err != nil {
				t.Fatal(err)
			}
			for i := range 3 {
				for _, a := range Accounts {
					commitOne(t, st, a, "active", "closed", i)
				}
			}
		}},
	}
}

func stream(t testing.TB, b *eventbus.Bus) jetstream.Stream {
	t.Helper()
	s, err := b.JS.Stream(ctx(t), eventbus.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// rawMessages are the stored messages of the event stream, in order.
func rawMessages(t testing.TB, b *eventbus.Bus) []*nats.Msg {
	t.Helper()
	s := stream(t, b)
	info, err := s.Info(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	var out []*nats.Msg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx(t), seq)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, &nats.Msg{Subject: m.Subject, Header: m.Header, Data: m.Data})
	}
	return out
}

// recreate deletes the event stream and creates it again (from firstSeq, if not 0).
func recreate(t testing.TB, b *eventbus.Bus, firstSeq uint64) {
	t.Helper()
	if err := b.JS.DeleteStream(ctx(t), eventbus.StreamEvents); err != nil {
		t.Fatal(err)
	}
	sc := eventbus.EventStreamConfig(b.Cfg)
	sc.DenyDelete, sc.DenyPurge, sc.FirstSeq = false, false, firstSeq
	if _, err := b.JS.CreateStream(ctx(t), sc); err != nil {
		t.Fatal(err)
	}
}

// republish publishes copies of msgs; with keepIDs their Nats-Msg-Id too
// (a new stream has no duplicate window to drop them).
func republish(t testing.TB, b *eventbus.Bus, msgs []*nats.Msg, keepIDs bool) {
	t.Helper()
	for _, m := range msgs {
		h := nats.Header{}
		for k, v := range m.Header {
			if !strings.HasPrefix(k, "Nats-") || keepIDs && k == jetstream.MsgIDHeader {
				h[k] = v
			}
		}
		if _, err := b.JS.PublishMsg(ctx(t), &nats.Msg{Subject: m.Subject, Header: h, Data: m.Data}); err != nil {
			t.Fatal(err)
		}
	}
}

func writeFile(path string, b []byte) error { return os.WriteFile(path, b, 0o644) }

// RecordHeads writes the AW_STATE record of each account of evs naming its
// last event as the chain head, as the poller's commits leave them, for a
// test that publishes events itself.
func RecordHeads(t testing.TB, b *eventbus.Bus, evs ...*event.Event) {
	t.Helper()
	kv, err := b.JS.KeyValue(ctx(t), eventbus.BucketState)
	if err != nil {
		t.Fatal(err)
	}
	last := map[string]*event.Event{}
	var keys []string
	for _, e := range evs {
		k := state.Key(e.Data.Provider, e.Data.Instance, e.Data.AccountID)
		if _, ok := last[k]; !ok {
			keys = append(keys, k)
		}
		last[k] = e
	}
	for _, k := range keys {
		e := last[k]
		rec := detect.Record{Version: 1, Provider: e.Data.Provider, Instance: e.Data.Instance, AccountID: e.Data.AccountID, Baseline: true,
			ChangedAt: e.Data.ObservedAt, Chain: event.Chain{Seq: e.Data.Chain.Seq, Prev: e.Hash()}}
		v, _ := json.Marshal(state.Entry{Record: rec})
		if _, err := kv.Put(ctx(t), k, v); err != nil {
			t.Fatal(err)
		}
	}
}
