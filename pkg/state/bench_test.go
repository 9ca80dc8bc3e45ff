package state_test

import (
	"context"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/accountwatch/accountwatch/pkg/detect"
	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/eventbus"
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

// BenchmarkSyncedGroups is the server's side of why commit groups are
// pipelined: with fsync on every write, groups of records and events written
// one stream after the other ("serial": a group's records, awaited, then its
// events, awaited) against the next group's records sent while this group's
// events are stored ("pipelined", what Store does). Raw messages of a
// record's and an event's size, no encoding; the ratio is pipelined/serial
// time of the same run.
func BenchmarkSyncedGroups(b *testing.B) {
	const group = 8
	cfg := bustest.Config(b, "")
	cfg.SyncAlways = true
	bus := bustest.Start(b, cfg)
	js := bus.JS
	record, ev := make([]byte, 900), make([]byte, 700)
	send := func(subject string, data []byte, n int) []jetstream.PubAckFuture {
		fs := make([]jetstream.PubAckFuture, n)
		for i := range fs {
			f, err := js.PublishMsgAsync(&nats.Msg{Subject: subject + strconv.Itoa(i), Data: data})
			if err != nil {
				b.Fatal(err)
			}
			fs[i] = f
		}
		return fs
	}
	await := func(fs []jetstream.PubAckFuture) {
		for _, f := range fs {
			select {
			case <-f.Ok():
			case err := <-f.Err():
				b.Fatal(err)
			case <-time.After(time.Minute):
				b.Fatal("no acknowledgement")
			}
		}
	}
	kv := "$KV." + eventbus.BucketState + ".bench."
	events := "aw.events.activeplatform.bench.account-status-changed."
	var serial, pipelined time.Duration
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		for range 16 {
			await(send(kv, record, group))
			await(send(events, ev, group))
		}
		serial += time.Since(t0)
		t0 = time.Now()
		var inFlight []jetstream.PubAckFuture
		for range 16 {
			await(send(kv, record, group))
			await(inFlight)
			inFlight = send(events, ev, group)
		}
		await(inFlight)
		pipelined += time.Since(t0)
	}
	changes := float64(b.N * 16 * group)
	b.ReportMetric(float64(serial.Microseconds())/changes, "serial-µs/change")
	b.ReportMetric(float64(pipelined.Microseconds())/changes, "pipelined-µs/change")
	b.ReportMetric(pipelined.Seconds()/serial.Seconds(), "ratio")
}
