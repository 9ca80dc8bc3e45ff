// Package app wires the poller: configuration, JetStream, the watch list,
// leases over the connections, one runner per leased connection, and the ops
// endpoints.
package app

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/accountwatch/accountwatch/pkg/eventbus"
	"github.com/accountwatch/accountwatch/pkg/lease"
	"github.com/accountwatch/accountwatch/pkg/ops"
	"github.com/accountwatch/accountwatch/pkg/state"
	"github.com/accountwatch/accountwatch/pkg/watch"
	"github.com/accountwatch/accountwatch/services/poller/internal/config"
	"github.com/accountwatch/accountwatch/services/poller/internal/engine"
	_ "github.com/accountwatch/accountwatch/services/poller/internal/provider" // every provider's adapter
	"github.com/accountwatch/accountwatch/services/poller/internal/source"
)

// Settings are the poller's environment (AW_ prefix).
type Settings struct {
	eventbus.Config
	// ConfigFile is the YAML file of connections, configured watch entries and policy.
	ConfigFile string `envconfig:"POLLER_CONFIG" required:"true" desc:"the YAML file of connections, configured watch entries, detection policy and PII allow-list"`
	OpsListen  string `envconfig:"OPS_LISTEN" default:"127.0.0.1:9102" desc:"/metrics, /healthz and /readyz"`
	LogLevel   string `envconfig:"LOG_LEVEL" default:"info" desc:"debug, info, warn or error (JSON logs, secrets redacted)"`
	// ReplicaID names this replica in leases (default: host name and pid).
	ReplicaID string `envconfig:"REPLICA_ID" desc:"this replica's name in leases (default: host name and pid)"`
	// Workers read and commit accounts concurrently; the commits of those
	// finishing together share the round trips to the server (pkg/state).
	Workers int `envconfig:"POLL_WORKERS" default:"64" desc:"accounts read and committed at once"`
	// LeaseRenew is how often leases are renewed (at most a third of their 15 s TTL).
	LeaseRenew time.Duration `envconfig:"LEASE_RENEW" default:"4s" desc:"how often leases are renewed (at most a third of their 15s TTL)"`
	// Pprof serves /debug/pprof on the ops address.
	Pprof bool `envconfig:"PPROF" default:"false" desc:"serve /debug/pprof/ on the ops address"`
}

// Validate checks the settings.
func (s *Settings) Validate() error {
	if err := s.Config.Validate(); err != nil {
		return err
	}
	if s.Workers < 1 || s.Workers > 1024 {
		return fmt.Errorf("AW_POLL_WORKERS: %d (want 1 to 1024)", s.Workers)
	}
	if s.LeaseRenew <= 0 || s.LeaseRenew > eventbus.LeaseTTL/3 {
		return fmt.Errorf("AW_LEASE_RENEW: %s (want > 0 and at most %s)", s.LeaseRenew, eventbus.LeaseTTL/3)
	}
	return nil
}

// Run runs the poller until ctx ends.
func Run(ctx context.Context, s Settings, log *slog.Logger) error {
	file, err := config.Load(s.ConfigFile)
	if err != nil {
		return err
	}
	policy, _ := file.DetectPolicy()
	if s.ReplicaID == "" {
		host, _ := os.Hostname()
		s.ReplicaID = host + "-" + strconv.Itoa(os.Getpid())
	}
	if s.Name == "" {
		s.Name = "poller " + s.ReplicaID
	}
	s.Role, s.Logger = eventbus.RolePoller, log
	bus, err := eventbus.Open(ctx, s.Config)
	if err != nil {
		return err
	}
	defer bus.Close()
	startCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	st, err := state.Open(startCtx, bus.JS)
	if err != nil {
		return err
	}
	ws, err := watch.Open(startCtx, bus.JS)
	if err != nil {
		return err
	}
	// The connections are announced beside the watch list: awctl checks
	// entries against them, the auditor's dead-man watches them.
	conns := make([]watch.Connection, 0, len(file.Connections))
	for _, c := range file.Connections {
		conns = append(conns, watch.Connection{Name: c.Name, Provider: c.Provider, Interval: c.Interval.Duration, Spaces: config.Spaces(c.Provider), Labels: c.Labels})
	}
	if err := ws.Announce(startCtx, conns); err != nil {
		return err
	}
	for _, w := range file.Watch {
		c := file.Connection(w.Connection)
		if err := ws.Put(startCtx, watch.Entry{Provider: c.Provider, Instance: c.Name, AccountID: w.Account, Space: w.Space, Labels: w.Labels, Source: watch.SourceConfig}); err != nil {
			return fmt.Errorf("watch[%s/%s]: %w", w.Connection, w.Account, err)
		}
	}
	live, err := ws.Follow(ctx, log)
	if err != nil {
		return err
	}
	leases, err := bus.JS.KeyValue(startCtx, eventbus.BucketLeases)
	if err != nil {
		return err
	}

	reg := ops.NewRegistry()
	reg.MustRegister(bus.Collector())
	metrics := engine.NewMetrics(reg)
	reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "aw_poller_commit_groups_total", Help: "Groups of state commits sent together (see aw_poller_commits_total)."},
			func() float64 { g, _ := st.Grouping(); return float64(g) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "aw_poller_commits_total", Help: "State commits (a record, and the events of a change); commits per group is this over aw_poller_commit_groups_total."},
			func() float64 { _, c := st.Grouping(); return float64(c) }))
	publish := ops.NewOutcomes("storing changes and their events")
	deps := engine.Deps{State: st, Watch: ws, Live: live, Policy: policy, Allow: file.AllowList(), Metrics: metrics, Log: log, Workers: s.Workers, Publish: publish}
	runners := map[string]*engine.Runner{}
	names := make([]string, 0, len(file.Connections))
	for _, c := range file.Connections {
		src, err := source.New(c, deps.Allow, time.Now)
		if err != nil {
			return fmt.Errorf("connection %s: %w", c.Name, err)
		}
		runners[c.Name] = engine.NewRunner(deps, c, src)
		names = append(names, c.Name)
	}

	type run struct {
		cancel context.CancelFunc
		done   chan struct{}
		since  time.Time
	}
	var (
		mu      sync.Mutex
		running = map[string]run{}
	)
	// cycles is unready while a connection this replica holds completed no
	// cycle within twice its interval (or its last cycle's duration, when
	// longer), counted from the later of its last cycle and the lease.
	cycles := func(context.Context) error {
		mu.Lock()
		defer mu.Unlock()
		var late []string
		for name, r := range running {
			last, took := runners[name].Cycled()
			ref := r.since
			if last.After(ref) {
				ref = last
			}
			limit := 2 * max(runners[name].Interval(), took)
			if d := time.Since(ref); d > limit {
				what := "no cycle yet"
				if !last.IsZero() {
					what = "last cycle completed " + last.UTC().Format(time.RFC3339)
				}
				late = append(late, fmt.Sprintf("%s: %s, %s ago (more than %s)", name, what, d.Round(time.Second), limit))
			}
		}
		if len(late) > 0 {
			sort.Strings(late)
			return fmt.Errorf("connections without a recent cycle: %s", strings.Join(late, "; "))
		}
		return nil
	}
	opsSrv, err := ops.Start(ctx, reg, s.OpsListen, s.Pprof, map[string]func(context.Context) error{
		"nats": bus.Check, "jetstream": bus.CheckStream(eventbus.StreamEvents), "publish": publish.Check, "cycles": cycles})
	if err != nil {
		return err
	}
	lm := lease.New(leases, s.ReplicaID, names, s.LeaseRenew, log)
	lm.OnAcquire = func(name string) {
		rctx, cancel := context.WithCancel(ctx)
		r := run{cancel: cancel, done: make(chan struct{}), since: time.Now()}
		mu.Lock()
		running[name] = r
		mu.Unlock()
		metrics.Owned.WithLabelValues(name).Set(1)
		go func() {
			defer close(r.done)
			runConnection(rctx, log, name, runners[name].Run)
		}()
	}
	lm.OnLose = func(name string) {
		mu.Lock()
		r, ok := running[name]
		delete(running, name)
		mu.Unlock()
		metrics.Owned.WithLabelValues(name).Set(0)
		if ok {
			r.cancel()
			select { // the next owner starts only after this one stopped
			case <-r.done:
			case <-time.After(20 * time.Second):
				log.Warn("connection runner did not stop in time", "instance", name)
			}
		}
	}
	log.Info("poller started", "replica", s.ReplicaID, "connections", len(names), "watched", live.Count(""), "nats", bus.NC.ConnectedUrlRedacted(), "ops", opsSrv.Addr())
	err = lm.Run(ctx) // stops every runner, then releases its lease, when ctx ends
	log.Info("poller drained")
	return err
}

// restartAfter is the first pause before a failed runner starts again.
var restartAfter = time.Second

// runConnection runs a leased connection's runner until ctx ends. A runner
// that fails (its state unreadable while the cluster elects a leader: "JetStream
// system temporarily unavailable") starts again after a pause, doubling up to
// 30 s: left dead while its lease is held and renewed, the connection would
// go unpolled for as long as this replica lives.
func runConnection(ctx context.Context, log *slog.Logger, name string, run func(context.Context) error) {
	wait := restartAfter
	for {
		err := run(ctx)
		if ctx.Err() != nil || err == nil {
			return
		}
		log.Error("connection runner failed; starting it again", "instance", name, "err", err, "in", wait.String())
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, 30*time.Second)
	}
}
