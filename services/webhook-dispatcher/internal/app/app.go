// Package app wires the webhook dispatcher: settings, JetStream, the
// subscriptions bucket followed into a runtime receiver per active endpoint,
// the sender, the delivery log, the subscriptions API and the ops endpoints.
package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/accountwatch/accountwatch/pkg/deadletter"
	"github.com/accountwatch/accountwatch/pkg/egress"
	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/eventbus"
	"github.com/accountwatch/accountwatch/pkg/listen"
	"github.com/accountwatch/accountwatch/pkg/sink"
	"github.com/accountwatch/accountwatch/services/webhook-dispatcher/internal/api"
	"github.com/accountwatch/accountwatch/services/webhook-dispatcher/internal/deliver"
	"github.com/accountwatch/accountwatch/services/webhook-dispatcher/internal/subscription"
)

// DisabledSubject is where the operator event of a disabled endpoint goes.
const DisabledSubject = "aw.ops.webhook.endpoint.disabled"

// Settings are the dispatcher's environment (AW_ prefix).
type Settings struct {
	sink.ProcessSettings
	AdminToken string `envconfig:"WEBHOOK_ADMIN_TOKEN" secret:"true" desc:"bearer token of the subscriptions API (at least 16 characters)"`
	APIListen  string `envconfig:"WEBHOOK_API_LISTEN" default:"127.0.0.1:8490" desc:"the subscriptions API"`
	// APICert and APIKey serve the API over TLS (PEM files, re-read when renewed).
	APICert string `envconfig:"WEBHOOK_API_TLS_CERT" desc:"serve the API over TLS: certificate (PEM, re-read when renewed)"`
	APIKey  string `envconfig:"WEBHOOK_API_TLS_KEY" desc:"serve the API over TLS: key (PEM)"`
	// Schedule is the waits between attempts, minutes to days; it replaces
	// the runtime's backoff and attempt count, and its own key, so setting
	// one of those too is a start-up error.
	Schedule   string `envconfig:"WEBHOOK_RETRY_SCHEDULE" default:"5s,5m,30m,2h,5h,10h,14h,24h,24h" excludes:"SINK_RETRY_SCHEDULE,SINK_MAX_DELIVER,SINK_BACKOFF_INITIAL,SINK_BACKOFF_MAX" desc:"waits between attempts; excludes AW_SINK_RETRY_SCHEDULE, AW_SINK_MAX_DELIVER and AW_SINK_BACKOFF_*"`
	Origin     string `envconfig:"WEBHOOK_ORIGIN" default:"accountwatch" desc:"WebHook-Request-Origin of the validation handshake"`
	AllowCIDRs string `envconfig:"WEBHOOK_ALLOW_CIDRS" desc:"internal ranges endpoints may reach (comma-separated CIDRs; default none)"`
	HTTPSOnly  bool   `envconfig:"WEBHOOK_HTTPS_ONLY" default:"false" desc:"refuse http:// endpoint URLs"`
	// Timeout bounds one attempt; it is the runtime's send timeout here.
	Timeout     time.Duration `envconfig:"WEBHOOK_TIMEOUT" default:"15s" excludes:"SINK_SEND_TIMEOUT" desc:"one attempt; excludes AW_SINK_SEND_TIMEOUT"`
	MaxResponse int64         `envconfig:"WEBHOOK_MAX_RESPONSE" default:"65536" desc:"bytes of a response read (and the start of it kept)"`
	// ConnsPerHost caps the connections open to one subscriber host.
	ConnsPerHost int           `envconfig:"WEBHOOK_CONNS_PER_HOST" default:"64" desc:"connections open to one subscriber host"`
	DisableAfter time.Duration `envconfig:"WEBHOOK_DISABLE_AFTER" default:"120h" desc:"an endpoint failing this long is disabled (0: never)"`
	SecretGrace  time.Duration `envconfig:"WEBHOOK_SECRET_GRACE" default:"24h" desc:"a rotated-out signing secret keeps signing this long"`
	// DeliveryLog is what the delivery log records: "all" attempts, or only
	// "failures" (failed attempts and the success that ends a run of them).
	DeliveryLog string `envconfig:"WEBHOOK_DELIVERY_LOG" default:"all" desc:"all attempts, or failures (failed attempts and the success ending them)"`
	OpsListen   string `envconfig:"OPS_LISTEN" default:"127.0.0.1:9105" desc:"/metrics, /healthz and /readyz"`
}

// Validate checks the settings, naming the key at fault.
func (s *Settings) Validate() error {
	if s.RetrySchedule != "" && s.RetrySchedule != s.Schedule {
		return fmt.Errorf("AW_SINK_RETRY_SCHEDULE %q and AW_WEBHOOK_RETRY_SCHEDULE %q: the dispatcher's schedule is AW_WEBHOOK_RETRY_SCHEDULE; set only that", s.RetrySchedule, s.Schedule)
	}
	s.RetrySchedule, s.SendTimeout = s.Schedule, s.Timeout
	if err := s.ProcessSettings.Validate(); err != nil {
		return err
	}
	switch {
	case len(s.AdminToken) < 16:
		return errors.New("AW_WEBHOOK_ADMIN_TOKEN: required, at least 16 characters (or AW_WEBHOOK_ADMIN_TOKEN_FILE)")
	case s.Timeout <= 0:
		return fmt.Errorf("AW_WEBHOOK_TIMEOUT: %s (want > 0)", s.Timeout)
	case s.ConnsPerHost < 1 || s.ConnsPerHost > 4096:
		return fmt.Errorf("AW_WEBHOOK_CONNS_PER_HOST: %d (want 1 to 4096)", s.ConnsPerHost)
	case s.MaxResponse < 0:
		return fmt.Errorf("AW_WEBHOOK_MAX_RESPONSE: %d (want >= 0)", s.MaxResponse)
	case s.DisableAfter < 0:
		return fmt.Errorf("AW_WEBHOOK_DISABLE_AFTER: %s (want >= 0; 0 never disables)", s.DisableAfter)
	case s.Origin == "":
		return errors.New("AW_WEBHOOK_ORIGIN: empty")
	case s.DeliveryLog != "all" && s.DeliveryLog != "failures":
		return fmt.Errorf("AW_WEBHOOK_DELIVERY_LOG: %q (want all or failures)", s.DeliveryLog)
	}
	if _, err := egress.New(strings.Split(s.AllowCIDRs, ","), s.HTTPSOnly); err != nil {
		return fmt.Errorf("AW_WEBHOOK_ALLOW_CIDRS: %w", err)
	}
	if err := listen.CheckFiles(s.APICert, s.APIKey); err != nil {
		return fmt.Errorf("AW_WEBHOOK_API_TLS_CERT, AW_WEBHOOK_API_TLS_KEY: %w", err)
	}
	return nil
}

// registry is the endpoints as the bucket says now.
type registry struct {
	mu sync.RWMutex
	m  map[string]*subscription.Endpoint
}

func (r *registry) Endpoint(id string) (*subscription.Endpoint, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	e, ok := r.m[id]
	return e, ok
}

func (r *registry) set(id string, e *subscription.Endpoint) (prev *subscription.Endpoint) {
	r.mu.Lock()
	defer r.mu.Unlock()
	prev = r.m[id]
	if e == nil {
		delete(r.m, id)
	} else {
		r.m[id] = e
	}
	return prev
}

// Dispatcher is a running dispatcher, for tests that need its address.
type Dispatcher struct {
	APIAddr string
	// APIURL is the API's base URL (https:// when it serves TLS).
	APIURL  string
	OpsAddr string
}

// Run runs the dispatcher until ctx ends, then drains. started, if not nil,
// is called with the bound addresses once the API serves.
func Run(ctx context.Context, s Settings, log *slog.Logger, started func(Dispatcher)) error {
	guard, err := egress.New(strings.Split(s.AllowCIDRs, ","), s.HTTPSOnly)
	if err != nil {
		return fmt.Errorf("AW_WEBHOOK_ALLOW_CIDRS: %w", err)
	}
	// Fan-out: one shared consumer reads the stream for every endpoint; an
	// endpoint's own consumer (on its retry queue) works only when it fails.
	return sink.Serve(ctx, sink.Service{
		Sink: deliver.SinkName, Process: "webhook-dispatcher", Role: eventbus.RoleWebhook, Settings: s.ProcessSettings,
		OpsListen: s.OpsListen, Log: log, Fanout: true, LogFailuresOnly: s.DeliveryLog == "failures",
		// Re-drives are checked against the receivers every sink publishes;
		// the dispatcher's are its endpoints.
		ReceiverBucket: eventbus.BucketSubscriptions,
		Setup: func(ctx context.Context, env *sink.Env) (*sink.Plan, error) {
			return setup(ctx, s, guard, env, started)
		},
	})
}

func setup(ctx context.Context, s Settings, guard *egress.Guard, env *sink.Env, started func(Dispatcher)) (*sink.Plan, error) {
	log, bus := env.Log, env.Bus
	store, err := subscription.Open(ctx, bus.JS)
	if err != nil {
		return nil, err
	}
	letters, err := deadletter.Open(ctx, bus.JS)
	if err != nil {
		return nil, err
	}
	disabled := prometheus.NewCounter(prometheus.CounterOpts{Name: "aw_webhook_endpoints_disabled_total", Help: "Endpoints this replica disabled (410 Gone, or failing too long)."})
	endpoints := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "aw_webhook_endpoints", Help: "Endpoints by status."}, []string{"status"})
	env.Registry.MustRegister(disabled, endpoints)
	for _, st := range []string{subscription.StatusActive, subscription.StatusPaused, subscription.StatusDisabled} {
		endpoints.WithLabelValues(st).Set(0) // every status has a series from the start
	}

	client := guard.Client(s.Timeout, s.ConnsPerHost)
	eps := &registry{m: map[string]*subscription.Endpoint{}}
	sender := deliver.New(eps, store, deliver.Options{
		Transport: client.Transport, Timeout: s.Timeout, Guard: guard, Log: env.Deliveries, MaxResponse: s.MaxResponse, DisableAfter: s.DisableAfter, PerHost: s.ConnsPerHost,
		UserAgent: "accountwatch-webhooks/1", Logger: log,
		OnDisable: func(id, reason string) {
			disabled.Inc()
			b, _ := json.Marshal(map[string]any{"endpoint": id, "reason": reason, "at": time.Now().UTC()})
			if err := bus.NC.Publish(DisabledSubject, b); err != nil {
				log.Warn("operator event not published", "err", err)
			}
		},
	})
	var hs *listen.Server
	attach := func(ctx context.Context, rt *sink.Runtime) error {
		// Every replica follows the bucket: an active endpoint is delivered
		// to, a paused or disabled one is parked (its events wait in its
		// retry queue), a deleted one is forgotten.
		var applyMu sync.Mutex
		apply := func(id string, e *subscription.Endpoint) {
			applyMu.Lock()
			defer applyMu.Unlock()
			prev := eps.set(id, e)
			switch {
			case e == nil:
				rt.Remove(id)
				log.Info("endpoint removed", "endpoint", id)
			case e.Status != subscription.StatusActive:
				rt.Park(id)
				log.Info("endpoint parked", "endpoint", id, "status", e.Status)
			case prev == nil || prev.Status != subscription.StatusActive || prev.RateLimit != e.RateLimit || !sender.SameLane(prev.URL, e.URL):
				// (A URL on another host moves the fast path to that host's lane.)
				// A limit stored before the API bounded it is raised to the
				// bound: a slower one would hold a delete for minutes.
				limit := e.RateLimit
				if limit > 0 {
					limit = max(limit, subscription.MinRateLimit)
				}
				rc := sink.Receiver{Name: id, RateLimit: limit, Burst: int(math.Ceil(limit)), Filter: func(ev *event.Event) bool {
					cur, ok := eps.Endpoint(id)
					return ok && cur.Accepts(ev)
				}}
				if err := rt.Add(rc); err != nil && ctx.Err() == nil {
					log.Error("endpoint not started", "endpoint", id, "err", err)
					return
				}
				log.Info("endpoint delivering", "endpoint", id)
			}
			// The gauge moves by the change: counting every endpoint on each
			// change made loading ten thousand of them quadratic.
			if prev != nil {
				endpoints.WithLabelValues(prev.Status).Dec()
			}
			if e != nil {
				endpoints.WithLabelValues(e.Status).Inc()
			}
		}
		for _, st := range []string{subscription.StatusActive, subscription.StatusPaused, subscription.StatusDisabled} {
			endpoints.WithLabelValues(st).Set(0)
		}
		// Watch returns after the replay: every stored endpoint is in before
		// the runtime reads an event (those read first would be settled for
		// none of them).
		if err := store.Watch(ctx, apply); err != nil {
			return err
		}
		apiSrv := &api.Server{
			Token: s.AdminToken, Store: store, Guard: guard, Sender: sender, Log: env.Deliveries, DeadLetter: letters, Consumers: rt,
			Handshake: api.CEHandshake{Client: client, Origin: s.Origin, Rate: 120}, Logger: log, Grace: s.SecretGrace, Now: time.Now,
		}
		var err error
		if hs, err = listen.Serve(s.APIListen, apiSrv.Handler(), s.APICert, s.APIKey); err != nil {
			return fmt.Errorf("AW_WEBHOOK_API_LISTEN: %w", err)
		}
		log.Info("webhook API", "api", hs.URL(), "endpoints", len(rt.Running()), "schedule", s.RetrySchedule, "https_only", s.HTTPSOnly)
		if started != nil {
			started(Dispatcher{APIAddr: hs.Addr(), APIURL: hs.URL(), OpsAddr: env.OpsAddr})
		}
		return nil
	}
	return &sink.Plan{Sender: sender, Attach: attach, Close: func() {
		if hs == nil {
			return
		}
		sctx, c := context.WithTimeout(context.Background(), 5*time.Second)
		defer c()
		_ = hs.Shutdown(sctx)
	}}, nil
}
