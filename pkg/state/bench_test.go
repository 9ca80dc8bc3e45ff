package state_test

import (
	"context"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/accountwatch/accountwatch/pkg/detect"
	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/eventbus/bustest"
	"github.com/accountwatch/accountwatch/pkg/state"
)

// BenchmarkChange is what one detected status change costs a poller worker
// and the embedded server together (server default sync), as the process's
// CPU per change: the record decoded from its cached bytes, the change
// detected, its event built, record and event committed, the record encoded
// again for the cache. "build" is the same without the commit.
func BenchmarkChange(b *testing.B) {
	const accounts = 1000
	cfg := bustest.Config(b, "")
	cfg.SyncAlways = false
	bus := bustest.Start(b, cfg)
	ctx := context.Background()
	st, err := state.Open(ctx, bus.JS)
	if err != nil {
		b.Fatal(err)
	}
	pol := detect.DefaultPolicy()
	type account struct {
		key    string
		raw    state.Raw
		status bool
	}
	all := make([]*account, accounts)
	for i := range all {
		id := strconv.Itoa(1_000_000 + i)
		a := &account{key: state.Key(event.ProviderActivePlatform, "ap", id)}
		cur := &state.Entry{}
		_, rec := detect.Observe(detect.Record{}, observation(a.status), pol)
		rec.Provider, rec.Instance, rec.AccountID = event.ProviderActivePlatform, "ap", id
		if err := st.Put(ctx, a.key, cur, rec); err != nil {
			b.Fatal(err)
		}
		if a.raw, err = state.Encode(cur); err != nil {
			b.Fatal(err)
		}
		all[i] = a
	}
	change := func(b *testing.B, a *account, commit bool) {
		cur, err := state.Decode(a.key, a.raw)
		if err != nil {
			b.Fatal(err)
		}
		a.status = !a.status
		obs := observation(a.status)
		changes, next := detect.Observe(cur.Record, obs, pol)
		m := event.Meta{Provider: event.ProviderActivePlatform, Instance: "ap", AccountID: next.AccountID, AccountName: next.Name,
			Labels: map[string]string{"team": "emea"}, ObservedAt: obs.At, Revision: cur.Rev, PreviousObservedAt: cur.Record.ChangedAt}
		events := make([]*event.Event, 0, len(changes))
		chain := cur.Record.Chain
		for _, c := range changes {
			m.Chain = event.Chain{Seq: chain.Seq + 1, Prev: chain.Prev}
			ev, err := c.Event(m)
			if err != nil {
				b.Fatal(err)
			}
			chain = event.Chain{Seq: ev.Data.Chain.Seq, Prev: ev.Hash()}
			events = append(events, ev)
		}
		next.Chain, next.ChangedAt = chain, obs.At
		if commit {
			if err := st.Commit(ctx, a.key, cur, next, events); err != nil {
				b.Fatal(err)
			}
		} else {
			cur.Record = next
		}
		if a.raw, err = state.Encode(cur); err != nil {
			b.Fatal(err)
		}
	}
	for _, commit := range []bool{false, true} {
		name := "build"
		if commit {
			name = "commit"
		}
		b.Run(name, func(b *testing.B) {
			// As the poller's workers run them: 32 at once, each account
			// on one worker only.
			var next atomic.Int64
			next.Store(0)
			cpu0 := cpuTime()
			b.SetParallelism(16)
			b.RunParallel(func(pb *testing.PB) {
				per := accounts / 32
				j := int(next.Add(1) - 1)
				mine := all[j*per : j*per+per]
				for i := 0; pb.Next(); i++ {
					change(b, mine[i%per], commit)
				}
			})
			b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/change")
		})
	}
}

func observation(held bool) detect.Observation {
	status := "active"
	if held {
		status = "credit hold"
	}
	return detect.Observation{Name: "Synthetic Customer", Enums: map[string]event.Value{"status": event.EnumValue(status)},
		Attrs: map[string]string{"tier": "gold"}, Evidence: event.Evidence{RequestID: "req-1", ResponseSHA256: "ab", Endpoint: "accounts.json"}, At: time.Now().UTC()}
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
