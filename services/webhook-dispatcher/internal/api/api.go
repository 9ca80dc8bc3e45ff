// Package api is the subscriptions API: endpoints created, listed, read,
// updated, paused, resumed, deleted; secrets rotated; test events sent;
// delivery attempts and dead letters queried and re-driven. JSON over HTTP,
// authenticated by the admin bearer token.
package api

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/accountwatch/accountwatch/pkg/config"
	"github.com/accountwatch/accountwatch/pkg/deadletter"
	"github.com/accountwatch/accountwatch/pkg/deliverylog"
	"github.com/accountwatch/accountwatch/pkg/egress"
	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/services/webhook-dispatcher/internal/deliver"
	"github.com/accountwatch/accountwatch/services/webhook-dispatcher/internal/subscription"
)

// maxBody bounds a request body: an endpoint at every limit of
// subscription.Validate fits.
const maxBody = 256 << 10

// maxLimit bounds the limit= of a query.
const maxLimit = 10000

// Handshaker runs the CloudEvents webhook validation handshake against a URL.
type Handshaker interface {
	Handshake(ctx context.Context, url string) error
}

// Consumers removes a deleted endpoint's consumers.
type Consumers interface {
	DeleteConsumers(ctx context.Context, name string) error
}

// Server is the API.
type Server struct {
	Token      string
	Store      *subscription.Store
	Guard      *egress.Guard
	Handshake  Handshaker
	Sender     *deliver.Sender
	Log        *deliverylog.Log
	DeadLetter *deadletter.Store
	Consumers  Consumers
	Logger     *slog.Logger
	// Grace is how long a rotated-out secret stays valid by default.
	Grace time.Duration
	Now   func() time.Time
}

// Handler is the API's routes behind the token check.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/endpoints", s.create)
	mux.HandleFunc("GET /v1/endpoints", s.list)
	mux.HandleFunc("GET /v1/endpoints/{id}", s.get)
	mux.HandleFunc("PATCH /v1/endpoints/{id}", s.update)
	mux.HandleFunc("DELETE /v1/endpoints/{id}", s.delete)
	mux.HandleFunc("POST /v1/endpoints/{id}/pause", s.setStatus(subscription.StatusPaused))
	mux.HandleFunc("POST /v1/endpoints/{id}/resume", s.setStatus(subscription.StatusActive))
	mux.HandleFunc("POST /v1/endpoints/{id}/rotate-secret", s.rotate)
	mux.HandleFunc("GET /v1/endpoints/{id}/secret", s.secret)
	mux.HandleFunc("POST /v1/endpoints/{id}/test", s.test)
	mux.HandleFunc("GET /v1/endpoints/{id}/attempts", s.attempts)
	mux.HandleFunc("GET /v1/events/{eventid}/attempts", s.eventAttempts)
	mux.HandleFunc("GET /v1/endpoints/{id}/dead-letters", s.deadLetters)
	mux.HandleFunc("POST /v1/endpoints/{id}/redrive", s.redrive)
	return s.auth(mux)
}

func (s *Server) auth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(s.Token)) != 1 {
			writeErr(w, http.StatusUnauthorized, errors.New("missing or wrong bearer token"))
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		next.ServeHTTP(w, r)
	})
}

type apiError struct {
	Error string `json:"error"`
}

func writeErr(w http.ResponseWriter, code int, err error) {
	writeJSON(w, code, apiError{Error: err.Error()})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// fail maps a domain error onto a status.
func (s *Server) fail(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, subscription.ErrNotFound), errors.Is(err, deadletter.ErrNotFound):
		writeErr(w, http.StatusNotFound, err)
	case errors.Is(err, subscription.ErrInvalid), errors.Is(err, egress.ErrRefused):
		writeErr(w, http.StatusBadRequest, err)
	case errors.Is(err, errTooLarge):
		writeErr(w, http.StatusRequestEntityTooLarge, err)
	case errors.Is(err, subscription.ErrConflict):
		writeErr(w, http.StatusConflict, err)
	case errors.Is(err, ErrHandshake):
		writeErr(w, http.StatusUnprocessableEntity, err)
	default:
		s.Logger.Error("api", "err", err)
		writeErr(w, http.StatusInternalServerError, errors.New("internal error (see the dispatcher's log)"))
	}
}

var errTooLarge = fmt.Errorf("body: larger than %d bytes", maxBody)

// decode reads a body of exactly one JSON object into v: unknown fields,
// a second value and trailing bytes are refused.
func decode(r *http.Request, v any) error {
	err := decodeJSON(r.Body, v)
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return errTooLarge
	}
	return err
}

func decodeJSON(body io.Reader, v any) error {
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return err
		}
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("%w: body: empty (want a JSON object)", subscription.ErrInvalid)
		}
		return fmt.Errorf("%w: body: %v", subscription.ErrInvalid, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return err
		}
		return fmt.Errorf("%w: body: more than one JSON value (or trailing bytes)", subscription.ErrInvalid)
	}
	return nil
}

// view is an endpoint as the API shows it: secrets are never listed, only
// how many are valid.
type view struct {
	subscription.Endpoint
	Secrets      any `json:"secrets,omitempty"`
	ValidSecrets int `json:"valid_secrets"`
}

func (s *Server) show(e subscription.Endpoint) view {
	return view{Endpoint: e, ValidSecrets: len(e.ValidSecrets(s.Now()))}
}

// input is what a client sends to create or update an endpoint.
type input struct {
	URL         *string                `json:"url"`
	Description *string                `json:"description"`
	Types       *[]string              `json:"types"`
	Filters     *[]subscription.Filter `json:"filters"`
	Headers     *map[string]string     `json:"headers"`
	ContentMode *string                `json:"content_mode"`
	RateLimit   *float64               `json:"rate_limit"`
	// SkipHandshake creates the endpoint without the CloudEvents validation
	// handshake (receivers that do not implement it).
	SkipHandshake bool `json:"skip_handshake"`
}

func (in *input) apply(e *subscription.Endpoint) {
	if in.URL != nil {
		e.URL = *in.URL
	}
	if in.Description != nil {
		e.Description = *in.Description
	}
	if in.Types != nil {
		e.Types = *in.Types
	}
	if in.Filters != nil {
		e.Filters = *in.Filters
	}
	if in.Headers != nil {
		e.Headers = *in.Headers
	}
	if in.ContentMode != nil {
		e.ContentMode = *in.ContentMode
	}
	if in.RateLimit != nil {
		e.RateLimit = *in.RateLimit
	}
}

func (s *Server) checkURL(ctx context.Context, url string, skip bool) error {
	if err := s.Guard.CheckURL(url); err != nil {
		return fmt.Errorf("url: %w", err)
	}
	if skip {
		return nil
	}
	if err := s.Handshake.Handshake(ctx, url); err != nil {
		return fmt.Errorf("url: %w", err)
	}
	return nil
}

func (s *Server) create(w http.ResponseWriter, r *http.Request) {
	var in input
	if err := decode(r, &in); err != nil {
		s.fail(w, err)
		return
	}
	var e subscription.Endpoint
	in.apply(&e)
	if err := e.Validate(); err != nil {
		s.fail(w, err)
		return
	}
	if err := s.checkURL(r.Context(), e.URL, in.SkipHandshake); err != nil {
		s.fail(w, err)
		return
	}
	created, err := s.Store.Create(r.Context(), e)
	if err != nil {
		s.fail(w, err)
		return
	}
	s.Logger.Info("endpoint created", "endpoint", created.ID)
	writeJSON(w, http.StatusCreated, struct {
		view
		Secret string `json:"secret"`
	}{s.show(created), created.Secrets[0].Value})
}

func (s *Server) list(w http.ResponseWriter, r *http.Request) {
	eps, err := s.Store.List(r.Context())
	if err != nil {
		s.fail(w, err)
		return
	}
	out := make([]view, len(eps))
	for i, e := range eps {
		out[i] = s.show(e)
	}
	writeJSON(w, http.StatusOK, map[string]any{"endpoints": out})
}

func (s *Server) get(w http.ResponseWriter, r *http.Request) {
	e, _, err := s.Store.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, s.show(e))
}

func (s *Server) update(w http.ResponseWriter, r *http.Request) {
	var in input
	if err := decode(r, &in); err != nil {
		s.fail(w, err)
		return
	}
	id := r.PathValue("id")
	if in.URL != nil {
		cur, _, err := s.Store.Get(r.Context(), id)
		if err != nil {
			s.fail(w, err)
			return
		}
		if *in.URL != cur.URL {
			if err := s.checkURL(r.Context(), *in.URL, in.SkipHandshake); err != nil {
				s.fail(w, err)
				return
			}
		}
	}
	e, err := s.Store.Update(r.Context(), id, func(e *subscription.Endpoint) error {
		in.apply(e)
		return e.Validate()
	})
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, s.show(e))
}

func (s *Server) delete(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := s.Store.Delete(r.Context(), id); err != nil {
		s.fail(w, err)
		return
	}
	if err := s.Consumers.DeleteConsumers(r.Context(), id); err != nil {
		s.Logger.Warn("endpoint deleted; its consumers were not", "endpoint", id, "err", err)
	}
	s.Logger.Info("endpoint deleted", "endpoint", id)
	w.WriteHeader(http.StatusNoContent)
}

// setStatus pauses or resumes; resuming also re-enables a disabled endpoint
// (after its owner fixed it) and forgets its failures.
func (s *Server) setStatus(status string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		e, err := s.Store.Update(r.Context(), r.PathValue("id"), func(e *subscription.Endpoint) error {
			e.Status = status
			if status == subscription.StatusActive {
				e.DisabledReason, e.DisabledAt, e.FailingSince = "", nil, nil
			}
			return nil
		})
		if err != nil {
			s.fail(w, err)
			return
		}
		writeJSON(w, http.StatusOK, s.show(e))
	}
}

func (s *Server) rotate(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Grace string `json:"grace"`
	}
	if r.ContentLength != 0 {
		if err := decode(r, &in); err != nil {
			s.fail(w, err)
			return
		}
	}
	grace := s.Grace
	if in.Grace != "" {
		d, err := time.ParseDuration(in.Grace)
		if err != nil || d < 0 || d > 30*24*time.Hour {
			s.fail(w, fmt.Errorf("%w: grace: %q (a duration up to 720h)", subscription.ErrInvalid, in.Grace))
			return
		}
		grace = d
	}
	now := s.Now().UTC()
	fresh := subscription.NewSecret()
	e, err := s.Store.Update(r.Context(), r.PathValue("id"), func(e *subscription.Endpoint) error {
		until := now.Add(grace)
		kept := []subscription.Secret{{Value: fresh, CreatedAt: now}}
		for _, old := range e.Secrets {
			if old.ExpiresAt == nil {
				old.ExpiresAt = &until
			}
			if now.Before(*old.ExpiresAt) {
				kept = append(kept, old)
			}
		}
		e.Secrets = kept
		return nil
	})
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"secret": fresh, "previous_valid_until": now.Add(grace), "valid_secrets": len(e.ValidSecrets(now))})
}

func (s *Server) secret(w http.ResponseWriter, r *http.Request) {
	e, _, err := s.Store.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"secret": e.Secrets[0].Value})
}

// test sends a synthetic event (account "test" on instance "test") at once,
// outside the stream, and reports the attempt.
func (s *Server) test(w http.ResponseWriter, r *http.Request) {
	e, _, err := s.Store.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		s.fail(w, err)
		return
	}
	now := s.Now().UTC()
	ev, err := event.StatusChanged(event.Meta{
		Provider: event.ProviderActivePlatform, Instance: "test", AccountID: "test", AccountName: "accountwatch test event",
		ObservedAt: now, Revision: uint64(now.UnixNano()), Labels: map[string]string{"test": "true"},
	}, event.EnumValue("active"), event.EnumValue("credit_hold"))
	if err != nil {
		s.fail(w, err)
		return
	}
	res := s.Sender.Test(r.Context(), &e, ev)
	out := map[string]any{"event_id": ev.ID(), "status": res.Status, "latency_ms": float64(res.Latency.Microseconds()) / 1000, "response": res.Response, "delivered": res.Err == nil}
	if res.Err != nil {
		out["error"] = res.Err.Error()
	}
	writeJSON(w, http.StatusOK, out)
}

// parseQueryTime reads a query's moment (config.ParseTime) as a client error.
func parseQueryTime(r *http.Request, key string, now time.Time) (time.Time, error) {
	t, err := config.ParseTime(r.URL.Query().Get(key), now)
	if err != nil {
		return t, fmt.Errorf("%w: %s: %v", subscription.ErrInvalid, key, err)
	}
	return t, nil
}

func (s *Server) query(r *http.Request) (deliverylog.Query, error) {
	q := deliverylog.Query{Sink: deliver.SinkName}
	since, err := parseQueryTime(r, "since", s.Now())
	if err != nil {
		return q, err
	}
	q.Since = since
	if v := r.URL.Query().Get("limit"); v != "" {
		if q.Limit, err = strconv.Atoi(v); err != nil || q.Limit < 1 || q.Limit > maxLimit {
			return q, fmt.Errorf("%w: limit: %.40q (want 1 to %d)", subscription.ErrInvalid, v, maxLimit)
		}
	}
	return q, nil
}

func (s *Server) attempts(w http.ResponseWriter, r *http.Request) {
	q, err := s.query(r)
	if err != nil {
		s.fail(w, err)
		return
	}
	if _, _, err := s.Store.Get(r.Context(), r.PathValue("id")); err != nil {
		s.fail(w, err)
		return
	}
	q.Receiver = r.PathValue("id")
	recs, err := s.Log.List(r.Context(), q)
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"attempts": nonNil(recs)})
}

func (s *Server) eventAttempts(w http.ResponseWriter, r *http.Request) {
	q, err := s.query(r)
	if err != nil {
		s.fail(w, err)
		return
	}
	q.EventID = r.PathValue("eventid")
	recs, err := s.Log.List(r.Context(), q)
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"attempts": nonNil(recs)})
}

// flag reads a boolean query parameter: true, false or absent.
func flag(r *http.Request, name string) (bool, error) {
	switch v := r.URL.Query().Get(name); v {
	case "", "false":
		return false, nil
	case "true":
		return true, nil
	default:
		return false, fmt.Errorf("%w: %s: %.40q (want true or false)", subscription.ErrInvalid, name, v)
	}
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func (s *Server) letterFilter(r *http.Request) (deadletter.Filter, error) {
	f := deadletter.Filter{Sink: deliver.SinkName, Receiver: r.PathValue("id")}
	var err error
	if f.Since, err = parseQueryTime(r, "since", s.Now()); err != nil {
		return f, err
	}
	f.Until, err = parseQueryTime(r, "until", s.Now())
	return f, err
}

func (s *Server) deadLetters(w http.ResponseWriter, r *http.Request) {
	f, err := s.letterFilter(r)
	if err != nil {
		s.fail(w, err)
		return
	}
	letters, err := s.DeadLetter.List(r.Context(), f)
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"dead_letters": nonNil(letters)})
}

// redrive sends the endpoint's dead letters (of ?since= … &until=, or all)
// back to it; ?dry_run=true lists them only.
func (s *Server) redrive(w http.ResponseWriter, r *http.Request) {
	f, err := s.letterFilter(r)
	if err != nil {
		s.fail(w, err)
		return
	}
	dry, err := flag(r, "dry_run")
	if err != nil {
		s.fail(w, err)
		return
	}
	// Letters of a deleted endpoint would wait in AW_REDRIVE for nobody.
	if _, _, err := s.Store.Get(r.Context(), f.Receiver); err != nil {
		s.fail(w, err)
		return
	}
	letters, err := s.DeadLetter.List(r.Context(), f)
	if err != nil {
		s.fail(w, err)
		return
	}
	if dry {
		writeJSON(w, http.StatusOK, map[string]any{"dry_run": true, "would_redrive": len(letters), "dead_letters": nonNil(letters)})
		return
	}
	done := 0
	for _, l := range letters {
		if _, err := s.DeadLetter.Redrive(r.Context(), l.Seq); err != nil {
			s.fail(w, fmt.Errorf("re-drove %d of %d, then: %w", done, len(letters), err))
			return
		}
		done++
	}
	writeJSON(w, http.StatusOK, map[string]any{"redriven": done})
}
