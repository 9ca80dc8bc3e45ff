package sink_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/accountwatch/accountwatch/pkg/deliverylog"
	"github.com/accountwatch/accountwatch/pkg/detect"
	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/event/eventtest"
	"github.com/accountwatch/accountwatch/pkg/eventbus"
	"github.com/accountwatch/accountwatch/pkg/eventbus/bustest"
	"github.com/accountwatch/accountwatch/pkg/sink"
	"github.com/accountwatch/accountwatch/pkg/state"
)

// memLog is a delivery log in memory.
type memLog struct {
	mu   sync.Mutex
	recs []deliverylog.Record
}

func (l *memLog) Add(r deliverylog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.recs = append(l.recs, r)
	return nil
}

// outcomes lists "outcome:event" of the records of receiver, in order.
func (l *memLog) of(receiver, outcome string) []deliverylog.Record {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []deliverylog.Record
	for _, r := range l.recs {
		if r.Receiver == receiver && r.Outcome == outcome {
			out = append(out, r)
		}
	}
	return out
}

// account builds one account's events in chain order, observed now, each
// with the standing it says.
type account struct {
	t   *testing.T
	m   event.Meta
	seq uint64
}

func newAccount(t *testing.T, id string) *account {
	m := eventtest.Meta(id, nil)
	return &account{t: t, m: m}
}

func (a *account) meta(problems ...string) event.Meta {
	a.seq++
	m := a.m
	m.ObservedAt = time.Now().UTC()
	m.Revision = a.seq
	m.Chain = event.Chain{Seq: a.seq}
	if a.seq > 1 {
		m.Chain.Prev = strings.Repeat("ab", 32)
	}
	if problems == nil {
		problems = []string{}
	}
	m.Standing = &event.Standing{Problems: problems, Debt: "620", Threshold: "600", Currency: "EUR"}
	return m
}

func (a *account) status(prev, cur string, problems ...string) *event.Event {
	return eventtest.Status(a.t, a.meta(problems...), prev, cur)
}

func (a *account) debt(prev, cur, crossed string, problems ...string) *event.Event {
	return eventtest.Debt(a.t, a.meta(problems...), prev, cur, "600", crossed)
}

func (a *account) degraded(problems ...string) *event.Event {
	return eventtest.Must(a.t)(event.PollDegraded(a.meta(problems...), event.Poll{ConsecutiveFailures: 3, Since: time.Now().Add(-time.Minute)}))
}

func (a *account) recovered(problems ...string) *event.Event {
	return eventtest.Must(a.t)(event.PollRecovered(a.meta(problems...), event.Poll{ConsecutiveFailures: 3, Since: time.Now().Add(-time.Minute)}))
}

func headlines(n *sink.Notification) string {
	var out []string
	for _, e := range n.Events {
		out = append(out, e.Type().Tail()+"/"+string(e.Data.Severity))
	}
	return strings.Join(out, " ")
}

// TestCriticalNeverMergedIntoARecovery: a critical poll.degraded held by
// the group's wait is sent before, and never inside, the recovery after it.
func TestCriticalNeverMergedIntoARecovery(t *testing.T) {
	h := newHarness(t)
	rec := &recorder{}
	prov := newAccount(t, event.ProviderScope)
	prov.m.AccountName = ""
	h.publish(t, prov.degraded(event.ProblemDegraded), prov.recovered())
	h.start(t, tree(t, "route: {receiver: r, group_wait: 1s}", "r"), []sink.Receiver{{Name: "r"}}, rec)
	eventually(t, "two notifications", func() bool { return len(rec.snapshot()) >= 2 })
	calls := rec.snapshot()
	if len(calls) != 2 || headlines(calls[0].n) != "poll.degraded/critical" || headlines(calls[1].n) != "poll.recovered/info" {
		for _, c := range calls {
			t.Log(headlines(c.n))
		}
		t.Fatal("the critical change and its recovery must go out apart, in order")
	}
	if w := calls[0].n.Worst(); w.Data.Severity != event.SeverityCritical {
		t.Fatalf("worst %s", w.Data.Severity)
	}
}

// TestAFreezeIsOneCriticalNotification: HostingStatus and CreditLimitStatus
// frozen a poll apart bypass the digest's window but go out together.
func TestAFreezeIsOneCriticalNotification(t *testing.T) {
	h := newHarness(t)
	rec := &recorder{}
	h.start(t, tree(t, `route: {receiver: r, group_by: [], group_wait: 1h, group_interval: 1h, critical_bypasses_grouping: true, critical_group_wait: 3s}`, "r"), []sink.Receiver{{Name: "r"}}, rec)
	h.publish(t, eventtest.Hosting(t, "1234567890123456", "TRUSTEESHIP", "FREEZE"))
	eventually(t, "the first freeze taken", func() bool { return consumerInfo(t, h, "r").Delivered.Stream == 1 })
	h.publish(t, eventtest.CreditLimit(t, "1234567890123456", "Thaw", "Freeze"))
	eventually(t, "a notification", func() bool { return len(rec.snapshot()) == 1 })
	eventually(t, "both settled", func() bool { return consumerInfo(t, h, "r").AckFloor.Stream == 2 })
	if calls := rec.snapshot(); len(calls) != 1 || len(calls[0].n.Events) != 2 {
		t.Fatalf("%d notifications for one freeze", len(calls))
	}
}

func remindTree(t *testing.T, repeat string) string {
	t.Helper()
	return fmt.Sprintf("route: {receiver: r, group_wait: 0s, group_interval: 0s, repeat_interval: %s}", repeat)
}

// TestRemindersAtTheIntervalAndNoneAfterRecovery: while an account stays in
// bad standing it is reminded of every repeat_interval; once it is told in
// good standing, never again.
func TestRemindersAtTheIntervalAndNoneAfterRecovery(t *testing.T) {
	h := newHarness(t)
	rec := &recorder{}
	log := &memLog{}
	acme := newAccount(t, "1000123")
	h.publish(t, acme.status("active", "credit_hold", event.ProblemCreditHold))
	const repeat = 2 * time.Second
	h.start(t, tree(t, remindTree(t, "2s"), "r"), []sink.Receiver{{Name: "r"}}, rec, sink.WithDeliveryLog(log, false))
	kinds := func() []string {
		var out []string
		for _, c := range rec.snapshot() {
			out = append(out, c.n.Kind)
		}
		return out
	}
	eventually(t, "the alert and two reminders", func() bool { return len(rec.snapshot()) >= 3 })
	calls := rec.snapshot()
	if calls[0].n.Kind != sink.KindEvents || calls[1].n.Kind != sink.KindReminder || calls[2].n.Kind != sink.KindReminder {
		t.Fatalf("kinds %q", kinds())
	}
	for i := 1; i < 3; i++ {
		if gap := calls[i].at.Sub(calls[i-1].at); gap < repeat {
			t.Errorf("reminder %d came %s after the notification before it (repeat_interval %s)", i, gap, repeat)
		}
		if ev := calls[i].n.Events; len(ev) != 1 || ev[0].Data.AccountID != "1000123" {
			t.Errorf("reminder of %+v", ev)
		}
	}
	if recs := log.of("r", deliverylog.Delivered); len(recs) < 3 || recs[1].Kind != deliverylog.KindReminder {
		t.Errorf("delivery log: %+v", recs)
	}

	// Active again: told once, then no reminder.
	h.publish(t, acme.status("credit_hold", "active"))
	eventually(t, "the recovery told", func() bool {
		for _, c := range rec.snapshot() {
			if c.n.Kind == sink.KindEvents && c.n.Events[0].Data.Current.Value == "active" {
				return true
			}
		}
		return false
	})
	forgotten(t, h, "test.remind.")
	n := len(rec.snapshot())
	time.Sleep(2 * repeat) // a reminder would have come by now
	if got := rec.snapshot(); len(got) != n {
		t.Fatalf("%d notifications after the recovery: %s", len(got)-n, got[len(got)-1].n.Kind)
	}
}

// TestRemindersHoldAcrossARestart: the reminder state lives in JetStream: a
// new instance reminds on the same schedule, one reminder per interval.
func TestRemindersHoldAcrossARestart(t *testing.T) {
	h := newHarness(t)
	rec := &recorder{}
	acme := newAccount(t, "1000123")
	h.publish(t, acme.status("active", "credit_hold", event.ProblemCreditHold))
	stop := h.start(t, tree(t, remindTree(t, "2s"), "r"), []sink.Receiver{{Name: "r"}}, rec)
	eventually(t, "the alert", func() bool { return len(rec.snapshot()) == 1 })
	stop()
	rec2 := &recorder{}
	h.start(t, tree(t, remindTree(t, "2s"), "r"), []sink.Receiver{{Name: "r"}}, rec2)
	eventually(t, "a reminder from the new instance", func() bool { return len(rec2.snapshot()) >= 1 })
	if c := rec2.snapshot()[0]; c.n.Kind != sink.KindReminder || c.at.Sub(rec.snapshot()[0].at) < 2*time.Second {
		t.Fatalf("%s after %s", c.n.Kind, c.at.Sub(rec.snapshot()[0].at))
	}
}

const inhibitYAML = `
route: {receiver: r, group_wait: 0s, group_interval: 0s}
inhibit_rules:
  - name: provider outage
    source_matchers: [type=poll.degraded, scope=provider]
    target_matchers: [type=poll.degraded, scope=account]
    equal: [provider, instance]
  - name: credit hold
    source_matchers: ['standing=~.*credit_hold.*']
    target_matchers: [type=account.debt.changed, severity=warning]
    equal: [provider, instance, account]
`

// TestInhibitRules: each rule holds its targets back while its source
// holds, records each with its reason, and lets them through after.
func TestInhibitRules(t *testing.T) {
	h := newHarness(t)
	rec := &recorder{}
	log := &memLog{}
	prov, acme, globex := newAccount(t, event.ProviderScope), newAccount(t, "1000123"), newAccount(t, "1000124")
	h.start(t, tree(t, inhibitYAML, "r"), []sink.Receiver{{Name: "r"}}, rec, sink.WithDeliveryLog(log, false))
	sent := func(id string) bool { return rec.events()[id] > 0 }
	t0 := time.Now()
	step := func(s string) { t.Logf("%s at %s", s, time.Since(t0)) }
	inhibited := func(id string) bool {
		return slices.ContainsFunc(log.of("r", deliverylog.Inhibited), func(r deliverylog.Record) bool { return r.EventID == id })
	}

	outage := prov.degraded(event.ProblemDegraded)
	h.publish(t, outage)
	eventually(t, "the outage sent", func() bool { return sent(outage.ID()) })
	acmeDown := acme.degraded(event.ProblemDegraded)
	h.publish(t, acmeDown)
	eventually(t, "an account's degraded alert inhibited", func() bool { return inhibited(acmeDown.ID()) })
	if r := log.of("r", deliverylog.Inhibited)[0]; !strings.Contains(r.Reason, "provider outage") || !strings.Contains(r.Reason, outage.ID()) {
		t.Errorf("reason %q", r.Reason)
	}
	step("a")
	h.publish(t, prov.recovered())
	globexDown := globex.degraded(event.ProblemDegraded)
	h.publish(t, globexDown)
	eventually(t, "sent once the outage is over", func() bool { return sent(globexDown.ID()) })

	hold := acme.status("active", "credit_hold", event.ProblemCreditHold, event.ProblemDegraded)
	warn := acme.debt("400", "450", "", event.ProblemCreditHold, event.ProblemDegraded)
	crit := acme.debt("450", "610", "above", event.ProblemCreditHold, event.ProblemOverThreshold)
	step("b")
	h.publish(t, hold, warn, crit)
	eventually(t, "the debt warning inhibited by the credit hold", func() bool { return inhibited(warn.ID()) })
	eventually(t, "the hold and the critical crossing sent", func() bool { return sent(hold.ID()) && sent(crit.ID()) })
	step("c")
	active := acme.status("credit_hold", "active", event.ProblemOverThreshold)
	warn2 := acme.debt("610", "660", "", event.ProblemOverThreshold)
	h.publish(t, active, warn2)
	defer func() {
		log.mu.Lock()
		for _, r := range log.recs {
			t.Logf("%s %s %s %s", r.EventID, r.Outcome, r.Reason, r.Error)
		}
		log.mu.Unlock()
		t.Logf("warn2 %s active %s", warn2.ID(), active.ID())
	}()
	eventually(t, "a debt warning after the hold sent", func() bool { return sent(warn2.ID()) })
	if sent(warn.ID()) || sent(acmeDown.ID()) {
		t.Error("an inhibited event was sent")
	}
}

// TestInhibitionHoldsAcrossReplicasAndRestarts: the source seen by one
// instance inhibits in another that never read it.
func TestInhibitionHoldsAcrossReplicasAndRestarts(t *testing.T) {
	h := newHarness(t)
	prov, acme := newAccount(t, event.ProviderScope), newAccount(t, "1000123")
	outage := prov.degraded(event.ProblemDegraded)
	h.publish(t, outage)
	first := &recorder{}
	stop := h.start(t, tree(t, inhibitYAML, "r"), []sink.Receiver{{Name: "r"}}, first)
	eventually(t, "the outage seen", func() bool { return first.events()[outage.ID()] == 1 })
	stop()

	// Another instance whose receiver starts after the outage: it never reads it.
	log := &memLog{}
	set := fast()
	set.Start = "new"
	rec := &recorder{}
	rt, err := sink.New(h.bus.JS, "test", tree(t, strings.Replace(inhibitYAML, "receiver: r,", "receiver: r2,", 1), "r2"), []sink.Receiver{{Name: "r2"}}, rec, sink.WithSettings(set), sink.WithDeliveryLog(log, false))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rt.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	eventually(t, "r2 consumes", func() bool { return consumerInfo(t, h, "r2").Config.Durable != "" })
	down := acme.degraded(event.ProblemDegraded)
	h.publish(t, down)
	eventually(t, "inhibited by the outage another instance saw", func() bool { return len(log.of("r2", deliverylog.Inhibited)) == 1 })
	if len(rec.snapshot()) != 0 {
		t.Fatal("sent")
	}
}

// TestForPendingPeriod: a change undone inside `for` sends nothing (drop)
// or one notification of both (once); a change that holds is sent.
func TestForPendingPeriod(t *testing.T) {
	for _, flap := range []string{"drop", "once"} {
		t.Run(flap, func(t *testing.T) {
			h := newHarness(t)
			rec := &recorder{}
			log := &memLog{}
			h.start(t, tree(t, "route: {receiver: r, group_wait: 0s, for: 3s, flap: "+flap+"}", "r"), []sink.Receiver{{Name: "r"}}, rec, sink.WithDeliveryLog(log, false))
			flip := newAccount(t, "1000123")
			hold, back := flip.status("active", "credit_hold", event.ProblemCreditHold), flip.status("credit_hold", "active")
			stays := newAccount(t, "1000124")
			held := stays.status("active", "administrative_hold", event.ProblemAdministrativeHold)
			h.publish(t, hold, back, held)
			eventually(t, "the change that held sent after its period", func() bool { return rec.events()[held.ID()] == 1 })
			if c := rec.snapshot()[len(rec.snapshot())-1]; c.at.Sub(held.Cloud.Time()) < 3*time.Second {
				t.Errorf("sent %s after it was observed, inside its period", c.at.Sub(held.Cloud.Time()))
			}
			switch flap {
			case "drop":
				eventually(t, "both recorded resolved", func() bool { return len(log.of("r", deliverylog.Resolved)) == 2 })
				if rec.events()[hold.ID()] != 0 || rec.events()[back.ID()] != 0 {
					t.Fatal("a flap was sent")
				}
			case "once":
				var both *sink.Notification
				for _, c := range rec.snapshot() {
					if len(c.n.Events) == 2 {
						both = c.n
					}
				}
				if both == nil || both.Events[0].ID() != hold.ID() || both.Events[1].ID() != back.ID() {
					t.Fatalf("want one notification of the hold and its undoing: %v", rec.events())
				}
			}
		})
	}
}

// TestOrderKeptAcrossAKilledNotifier: an instance killed while it holds an
// account's change: the next one sends that change before the newer ones.
func TestOrderKeptAcrossAKilledNotifier(t *testing.T) {
	bus := bustest.Start(t, bustest.Config(t, "127.0.0.1:0"))
	h := &harness{bus: bus, reg: nil, metrics: nil}
	ctx := context.Background()
	kc := eventbus.DefaultConfig()
	kc.URL, kc.NKeySeedFile, kc.Role, kc.Name = bus.ClientURL(), bus.SeedFile(eventbus.RoleAdmin), eventbus.RoleAdmin, "killed"
	killed, err := eventbus.Connect(ctx, kc)
	if err != nil {
		t.Fatal(err)
	}
	set := fast()
	set.AckWait = 4 * time.Second
	first := &recorder{}
	rt, err := sink.New(killed.JS, "test", tree(t, "route: {receiver: r, group_wait: 1h}", "r"), []sink.Receiver{{Name: "r"}}, first, sink.WithSettings(set))
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- rt.Run(rctx) }()
	acme := newAccount(t, "1000123")
	hold := acme.status("active", "credit_hold", event.ProblemCreditHold)
	h.publish(t, hold)
	eventually(t, "the first instance holds the change", func() bool {
		i := consumerInfo(t, h, "r")
		return i.Delivered.Stream == 1 && i.NumAckPending == 1
	})
	killed.NC.Close() // killed: nothing handed back
	cancel()
	<-done
	killed.Close()

	newer := acme.status("credit_hold", "active")
	h.publish(t, newer)
	rec := &recorder{}
	s2 := set
	rt2, err := sink.New(bus.JS, "test", tree(t, "route: {receiver: r, group_wait: 0s, group_interval: 0s}", "r"), []sink.Receiver{{Name: "r"}}, rec, sink.WithSettings(s2))
	if err != nil {
		t.Fatal(err)
	}
	ctx2, cancel2 := context.WithCancel(ctx)
	done2 := make(chan error, 1)
	go func() { done2 <- rt2.Run(ctx2) }()
	t.Cleanup(func() { cancel2(); <-done2 })
	eventually(t, "both sent", func() bool { return len(rec.events()) == 2 })
	var order []string
	for _, c := range rec.snapshot() {
		for _, e := range c.n.Events {
			order = append(order, e.Data.Current.Value)
		}
	}
	if strings.Join(order, ",") != "credit_hold,active" {
		t.Fatalf("sent in the order %v: the account's thread would end on a stale change", order)
	}
	if len(first.snapshot()) != 0 {
		t.Fatal("the killed instance sent")
	}
}

// TestReportListsBaselineHolds: a route's report lists every account in bad
// standing of AW_STATE, those on hold since their first observation (no
// event) included, with its figures and the receiver's last alert.
func TestReportListsBaselineHolds(t *testing.T) {
	h := newHarness(t)
	st, err := state.Open(context.Background(), h.bus.JS)
	if err != nil {
		t.Fatal(err)
	}
	base := time.Now().Add(-48 * time.Hour).UTC()
	records := map[string]detect.Record{
		"1000124": {Baseline: true, Name: "Globex Cloud GmbH", Enums: map[string]event.Value{detect.FieldStatus: {Value: "credit_hold"}},
			Debt: &detect.DebtState{Value: "620", Current: "620", Threshold: "600", Currency: "EUR", Above: true}, BadSince: base},
		"1000123": {Baseline: true, Name: "Acme Hosting LLC", Enums: map[string]event.Value{detect.FieldStatus: {Value: "active"}}, Debt: &detect.DebtState{Value: "0", Current: "0"}},
		"1000125": {Baseline: true, Name: "Initech", Enums: map[string]event.Value{detect.FieldStatus: {Value: "administrative_hold"}}, BadSince: base, Labels: map[string]string{"team": "apac"}},
	}
	for id, r := range records {
		r.Provider, r.Instance, r.AccountID = event.ProviderActivePlatform, "ap-main", id
		if r.Labels == nil {
			r.Labels = map[string]string{"team": "emea"}
		}
		key := state.Key(r.Provider, r.Instance, id)
		if err := st.Put(context.Background(), key, &state.Entry{}, r); err != nil {
			t.Fatal(err)
		}
	}
	// Just after this morning's 08:00 in Berlin.
	berlin, _ := time.LoadLocation("Europe/Berlin")
	now := time.Now().In(berlin)
	at := time.Date(now.Year(), now.Month(), now.Day(), 8, 0, 0, 0, berlin)
	clock := func() time.Time { return at.Add(30 * time.Second) }
	rec := &recorder{}
	yaml := `route: {receiver: r, routes: [{match: {labels: {team: emea}}, receiver: r, report: {every: daily, at: "08:00", location: Europe/Berlin}}]}`
	h.start(t, tree(t, yaml, "r"), []sink.Receiver{{Name: "r"}}, rec, sink.WithClock(clock))
	eventually(t, "a report", func() bool { return len(rec.snapshot()) == 1 })
	n := rec.snapshot()[0].n
	if n.Kind != sink.KindReport || n.Report == nil {
		t.Fatalf("%+v", n)
	}
	var got []string
	for _, l := range n.Report.Lines {
		got = append(got, l.ID+":"+strings.Join(l.Standings, "+")+":"+l.Debt+" "+l.Currency)
	}
	if strings.Join(got, ",") != "1000124:credit_hold+over_threshold:620 EUR" {
		t.Fatalf("report lines %v (Initech is apac's, Acme in good standing)", got)
	}
	if !n.Report.Lines[0].Since.Equal(base) || !n.Report.Scheduled.Equal(at) {
		t.Errorf("since %s, scheduled %s", n.Report.Lines[0].Since, n.Report.Scheduled)
	}
	// Once a day: a second look sends nothing.
	kv, _ := h.bus.JS.KeyValue(context.Background(), eventbus.BucketAlerts)
	e, err := kv.Get(context.Background(), "test.report.r.0.0")
	if err != nil {
		t.Fatal(err)
	}
	var run struct{ Last time.Time }
	if json.Unmarshal(e.Value(), &run) != nil || !run.Last.Equal(at) {
		t.Fatalf("report run %s", e.Value())
	}
}

// TestRemindersStopOnARecoveryTheRouteDrops: a route that takes warnings
// and worse never tells the recovery (info), yet reminders stop once the
// account is back in good standing, and say where it stands meanwhile.
func TestRemindersStopOnARecoveryTheRouteDrops(t *testing.T) {
	h := newHarness(t)
	rec := &recorder{}
	acme := newAccount(t, "1000123")
	// Info goes to r2, warnings and worse to r.
	yaml := "route: {receiver: r2, group_wait: 0s, group_interval: 0s, repeat_interval: 2s, routes: [{min_severity: warning, receiver: r}]}"
	h.start(t, tree(t, yaml, "r", "r2"), []sink.Receiver{{Name: "r"}, {Name: "r2"}}, rec)
	of := func() []*sink.Notification {
		var out []*sink.Notification
		for _, c := range rec.snapshot() {
			if c.n.Receiver == "r" {
				out = append(out, c.n)
			}
		}
		return out
	}
	h.publish(t, acme.status("active", "credit_hold", event.ProblemCreditHold, event.ProblemOverThreshold))
	eventually(t, "the hold told", func() bool { return len(of()) == 1 })
	active := acme.status("credit_hold", "active", event.ProblemOverThreshold) // info: dropped by the route
	h.publish(t, active)
	eventually(t, "a reminder of where the account stands now", func() bool {
		for _, n := range of() {
			if n.Kind == sink.KindReminder && n.Events[0].ID() == active.ID() {
				return true
			}
		}
		return false
	})
	paid := acme.debt("620", "150", "below") // good standing; info, dropped too
	h.publish(t, paid)
	forgotten(t, h, "test.remind.r.")
	n := len(of())
	time.Sleep(5 * time.Second) // two intervals and more: a reminder would have come
	if got := of(); len(got) != n {
		t.Fatalf("%d reminders after the account was back in good standing", len(got)-n)
	}
	for _, n := range of() {
		if n.Kind == sink.KindEvents && n.Events[0].ID() != of()[0].Events[0].ID() {
			t.Errorf("the route told %s", n.Events[0].Type())
		}
	}
}

// forgotten waits until AW_ALERTS holds no reminder under prefix.
func forgotten(t *testing.T, h *harness, prefix string) {
	t.Helper()
	kv, err := h.bus.JS.KeyValue(context.Background(), eventbus.BucketAlerts)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the reminder state forgotten", func() bool {
		keys, err := kv.Keys(context.Background())
		return err != nil && len(keys) == 0 || err == nil && !slices.ContainsFunc(keys, func(k string) bool { return strings.HasPrefix(k, prefix) })
	})
}
