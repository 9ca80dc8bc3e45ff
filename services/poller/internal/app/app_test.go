package app_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/eventbus"
	"github.com/accountwatch/accountwatch/pkg/eventbus/bustest"
	"github.com/accountwatch/accountwatch/pkg/schemas"
	"github.com/accountwatch/accountwatch/pkg/sim"
	"github.com/accountwatch/accountwatch/pkg/sim/simtest"
	"github.com/accountwatch/accountwatch/pkg/watch"
	"github.com/accountwatch/accountwatch/services/poller/internal/app"
)

func writeConfig(t *testing.T, simURL string, extra string) string {
	t.Helper()
	host := strings.TrimPrefix(simURL, "http://")
	cfg := fmt.Sprintf(`connections:
  - name: ap-main
    provider: activeplatform
    url: %s
    api_token: %s
    interval: 400ms
    jitter: 0.01
    full_scan_every: 3
    discovery: true
    labels: {team: emea}
  - name: bss
    provider: alibaba-bss
    endpoint: %s
    protocol: http
    access_key_id: %s
    access_key_secret: %s
    interval: 400ms
    jitter: 0.01
    discovery: true
  - name: cams
    provider: alibaba-cams
    endpoint: %s
    protocol: http
    access_key_id: %s
    access_key_secret: %s
    spaces: ["%s"]
    interval: 400ms
    jitter: 0.01
    discovery: true
watch:
  - {connection: ap-main, account: "1000123", labels: {tier: gold, manager: alice}}
policy:
  debt_step: "100"
  degraded_after: 3
pii_allow: ['custom_attributes["Tier"]']
%s`, simURL, simtest.APToken, host, simtest.AccessKeyID, simtest.AccessSecret, host, simtest.AccessKeyID, simtest.AccessSecret, simtest.Space, extra)
	path := filepath.Join(t.TempDir(), "poller.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

type harness struct {
	bus  *eventbus.Bus
	sim  *sim.Server
	stop context.CancelFunc
	done chan error
}

func start(t *testing.T, seed *sim.Seed, extra string) *harness {
	t.Helper()
	bus := bustest.Start(t, bustest.Config(t, "127.0.0.1:0"))
	// The upstream answers in every shape its documents allow, at random
	// (the seed is logged: a failure can be replayed).
	vary := uint64(time.Now().UnixNano())
	t.Logf("upstream-sim variation seed %d", vary)
	s, url := simtest.Start(t, seed, sim.WithVariation(vary))
	settings := app.Settings{Config: eventbus.DefaultConfig(), ConfigFile: writeConfig(t, url, extra), OpsListen: "127.0.0.1:0",
		ReplicaID: "test-replica", Workers: 8, LeaseRenew: 200 * time.Millisecond}
	settings.URL, settings.NKeySeedFile = bus.ClientURL(), bus.SeedFile(eventbus.RolePoller)
	ctx, cancel := context.WithCancel(context.Background())
	h := &harness{bus: bus, sim: s, stop: cancel, done: make(chan error, 1)}
	go func() { h.done <- app.Run(ctx, settings, slog.New(slog.DiscardHandler)) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-h.done:
			if err != nil {
				t.Errorf("poller: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("poller did not drain")
		}
	})
	return h
}

// events reads the whole stream.
func (h *harness) events(t *testing.T) []*event.Event { return bustest.Events(t, h.bus) }

func describe(e *event.Event) string {
	s := e.Type().Tail() + " " + e.Data.Instance + "/" + e.Data.AccountID
	if e.Data.Field != "" {
		s += " " + e.Data.Field + ":" + e.Data.Previous.Value + ">" + e.Data.Current.Value
	}
	if e.Data.Debt != nil && e.Data.Debt.Crossed != "" {
		s += " " + e.Data.Debt.Crossed
	}
	return s
}

func (h *harness) alive(t *testing.T) {
	t.Helper()
	select {
	case err := <-h.done:
		t.Fatalf("poller exited: %v", err)
	default:
	}
}

func waitEvents(t *testing.T, h *harness, n int) []*event.Event {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		h.alive(t)
		evs := h.events(t)
		if len(evs) >= n {
			return evs
		}
		if time.Now().After(deadline) {
			var got []string
			for _, e := range evs {
				got = append(got, describe(e))
			}
			t.Fatalf("%d events, want %d:\n%s", len(evs), n, strings.Join(got, "\n"))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func waitCycles(t *testing.T, h *harness, endpoint string, n int) {
	t.Helper()
	base := h.sim.Stats()[endpoint]
	deadline := time.Now().Add(30 * time.Second)
	for h.sim.Stats()[endpoint] < base+n {
		h.alive(t)
		if time.Now().After(deadline) {
			t.Fatalf("%s not polled", endpoint)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestScriptedScenarioProducesExactlyTheExpectedEvents(t *testing.T) {
	h := start(t, simtest.Seed(), "")
	// Baseline: every connection polled twice, and nothing emitted.
	for _, ep := range []string{"ap.list", "bss.GetCustomerAccountInfo", "cams.QueryPhoneBusinessProfile"} {
		waitCycles(t, h, ep, 2)
	}
	if evs := h.events(t); len(evs) != 0 {
		t.Fatalf("the first observations must be a baseline, got %s", describe(evs[0]))
	}
	// The script.
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(h.sim.State.SetAP(1000123, map[string]any{"status": "credit hold", "current_debt": "512.40"}))
	must(h.sim.State.SetCustomer("1234567890123456", map[string]any{"hosting_status": "FREEZE", "credit_limit_status": "Freeze"}))
	must(h.sim.State.SetProfile(simtest.Space, "8613800000001", map[string]any{"Description": "Acme support, 24/7", "Websites": []any{"https://acme.example", "https://help.acme.example"}}))
	zero := "0"
	must(h.sim.State.AddAP(sim.APAccount{ID: 1000200, Name: "Newco", Status: "active", Balance: &zero,
		CustomAttributes: []sim.Attribute{{Name: "Tier", Value: "platinum"}, {Name: "Passport number", Value: "NC7654321"}}}))
	must(h.sim.State.RemoveCustomer("1234567890123457"))
	must(h.sim.State.RemoveAP(1000125)) // gone from a full scan of the listing
	want := []string{
		"account.credit_limit_status.changed bss/1234567890123456 CreditLimitStatus:thaw>freeze",
		"account.debt.changed ap-main/1000123 current_debt:0>512.4 above",
		"account.discovered ap-main/1000200",
		"account.hosting_status.changed bss/1234567890123456 HostingStatus:trusteeship>freeze",
		"account.removed ap-main/1000125",
		"account.removed bss/1234567890123457",
		"account.status.changed ap-main/1000123 status:active>credit_hold",
		"phone_profile.changed cams/8613800000001 Description:Acme support>Acme support, 24/7",
		"phone_profile.changed cams/8613800000001 Websites:https://acme.example>https://acme.example, https://help.acme.example",
	}
	waitEvents(t, h, len(want))
	// A few more cycles, with upstream errors that must not look like changes.
	h.sim.Faults.Set("ap.list", sim.Fault{Status: 503, Times: 2})
	h.sim.Faults.Set("bss.GetCustomerAccountInfo", sim.Fault{Throttle: true, Times: 2})
	h.sim.Faults.Set("cams.QueryPhoneBusinessProfile", sim.Fault{Body: sim.BodyMalformed, Times: 2})
	for _, ep := range []string{"ap.list", "bss.GetCustomerAccountInfo", "cams.QueryPhoneBusinessProfile"} {
		waitCycles(t, h, ep, 5)
	}
	evs := h.events(t)
	var got []string
	for _, e := range evs {
		got = append(got, describe(e))
	}
	sort.Strings(got)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("events:\n%s\n\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	checkEvents(t, evs)
	for _, e := range evs {
		if e.Type() == event.TypeDiscovered && e.Data.Attributes[event.AttributeKey("Tier")] != "platinum" {
			t.Errorf("the allow-listed attribute Tier is not in %s: %v", describe(e), e.Data.Attributes)
		}
	}
	// Per account, the status change comes before the debt change (one poll, chained).
	var ap []string
	for _, e := range evs {
		if e.Data.AccountID == "1000123" {
			ap = append(ap, e.Type().Tail())
			if e.Data.Labels["tier"] != "gold" || e.Data.Labels["team"] != "emea" || e.Data.Labels["manager"] != "alice" {
				t.Fatalf("labels %v", e.Data.Labels)
			}
		}
	}
	if strings.Join(ap, ",") != "account.status.changed,account.debt.changed" {
		t.Fatalf("order %v", ap)
	}
}

// checkEvents: schema-valid, no duplicate ids, intact per-account chains, no PII.
func checkEvents(t *testing.T, evs []*event.Event) {
	t.Helper()
	v, err := schemas.Default()
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	last := map[string]*event.Event{}
	for _, e := range evs {
		if err := v.Validate(string(e.Type()), e.Cloud.Data()); err != nil {
			t.Errorf("%s: %v", describe(e), err)
		}
		if ids[e.ID()] {
			t.Errorf("duplicate id %s", e.ID())
		}
		ids[e.ID()] = true
		k := e.Data.Instance + "/" + e.Data.AccountID
		if p := last[k]; p != nil {
			if e.Data.Chain.Seq != p.Data.Chain.Seq+1 || e.Data.Chain.Prev != p.Hash() {
				t.Errorf("%s: chain broken after %s", describe(e), describe(p))
			}
		} else if e.Data.Chain.Seq != 1 || e.Data.Chain.Prev != "" {
			t.Errorf("%s: first event of the account has chain %+v", describe(e), e.Data.Chain)
		}
		if e.Cloud.Extensions()[event.ExtChainHash] != e.Hash() {
			t.Errorf("%s: chainhash extension", describe(e))
		}
		last[k] = e
		for _, pii := range []string{"AB1234567", "NC7654321", "Jane", "Roe", "jane.roe@acme.example", "+15550100", "ops@partner.example", "fin@partner.example", "passport", "Passport"} {
			if strings.Contains(string(e.Cloud.Data()), pii) {
				t.Errorf("%s carries personal data %q: %s", describe(e), pii, e.Cloud.Data())
			}
		}
	}
}

func TestAnOutageIsDegradedThenRecoveredNotAChange(t *testing.T) {
	h := start(t, simtest.Seed(), "")
	waitCycles(t, h, "bss.GetCustomerAccountInfo", 4)
	h.sim.Faults.Set("bss.GetCustomerAccountInfo", sim.Fault{Status: 500})
	h.sim.Faults.Set("bss.GetCustomerList", sim.Fault{Status: 500})
	evs := waitEvents(t, h, 1)
	if d := describe(evs[0]); d != "poll.degraded bss/*" || evs[0].Data.Poll.Scope != "provider" || evs[0].Severity() != event.SeverityCritical {
		t.Fatalf("first event %s", d)
	}
	h.sim.Faults.Clear("")
	evs = waitEvents(t, h, 2)
	if d := describe(evs[1]); d != "poll.recovered bss/*" || !evs[1].Data.Poll.Since.Equal(evs[0].Data.Poll.Since) {
		t.Fatalf("second event %s", d)
	}
	waitCycles(t, h, "bss.GetCustomerAccountInfo", 4)
	if n := len(h.events(t)); n != 2 {
		t.Fatalf("%d events: an outage must not produce state changes", n)
	}
	checkEvents(t, h.events(t))
}

// TestWatchListChangesAtRuntime: once the listing holds every watched account,
// a cycle proves that by counting rather than walking the list. A change to
// the list must end that: here one listed account leaves it and one the
// listing does not hold joins (the count stays the same), and the newcomer is
// read on its own, every cycle, until its failures degrade it. (The account
// that left is still listed, and discovery takes it back once its listing
// bytes change, which with a varying upstream is the next scan.)
func TestWatchListChangesAtRuntime(t *testing.T) {
	h := start(t, simtest.Seed(), "")
	waitCycles(t, h, "ap.list", 8) // full scans that list every watched account
	ctx := context.Background()
	ws, err := watch.Open(ctx, h.bus.JS)
	if err != nil {
		t.Fatal(err)
	}
	if err := ws.Remove(ctx, event.ProviderActivePlatform, "ap-main", "1000124"); err != nil {
		t.Fatal(err)
	}
	if err := ws.Put(ctx, watch.Entry{Provider: event.ProviderActivePlatform, Instance: "ap-main", AccountID: "1000999", Source: watch.SourceCLI}); err != nil {
		t.Fatal(err)
	}
	degraded := func() []string {
		var out []string
		for _, e := range h.events(t) {
			if d := describe(e); d != "account.discovered ap-main/1000124" {
				out = append(out, d)
			}
		}
		return out
	}
	deadline := time.Now().Add(30 * time.Second)
	for len(degraded()) == 0 {
		h.alive(t)
		if time.Now().After(deadline) {
			t.Fatal("the newcomer was never degraded")
		}
		time.Sleep(100 * time.Millisecond)
	}
	waitCycles(t, h, "ap.list", 4)
	if got := degraded(); len(got) != 1 || got[0] != "poll.degraded ap-main/1000999" {
		t.Fatalf("events %v, want only the degraded newcomer (and the one that left rediscovered)", got)
	}
	for _, e := range h.events(t) {
		if e.Type() == event.TypePollDegraded && e.Data.Poll.Scope != "account" {
			t.Fatalf("scope %s", e.Data.Poll.Scope)
		}
	}
	checkEvents(t, h.events(t))
}

// TestAnUndecodableAccountDegradesOnlyIt: one account of the listing that
// cannot be decoded fails that account, not the listing: the others' changes
// still arrive, and its poll.degraded names the cause (operation, account,
// field) without the value; it recovers once it reads again.
func TestAnUndecodableAccountDegradesOnlyIt(t *testing.T) {
	h := start(t, simtest.Seed(), "")
	waitCycles(t, h, "ap.list", 3)
	if err := h.sim.Faults.Set("ap.list", sim.Fault{Body: sim.BodyBadField, Account: 1000123, Field: "current_debt"}); err != nil {
		t.Fatal(err)
	}
	if err := h.sim.State.SetAP(1000124, map[string]any{"status": "active"}); err != nil {
		t.Fatal(err)
	}
	evs := waitEvents(t, h, 2)
	var degraded *event.Event
	got := map[string]bool{}
	for _, e := range evs {
		got[describe(e)] = true
		if e.Type() == event.TypePollDegraded {
			degraded = e
		}
	}
	if !got["account.status.changed ap-main/1000124 status:credit_hold>active"] || degraded == nil || degraded.Data.AccountID != "1000123" {
		t.Fatalf("events %v: want the other account's change and 1000123 degraded", got)
	}
	c := degraded.Data.Poll.Cause
	if degraded.Data.Poll.Scope != "account" || c == nil || c.Operation != "list accounts" || c.AccountID != "1000123" || c.Field != "current_debt" || c.Kind != "malformed" || c.Detail != "not a decimal amount" {
		t.Fatalf("cause %+v", c)
	}
	if strings.Contains(string(degraded.Cloud.Data()), "spoiled") {
		t.Fatalf("the value is in the event: %s", degraded.Cloud.Data())
	}
	h.sim.Faults.Clear("ap.list")
	evs = waitEvents(t, h, 3)
	if d := describe(evs[2]); d != "poll.recovered ap-main/1000123" {
		t.Fatalf("third event %s", d)
	}
	checkEvents(t, h.events(t))
}

// TestAnUnnamedAccountKeepsTheListingIncomplete: an account of the listing
// whose id cannot be read cannot be degraded on its own, so the connection
// is (with the cause); every other account is still read, and nothing is
// taken for removed while the listing is not complete.
func TestAnUnnamedAccountKeepsTheListingIncomplete(t *testing.T) {
	h := start(t, simtest.Seed(), "")
	waitCycles(t, h, "ap.list", 3)
	if err := h.sim.Faults.Set("ap.list", sim.Fault{Body: sim.BodyBadField, Account: 1000125, Field: "id"}); err != nil {
		t.Fatal(err)
	}
	if err := h.sim.State.SetAP(1000124, map[string]any{"status": "active"}); err != nil {
		t.Fatal(err)
	}
	evs := waitEvents(t, h, 2)
	got := map[string]*event.Event{}
	for _, e := range evs {
		got[describe(e)] = e
	}
	deg := got["poll.degraded ap-main/*"]
	if got["account.status.changed ap-main/1000124 status:credit_hold>active"] == nil || deg == nil {
		t.Fatalf("events %v", got)
	}
	if c := deg.Data.Poll.Cause; c == nil || c.Field != "id" || c.Kind != "malformed" || c.Operation != "list accounts" {
		t.Fatalf("cause %+v", deg.Data.Poll.Cause)
	}
	h.sim.Faults.Clear("ap.list")
	evs = waitEvents(t, h, 3)
	if d := describe(evs[2]); d != "poll.recovered ap-main/*" {
		t.Fatalf("third event %s", d)
	}
	waitCycles(t, h, "ap.list", 3)
	for _, e := range h.events(t) {
		if e.Type() == event.TypeRemoved {
			t.Fatalf("%s while the listing was not complete", describe(e))
		}
	}
	checkEvents(t, h.events(t))
}
