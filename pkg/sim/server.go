package sim

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Server is the simulator's HTTP API: the four upstream APIs plus /admin.
type Server struct {
	State  *State
	Faults *Faults

	log      *slog.Logger
	mux      *http.ServeMux
	limiter  *limiters
	nonces   sync.Map
	adminTok string
	clock    func() time.Time
	vary     *variation // nil: the documented shapes

	// stateFile keeps the state across runs (WithStateFile).
	stateFile string
	resumed   bool
	saveMu    sync.Mutex

	statsMu sync.Mutex
	stats   map[string]int
	pollLog map[string][]time.Time // per account, with WithPollLog
}

// WithPollLog records when each account was read (PollTimes), for scheduling tests.
func WithPollLog() Option { return func(s *Server) { s.pollLog = map[string][]time.Time{} } }

// logPoll notes a read of one account ("ap/1000123", "bss/<uid>", "cams/<number>").
func (s *Server) logPoll(key string) {
	if s.pollLog == nil {
		return
	}
	s.statsMu.Lock()
	s.pollLog[key] = append(s.pollLog[key], time.Now())
	s.statsMu.Unlock()
}

// PollTimes returns when an account was read (WithPollLog only).
func (s *Server) PollTimes(key string) []time.Time {
	s.statsMu.Lock()
	defer s.statsMu.Unlock()
	return append([]time.Time(nil), s.pollLog[key]...)
}

// Option configures a Server.
type Option func(*Server)

// WithLogger logs requests that fail (never a credential).
func WithLogger(l *slog.Logger) Option { return func(s *Server) { s.log = l } }

// WithAdminToken protects /admin with a bearer token.
func WithAdminToken(tok string) Option { return func(s *Server) { s.adminTok = tok } }

// WithClock replaces time.Now (updated_at stamps, signature dates).
func WithClock(now func() time.Time) Option {
	return func(s *Server) { s.clock = now }
}

// New builds a simulator over a seed.
func New(seed *Seed, opts ...Option) (*Server, error) {
	s := &Server{Faults: NewFaults(), log: slog.New(slog.DiscardHandler), mux: http.NewServeMux(), stats: map[string]int{}, clock: time.Now}
	for _, o := range opts {
		o(s)
	}
	st, err := NewState(seed, s.clock)
	if err != nil {
		return nil, err
	}
	s.State = st
	if s.stateFile != "" {
		if err := s.resume(); err != nil {
			return nil, err
		}
		st.onChange = s.save
		s.save() // the file exists from the first run on, in its current shape
	}
	s.limiter = newLimiters(seed.Alibaba.RateLimits)
	s.mux.HandleFunc("GET /api/vendor/v1/accounts/{file}", s.apGet)
	s.mux.HandleFunc("GET /api/vendor/v1/accounts.json", s.apList)
	s.mux.HandleFunc("/{$}", s.alibaba)
	s.routesAdmin()
	return s, nil
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

func (s *Server) count(endpoint string) {
	s.statsMu.Lock()
	s.stats[endpoint]++
	s.statsMu.Unlock()
}

// Stats returns request counts per endpoint ("ap.get", "bss.GetCustomerAccountInfo", ...).
func (s *Server) Stats() map[string]int {
	s.statsMu.Lock()
	defer s.statsMu.Unlock()
	out := make(map[string]int, len(s.stats))
	for k, v := range s.stats {
		out[k] = v
	}
	return out
}

// Listen serves on addr ("127.0.0.1:0" picks a port) until ctx ends, and returns
// the base URL. Tests embed the simulator this way.
func (s *Server) Listen(ctx context.Context, addr string) (string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("upstream-sim listen %s: %w", addr, err)
	}
	srv := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	return "http://" + ln.Addr().String(), nil
}

func requestID() string {
	var b [16]byte
	rand.Read(b[:])
	h := strings.ToUpper(hex.EncodeToString(b[:]))
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}
