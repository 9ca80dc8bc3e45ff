// Package ops holds what every service exposes to operators: a JSON logger that
// never writes a secret, and the HTTP endpoints /metrics, /healthz and /readyz.
package ops

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"
	"sync"
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

// AddCheck registers a readiness check; /readyz answers 503 while any fails.
func (s *Server) AddCheck(name string, check func(context.Context) error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.checks[name] = check
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
	var failed []string
	for name, c := range checks {
		if err := c(ctx); err != nil {
			failed = append(failed, name+": "+redact.String(err.Error()))
		}
	}
	if len(failed) > 0 {
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, strings.Join(failed, "\n")+"\n")
		return
	}
	io.WriteString(w, "ready\n")
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
