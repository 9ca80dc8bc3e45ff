// Command conformance runs the whole accountwatch pipeline against an
// upstream it did not write: conformance/upstream/server.py, a Python
// implementation of the providers' published API documents (ActivePlatform,
// Alibaba Cloud BSS and CAMS) written from the documents alone. It starts
// that upstream, an embedded JetStream server, the poller and the three
// notifiers as processes with loopback receivers for Slack, webhooks and
// SMTP (the chaos run's), injects a scripted set of account changes, new and
// removed accounts, onboardings and faults through the upstream's control
// port, and checks the upstream's own ledger against the stream and every
// sink: each injected change must arrive exactly once at every sink, no event
// may arrive for a change that was not injected, and faults must show as
// poll.degraded and poll.recovered, never as state changes.
//
//	cd chaos && go run ./conformance -root ..    # make conformance
//
// It exits 0 when every check holds, 1 when one fails, 2 when the run could
// not be made. python3 is required: outside CI a machine without it skips
// the run (exit 0, saying so); under CI=true that is a failure.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/shopspring/decimal"

	"github.com/accountwatch/accountwatch/chaos/internal/conform"
	"github.com/accountwatch/accountwatch/chaos/internal/drive"
	"github.com/accountwatch/accountwatch/chaos/internal/ledger"
	"github.com/accountwatch/accountwatch/chaos/internal/proc"
	"github.com/accountwatch/accountwatch/chaos/internal/receivers"
	"github.com/accountwatch/accountwatch/pkg/deliverylog"
	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/eventbus"
	"github.com/accountwatch/accountwatch/pkg/state"
)

// Credentials the upstream accepts and the poller uses.
const (
	apToken     = "conformance-ap-token-0001"
	accessKey   = "LTAIconformance"
	accessSec   = "conformance-secret"
	webhookTok  = "conformance-webhook-admin"
	slackToken  = "xoxb-conformance-0000"
	debtStep    = "50"
	phaseWait   = 60 * time.Second
	faultGrace  = 20 * time.Second
	spaceA1     = "29348393884001"
	spaceA2     = "29348393884002"
	spaceB      = "29348393884003"
	connAP      = "ap-conf"
	connBSS     = "bss-conf"
	connCAMSA   = "cams-a"
	connCAMSB   = "cams-b"
	bssOnboard  = "onboarded@partner.example"
	bssOnboard2 = "onboarded-late@partner.example"
	// allowAttr is the one custom attribute the poller is told to keep
	// (pii_allow); every other one is personal.
	allowAttr     = "Tier"
	newOwnerEmail = "new-owner@example.com"
)

var conns = conform.Conns{AP: connAP, BSS: connBSS, CAMS: map[string]string{spaceA1: connCAMSA, spaceA2: connCAMSA, spaceB: connCAMSB}}

var binaries = []string{"poller", "slack-notifier", "webhook-dispatcher", "email-notifier", "awctl"}

type runner struct {
	root, work, bin, python string
	keep                    bool
	started                 time.Time

	up    *conform.Upstream
	urls  map[string]string
	bus   *eventbus.Bus
	rcv   *receivers.Set
	slack *receivers.Slack
	hook  *receivers.Webhook
	smtp  *receivers.SMTP
	procs []*proc.Proc
	pii   *conform.Personal
	// allowed: per account, its allow-listed attributes upstream.
	allowed map[ledger.Key]map[string]string

	mu      sync.Mutex
	events  []ledger.Event
	crashes []string
	phases  []phaseMark
	log     drive.Log
}

type phaseMark struct {
	after int // ledger seq before the phase began
	name  string
}

func main() {
	root := flag.String("root", "..", "the repository root (conformance/upstream, services/)")
	keep := flag.Bool("keep", false, "keep the work directory (logs, the upstream's ledger, the store)")
	jsonOut := flag.String("json", "", "also write the report as JSON to this file")
	python := flag.String("python", "python3", "the Python 3 interpreter")
	flag.Parse()
	abs, err := filepath.Abs(*root)
	if err == nil {
		_, err = os.Stat(filepath.Join(abs, "conformance", "upstream", "server.py"))
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "conformance: -root %s: no conformance/upstream/server.py there\n", *root)
		os.Exit(2)
	}
	py, err := exec.LookPath(*python)
	if err != nil {
		if os.Getenv("CI") == "true" {
			fmt.Fprintf(os.Stderr, "conformance: CI=true and %s is not installed (Debian package python3; .ci/run installs it)\n", *python)
			os.Exit(2)
		}
		fmt.Fprintf(os.Stderr, "conformance: SKIPPED: %s is not installed (Debian package python3)\n", *python)
		os.Exit(0)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	r := &runner{root: abs, keep: *keep, python: py, started: time.Now()}
	r.log = drive.Log{Prefix: "conformance", Started: r.started}
	os.Exit(r.main(ctx, *jsonOut))
}

func (r *runner) logf(format string, a ...any) { r.log.Printf(format, a...) }

func (r *runner) main(ctx context.Context, jsonOut string) int {
	var err error
	if r.work, err = os.MkdirTemp("", "aw-conformance-"); err != nil {
		fmt.Fprintln(os.Stderr, "conformance:", err)
		return 2
	}
	r.bin = filepath.Join(r.work, "bin")
	defer r.teardown()
	if err := r.setup(ctx); err != nil {
		r.logf("setup failed: %v", err)
		r.keep = true
		return 2
	}
	if err := r.script(ctx); err != nil {
		r.logf("run failed: %v", err)
		r.keep = true
		return 2
	}
	rep, err := r.settle(ctx)
	if err != nil {
		r.logf("settling failed: %v", err)
		r.keep = true
		return 2
	}
	var out bytes.Buffer
	rep.Print(&out, []string{"slack", "webhook", "email"})
	r.log.WriteReport(r.work, jsonOut, out.Bytes(), rep)
	if !rep.OK() {
		r.keep = true
		return 1
	}
	return 0
}

func (r *runner) file(name, content string) string { return drive.WriteFile(r.work, name, content) }

func (r *runner) setup(ctx context.Context) (err error) {
	r.logf("work directory %s; building %s", r.work, strings.Join(binaries, ", "))
	if err := drive.Build(ctx, r.root, r.bin, false, binaries...); err != nil {
		return err
	}

	// The independent upstream: the documents' examples, 40 more
	// ActivePlatform accounts (pages of at most 25, whatever is asked), and
	// five more numbers per CAMS space (the two CAMS connections share one
	// AccessKey: together they want more than the 10 queries a second the
	// key is allowed).
	ports := filepath.Join(r.work, "upstream-ports.json")
	up := &proc.Proc{Name: "upstream", Path: r.python, Log: filepath.Join(r.work, "upstream.log"),
		Args: []string{filepath.Join(r.root, "conformance", "upstream", "server.py"), "--ports-file", ports,
			"--ledger", filepath.Join(r.work, "upstream-ledger.jsonl"), "--ap-token", apToken,
			"--access-key", accessKey + ":" + accessSec, "--ap-accounts", "40", "--cams-numbers", "5", "--max-per-page", "25"}}
	up.OnExit = r.supervise(up)
	if err := up.Start(); err != nil {
		return err
	}
	r.procs = append(r.procs, up)
	if err := wait(ctx, time.Minute, func() error {
		b, err := os.ReadFile(ports)
		if err != nil {
			return err
		}
		return json.Unmarshal(b, &r.urls)
	}); err != nil {
		return fmt.Errorf("the upstream did not start (see %s): %w", up.Log, err)
	}
	r.up = conform.NewUpstream(r.urls["control"])
	if err := wait(ctx, 30*time.Second, func() error { return r.up.Health(ctx) }); err != nil {
		return err
	}
	r.logf("upstream: %s", r.urls)

	// One embedded JetStream server (as make run's devstack hosts it): it
	// makes every role's credentials; it provisions as the admin.
	cfg := eventbus.DefaultConfig()
	cfg.DataDir, cfg.Listen, cfg.SyncAlways = filepath.Join(r.work, "nats"), drive.FreeAddr(), false
	if r.bus, err = eventbus.Connect(ctx, cfg); err != nil {
		return err
	}
	if err := r.bus.Provision(ctx, deliverylog.StreamConfig(cfg, 720*time.Hour)); err != nil {
		return err
	}

	// The upstream's personal data (contact fields, custom attributes but
	// the allow-listed Tier) must reach no event, message or log.
	st, err := r.up.State(ctx)
	if err != nil {
		return err
	}
	needles, allowed := conform.PersonalOf(st, allowAttr, conns)
	needles[newOwnerEmail] = "activeplatform/1010 email (as the script changes it)"
	r.pii, r.allowed = conform.NewPersonal(needles), allowed

	if r.rcv, err = receivers.StartAll(); err != nil {
		return err
	}
	r.slack, r.hook, r.smtp = r.rcv.Slack, r.rcv.Webhook, r.rcv.SMTP
	r.slack.Posts.Tap(func(b []byte) { r.pii.Scan("slack messages", b) })
	r.hook.Deliveries.Tap(func(b []byte) { r.pii.Scan("webhook deliveries", b) })
	r.smtp.Messages.Tap(func(b []byte) { r.pii.Scan("emails", b) })
	if err := r.startServices(ctx); err != nil {
		return err
	}
	go drive.Follow(ctx, r.bus.JS, func(m jetstream.Msg) {
		e := drive.ToLedger(m)
		r.pii.Scan("the event stream", m.Data())
		r.mu.Lock()
		r.events = append(r.events, e)
		r.mu.Unlock()
	})
	return r.waitBaseline(ctx)
}

func host(url string) string { return strings.TrimPrefix(url, "http://") }

func (r *runner) pollerConfig() string {
	bss, cams := host(r.urls["bss"]), host(r.urls["cams"])
	// cams-b signs with the older HMAC-SHA1 scheme, which the V3 document
	// says callers may still use: both are held to the upstream's verifier.
	return fmt.Sprintf(`connections:
  - {name: %s, provider: activeplatform, url: "%s", api_token: %s, interval: 1s, jitter: 0.1, full_scan_every: 3, per_page: 50, timeout: 5s, discovery: true}
  - {name: %s, provider: alibaba-bss, endpoint: "%s", protocol: http, access_key_id: %s, access_key_secret: %s, interval: 1s, jitter: 0.1, timeout: 5s, discovery: true}
  - {name: %s, provider: alibaba-cams, endpoint: "%s", protocol: http, access_key_id: %s, access_key_secret: %s, spaces: ["%s", "%s"], interval: 1s, jitter: 0.1, timeout: 5s, discovery: true}
  - {name: %s, provider: alibaba-cams, endpoint: "%s", protocol: http, access_key_id: %s, access_key_secret: %s, legacy_signature: true, spaces: ["%s"], interval: 1s, jitter: 0.1, timeout: 5s, discovery: true}
policy:
  debt_step: "%s"
  degraded_after: 3
pii_allow: ['custom_attributes["%s"]']
`, connAP, r.urls["activeplatform"], apToken, connBSS, bss, accessKey, accessSec,
		connCAMSA, cams, accessKey, accessSec, spaceA1, spaceA2, connCAMSB, cams, accessKey, accessSec, spaceB, debtStep, allowAttr)
}

func (r *runner) env(role eventbus.Role, ops string) []string {
	return []string{"NATS_URL=" + r.bus.ClientURL(), "AW_NATS_NKEY_SEED_FILE=" + r.bus.SeedFile(role), "AW_OPS_LISTEN=" + ops, "AW_LOG_LEVEL=info"}
}

func (r *runner) startServices(ctx context.Context) error {
	route := func(kind, to string) string { return drive.RouteConfig("conf", kind, to) }
	sinkEnv := []string{"AW_SINK_START=all", "AW_SINK_ACK_WAIT=20s", "AW_SINK_BACKOFF_INITIAL=1s", "AW_SINK_BACKOFF_MAX=5s", "AW_SINK_MAX_DELIVER=100"}
	hookAPI := drive.FreeAddr()
	specs := []struct {
		name string
		env  []string
	}{
		{"poller", []string{"AW_POLLER_CONFIG=" + r.file("poller.yaml", r.pollerConfig()), "AW_REPLICA_ID=poller-conformance"}},
		{"slack-notifier", append([]string{"AW_SLACK_TOKEN=" + slackToken, "AW_SLACK_API_URL=" + r.slack.URL(), "AW_SLACK_CONFIG=" + r.file("slack.yaml", route("channel", `"#conformance"`))}, sinkEnv...)},
		{"webhook-dispatcher", []string{"AW_SINK_START=all", "AW_SINK_ACK_WAIT=20s", "AW_WEBHOOK_ADMIN_TOKEN=" + webhookTok, "AW_WEBHOOK_API_LISTEN=" + hookAPI,
			"AW_WEBHOOK_ALLOW_CIDRS=127.0.0.0/8", "AW_WEBHOOK_TIMEOUT=5s", "AW_WEBHOOK_RETRY_SCHEDULE=1s,2s,3s,5s,5s,5s,5s,5s,5s,5s"}},
		{"email-notifier", append([]string{"AW_SMTP_HOST=" + r.smtp.Host(), "AW_SMTP_PORT=" + r.smtp.Port(), "AW_SMTP_TLS=none",
			"AW_EMAIL_CONFIG=" + r.file("email.yaml", route("to", `["finance-ops@conformance.example"]`)), "AW_EMAIL_FROM=accountwatch <alerts@conformance.example>"}, sinkEnv...)},
	}
	var ready []string
	for _, s := range specs {
		ops := drive.FreeAddr()
		p := &proc.Proc{Name: s.name, Path: filepath.Join(r.bin, s.name), Log: filepath.Join(r.work, s.name+".log"),
			Env: append(r.env(eventbus.Role(s.name), ops), s.env...)}
		p.OnExit = r.supervise(p)
		if err := p.Start(); err != nil {
			return err
		}
		r.procs = append(r.procs, p)
		ready = append(ready, "http://"+ops+"/readyz")
	}
	for _, u := range ready {
		if err := wait(ctx, 2*time.Minute, func() error { return drive.HTTPOK(ctx, u, "") }); err != nil {
			return fmt.Errorf("%s: %w", u, err)
		}
	}
	return wait(ctx, time.Minute, func() error {
		return drive.CreateEndpoint(ctx, hookAPI, webhookTok, r.hook.URL(), "conformance receiver")
	})
}

// supervise records a process that exits on its own (a failure of the run).
func (r *runner) supervise(p *proc.Proc) func(bool, error) {
	return func(expected bool, err error) {
		if expected {
			return
		}
		r.mu.Lock()
		r.crashes = append(r.crashes, fmt.Sprintf("%s exited on its own (%v); see %s", p.Name, err, p.Log))
		r.mu.Unlock()
		r.logf("   %s exited on its own (%v)", p.Name, err)
	}
}

// waitBaseline waits until every account of the upstream has a state
// record: from then on every change is an event.
func (r *runner) waitBaseline(ctx context.Context) error {
	st, err := r.up.State(ctx)
	if err != nil {
		return err
	}
	want := len(st.ActivePlatform) + len(st.BSS)
	for _, phones := range st.CAMS {
		want += len(phones)
	}
	bctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := drive.WaitRecords(bctx, r.bus.JS, want, waitEvery); err != nil {
		return err
	}
	r.logf("baseline: %d accounts polled", want)
	return nil
}

// ledger reads the upstream's ledger.
func (r *runner) ledgerRows(ctx context.Context) ([]conform.Row, error) {
	entries, err := r.up.Ledger(ctx)
	if err != nil {
		return nil, err
	}
	step := decimal.RequireFromString(debtStep)
	return conform.Expect(entries, conns, step, r.phaseOf), nil
}

func (r *runner) phaseOf(seq int) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	name := "seed"
	for _, p := range r.phases {
		if seq > p.after {
			name = p.name
		}
	}
	return name
}

func (r *runner) beginPhase(ctx context.Context, name string) error {
	entries, err := r.up.Ledger(ctx)
	if err != nil {
		return err
	}
	last := 0
	if len(entries) > 0 {
		last = entries[len(entries)-1].Seq
	}
	r.mu.Lock()
	r.phases = append(r.phases, phaseMark{after: last, name: name})
	r.mu.Unlock()
	r.logf("── %s", name)
	return nil
}

func (r *runner) snapshot() []ledger.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]ledger.Event(nil), r.events...)
}

// awaitEvents waits until every change of the current phase has its event
// (a change of an earlier phase that never came is reported once, by the
// ledger, and does not hold up every later phase).
func (r *runner) awaitEvents(ctx context.Context) error {
	r.mu.Lock()
	after := 0
	if n := len(r.phases); n > 0 {
		after = r.phases[n-1].after
	}
	r.mu.Unlock()
	var missing []string
	err := wait(ctx, phaseWait, func() error {
		rows, err := r.ledgerRows(ctx)
		if err != nil {
			return err
		}
		events := r.snapshot()
		conform.Settle(rows, events)
		changes := conform.Changes(rows)
		paired := conform.Pair(changes, events)
		missing = missing[:0]
		for _, c := range changes {
			if _, ok := paired[c.Seq]; !ok && c.Seq > after {
				missing = append(missing, c.String())
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("%d events not stored yet", len(missing))
		}
		return nil
	})
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err != nil {
		r.logf("   still missing after %s: %s", phaseWait, strings.Join(missing, "; "))
	}
	return r.awaitBaselined(ctx, after)
}

// awaitBaselined waits until every account added in the phase after seq
// has been read once: a CAMS number is discovered from the listing, which
// does not carry its profile, and its profile becomes the baseline on the
// next read. A change made before that read has no before to be told
// against, so the script changes it only afterwards.
func (r *runner) awaitBaselined(ctx context.Context, after int) error {
	rows, err := r.ledgerRows(ctx)
	if err != nil {
		return err
	}
	kv, err := r.bus.JS.KeyValue(ctx, eventbus.BucketState)
	if err != nil {
		return err
	}
	for _, row := range rows {
		if row.Seq <= after || row.Op != "add" || row.Expected == nil {
			continue
		}
		k := row.Expected.Key
		err := wait(ctx, phaseWait, func() error {
			e, err := kv.Get(ctx, state.Key(event.Provider(k.Provider), k.Instance, k.Account))
			if err != nil {
				return err
			}
			var rec struct {
				Record struct {
					Baseline bool `json:"baseline"`
				} `json:"record"`
			}
			if err := json.Unmarshal(e.Value(), &rec); err != nil {
				return err
			}
			if !rec.Record.Baseline {
				return fmt.Errorf("%s not read yet", k)
			}
			return nil
		})
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			r.logf("   %s: no baseline after %s: %v", k, phaseWait, err)
		}
	}
	return nil
}

func (r *runner) inject(ctx context.Context, ops ...map[string]any) {
	if _, err := r.up.Inject(ctx, ops...); err != nil {
		r.logf("   injection refused: %v", err)
		r.mu.Lock()
		r.crashes = append(r.crashes, fmt.Sprintf("the script's injection was refused (a change not made is not checked): %v", err))
		r.mu.Unlock()
	}
}

func set(provider, account string, fields map[string]any) map[string]any {
	return map[string]any{"op": "set", "provider": provider, "account": account, "fields": fields}
}

func setCAMS(space, number string, fields map[string]any) map[string]any {
	return map[string]any{"op": "set", "provider": "cams", "space": space, "account": number, "fields": fields}
}

func fault(provider, action, kind string, seconds float64) map[string]any {
	return map[string]any{"op": "fault", "provider": provider, "action": action, "kind": kind, "seconds": seconds}
}

// script is the run: phases of changes, each waited for, then faults.
func (r *runner) script(ctx context.Context) error {
	steps := []struct {
		name string
		ops  []map[string]any
	}{
		{"activeplatform changes", []map[string]any{
			set("activeplatform", "431", map[string]any{"status": "active"}), // the document's example account
			set("activeplatform", "1000", map[string]any{"status": "credit_hold"}),
			set("activeplatform", "1001", map[string]any{"status": "active"}),
			set("activeplatform", "1002", map[string]any{"status": "deleted"}),
			set("activeplatform", "1004", map[string]any{"current_debt": "460.00"}),
			set("activeplatform", "1006", map[string]any{"current_debt": "180.00"}), // across its threshold (100.0)
			set("activeplatform", "1014", map[string]any{"current_debt": "42.49"}),  // 10 more: below the step, no event
			set("activeplatform", "1008", map[string]any{"balance": "12.50"}),       // not watched
			set("activeplatform", "1010", map[string]any{"email": newOwnerEmail}),   // personal, not watched
		}},
		{"bss changes", []map[string]any{
			set("bss", "6210322125051645960", map[string]any{"HostingStatus": "TRUSTEESHIP"}), // the document's FREEZE
			set("bss", "1728240534507590", map[string]any{"CreditLimitStatus": "Freeze"}),
			set("bss", "1234567890123456789", map[string]any{"HostingStatus": "FREEZE"}), // from the older spelling Trusteeship
			set("bss", "9007199254740993", map[string]any{"CreditLimitStatus": "TrusteeshipCancel", "IsCertified": true}),
		}},
		{"cams changes", []map[string]any{
			setCAMS(spaceA1, "8613800000", map[string]any{"Description": "Open 9 to 5, closed on Sundays"}),
			setCAMS(spaceA1, "8613800001", map[string]any{"Websites": []string{"https://a.example", "https://b.example"}}),
			setCAMS(spaceA2, "8613900000", map[string]any{"About": "school, now with a canteen"}),
			setCAMS(spaceB, "8613700000", map[string]any{"Vertical": "Education", "Status": "FLAGGED"}),
		}},
		{"accounts added and removed", []map[string]any{
			{"op": "add", "provider": "activeplatform", "account": map[string]any{"id": 5000, "name": "New Co", "status": "active", "current_debt": "0.0"}},
			{"op": "remove", "provider": "activeplatform", "account": "1011"},
			// 19 digits: above 2^53, so a uid read as a float64 would be another uid.
			{"op": "add", "provider": "bss", "account": map[string]any{"uid": "5555000011112222333", "HostingStatus": "TRUSTEESHIP", "CreditLimitStatus": "Thaw"}},
			{"op": "remove", "provider": "bss", "account": "9007199254740993"},
			{"op": "add", "provider": "cams", "space": spaceA1, "number": map[string]any{"PhoneNumber": "8613800009", "VerifiedName": "New line"}},
			{"op": "remove", "provider": "cams", "space": spaceB, "account": "8613700000"},
		}},
		{"second round, two fields at once", []map[string]any{
			set("activeplatform", "431", map[string]any{"status": "credit hold", "current_debt": "124.0"}),
			set("activeplatform", "1000", map[string]any{"status": "administrative hold"}),
			set("activeplatform", "5000", map[string]any{"current_debt": "80.00"}),
			set("activeplatform", "1004", map[string]any{"current_debt": "250.00"}),
			set("bss", "6210322125051645960", map[string]any{"HostingStatus": "FREEZE", "CreditLimitStatus": "Thaw"}),
			set("bss", "5555000011112222333", map[string]any{"CreditLimitStatus": "Freeze"}),
			setCAMS(spaceA1, "8613800001", map[string]any{"Websites": []string{}, "Email": "desk@school.example"}),
			setCAMS(spaceA1, "8613800009", map[string]any{"Description": "a new line's first words"}),
		}},
	}
	for _, s := range steps {
		if err := r.beginPhase(ctx, s.name); err != nil {
			return err
		}
		r.inject(ctx, s.ops...)
		if err := r.awaitEvents(ctx); err != nil {
			return err
		}
	}

	if err := r.beginPhase(ctx, "onboarding"); err != nil {
		return err
	}
	r.onboard(ctx, bssOnboard, 0)
	r.onboard(ctx, bssOnboard, 3) // the same email again: already exists, nothing emitted
	// The upstream creates the account, then answers 500: the retry is
	// answered LOGIN_EMAIL_HAS_BEEN_USED, which the onboarding reconciles.
	r.inject(ctx, map[string]any{"op": "fault", "provider": "bss", "action": "CreateAgAccount", "kind": "create_then_fail", "count": 1})
	r.onboard(ctx, bssOnboard2, 0)
	if err := r.awaitEvents(ctx); err != nil {
		return err
	}

	faults := []struct {
		name    string
		f       map[string]any
		during  []map[string]any
		seconds float64
	}{
		{"activeplatform listing 503", fault("activeplatform", "list", "http_503", 8),
			[]map[string]any{set("activeplatform", "1012", map[string]any{"status": "credit hold"})}, 8},
		{"activeplatform truncated JSON", fault("activeplatform", "*", "malformed", 8),
			[]map[string]any{set("activeplatform", "1013", map[string]any{"current_debt": "500.00"})}, 8},
		{"activeplatform connection reset", fault("activeplatform", "list", "reset", 8), nil, 8},
		{"bss GetCustomerAccountInfo 500", fault("bss", "GetCustomerAccountInfo", "http_500", 8),
			[]map[string]any{set("bss", "1728240534507590", map[string]any{"CreditLimitStatus": "Thaw"})}, 8},
		{"bss throttled (Throttling.User)", fault("bss", "*", "throttle", 6),
			[]map[string]any{set("bss", "1234567890123456789", map[string]any{"CreditLimitStatus": "Freeze"})}, 6},
		{"cams System.LimitControl in a 200 body", fault("cams", "*", "throttle_body", 6),
			[]map[string]any{setCAMS(spaceA2, "8613900000", map[string]any{"About": "throttled, then told"})}, 6},
		{"activeplatform api_token refused (401)", fault("activeplatform", "*", "auth", 8),
			[]map[string]any{set("activeplatform", "1015", map[string]any{"status": "administrative hold"})}, 8},
		{"bss NotAuthorized (400)", fault("bss", "*", "auth", 8),
			[]map[string]any{set("bss", "6210322125051645960", map[string]any{"CreditLimitStatus": "Trusteeship"})}, 8},
		{"cams System.LimitControl (400)", fault("cams", "*", "throttle", 6),
			[]map[string]any{setCAMS(spaceB, "86135200001", map[string]any{"About": "throttled by HTTP 400"})}, 6},
		{"cams Product.Unsubscript (400)", fault("cams", "QueryPhoneBusinessProfile", "unsubscribed", 8),
			[]map[string]any{setCAMS(spaceA2, "86135100000", map[string]any{"Vertical": "Retail"})}, 8},
		{"cams Ram.PermissionDeny", fault("cams", "QueryPhoneBusinessProfile", "auth", 10),
			[]map[string]any{setCAMS(spaceA1, "8613800000", map[string]any{"Address": "Changsha, 2nd floor"})}, 10},
	}
	for _, f := range faults {
		if err := r.beginPhase(ctx, "fault: "+f.name); err != nil {
			return err
		}
		// The change made while the fault is live must be told once the
		// upstream answers again; the fault itself never as a change.
		live := time.Duration(f.seconds * float64(time.Second))
		r.inject(ctx, f.f)
		if len(f.during) > 0 {
			sleep(ctx, 2*time.Second)
			r.inject(ctx, f.during...)
			live -= 2 * time.Second
		}
		sleep(ctx, live)
		if err := r.awaitRecovered(ctx); err != nil {
			return err
		}
		if err := r.awaitEvents(ctx); err != nil {
			return err
		}
	}
	if err := r.beginPhase(ctx, "after the faults"); err != nil {
		return err
	}
	r.inject(ctx,
		set("activeplatform", "1012", map[string]any{"status": "active"}),
		set("bss", "1234567890123456789", map[string]any{"HostingStatus": "TRUSTEESHIP"}),
		setCAMS(spaceB, "86135200000", map[string]any{"Description": "the last change"}),
	)
	return r.awaitEvents(ctx)
}

// awaitRecovered waits until no connection is degraded.
func (r *runner) awaitRecovered(ctx context.Context) error {
	_ = wait(ctx, phaseWait, func() error {
		open := map[ledger.Key]bool{}
		for _, e := range r.snapshot() {
			switch e.Type {
			case "poll.degraded":
				open[e.Key] = true
			case "poll.recovered":
				delete(open, e.Key)
			}
		}
		if len(open) > 0 {
			return fmt.Errorf("%d degraded", len(open))
		}
		return nil
	})
	return nil
}

// onboard runs awctl onboard for email and checks its exit code.
func (r *runner) onboard(ctx context.Context, email string, wantCode int) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(r.bin, "awctl"), "onboard", "--connection", connBSS, "--email", email, "--account-attr", "1", "--label", "source=conformance")
	cmd.Env = append(cmd.Environ(), "NATS_URL="+r.bus.ClientURL(), "AW_NATS_NKEY_SEED_FILE="+r.bus.SeedFile(eventbus.RoleOperator),
		"AW_BSS_ENDPOINT="+host(r.urls["bss"]), "AW_BSS_PROTOCOL=http", "AW_BSS_ACCESS_KEY_ID="+accessKey, "AW_BSS_ACCESS_KEY_SECRET="+accessSec)
	out, err := cmd.CombinedOutput()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		code = -1
	}
	r.logf("   awctl onboard %s: exit %d: %s", email, code, strings.TrimSpace(string(out)))
	if code != wantCode {
		r.mu.Lock()
		r.crashes = append(r.crashes, fmt.Sprintf("awctl onboard --email %s: exit %d, want %d: %s", email, code, wantCode, strings.TrimSpace(string(out))))
		r.mu.Unlock()
	}
}

func (r *runner) settle(ctx context.Context) (*conform.Report, error) {
	r.logf("── settling")
	sinks := func() []ledger.Sink {
		return []ledger.Sink{drive.SinkOf("slack", r.slack.Posts), drive.SinkOf("webhook", r.hook.Deliveries), drive.SinkOf("email", r.smtp.Messages)}
	}
	var events []ledger.Event
	_ = wait(ctx, phaseWait, func() error {
		msgs, err := drive.ReadAll(ctx, r.bus.JS, eventbus.StreamEvents)
		if err != nil {
			return err
		}
		events = events[:0]
		for _, m := range msgs {
			events = append(events, drive.ToLedger(m))
		}
		missing := drive.Outstanding(events, sinks())
		if missing > 0 {
			return fmt.Errorf("%d deliveries outstanding", missing)
		}
		return nil
	})
	// A moment more: a late duplicate delivery must be counted too.
	time.Sleep(3 * time.Second)
	rows, err := r.ledgerRows(ctx)
	if err != nil {
		return nil, err
	}
	conform.Settle(rows, events)
	entries := make([]conform.Entry, len(rows))
	for i, row := range rows {
		entries[i] = row.Entry
	}
	in := ledger.Input{Changes: conform.Changes(rows), Events: events, Sinks: sinks()}
	if in.Verify, err = r.verify(ctx); err != nil {
		return nil, err
	}
	rep := &conform.Report{Rows: rows, Windows: conform.Windows(entries, conns), Events: events, Result: ledger.Compute(in), Tallies: map[string]map[string]int{}}
	for _, s := range in.Sinks {
		rep.Tallies[s.Name] = s.Accepted
		for _, row := range rep.Result.Sinks {
			if row.Name == s.Name && row.Redeliver > 0 {
				rep.Problems = append(rep.Problems, fmt.Sprintf("sink %s accepted %d events more than once (no fault of its receiver was injected)", s.Name, row.Redeliver))
			}
		}
	}
	rep.Problems = append(rep.Problems, conform.CheckDegraded(rep.Windows, events, faultGrace)...)
	rep.Problems = append(rep.Problems, conform.CheckMeaning(rows, conform.Pair(rep.Result.Changes, events), r.allowed)...)
	for _, name := range binaries[:4] {
		if b, err := os.ReadFile(filepath.Join(r.work, name+".log")); err == nil {
			r.pii.Scan(name+" log", b)
		}
	}
	rep.Problems = append(rep.Problems, r.pii.Problems()...)
	if rep.Stats, err = r.up.Stats(ctx); err != nil {
		return nil, err
	}
	rep.Problems = append(rep.Problems, refusals(rep.Stats)...)
	r.mu.Lock()
	rep.Problems = append(rep.Problems, r.crashes...)
	r.mu.Unlock()
	return rep, nil
}

// refusals are the upstream's answers that say a client broke a document:
// a bad signature, a missing required parameter or credential, a replayed
// nonce, a stale timestamp, a request of the wrong shape. Injected faults
// and throttling are not among them.
func refusals(stats map[string]int) []string {
	bad := []string{".sig.bad", ".error.MissingParameter", ".error.SignatureNonceUsed", ".error.InvalidTimeStamp", ".error.IncompleteSignature",
		".error.InvalidVersion", ".error.InvalidAction.NotFound", ".error.InvalidAccessKeyId.NotFound", ".error.InvalidParameter",
		"activeplatform.unauthorized", "activeplatform.list.missing_sorting_reversed"}
	var out []string
	keys := make([]string, 0, len(stats))
	for k := range stats {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		for _, b := range bad {
			if strings.Contains(k, b) && stats[k] > 0 {
				out = append(out, fmt.Sprintf("the upstream refused %d requests: %s", stats[k], k))
			}
		}
	}
	return out
}

// verify runs awctl verify: every chain whole, no sequence missing, every
// head as AW_STATE records it.
func (r *runner) verify(ctx context.Context) (ledger.Verify, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	return drive.Verify(ctx, filepath.Join(r.bin, "awctl"), []string{"NATS_URL=" + r.bus.ClientURL(), "AW_NATS_NKEY_SEED_FILE=" + r.bus.SeedFile(eventbus.RoleOperator)})
}

func (r *runner) teardown() {
	for i := len(r.procs) - 1; i >= 0; i-- {
		r.procs[i].Terminate(20 * time.Second)
	}
	if r.bus != nil {
		r.bus.Close()
	}
	r.rcv.Close()
	if r.keep {
		fmt.Fprintf(os.Stderr, "conformance: logs, the upstream's ledger and the store kept in %s\n", r.work)
		return
	}
	os.RemoveAll(r.work)
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// waitEvery is how often the run polls for a condition.
const waitEvery = 250 * time.Millisecond

// wait polls f until it succeeds or d passed.
func wait(ctx context.Context, d time.Duration, f func() error) error {
	return drive.Within(ctx, d, waitEvery, f)
}
