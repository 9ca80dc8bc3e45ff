package sink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/accountwatch/accountwatch/pkg/deadletter"
	"github.com/accountwatch/accountwatch/pkg/deliverylog"
	"github.com/accountwatch/accountwatch/pkg/eventbus"
	"github.com/accountwatch/accountwatch/pkg/ops"
	"github.com/accountwatch/accountwatch/pkg/roster"
	"github.com/accountwatch/accountwatch/pkg/route"
	"github.com/accountwatch/accountwatch/pkg/silence"
)

// ProcessSettings are the keys every sink's environment has besides its
// own: the NATS connection, the runtime, logging and profiling. A notifier's
// settings embed them.
type ProcessSettings struct {
	eventbus.Config
	Settings
	LogLevel string `envconfig:"LOG_LEVEL" default:"info"`
	Pprof    bool   `envconfig:"PPROF" default:"false"`
}

// Validate checks the connection and the runtime's settings, naming the key at fault.
func (p *ProcessSettings) Validate() error {
	if err := p.Config.Validate(); err != nil {
		return err
	}
	return p.Settings.Validate()
}

// Service is a notifier as Serve runs it: its names and settings, and Setup,
// which builds its sender. Everything else a notifier needs is Serve's.
type Service struct {
	// Sink names the consumers, dead letters and delivery-log records ("slack").
	Sink string
	// Process names the service on NATS and in logs ("slack-notifier").
	Process string
	// Role is the NATS identity the service connects as.
	Role     eventbus.Role
	Settings ProcessSettings
	// OpsListen is where /metrics, /healthz and /readyz are served.
	OpsListen string
	Log       *slog.Logger
	// Fanout runs the runtime in fan-out mode: no routing tree, no silences,
	// no ad-hoc re-drives; Plan.Attach adds the receivers.
	Fanout bool
	// LogFailuresOnly leaves first-attempt successes out of the delivery log.
	LogFailuresOnly bool
	// Adhoc is the kind of destination an ad-hoc re-drive to a routed sink
	// names (a Slack channel, an address); ReceiverBucket, for a fan-out
	// sink, the KV bucket whose keys are its receivers. Both go to the
	// roster, against which re-drives are checked.
	Adhoc          deadletter.Address
	ReceiverBucket string
	// Setup builds the notifier's part once the bus is open. ctx lives as
	// long as the service.
	Setup func(ctx context.Context, env *Env) (*Plan, error)
}

// Env is what Setup gets from Serve.
type Env struct {
	Bus *eventbus.Bus
	// Registry takes the notifier's own metrics beside the runtime's.
	Registry   *prometheus.Registry
	Deliveries *deliverylog.Log
	Log        *slog.Logger
	// OpsAddr is the ops server's bound address.
	OpsAddr string
}

// Plan is a notifier's part: its sender and receivers.
type Plan struct {
	Sender Sender
	// Tree routes events to Receivers (nil in fan-out mode).
	Tree      *route.Tree
	Receivers []Receiver
	// Attach, when set, runs once the runtime consumes, before it reads an
	// event: it may Add receivers (a webhook endpoint each) and start what
	// serves beside the runtime. Events are read once it returns.
	Attach func(ctx context.Context, rt *Runtime) error
	// Close releases the sender's resources after the drain.
	Close func()
	// Attrs are added to the "started" log line.
	Attrs []any
}

// Serve runs a notifier until ctx ends, then drains: it connects to NATS (or
// starts the embedded server), opens the delivery log, serves the ops
// endpoints, follows the silences, builds the sender (Setup), adds the
// ad-hoc re-drive receiver (deadletter.AdhocReceiver: awctl redrive --to
// '#channel' or an address) to a routed notifier's receivers, publishes the
// receivers to the roster, and runs the runtime.
func Serve(ctx context.Context, svc Service) error {
	log := svc.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if svc.Setup == nil {
		return fmt.Errorf("%w: %s has no Setup", ErrConfig, svc.Process)
	}
	bc := svc.Settings.Config
	if bc.Name == "" {
		bc.Name = svc.Process
	}
	bc.Role, bc.Logger = svc.Role, log
	logConfig := deliverylog.StreamConfig(bc, svc.Settings.LogRetention)
	bus, err := eventbus.Open(ctx, bc, logConfig) // the embedded server provisions the delivery log too
	if err != nil {
		return starting(ctx, err)
	}
	defer bus.Close()
	reg := ops.NewRegistry()
	metrics := NewMetrics(reg)
	deliveries, err := deliverylog.Open(ctx, bus.JS, logConfig)
	if err != nil {
		return starting(ctx, err)
	}
	opsSrv, err := ops.Start(ctx, reg, svc.OpsListen, svc.Settings.Pprof, map[string]func(context.Context) error{"nats": bus.Check})
	if err != nil {
		return starting(ctx, err)
	}
	plan, err := svc.Setup(ctx, &Env{Bus: bus, Registry: reg, Deliveries: deliveries, Log: log, OpsAddr: opsSrv.Addr()})
	if err != nil {
		return starting(ctx, err)
	}
	if plan.Close != nil {
		defer plan.Close()
	}
	opts := []Option{WithSettings(svc.Settings.Settings), WithLogger(log), WithMetrics(metrics), WithDeliveryLog(deliveries, svc.LogFailuresOnly)}
	receivers := plan.Receivers
	if svc.Fanout {
		opts = append(opts, WithFanout())
	} else {
		silences, err := silence.Open(ctx, bus.JS)
		if err != nil {
			return starting(ctx, err)
		}
		if err := silences.Follow(ctx); err != nil {
			return starting(ctx, err)
		}
		opts = append(opts, WithSilences(silences))
		receivers = append(slices.Clone(receivers), Receiver{Name: deadletter.AdhocReceiver, RedriveOnly: true})
	}
	rt, err := New(bus.JS, svc.Sink, plan.Tree, receivers, plan.Sender, opts...)
	if err != nil {
		return starting(ctx, err)
	}
	entry := roster.Entry{Sink: svc.Sink, Adhoc: svc.Adhoc, ReceiverBucket: svc.ReceiverBucket}
	for _, r := range plan.Receivers {
		entry.Receivers = append(entry.Receivers, r.Name)
	}
	if err := roster.Publish(ctx, bus, entry); err != nil {
		return starting(ctx, err)
	}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	run := make(chan error, 1)
	go func() { run <- rt.Run(rctx) }()
	if plan.Attach != nil {
		select {
		case <-rt.Ready():
		case err := <-run:
			return err
		}
		if err := plan.Attach(rctx, rt); err != nil {
			cancel()
			return starting(ctx, errors.Join(err, <-run))
		}
	}
	rt.Start()
	log.Info(svc.Process+" started", append([]any{"receivers", len(receivers), "nats", bus.NC.ConnectedUrlRedacted(), "ops", opsSrv.Addr()}, plan.Attrs...)...)
	return <-run
}

// starting is a start-up error, or nil when ctx ended meanwhile: a notifier
// stopped while it starts has taken nothing and has nothing to report.
func starting(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	return err
}
