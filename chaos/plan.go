package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/accountwatch/accountwatch/chaos/internal/cluster"
	"github.com/accountwatch/accountwatch/chaos/internal/drive"
	"github.com/accountwatch/accountwatch/chaos/internal/ledger"
	"github.com/accountwatch/accountwatch/chaos/internal/receivers"
	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/eventbus"
	"github.com/accountwatch/accountwatch/pkg/state"
)

// exercise drives the changes, injects every fault in turn, lets the
// pipeline settle and computes the ledger.
func (r *run) exercise(ctx context.Context) (ledger.Result, error) {
	bg, stopBG := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { stopBG(); wg.Wait() }()
	start := func(f func()) { wg.Add(1); go func() { defer wg.Done(); f() }() }
	start(func() { drive.Follow(bg, r.js, func(m jetstream.Msg) { r.driver.Observe(drive.ToLedger(m)) }) })
	// The probes stop before the probe stream is read back: one
	// acknowledged after the read would look lost.
	probeCtx, stopProbes := context.WithCancel(bg)
	probed := make(chan struct{})
	go func() { defer close(probed); r.prober.Run(probeCtx, 200*time.Millisecond, 3*time.Second) }()
	defer func() { stopProbes(); <-probed }()
	start(func() {
		t := time.NewTicker(10 * time.Second)
		defer t.Stop()
		for {
			r.loadMu.Lock()
			r.loads = append(r.loads, loadavg())
			r.loadMu.Unlock()
			select {
			case <-bg.Done():
				return
			case <-t.C:
			}
		}
	})

	// Calm first: the baseline of the recovery figures.
	r.logf("── calm: the baseline")
	r.driver.SetPhase("calm")
	for range 3 {
		c, err := r.canary(ctx)
		if err != nil {
			return ledger.Result{}, fmt.Errorf("the pipeline does not deliver even without faults: %w", err)
		}
		r.baseline = append(r.baseline, c.total)
		r.logf("baseline canary: %s", c)
	}
	driveCtx, stopDrive := context.WithCancel(bg)
	driven := make(chan struct{})
	go func() { defer close(driven); r.driver.Run(driveCtx, r.form.Pace, 1<<30) }()
	defer func() { stopDrive(); <-driven }()

	steps := []struct {
		name string
		do   func(context.Context) ledger.Fault
	}{
		{"stream leader SIGKILL", r.killNode(true)},
		{"follower SIGKILL", r.killNode(false)},
		{"stream leader SIGSTOP", r.freezeLeader},
		{"network partition of one node", r.partition},
		{"quorum lost (two nodes down)", r.loseQuorum},
		{"upstream throttling and 5xx bursts", r.upstreamFaults},
		{"webhook receiver 503, then hanging", r.webhookFaults},
		{"disk full on one node", r.diskFull},
		{"services SIGKILLed", r.killServices},
		{"watch list changed after the faults", r.watchLate},
	}
	broken := ""
	for _, s := range steps {
		if ctx.Err() != nil {
			return ledger.Result{}, ctx.Err()
		}
		if !r.selected(s.name) {
			continue
		}
		if broken != "" {
			// A pipeline that did not recover cannot measure the next fault.
			r.faults = append(r.faults, ledger.Fault{Name: s.name, Skipped: "not run: the pipeline did not recover from " + broken})
			continue
		}
		r.driver.SetPhase(s.name)
		r.prober.SetPhase(s.name)
		r.logf("── %s", s.name)
		f := s.do(ctx)
		if f.Name == "" {
			f.Name = s.name
		}
		if f.Failed != "" {
			r.logf("   FAILED: %s", f.Failed)
			broken = s.name
		}
		r.faults = append(r.faults, f)
		r.driver.SetPhase("calm after " + s.name)
		r.prober.SetPhase("calm after " + s.name)
		r.calm(ctx, 3*time.Second)
	}
	// The driver is stopped, and its last change made and recorded, before
	// the stream is read back: a change made after the read would be an
	// event of no change (CI saw the auditor count one the ledger did not).
	stopDrive()
	<-driven
	stopProbes()
	<-probed
	r.driver.SetPhase("settle")
	return r.settle(ctx)
}

// selected reports whether -faults lets a step run.
func (r *run) selected(name string) bool {
	if r.only == "" {
		return true
	}
	for _, w := range strings.Split(r.only, ",") {
		if w = strings.TrimSpace(w); w != "" && strings.Contains(name, w) {
			return true
		}
	}
	return false
}

// calm lets the pipeline work without a fault for a while.
func (r *run) calm(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// reach is how long a canary change took to the stream, to each sink and
// to the auditor's index.
type reach struct {
	total, stream time.Duration
	by            map[string]time.Duration
}

func (c reach) String() string {
	parts := []string{"stream " + round(c.stream)}
	for _, n := range []string{"slack", "webhook", "email", "auditor"} {
		if d, ok := c.by[n]; ok {
			parts = append(parts, n+" "+round(d))
		}
	}
	return round(c.total) + " (" + strings.Join(parts, ", ") + ")"
}

func round(d time.Duration) string { return d.Round(100 * time.Millisecond).String() }

// canary makes a change on the canary account and waits until its event is
// stored and every sink and the auditor's index have it: the pipeline,
// end to end. The auditor is watched from the change on, the sinks by
// when they accepted the event.
func (r *run) canary(ctx context.Context) (reach, error) { return r.changeOne(ctx, r.world.Canary) }

// changeOne changes an account and follows the change through the pipeline.
func (r *run) changeOne(ctx context.Context, acct *drive.Account) (reach, error) {
	t0 := time.Now()
	cctx, cancel := context.WithTimeout(ctx, r.form.Recover)
	defer cancel()
	c := reach{by: map[string]time.Duration{}}
	ap, err := r.driver.Change(cctx, acct)
	if err != nil {
		return c, err
	}
	type seen struct {
		after time.Duration
		err   error
	}
	audited := make(chan seen, 1)
	go func() {
		for {
			if ok, _ := r.auditorShows(cctx, ap.Change); ok {
				audited <- seen{after: time.Since(t0)}
				return
			}
			select {
			case <-cctx.Done():
				audited <- seen{err: fmt.Errorf("canary %s: the auditor's index never showed it", ap.Change)}
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	id, err := r.driver.WaitStored(cctx, ap)
	if err != nil {
		<-audited
		return c, fmt.Errorf("canary %w", err)
	}
	c.stream = ap.Stored.Sub(t0)
	c.total = c.stream
	tallies := map[string]*receivers.Tally{"slack": r.slack.Posts, "webhook": r.webhook.Deliveries, "email": r.smtp.Messages}
	for name, t := range tallies {
		for {
			if at, ok := t.First(id); ok {
				c.by[name] = at.Sub(t0)
				c.total = max(c.total, c.by[name])
				break
			}
			select {
			case <-cctx.Done():
				<-audited
				return c, fmt.Errorf("canary %s: stored after %s, never reached %s", id, round(c.stream), name)
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	a := <-audited
	if a.err != nil {
		return c, a.err
	}
	c.by["auditor"] = a.after
	c.total = max(c.total, a.after)
	return c, nil
}

// recovered measures a recovery with a canary into f.
func (r *run) recovered(ctx context.Context, f *ledger.Fault) {
	c, err := r.canary(ctx)
	if err != nil {
		f.Failed = err.Error()
		return
	}
	f.Recovery, f.Stream = c.total, c.stream
	r.logf("   recovered in %s", c)
}

// during starts a canary now, for a fault in progress; wait returns its reach.
func (r *run) during(ctx context.Context) (wait func() (reach, error)) {
	type res struct {
		c   reach
		err error
	}
	ch := make(chan res, 1)
	go func() { c, err := r.canary(ctx); ch <- res{c, err} }()
	return func() (reach, error) { x := <-ch; return x.c, x.err }
}

func (r *run) leader(ctx context.Context) (*cluster.Node, error) {
	var name string
	err := retry(ctx, func() error {
		var err error
		name, err = cluster.StreamLeader(ctx, r.js, eventbus.StreamEvents)
		return err
	})
	if err != nil {
		return nil, err
	}
	n := r.cl.Node(name)
	if n == nil {
		return nil, fmt.Errorf("leader %q is no node of the run", name)
	}
	return n, nil
}

// killNode SIGKILLs the event stream's leader (or a follower), measures the
// failover while it is down, restarts it, and measures its catching up.
func (r *run) killNode(leader bool) func(context.Context) ledger.Fault {
	return func(ctx context.Context) ledger.Fault {
		var f ledger.Fault
		lead, err := r.leader(ctx)
		if err != nil {
			f.Failed = err.Error()
			return f
		}
		victim := lead
		if !leader {
			for _, n := range r.cl.Nodes {
				if n != lead && (r.netns == nil || n.Proc.Netns == "") {
					victim = n
					break
				}
			}
		}
		if err := victim.Kill(); err != nil {
			f.Failed = err.Error()
			return f
		}
		killed := time.Now()
		failover, ferr := r.canary(ctx)
		r.sleepUntil(ctx, killed.Add(r.form.NodeDown))
		if err := victim.Start(); err != nil {
			f.Failed = err.Error()
			return f
		}
		restarted := time.Now()
		hctx, cancel := context.WithTimeout(ctx, r.form.Recover)
		herr := victim.WaitHealthy(hctx)
		cancel()
		rejoined := time.Since(restarted)
		r.recovered(ctx, &f)
		switch {
		case ferr != nil:
			f.Failed = "while " + victim.Addr.Name + " was down: " + ferr.Error()
		case herr != nil:
			f.Failed = herr.Error()
		}
		f.Detail = fmt.Sprintf("%s killed (led AW_EVENTS: %v), down %s; with it down, a change reached everything in %s; restarted node healthy after %s",
			victim.Addr.Name, victim == lead, r.form.NodeDown, failover, round(rejoined))
		r.logf("   %s", f.Detail)
		return f
	}
}

func (r *run) sleepUntil(ctx context.Context, t time.Time) {
	select {
	case <-ctx.Done():
	case <-time.After(time.Until(t)):
	}
}

func (r *run) freezeLeader(ctx context.Context) ledger.Fault {
	var f ledger.Fault
	lead, err := r.leader(ctx)
	if err != nil {
		f.Failed = err.Error()
		return f
	}
	if err := lead.Stop(); err != nil {
		f.Failed = err.Error()
		return f
	}
	frozen := time.Now()
	// A change made while it is frozen: the others elect a new leader.
	wait := r.during(ctx)
	r.sleepUntil(ctx, frozen.Add(r.form.Freeze))
	if err := lead.Cont(); err != nil {
		f.Failed = err.Error()
		return f
	}
	dr, derr := wait()
	r.recovered(ctx, &f)
	if derr != nil && f.Failed == "" {
		f.Failed = "a change made during the freeze: " + derr.Error()
	}
	f.Detail = fmt.Sprintf("%s frozen %s; a change made at the freeze reached everything in %s", lead.Addr.Name, r.form.Freeze, dr)
	r.logf("   %s", f.Detail)
	return f
}

func (r *run) partition(ctx context.Context) ledger.Fault {
	var f ledger.Fault
	if r.netns == nil {
		f.Skipped = r.netSkip
		return f
	}
	victim := r.cl.Nodes[len(r.cl.Nodes)-1]
	lead, _ := r.leader(ctx)
	if err := r.netns.Partition(); err != nil {
		f.Failed = err.Error()
		return f
	}
	parted := time.Now()
	wait := r.during(ctx)
	r.sleepUntil(ctx, parted.Add(r.form.Parted))
	if err := r.netns.Heal(); err != nil {
		f.Failed = err.Error()
		return f
	}
	healed := time.Now()
	dr, derr := wait()
	hctx, cancel := context.WithTimeout(ctx, r.form.Recover)
	herr := victim.WaitHealthy(hctx)
	cancel()
	rejoined := time.Since(healed)
	r.recovered(ctx, &f)
	switch {
	case derr != nil && f.Failed == "":
		f.Failed = "a change made during the partition: " + derr.Error()
	case herr != nil && f.Failed == "":
		f.Failed = herr.Error()
	}
	f.Detail = fmt.Sprintf("%s cut off %s (it led AW_EVENTS: %v); a change made then reached everything in %s; healthy %s after the heal",
		victim.Addr.Name, r.form.Parted, lead == victim, dr, round(rejoined))
	r.logf("   %s", f.Detail)
	return f
}

// loseQuorum takes two nodes down for NoQuorum, then brings them back.
// Meanwhile nothing may be acknowledged (the probes check it) and after it
// no state record may be ahead of the stream.
func (r *run) loseQuorum(ctx context.Context) ledger.Fault {
	var f ledger.Fault
	var down []*cluster.Node
	for _, n := range r.cl.Nodes {
		if len(down) < 2 && (r.netns == nil || n.Proc.Netns == "") {
			down = append(down, n)
		}
	}
	for _, n := range down {
		if err := n.Kill(); err != nil {
			f.Failed = err.Error()
			return f
		}
	}
	lost := time.Now()
	r.sleepUntil(ctx, lost.Add(r.form.NoQuorum))
	healing := time.Now()
	r.prober.NoQuorum(lost, healing)
	for _, n := range down {
		if err := n.Start(); err != nil {
			f.Failed = err.Error()
			return f
		}
	}
	r.recovered(ctx, &f)
	if err := r.checkState(ctx, true); err != nil && f.Failed == "" {
		f.Failed = err.Error()
	}
	f.Detail = fmt.Sprintf("%s down %s; probes meanwhile must fail or time out; state checked against the stream after the heal",
		nodeNames(down), r.form.NoQuorum)
	r.logf("   %s", f.Detail)
	return f
}

func nodeNames(ns []*cluster.Node) string {
	var s []string
	for _, n := range ns {
		s = append(s, n.Addr.Name)
	}
	return strings.Join(s, " and ")
}

func (r *run) upstreamFaults(ctx context.Context) ledger.Fault {
	var f ledger.Fault
	faults := map[string]map[string]any{
		"ap.list":                        {"status": 503},
		"ap.get":                         {"status": 502},
		"bss.GetCustomerAccountInfo":     {"throttle": true},
		"cams.QueryPhoneBusinessProfile": {"throttle": true},
	}
	// Bursts: on and off, every couple of seconds.
	end := time.Now().Add(r.form.Upstream)
	for on := true; time.Now().Before(end); on = !on {
		for ep, flt := range faults {
			var err error
			if on {
				err = r.sim.Fault(ctx, ep, flt)
			} else {
				err = r.sim.ClearFaults(ctx)
			}
			if err != nil {
				f.Failed = err.Error()
				return f
			}
		}
		r.calm(ctx, 2500*time.Millisecond)
	}
	if err := r.sim.ClearFaults(ctx); err != nil {
		f.Failed = err.Error()
		return f
	}
	r.recovered(ctx, &f)
	f.Detail = fmt.Sprintf("%s of 503/502 on ActivePlatform and throttling on BSS and CAMS, 2.5 s on, 2.5 s off", r.form.Upstream)
	return f
}

func (r *run) webhookFaults(ctx context.Context) ledger.Fault {
	var f ledger.Fault
	r.webhook.SetMode(receivers.Unavailable)
	r.calm(ctx, r.form.Webhook503)
	r.webhook.SetMode(receivers.Hang)
	r.calm(ctx, r.form.WebhookHang)
	r.webhook.SetMode(receivers.Healthy)
	r.recovered(ctx, &f)
	f.Detail = fmt.Sprintf("503 for %s, then no answer for %s (dispatcher timeout 2s; %d requests left hanging)", r.form.Webhook503, r.form.WebhookHang, r.webhook.Hung())
	return f
}

func (r *run) diskFull(ctx context.Context) ledger.Fault {
	var f ledger.Fault
	if r.form.DiskFull == 0 {
		f.Skipped = "long form only"
		return f
	}
	if r.cl.Disk == nil {
		f.Skipped = "no tmpfs (needs root)"
		return f
	}
	n := r.cl.Node("nats-2")
	wrote, err := r.cl.Disk.Fill()
	if err != nil {
		f.Failed = err.Error()
		return f
	}
	filled := time.Now()
	wait := r.during(ctx)
	r.sleepUntil(ctx, filled.Add(r.form.DiskFull))
	dr, derr := wait()
	if err := r.cl.Disk.Free(); err != nil {
		f.Failed = err.Error()
		return f
	}
	freed := time.Now()
	restarted := ""
	// If the node gave up on JetStream (it does when a write fails for lack
	// of space), only a restart brings it back: what a supervisor does. The
	// services are not touched.
	hctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	herr := n.WaitHealthy(hctx)
	cancel()
	if herr != nil {
		why := ""
		if b, err := os.ReadFile(n.Log); err == nil && bytes.Contains(b, []byte("JetStream out of resources, will be DISABLED")) {
			why = ": it disabled JetStream on the failed write (\"JetStream out of resources, will be DISABLED\")"
		}
		restarted = fmt.Sprintf("; not healthy 20 s after the space came back%s: nats-server restarted", why)
		n.Terminate(10 * time.Second)
		if err := n.Start(); err != nil {
			f.Failed = err.Error()
			return f
		}
		hctx, cancel := context.WithTimeout(ctx, r.form.Recover)
		herr = n.WaitHealthy(hctx)
		cancel()
	}
	healthy := time.Since(freed)
	r.recovered(ctx, &f)
	switch {
	case herr != nil && f.Failed == "":
		f.Failed = herr.Error()
	case derr != nil && f.Failed == "":
		f.Failed = "a change made while the disk was full: " + derr.Error()
	}
	f.Detail = fmt.Sprintf("%s's store (tmpfs of %d MiB) filled with %d MiB for %s; a change made then reached everything in %s%s; healthy %s after the space was freed",
		n.Addr.Name, r.cl.Disk.Bytes>>20, wrote>>20, r.form.DiskFull, dr, restarted, round(healthy))
	r.logf("   %s", f.Detail)
	return f
}

// killServices SIGKILLs each service KillRounds times, restarting it at once
// (its supervisor would), and measures each recovery.
func (r *run) killServices(ctx context.Context) ledger.Fault {
	var f ledger.Fault
	per := map[string][]time.Duration{}
	for round := range r.form.KillRounds {
		for _, name := range killable {
			s := r.svcs[name]
			if err := s.Kill(); err != nil {
				f.Failed = err.Error()
				return f
			}
			if err := s.Start(); err != nil {
				f.Failed = err.Error()
				return f
			}
			var one ledger.Fault
			r.recovered(ctx, &one)
			if one.Failed != "" {
				f.Failed = fmt.Sprintf("%s, kill %d: %s", name, round+1, one.Failed)
				return f
			}
			per[name] = append(per[name], one.Recovery)
			r.faults = append(r.faults, ledger.Fault{Name: fmt.Sprintf("%s SIGKILL %d", name, round+1), Recovery: one.Recovery, Stream: one.Stream, Detail: "restarted at once"})
		}
	}
	var parts []string
	for _, name := range killable {
		parts = append(parts, fmt.Sprintf("%s×%d", name, len(per[name])))
	}
	f.Name = "every service SIGKILLed (worst of the above)"
	for _, ds := range per {
		for _, d := range ds {
			f.Recovery = max(f.Recovery, d)
		}
	}
	f.Detail = strings.Join(parts, ", ")
	return f
}

// watchLate adds an account to the watch list with awctl, waits for the
// pollers to baseline it (their watch-list watcher has followed the bucket
// through every fault), then changes it and follows the change to every sink.
func (r *run) watchLate(ctx context.Context) ledger.Fault {
	var f ledger.Fault
	late := r.world.Late.Key
	t0 := time.Now()
	if out, err := r.awctl(ctx, eventbus.RoleOperator, "watch", "add", "--connection", late.Instance, "--provider", late.Provider, "--account", late.Account); err != nil {
		f.Failed = fmt.Sprintf("awctl watch add: %v: %s", err, out)
		return f
	}
	kv, err := r.js.KeyValue(ctx, eventbus.BucketState)
	if err != nil {
		f.Failed = err.Error()
		return f
	}
	wctx, cancel := context.WithTimeout(ctx, r.form.Recover)
	defer cancel()
	key := state.Key(event.Provider(late.Provider), late.Instance, late.Account)
	if err := retry(wctx, func() error { _, err := kv.Get(wctx, key); return err }); err != nil {
		f.Failed = fmt.Sprintf("the pollers never read %s, added to the watch list: %v", late, err)
		return f
	}
	baselined := time.Since(t0)
	c, err := r.changeOne(ctx, r.world.Late)
	if err != nil {
		f.Failed = err.Error()
		return f
	}
	f.Recovery, f.Stream = c.total, c.stream
	f.Detail = fmt.Sprintf("awctl watch add %s: baselined after %s; its first change reached everything in %s", late.Account, round(baselined), c)
	r.logf("   %s", f.Detail)
	return f
}
