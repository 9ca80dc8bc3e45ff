package drive

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/accountwatch/accountwatch/chaos/internal/ledger"
	"github.com/accountwatch/accountwatch/pkg/sim/simtest"
)

// TestChangesChain: every account's changes follow on from each other (each
// starts where the last change of its field ended), move debt by more than
// the poller's step and never below zero, and cover all four kinds of upstream
// state.
func TestChangesChain(t *testing.T) {
	w := NewWorld(2, 2, 2)
	types := map[string]bool{}
	for _, a := range w.Accounts {
		last := map[string]string{}
		for range 40 {
			c, path, set := a.next()
			types[c.Type] = true
			if prev, ok := last[c.Field]; ok && prev != c.From {
				t.Fatalf("%s %s: from %q, the last change ended at %q", a.Key, c.Field, c.From, prev)
			}
			last[c.Field] = c.To
			if c.From == c.To || path == "" || len(set) != 1 {
				t.Fatalf("%s: %+v %s %v", a.Key, c, path, set)
			}
			if c.Field == "current_debt" {
				from, to := decimal.RequireFromString(c.From), decimal.RequireFromString(c.To)
				if to.IsNegative() || from.Sub(to).Abs().LessThan(decimal.NewFromInt(50)) {
					t.Fatalf("debt %s → %s", c.From, c.To)
				}
			}
		}
	}
	for _, want := range []string{"account.status.changed", "account.debt.changed", "account.hosting_status.changed", "account.credit_limit_status.changed", "phone_profile.changed"} {
		if !types[want] {
			t.Errorf("no %s change", want)
		}
	}
}

// TestDriverClosedLoop runs the driver against the simulator: an account
// changes again only once the event of its last change is observed, and a
// change the simulator refuses is not counted.
func TestDriverClosedLoop(t *testing.T) {
	w := NewWorld(1, 1, 1)
	s, url := simtest.Start(t, w.Seed())
	d := NewDriver(NewSim(url), w)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ran := make(chan struct{})
	go func() { d.Run(ctx, 5*time.Millisecond, 1<<30); close(ran) }()
	// Three non-canary accounts: three changes are made, then the loop waits.
	for d.Open() < 3 {
		if ctx.Err() != nil {
			t.Fatal("the driver made no changes")
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	if n := len(d.Changes()); n != 3 {
		t.Fatalf("%d changes made while every account waits for its event", n)
	}
	// The events come in: each account is free again.
	for _, c := range d.Changes() {
		d.Observe(ledger.Event{ID: "aw1-x", Key: c.Key, Type: c.Type, Field: c.Field, Prev: c.From, Cur: c.To})
	}
	for len(d.Changes()) < 6 {
		if ctx.Err() != nil {
			t.Fatal("no change after the events were observed")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-ran
	// What the simulator holds is where the driver's changes left it.
	last := map[string]string{}
	for _, c := range d.Changes() {
		if c.Key.Provider == "alibaba-bss" {
			last[c.Field] = c.To
		}
	}
	cust, _ := s.State.Customer(w.Accounts[2].Key.Account)
	if v, ok := last["HostingStatus"]; ok && v != cust.HostingStatus {
		t.Errorf("simulator holds %s, the driver's last change set %s", cust.HostingStatus, v)
	}
	// A refused change (unknown account) is not recorded.
	bad := &Account{Key: ledger.Key{Provider: "alibaba-bss", Instance: ConnBSS, Account: "nope"}, kind: kindBSS, uid: "nope"}
	if _, err := d.apply(context.Background(), bad); err == nil {
		t.Fatal("a change to an unknown customer succeeded")
	}
	if bad.n != 0 {
		t.Error("a refused change advanced the account")
	}
}

// TestProbeCheck: an acknowledged probe missing from the stream is lost; one
// acknowledged inside a stretch without quorum (sent a second into it) is
// counted; failed probes are neither.
func TestProbeCheck(t *testing.T) {
	p := &Prober{}
	t0 := time.Now()
	p.probes = []probe{
		{sent: t0, acked: t0.Add(time.Millisecond), ok: true},                              // probe-1: stored
		{sent: t0, acked: t0.Add(time.Millisecond), ok: true},                              // probe-2: acked, not stored
		{sent: t0.Add(3 * time.Second), acked: t0.Add(4 * time.Second), ok: true},          // probe-3: inside the stretch
		{sent: t0.Add(3 * time.Second), acked: t0.Add(6 * time.Second), ok: false},         // probe-4: failed
		{sent: t0.Add(1500 * time.Millisecond), acked: t0.Add(12 * time.Second), ok: true}, // probe-5: answered after the heal
	}
	p.NoQuorum(t0.Add(time.Second), t0.Add(10*time.Second))
	stored := map[string]bool{"probe-1": true, "probe-3": true, "probe-5": true}
	got := p.Check(stored)
	want := ledger.Probes{Sent: 5, Acked: 4, Failed: 1, Lost: 1, AckedWithoutQuorum: 1}
	if len(got.Details) != 2 || !strings.Contains(got.Details[0], "probe-2") || !strings.Contains(got.Details[1], "probe-3") {
		t.Errorf("details %q", got.Details)
	}
	got.Details = nil
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
}
