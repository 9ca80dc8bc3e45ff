// Package app wires the auditor: JetStream, the standing index, the delivery
// log and dead letters, the console and API server, and the ops endpoints.
package app

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/accountwatch/accountwatch/pkg/audit"
	"github.com/accountwatch/accountwatch/pkg/checkpoint"
	"github.com/accountwatch/accountwatch/pkg/deadletter"
	"github.com/accountwatch/accountwatch/pkg/deliverylog"
	"github.com/accountwatch/accountwatch/pkg/eventbus"
	"github.com/accountwatch/accountwatch/pkg/listen"
	"github.com/accountwatch/accountwatch/pkg/ops"
	"github.com/accountwatch/accountwatch/pkg/roster"
	"github.com/accountwatch/accountwatch/pkg/standing"
	"github.com/accountwatch/accountwatch/pkg/state"
	"github.com/accountwatch/accountwatch/pkg/watch"
	"github.com/accountwatch/accountwatch/services/auditor/internal/deadman"
	"github.com/accountwatch/accountwatch/services/auditor/internal/web"
)

// Settings are the auditor's environment (AW_ prefix).
type Settings struct {
	eventbus.Config
	// Token signs in to the console and authorises the API.
	Token  string `envconfig:"AUDITOR_TOKEN" secret:"true" desc:"signs in to the console and authorises the API (at least 16 characters)"`
	Listen string `envconfig:"AUDITOR_LISTEN" default:"127.0.0.1:8491" desc:"the console and API"`
	// TLSCert and TLSKey serve the console and API over HTTPS (PEM files,
	// re-read when renewed).
	TLSCert string `envconfig:"AUDITOR_TLS_CERT" desc:"serve the console over HTTPS: certificate (PEM, re-read when renewed)"`
	TLSKey  string `envconfig:"AUDITOR_TLS_KEY" desc:"serve the console over HTTPS: key (PEM)"`
	// TrustedProxies are the addresses (CIDRs) of a TLS-terminating proxy in
	// front: its X-Forwarded-Proto: https makes the session cookie Secure.
	TrustedProxies string        `envconfig:"AUDITOR_TRUSTED_PROXIES" desc:"CIDRs of a TLS-terminating proxy whose X-Forwarded-Proto: https is believed"`
	LogRetention   time.Duration `envconfig:"DELIVERY_LOG_RETENTION" default:"720h" desc:"how long the delivery log keeps records"`
	OpsListen      string        `envconfig:"OPS_LISTEN" default:"127.0.0.1:9106" desc:"/metrics, /healthz and /readyz"`
	LogLevel       string        `envconfig:"LOG_LEVEL" default:"info" desc:"debug, info, warn or error (JSON logs, secrets redacted)"`
	// CheckpointKeyFile is the Ed25519 signing key (PKCS#8 PEM, `awctl
	// checkpoint keygen`) of the audit log's checkpoints; only the auditor
	// holds it. Empty: no checkpoints are signed.
	CheckpointKeyFile  string        `envconfig:"CHECKPOINT_KEY_FILE" desc:"Ed25519 signing key of the audit log's checkpoints (empty: none signed)"`
	CheckpointInterval time.Duration `envconfig:"CHECKPOINT_INTERVAL" default:"15m" desc:"how often a checkpoint is signed"`
	// CheckpointPublicKeyFiles are other signers' keys the console trusts
	// (comma-separated), beside this auditor's own.
	CheckpointPublicKeyFiles string `envconfig:"CHECKPOINT_PUBLIC_KEY_FILE" desc:"other signers' public keys the console trusts (comma-separated)"`
	Pprof                    bool   `envconfig:"PPROF" default:"false" desc:"serve /debug/pprof/ on the ops address"`
	// The dead-man (internal/deadman): a connection is stalled when no
	// cycle completed within StallIntervals of its interval, or no replica
	// held its lease for StallLeaseGrace.
	StallIntervals  int           `envconfig:"STALL_INTERVALS" default:"3" desc:"poll.stalled when no cycle of a connection completed within this many of its intervals (or of its last cycle's duration, when longer)"`
	StallLeaseGrace time.Duration `envconfig:"STALL_LEASE_GRACE" default:"1m" desc:"poll.stalled when no poller replica held a connection's lease this long (a restart, a failover)"`
	StallCheck      time.Duration `envconfig:"STALL_CHECK_EVERY" default:"10s" desc:"how often the dead-man checks every connection (0: no dead-man)"`
}

// Validate checks the settings, naming the key at fault.
func (s *Settings) Validate() error {
	if err := s.Config.Validate(); err != nil {
		return err
	}
	if len(s.Token) < 16 {
		return errors.New("AW_AUDITOR_TOKEN: required, at least 16 characters (or AW_AUDITOR_TOKEN_FILE)")
	}
	if s.LogRetention <= 0 {
		return fmt.Errorf("AW_DELIVERY_LOG_RETENTION: %s (want > 0)", s.LogRetention)
	}
	if s.StallIntervals < 1 {
		return fmt.Errorf("AW_STALL_INTERVALS: %d (want >= 1)", s.StallIntervals)
	}
	if s.StallLeaseGrace < time.Second {
		return fmt.Errorf("AW_STALL_LEASE_GRACE: %s (want >= 1s)", s.StallLeaseGrace)
	}
	if s.StallCheck < 0 || s.StallCheck > 0 && s.StallCheck < 100*time.Millisecond {
		return fmt.Errorf("AW_STALL_CHECK_EVERY: %s (want 0 or at least 100ms)", s.StallCheck)
	}
	if s.CheckpointKeyFile != "" && s.CheckpointInterval < time.Second {
		return fmt.Errorf("AW_CHECKPOINT_INTERVAL: %s (want at least 1s)", s.CheckpointInterval)
	}
	if err := listen.CheckFiles(s.TLSCert, s.TLSKey); err != nil {
		return fmt.Errorf("AW_AUDITOR_TLS_CERT, AW_AUDITOR_TLS_KEY: %w", err)
	}
	if _, err := web.ParseTrustedProxies(s.TrustedProxies); err != nil {
		return fmt.Errorf("AW_AUDITOR_TRUSTED_PROXIES: %w", err)
	}
	return nil
}

// Run serves until ctx ends; started, if not nil, is told the console's address.
func Run(ctx context.Context, s Settings, log *slog.Logger, started func(addr string)) error {
	if s.Name == "" {
		s.Name = "auditor"
	}
	s.Role, s.Logger = eventbus.RoleAuditor, log
	bus, err := eventbus.Open(ctx, s.Config, deliverylog.StreamConfig(s.Config, s.LogRetention))
	if err != nil {
		return err
	}
	defer bus.Close()
	startCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	index, err := standing.Follow(ctx, bus.JS)
	if err != nil {
		return err
	}
	dlog, err := deliverylog.Open(startCtx, bus.JS, deliverylog.StreamConfig(s.Config, s.LogRetention))
	if err != nil {
		return err
	}
	receivers, err := roster.Open(startCtx, bus)
	if err != nil {
		return err
	}
	letters, err := deadletter.Open(startCtx, bus.JS, deadletter.WithRoster(receivers))
	if err != nil {
		return err
	}
	proxies, err := web.ParseTrustedProxies(s.TrustedProxies)
	if err != nil {
		return fmt.Errorf("AW_AUDITOR_TRUSTED_PROXIES: %w", err)
	}
	signer, trusted, err := checkpoints(s, bus, log)
	if err != nil {
		return err
	}
	var dm *deadman.Watcher
	if s.StallCheck > 0 {
		if dm, err = deadmanOf(startCtx, s, bus, index, log); err != nil {
			return err
		}
	}
	srv := &web.Server{Pollers: dm, Token: s.Token, JS: bus.JS, Index: index, Log: dlog, DeadLetter: letters, Roster: receivers, TrustedProxies: proxies, Logger: log,
		VerifyOptions: audit.Options{Stream: eventbus.StreamEvents, State: true, Stored: true, Trusted: trusted, Heads: true}}
	if err := srv.Init(); err != nil {
		return err
	}
	hs, err := listen.Serve(s.Listen, srv.Handler(), s.TLSCert, s.TLSKey)
	if err != nil {
		return fmt.Errorf("AW_AUDITOR_LISTEN: %w", err)
	}
	reg := ops.NewRegistry()
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "aw_auditor_checkpoint_last_seq", Help: "Last event stream sequence the newest checkpoint this auditor signed covers (0: none signed)."},
			func() float64 {
				if signer != nil {
					if l := signer.Latest(); l.Signed != nil {
						return float64(l.Checkpoint().LastSeq)
					}
				}
				return 0
			}),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "aw_auditor_checkpoint_failures_total", Help: "Checkpoint rounds that could not sign or store."},
			func() float64 {
				if signer == nil {
					return 0
				}
				return float64(signer.Failures())
			}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "aw_auditor_checkpoint_signing", Help: "1 when this auditor signs checkpoints (AW_CHECKPOINT_KEY_FILE)."},
			func() float64 {
				if signer == nil {
					return 0
				}
				return 1
			}),
		index.Collector(), bus.Collector(),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "aw_auditor_dead_letters", Help: "Dead letters waiting in AW_DLQ, of every sink (-1: the server did not answer)."},
			func() float64 {
				ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
				defer cancel()
				st, err := bus.JS.Stream(ctx, eventbus.StreamDeadLetter)
				if err != nil {
					return -1
				}
				info, err := st.Info(ctx)
				if err != nil {
					return -1
				}
				return float64(info.State.Msgs)
			}))
	if signer != nil {
		go signer.Run(ctx)
	}
	checks := map[string]func(context.Context) error{"nats": bus.Check, "jetstream": bus.CheckStream(eventbus.StreamEvents)}
	if dm != nil {
		dm.Register(reg)
		checks["deadman"] = dm.Ready
		go dm.Run(ctx)
	}
	opsSrv, err := ops.Start(ctx, reg, s.OpsListen, s.Pprof, checks)
	if err != nil {
		return err
	}
	log.Info("auditor started", "console", hs.URL(), "accounts", index.Len(), "ops", opsSrv.Addr(), "nats", bus.NC.ConnectedUrlRedacted())
	if started != nil {
		started(hs.Addr())
	}
	<-ctx.Done()
	sctx, c := context.WithTimeout(context.Background(), 5*time.Second)
	defer c()
	return hs.Shutdown(sctx)
}

// deadmanOf builds the dead-man over the pollers' announcements, progress
// and leases.
func deadmanOf(ctx context.Context, s Settings, bus *eventbus.Bus, index *standing.Index, log *slog.Logger) (*deadman.Watcher, error) {
	ws, err := watch.Open(ctx, bus.JS)
	if err != nil {
		return nil, err
	}
	leases, err := bus.JS.KeyValue(ctx, eventbus.BucketLeases)
	if err != nil {
		return nil, fmt.Errorf("leases bucket: %w", err)
	}
	st, err := state.Open(ctx, bus.JS)
	if err != nil {
		return nil, err
	}
	return &deadman.Watcher{Watch: ws, Leases: leases, State: st, Intervals: s.StallIntervals, LeaseGrace: s.StallLeaseGrace, Every: s.StallCheck, Log: log,
		Degraded: index.Degraded}, nil
}

// checkpoints is the signer, if the auditor has a key, and the keys the
// console trusts: its own and AW_CHECKPOINT_PUBLIC_KEY_FILE's.
func checkpoints(s Settings, bus *eventbus.Bus, log *slog.Logger) (*audit.Checkpointer, []ed25519.PublicKey, error) {
	var trusted []ed25519.PublicKey
	for _, f := range strings.Split(s.CheckpointPublicKeyFiles, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		k, err := checkpoint.LoadPublicKey(f)
		if err != nil {
			return nil, nil, fmt.Errorf("AW_CHECKPOINT_PUBLIC_KEY_FILE: %w", err)
		}
		trusted = append(trusted, k)
	}
	if s.CheckpointKeyFile == "" {
		log.Warn("no AW_CHECKPOINT_KEY_FILE: the auditor signs no checkpoints of the audit log")
		return nil, trusted, nil
	}
	key, err := checkpoint.LoadPrivateKey(s.CheckpointKeyFile)
	if err != nil {
		return nil, nil, fmt.Errorf("AW_CHECKPOINT_KEY_FILE: %w", err)
	}
	pub := key.Public().(ed25519.PublicKey)
	log.Info("signing checkpoints", "every", s.CheckpointInterval.String(), "key", checkpoint.Fingerprint(pub))
	return &audit.Checkpointer{JS: bus.JS, Key: key, Interval: s.CheckpointInterval, Log: log}, append(trusted, pub), nil
}
