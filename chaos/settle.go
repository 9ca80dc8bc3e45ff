package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/accountwatch/accountwatch/chaos/internal/drive"
	"github.com/accountwatch/accountwatch/chaos/internal/ledger"
	"github.com/accountwatch/accountwatch/pkg/checkpoint"
	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/eventbus"
)

// settle waits for the last changes and deliveries, then reads everything
// back and computes the ledger.
func (r *run) settle(ctx context.Context) (ledger.Result, error) {
	deadline := time.Now().Add(r.form.Recover)
	r.logf("── settling: %d changes made, %d events not stored yet", len(r.driver.Changes()), r.driver.Open())
	for r.driver.Open() > 0 && time.Now().Before(deadline) && ctx.Err() == nil {
		r.calm(ctx, 250*time.Millisecond)
	}
	sinks := func() []ledger.Sink {
		return []ledger.Sink{drive.SinkOf("slack", r.slack.Posts), drive.SinkOf("webhook", r.webhook.Deliveries), drive.SinkOf("email", r.smtp.Messages)}
	}
	var events []ledger.Event
	for {
		msgs, err := r.readAll(ctx, eventbus.StreamEvents)
		if err != nil {
			return ledger.Result{}, fmt.Errorf("reading the event stream: %w", err)
		}
		events = events[:0]
		for _, m := range msgs {
			events = append(events, drive.ToLedger(m))
		}
		missing := drive.Outstanding(events, sinks())
		if missing == 0 || time.Now().After(deadline) || ctx.Err() != nil {
			r.logf("── %d events stored; %d deliveries outstanding", len(events), missing)
			break
		}
		r.calm(ctx, time.Second)
	}

	in := ledger.Input{Changes: r.driver.Changes(), Events: events, Sinks: sinks(), Faults: r.faults, Baseline: r.baseline}
	if err := r.checkState(ctx, false); err != nil {
		return ledger.Result{}, err
	}
	in.State = r.state
	probes, err := r.readAll(ctx, drive.ProbeStream)
	if err != nil {
		return ledger.Result{}, fmt.Errorf("reading %s: %w", drive.ProbeStream, err)
	}
	stored := map[string]bool{}
	for _, m := range probes {
		stored[string(m.Data())] = true
	}
	in.Probes = r.prober.Check(stored)
	if in.Verify, err = r.verify(ctx); err != nil {
		return ledger.Result{}, err
	}
	if in.Auditor, err = r.auditorStale(ctx, events); err != nil {
		return ledger.Result{}, err
	}
	in.Races = r.races()
	r.crashMu.Lock()
	in.Crashes = append([]string(nil), r.crashes...)
	r.crashMu.Unlock()
	if in.Replicas, err = r.replicas(ctx); err != nil {
		return ledger.Result{}, err
	}
	r.loadMu.Lock()
	in.Load = strings.Join(r.loads, ", ")
	r.loadMu.Unlock()
	if n, err := r.driver.Errors(); n > 0 {
		r.logf("note: %d admin calls to upstream-sim failed and were retried (last: %v)", n, err)
	}
	return ledger.Compute(in), nil
}

// readAll reads a whole stream, again until it works or a minute passed:
// the cluster may still be settling a fault.
func (r *run) readAll(ctx context.Context, stream string) ([]jetstream.Msg, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var msgs []jetstream.Msg
	err := retry(ctx, func() (err error) { msgs, err = drive.ReadAll(ctx, r.js, stream); return err })
	return msgs, err
}

// checkState compares every state record with the stream (drive.StateAhead)
// and adds what it finds to the ledger's state.
func (r *run) checkState(ctx context.Context, allowPending bool) error {
	ctx, cancel := context.WithTimeout(ctx, r.form.Recover)
	defer cancel()
	records, ahead, err := drive.StateAhead(ctx, r.js, allowPending, func(f func() error) error { return retry(ctx, f) })
	if err != nil {
		return fmt.Errorf("state check: %w", err)
	}
	r.state.Checks++
	r.state.Records = records
	for _, a := range ahead {
		r.state.Ahead = append(r.state.Ahead, fmt.Sprintf("%s (check %d)", a, r.state.Checks))
	}
	return nil
}

// verify runs `awctl verify` against the cluster.
func (r *run) verify(ctx context.Context) (ledger.Verify, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	return drive.Verify(ctx, filepath.Join(r.bin, "awctl"), []string{"NATS_URL=" + r.cl.URLs(), "AW_STREAM_REPLICAS=3",
		"AW_NATS_NKEY_SEED_FILE=" + r.seed(eventbus.RoleOperator), "AW_CHECKPOINT_PUBLIC_KEY_FILE=" + checkpoint.PublicKeyFile(r.creds)})
}

type auditorAccount struct {
	Provider string `json:"provider"`
	Instance string `json:"instance"`
	ID       string `json:"account_id"`
	Status   string `json:"status"`
	Debt     string `json:"debt"`
	Events   uint64 `json:"events"`
}

func (r *run) auditorAccounts(ctx context.Context, q string) ([]auditorAccount, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	u := "http://" + r.svcs["auditor-api"].ops + "/api/v1/accounts?per_page=500&q=" + url.QueryEscape(q)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	req.Header.Set("Authorization", "Bearer "+auditorToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("auditor: %s", resp.Status)
	}
	var res struct {
		Accounts []auditorAccount `json:"accounts"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
		return nil, err
	}
	return res.Accounts, nil
}

// auditorShows reports whether the auditor's index (it follows AW_STATE)
// shows the canary's change.
func (r *run) auditorShows(ctx context.Context, c ledger.Change) (bool, error) {
	as, err := r.auditorAccounts(ctx, c.Key.Account)
	if err != nil {
		return false, err
	}
	for _, a := range as {
		if a.ID == c.Key.Account && a.Instance == c.Key.Instance {
			switch c.Field {
			case "status":
				return ledger.SameValue(a.Status, c.To), nil
			case "current_debt":
				return ledger.SameValue(a.Debt, c.To), nil
			}
			return false, fmt.Errorf("the canary changes status and debt, not %s", c.Field)
		}
	}
	return false, nil
}

// auditorStale lists the accounts whose events the auditor's index does not
// count as the stream holds them: a KV watcher that stopped.
func (r *run) auditorStale(ctx context.Context, events []ledger.Event) ([]string, error) {
	count := map[ledger.Key]uint64{}
	seen := map[string]bool{}
	for _, e := range events {
		// The index is of accounts: a connection's own records (account
		// "*", its poll.degraded and poll.recovered; "*poller", the
		// dead-man's poll.stalled and poll.resumed) are not.
		if e.Undecodable == "" && !seen[e.MsgID] && e.Key.Account != event.ProviderScope && e.Key.Account != event.PollerScope {
			seen[e.MsgID] = true
			count[e.Key]++
		}
	}
	var as []auditorAccount
	err := retry(ctx, func() (err error) { as, err = r.auditorAccounts(ctx, ""); return err })
	if err != nil {
		return nil, err
	}
	var stale []string
	shown := map[ledger.Key]bool{}
	for _, a := range as {
		k := ledger.Key{Provider: a.Provider, Instance: a.Instance, Account: a.ID}
		shown[k] = true
		if a.Events != count[k] {
			stale = append(stale, fmt.Sprintf("%s: the auditor counts %d events, the stream holds %d", k, a.Events, count[k]))
		}
	}
	for k, n := range count {
		if !shown[k] {
			stale = append(stale, fmt.Sprintf("%s: %d events, not in the auditor's index", k, n))
		}
	}
	return stale, nil
}

// races lists the services whose log reports a data race (the short form
// builds them with the race detector).
func (r *run) races() []string {
	var out []string
	for _, name := range append(append([]string{}, killable...), "upstream-sim") {
		b, err := os.ReadFile(r.svcs[name].Log)
		if err != nil {
			continue
		}
		if n := bytes.Count(b, []byte("WARNING: DATA RACE")); n > 0 {
			out = append(out, fmt.Sprintf("%s: %d data races (%s)", name, n, r.svcs[name].Log))
		}
	}
	return out
}

// replicas lists the streams (buckets are streams too) not at replicas 3.
func (r *run) replicas(ctx context.Context) ([]string, error) {
	var out []string
	err := retry(ctx, func() error {
		out = out[:0]
		l := r.js.ListStreams(ctx)
		for info := range l.Info() {
			if info.Config.Replicas != 3 {
				out = append(out, fmt.Sprintf("%s: %d replicas", info.Config.Name, info.Config.Replicas))
			}
		}
		return l.Err()
	})
	return out, err
}
