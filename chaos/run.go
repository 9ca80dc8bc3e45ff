package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"gopkg.in/yaml.v3"

	"github.com/accountwatch/accountwatch/chaos/internal/cluster"
	"github.com/accountwatch/accountwatch/chaos/internal/drive"
	"github.com/accountwatch/accountwatch/chaos/internal/ledger"
	"github.com/accountwatch/accountwatch/chaos/internal/proc"
	"github.com/accountwatch/accountwatch/chaos/internal/receivers"
	"github.com/accountwatch/accountwatch/pkg/checkpoint"
	"github.com/accountwatch/accountwatch/pkg/eventbus"
)

// Services the run starts, in order; the poller runs twice.
var serviceBinaries = []string{"upstream-sim", "poller", "slack-notifier", "webhook-dispatcher", "email-notifier", "auditor", "awctl"}

// killable are the services the run SIGKILLs. upstream-sim is not among
// them: it stands for the providers, whose state a restart would reset to
// the seed (a change no script made).
var killable = []string{"poller-a", "poller-b", "slack-notifier", "webhook-dispatcher", "email-notifier", "auditor"}

const (
	webhookToken = "chaos-webhook-admin-token"
	auditorToken = "chaos-auditor-token-0123"
	slackToken   = "xoxb-chaos-0000"
)

type service struct {
	*proc.Proc
	ops     string // host:port of /readyz
	crashed int    // exits on its own (run.crashMu)
}

type run struct {
	form    form
	root    string
	keep    bool
	work    string
	bin     string
	started time.Time

	creds   string // credentials directory (awctl credentials)
	netns   *cluster.Netns
	netSkip string // why there is no partition step
	cl      *cluster.Cluster

	nc *nats.Conn
	js jetstream.JetStream

	simAddr string
	sim     *drive.Sim
	world   *drive.World
	driver  *drive.Driver
	prober  *drive.Prober

	rcv     *receivers.Set
	slack   *receivers.Slack
	webhook *receivers.Webhook
	smtp    *receivers.SMTP
	svcs    map[string]*service
	hookAPI string

	crashMu sync.Mutex
	crashes []string

	faults   []ledger.Fault
	baseline []time.Duration
	state    ledger.StateCheck
	loads    []string

	only, logLevel string
	noNetns        bool

	log    drive.Log
	loadMu sync.Mutex // loads
}

func newRun(f form, root string, keep bool) (*run, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(abs, "deploy", "nats", "nats-1.conf")); err != nil {
		return nil, fmt.Errorf("-root %s: no deploy/nats/nats-1.conf there", root)
	}
	return &run{form: f, root: abs, keep: keep, svcs: map[string]*service{}}, nil
}

// logf prints a progress line with the time since the start.
func (r *run) logf(format string, a ...any) { r.log.Printf(format, a...) }

func (r *run) main(ctx context.Context, jsonOut string) (code int) {
	r.started = time.Now()
	r.log = drive.Log{Prefix: "chaos", Started: r.started}
	var err error
	if r.work, err = os.MkdirTemp("", "aw-chaos-"); err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		return 2
	}
	r.bin = filepath.Join(r.work, "bin")
	defer r.teardown()
	if err := r.setup(ctx); err != nil {
		r.logf("setup failed: %v", err)
		return 2
	}
	res, err := r.exercise(ctx)
	if err != nil {
		r.logf("run failed: %v", err)
		r.keep = true
		return 2
	}
	var table bytes.Buffer
	res.Print(&table)
	r.log.WriteReport(r.work, jsonOut, table.Bytes(), res)
	if !res.OK() {
		r.keep = true
		return 1
	}
	return 0
}

func (r *run) setup(ctx context.Context) error {
	r.logf("form %s; work directory %s", r.form.Name, r.work)
	race := ""
	if r.form.Race {
		race = " with the race detector"
	}
	r.logf("building nats-server (%s, pinned in chaos/go.mod) and the services%s", cluster.Module, race)
	if err := drive.Build(ctx, r.root, r.bin, r.form.Race, serviceBinaries...); err != nil {
		return err
	}
	// The server is built without the race detector: it is not under test,
	// and a slower server would only make the cluster's timing less like
	// production's.
	if _, err := cluster.Build(ctx, filepath.Join(r.root, "chaos"), r.bin); err != nil {
		return err
	}
	r.logf("built in %s", time.Since(r.started).Round(100*time.Millisecond))

	// Every role's nkey and the auditor's signing key, as a deployment makes
	// them; the nodes get the public half (auth/auth.conf, which the deploy
	// files include), each service only its own seed.
	r.creds = filepath.Join(r.work, "credentials")
	if out, err := exec.CommandContext(ctx, filepath.Join(r.bin, "awctl"), "credentials", "--dir", r.creds).CombinedOutput(); err != nil {
		return fmt.Errorf("awctl credentials: %v: %s", err, out)
	}
	opts := cluster.Options{Bin: filepath.Join(r.bin, "nats-server"), DeployDir: filepath.Join(r.root, "deploy", "nats"), WorkDir: r.work,
		Include: map[string]string{"auth/" + eventbus.AuthConfName: filepath.Join(r.creds, eventbus.PublicDir, eventbus.AuthConfName)}}
	// Under CI=true the partition must run wherever it can: .ci/run installs
	// iproute2, so a missing ip is a failure, and so is a namespace that
	// cannot be made by a process that has the capabilities for it. A
	// process without them (not root, or a container that took them away)
	// cannot partition a node at all: that step is skipped, and said so.
	ci := os.Getenv("CI") == "true"
	capable, why := cluster.Capability()
	switch {
	case r.noNetns:
		r.netSkip = "-no-netns"
	case !cluster.HaveIP():
		r.netSkip = "the ip tool (Debian package iproute2) is not installed"
		if ci {
			return fmt.Errorf("CI=true: %s (.ci/run installs it)", r.netSkip)
		}
	case !capable:
		r.netSkip = why
	default:
		n, err := cluster.NewNetns(os.Getpid())
		if err != nil {
			r.netSkip = "making a network namespace failed: " + err.Error()
			if ci {
				return fmt.Errorf("CI=true, and this process has CAP_NET_ADMIN and CAP_SYS_ADMIN: %s", r.netSkip)
			}
		} else {
			r.netns, opts.Net = n, n
		}
	}
	if r.netSkip != "" {
		r.logf("NOTE: no network partition step: %s", r.netSkip)
	}
	if r.form.DiskFull > 0 {
		if os.Geteuid() != 0 {
			r.logf("NOTE: no disk-full step: mounting a tmpfs needs root")
		} else {
			opts.SmallStore, opts.SmallStoreBytes = "nats-2", 256<<20
		}
	}
	var err error
	if r.cl, err = cluster.New(opts); err != nil {
		return err
	}
	r.logf("starting the cluster: %s", r.cl.URLs())
	startCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := r.cl.Start(startCtx); err != nil {
		return err
	}
	// The run's own connection notices a dead node within seconds, so that
	// what it reports is the services' behaviour, not its own.
	admin, err := nats.NkeyOptionFromSeed(r.seed(eventbus.RoleAdmin))
	if err != nil {
		return err
	}
	r.nc, err = nats.Connect(r.cl.URLs(), admin, nats.Name("chaos harness"), nats.MaxReconnects(-1), nats.ReconnectWait(250*time.Millisecond),
		nats.PingInterval(2*time.Second), nats.MaxPingsOutstanding(2), nats.RetryOnFailedConnect(true),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { r.logf("   (harness connection: %v)", err) }))
	if err != nil {
		return err
	}
	if r.js, err = jetstream.New(r.nc); err != nil {
		return err
	}
	// The admin's step: every stream and bucket at replicas 3.
	if out, err := r.awctl(startCtx, eventbus.RoleAdmin, "provision"); err != nil {
		return fmt.Errorf("awctl provision: %v: %s", err, out)
	}
	if err := retry(startCtx, func() error { return eventbus.EnsureStream(startCtx, r.js, drive.ProbeStreamConfig(3)) }); err != nil {
		return err
	}

	// Receivers, the simulator, then the services.
	if r.rcv, err = receivers.StartAll(); err != nil {
		return err
	}
	r.slack, r.webhook, r.smtp = r.rcv.Slack, r.rcv.Webhook, r.rcv.SMTP
	r.world = drive.NewWorld(r.form.AP, r.form.BSS, r.form.CAMS)
	if err := r.startServices(startCtx); err != nil {
		return err
	}
	r.driver = drive.NewDriver(r.sim, r.world)
	r.prober = drive.NewProber(r.js)

	// The webhook endpoint, then the baseline: every account polled once.
	if err := retry(startCtx, func() error {
		return drive.CreateEndpoint(startCtx, r.hookAPI, webhookToken, r.webhook.URL(), "chaos receiver")
	}); err != nil {
		return err
	}
	if err := drive.WaitRecords(startCtx, r.js, len(r.world.Accounts), retryEvery); err != nil {
		return err
	}
	r.logf("baseline: %d accounts polled", len(r.world.Accounts))
	return nil
}

// retryEvery is how often the run polls for a condition.
const retryEvery = 500 * time.Millisecond

// retry polls f until it succeeds (drive.Retry at the run's pace).
func retry(ctx context.Context, f func() error) error { return drive.Retry(ctx, retryEvery, f) }

func (r *run) writeFile(name, content string) string { return drive.WriteFile(r.work, name, content) }

// env is what every accountwatch service gets: the cluster, replicas 3,
// its role's nkey.
func (r *run) env(role eventbus.Role, opsAddr string) []string {
	return []string{"NATS_URL=" + r.cl.URLs(), "AW_STREAM_REPLICAS=3", "AW_NATS_NKEY_SEED_FILE=" + r.seed(role),
		"AW_OPS_LISTEN=" + opsAddr, "AW_LOG_LEVEL=" + r.logLevel}
}

// seed is a role's nkey seed file.
func (r *run) seed(role eventbus.Role) string {
	return filepath.Join(r.creds, string(role), eventbus.SeedFileName)
}

// awctl runs the admin CLI as role (the operator's awctl, or the admin's).
func (r *run) awctl(ctx context.Context, role eventbus.Role, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(r.bin, "awctl"), args...)
	cmd.Env = append(cmd.Environ(), "NATS_URL="+r.cl.URLs(), "AW_STREAM_REPLICAS=3", "AW_NATS_NKEY_SEED_FILE="+r.seed(role))
	return cmd.CombinedOutput()
}

func (r *run) startServices(ctx context.Context) error {
	seed, err := yaml.Marshal(r.world.Seed())
	if err != nil {
		return err
	}
	r.simAddr = drive.FreeAddr()
	r.sim = drive.NewSim("http://" + r.simAddr)
	simProc := &proc.Proc{Name: "upstream-sim", Path: filepath.Join(r.bin, "upstream-sim"), Log: filepath.Join(r.work, "upstream-sim.log"),
		Args: []string{"--listen", r.simAddr, "--seed", r.writeFile("seed.yaml", string(seed)), "--log-level", "warn"}}
	r.svcs["upstream-sim"] = &service{Proc: simProc}
	if err := simProc.Start(); err != nil {
		return err
	}
	if err := retry(ctx, func() error { return r.sim.Ready(ctx) }); err != nil {
		return fmt.Errorf("upstream-sim: %w", err)
	}

	pollerCfg := r.writeFile("poller.yaml", r.world.PollerConfig(r.simAddr))
	slackCfg := r.writeFile("slack.yaml", drive.RouteConfig("chaos", "channel", `"#chaos"`))
	emailCfg := r.writeFile("email.yaml", drive.RouteConfig("chaos", "to", `["finance-ops@chaos.example"]`))
	// Sinks retry quickly and long: a fault must never exhaust an event's
	// attempts (nothing may be dead-lettered for a fault of the cluster).
	// (The dispatcher's retry schedule decides its attempts and waits.)
	sinkEnv := []string{"AW_SINK_START=all", "AW_SINK_ACK_WAIT=20s"}
	backoffEnv := append([]string{"AW_SINK_BACKOFF_INITIAL=1s", "AW_SINK_BACKOFF_MAX=10s", "AW_SINK_MAX_DELIVER=100"}, sinkEnv...)
	r.hookAPI = drive.FreeAddr()
	specs := []struct {
		name, bin string
		env       []string
	}{
		{"poller-a", "poller", []string{"AW_POLLER_CONFIG=" + pollerCfg, "AW_REPLICA_ID=poller-a"}},
		{"poller-b", "poller", []string{"AW_POLLER_CONFIG=" + pollerCfg, "AW_REPLICA_ID=poller-b"}},
		{"slack-notifier", "slack-notifier", append([]string{"AW_SLACK_TOKEN=" + slackToken, "AW_SLACK_API_URL=" + r.slack.URL(), "AW_SLACK_CONFIG=" + slackCfg}, backoffEnv...)},
		{"webhook-dispatcher", "webhook-dispatcher", append([]string{"AW_WEBHOOK_ADMIN_TOKEN=" + webhookToken, "AW_WEBHOOK_API_LISTEN=" + r.hookAPI,
			"AW_WEBHOOK_ALLOW_CIDRS=127.0.0.0/8", "AW_WEBHOOK_TIMEOUT=2s",
			"AW_WEBHOOK_RETRY_SCHEDULE=1s,2s,3s,5s,5s,5s,5s,5s,5s,5s,5s,5s,5s,5s,5s,5s,5s,5s,5s,5s,5s,5s,5s,5s,5s,5s,5s,5s,5s,5s,5s,5s,5s,5s,5s,5s,5s,5s,5s,5s"}, sinkEnv...)},
		{"email-notifier", "email-notifier", append([]string{"AW_SMTP_HOST=" + r.smtp.Host(), "AW_SMTP_PORT=" + r.smtp.Port(), "AW_SMTP_TLS=none",
			"AW_EMAIL_CONFIG=" + emailCfg, "AW_EMAIL_FROM=accountwatch <alerts@chaos.example>"}, backoffEnv...)},
		// The auditor signs a checkpoint of the audit log every 10 s, which
		// awctl verify then checks the stream against.
		{"auditor", "auditor", []string{"AW_AUDITOR_TOKEN=" + auditorToken, "AW_AUDITOR_LISTEN=" + drive.FreeAddr(),
			"AW_CHECKPOINT_KEY_FILE=" + checkpoint.KeyFile(r.creds), "AW_CHECKPOINT_INTERVAL=10s"}},
	}
	for _, s := range specs {
		ops := drive.FreeAddr()
		if s.name == "auditor" {
			r.svcs["auditor-api"] = &service{ops: strings.TrimPrefix(s.env[1], "AW_AUDITOR_LISTEN=")}
		}
		svc := &service{ops: ops, Proc: &proc.Proc{Name: s.name, Path: filepath.Join(r.bin, s.bin), Log: filepath.Join(r.work, s.name+".log"),
			Env: append(r.env(eventbus.Role(s.bin), ops), s.env...)}}
		svc.OnExit = r.supervise(svc)
		r.svcs[s.name] = svc
		if err := svc.Start(); err != nil {
			return err
		}
	}
	for _, name := range killable {
		if err := r.waitReady(ctx, name); err != nil {
			return err
		}
	}
	r.logf("services ready: %s", strings.Join(killable, ", "))
	return nil
}

// supervise restarts a service that exited on its own, as its supervisor
// (docker compose, Kubernetes) would, and records the exit: a service that
// stops by itself fails the run even though it came back.
func (r *run) supervise(s *service) func(bool, error) {
	return func(expected bool, err error) {
		if expected {
			return
		}
		r.crashMu.Lock()
		r.crashes = append(r.crashes, fmt.Sprintf("%s exited on its own (%v) at %.1fs; last lines in %s", s.Name, err, time.Since(r.started).Seconds(), s.Log))
		s.crashed++
		r.crashMu.Unlock()
		r.logf("   %s exited on its own (%v): restarting it", s.Name, err)
		go func() {
			time.Sleep(time.Second)
			if err := s.Start(); err != nil {
				r.logf("   restarting %s: %v", s.Name, err)
			}
		}()
	}
}

// waitReady waits for a service's /readyz.
func (r *run) waitReady(ctx context.Context, name string) error {
	s := r.svcs[name]
	return retry(ctx, func() error {
		r.crashMu.Lock()
		crashed := s.crashed
		r.crashMu.Unlock()
		if crashed >= 3 {
			// A service that cannot start is not going to: stop here.
			return drive.Stop(fmt.Errorf("%s exited %d times on its own (see %s)", name, crashed, s.Log))
		}
		return drive.HTTPOK(ctx, "http://"+s.ops+"/readyz", "")
	})
}

func (r *run) teardown() {
	for _, name := range append(append([]string{}, killable...), "upstream-sim") {
		if s := r.svcs[name]; s != nil && s.Proc != nil {
			s.Terminate(20 * time.Second)
		}
	}
	if r.nc != nil {
		r.nc.Close()
	}
	if r.cl != nil {
		r.cl.Close()
	}
	if r.netns != nil {
		r.netns.Close()
	}
	r.rcv.Close()
	if r.keep {
		fmt.Fprintf(os.Stderr, "chaos: logs and stores kept in %s\n", r.work)
		return
	}
	os.RemoveAll(r.work)
}

// loadavg samples the machine's load, for the report.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
