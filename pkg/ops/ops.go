// Package ops holds what every service exposes to operators: a JSON logger that
// never writes a secret, and the HTTP endpoints /metrics, /healthz and /readyz.
package ops

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/accountwatch/accountwatch/pkg/redact"
)

// NewLogger is a JSON slog logger at level ("debug", "info", "warn", "error")
// that masks attributes under secret-looking keys and secrets inside strings
// and errors (an api_token in a URL, a password in a NATS URL).
func NewLogger(w io.Writer, level, service string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("AW_LOG_LEVEL: %q (want debug, info, warn or error)", level)
	}
	h := slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l, ReplaceAttr: redactAttr})
	return slog.New(h).With("service", service), nil
}

func redactAttr(_ []string, a slog.Attr) slog.Attr {
	if redact.SecretKey(a.Key) {
		return slog.String(a.Key, redact.Mask)
	}
	switch a.Value.Kind() {
	case slog.KindString:
		return slog.String(a.Key, redact.String(a.Value.String()))
	case slog.KindAny:
		if err, ok := a.Value.Any().(error); ok {
			return slog.String(a.Key, redact.String(err.Error()))
		}
		if s, ok := a.Value.Any().(fmt.Stringer); ok {
			return slog.String(a.Key, redact.String(s.String()))
		}
	}
	return a
}

// NewRegistry is a Prometheus registry with the Go and process collectors.
func NewRegistry() *prometheus.Registry {
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return r
}

// Server serves /metrics, /healthz and /readyz, plus any handlers a service adds.
type Server struct {
	Mux *http.ServeMux

	mu     sync.Mutex
	checks map[string]func(context.Context) error
	srv    *http.Server
	ln     net.Listener
}

// NewServer builds the ops endpoints over reg.
func NewServer(reg *prometheus.Registry) *Server {
	s := &Server{Mux: http.NewServeMux(), checks: map[string]func(context.Context) error{}}
	s.Mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	// Liveness: the process serves HTTP. Nothing else is checked here, so
	// that a NATS outage restarts nothing (readiness says it).
	s.Mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	s.Mux.HandleFunc("GET /readyz", s.ready)
	return s
}

// EnablePprof serves net/http/pprof under /debug/pprof/ (opt-in: it exposes
// internals, so services gate it behind AW_PPROF).
func (s *Server) EnablePprof() {
	s.Mux.HandleFunc("/debug/pprof/", pprof.Index)
	s.Mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	s.Mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	s.Mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	s.Mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
}

// AddCheck registers a readiness check; /readyz answers 503 while any
// fails, with a JSON body naming each failing check and its reason.
func (s *Server) AddCheck(name string, check func(context.Context) error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.checks[name] = check
}

// Readiness is /readyz's answer: "ready", or "unready" with the reason of
// every failing check; checks lists every check's state ("ok" or its
// reason), so that an operator sees at once what is wrong and what is not.
type Readiness struct {
	Status  string            `json:"status"`
	Failing map[string]string `json:"failing,omitempty"`
	Checks  map[string]string `json:"checks"`
}

func (s *Server) ready(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	s.mu.Lock()
	checks := make(map[string]func(context.Context) error, len(s.checks))
	for k, v := range s.checks {
		checks[k] = v
	}
	s.mu.Unlock()
	res := Readiness{Status: "ready", Checks: make(map[string]string, len(checks))}
	for name, c := range checks {
		if err := c(ctx); err != nil {
			if res.Failing == nil {
				res.Failing = map[string]string{}
			}
			res.Failing[name] = redact.String(err.Error())
			res.Checks[name] = res.Failing[name]
			continue
		}
		res.Checks[name] = "ok"
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if len(res.Failing) > 0 {
		res.Status = "unready"
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(res)
}

// Outcomes follows an operation a service cannot work without (publishing
// events, storing dead letters) for readiness: its check fails while the
// last attempt failed, naming since when and the last error, and passes
// again at the first success. Observe is cheap: it is on hot paths.
type Outcomes struct {
	what string
	// bad is set while failing: a success costs one atomic load then.
	bad atomic.Bool
	mu  sync.Mutex
	// failing counts the failures since the last success, since the first of them.
	failing int
	since   time.Time
	last    error
}

// NewOutcomes follows what ("publishing events").
func NewOutcomes(what string) *Outcomes { return &Outcomes{what: what} }

// Observe records one attempt's outcome.
func (o *Outcomes) Observe(err error) {
	if err == nil && !o.bad.Load() {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if err == nil {
		o.failing, o.last = 0, nil
		o.bad.Store(false)
		return
	}
	if o.failing == 0 {
		o.since = time.Now()
	}
	o.failing++
	o.last = err
	o.bad.Store(true)
}

// Check is the readiness check.
func (o *Outcomes) Check(context.Context) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.failing == 0 {
		return nil
	}
	return fmt.Errorf("%s failing since %s (%d attempts in a row): %v", o.what, o.since.UTC().Format(time.RFC3339), o.failing, o.last)
}

// Listen binds addr ("127.0.0.1:0" picks a port); Addr then tells where.
func (s *Server) Listen(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("ops listen %s: %w", addr, err)
	}
	s.ln = ln
	s.srv = &http.Server{Handler: s.Mux, ReadHeaderTimeout: 10 * time.Second}
	return nil
}

// Addr is the bound address.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Serve serves until ctx ends, then shuts down gracefully.
func (s *Server) Serve(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(s.ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.srv.Shutdown(sctx); err != nil {
			return err
		}
		if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	}
}

// Start builds the ops endpoints over reg with the given readiness checks,
// binds addr, and serves until ctx ends; pprof adds /debug/pprof.
func Start(ctx context.Context, reg *prometheus.Registry, addr string, pprof bool, checks map[string]func(context.Context) error) (*Server, error) {
	s := NewServer(reg)
	for name, c := range checks {
		s.AddCheck(name, c)
	}
	if pprof {
		s.EnablePprof()
	}
	if err := s.Listen(addr); err != nil {
		return nil, err
	}
	go s.Serve(ctx)
	return s, nil
}
