// Package subscription holds webhook endpoints: where to send, what to send
// (types and CloudEvents Subscriptions API filters), how (content mode, custom
// headers, rate), the signing secrets with their rotation, and the endpoint's
// health. Endpoints live in the AW_SUBSCRIPTIONS bucket so every dispatcher
// replica serves the same set.
package subscription

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/eventbus"
)

// Sentinel errors.
var (
	ErrNotFound = errors.New("endpoint not found")
	ErrInvalid  = errors.New("invalid endpoint")
	ErrConflict = errors.New("endpoint changed concurrently")
)

// Statuses of an endpoint.
const (
	StatusActive   = "active"
	StatusPaused   = "paused"   // by an operator; resume to continue
	StatusDisabled = "disabled" // by the dispatcher: 410 Gone, or failing too long
)

// Content modes of the CloudEvents HTTP binding.
const (
	ModeStructured = "structured" // application/cloudevents+json, the whole event as the body
	ModeBinary     = "binary"     // ce-* headers, the data as the body
)

// SecretPrefix marks a Standard Webhooks secret.
const SecretPrefix = "whsec_"

// Secret is a signing secret; a rotated-out one stays valid until ExpiresAt.
type Secret struct {
	Value     string     `json:"value"`
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

// Endpoint is one subscriber.
type Endpoint struct {
	ID          string            `json:"id"`
	URL         string            `json:"url"`
	Description string            `json:"description,omitempty"`
	Types       []string          `json:"types,omitempty"`
	Filters     []Filter          `json:"filters,omitempty"`
	Headers     map[string]string `json:"headers,omitempty"`
	ContentMode string            `json:"content_mode"`
	// RateLimit caps deliveries per second to this endpoint (0: none).
	RateLimit float64  `json:"rate_limit,omitempty"`
	Secrets   []Secret `json:"secrets"`
	Status    string   `json:"status"`
	// DisabledReason says why the dispatcher disabled it.
	DisabledReason string     `json:"disabled_reason,omitempty"`
	DisabledAt     *time.Time `json:"disabled_at,omitempty"`
	// FailingSince is the first failure after the last success.
	FailingSince *time.Time `json:"failing_since,omitempty"`
	CreatedAt    time.Time  `json:"created_at"`
	UpdatedAt    time.Time  `json:"updated_at"`
}

// reserved headers cannot be set per endpoint: they carry the signature,
// the CloudEvent and the transport.
var reserved = []string{"content-type", "content-length", "host", "webhook-id", "webhook-timestamp", "webhook-signature", "user-agent", "transfer-encoding", "connection"}

// Validate checks what a client may set; every message names the field.
func (e *Endpoint) Validate() error {
	if e.URL == "" {
		return fmt.Errorf("%w: url: required", ErrInvalid)
	}
	for i, t := range e.Types {
		full := t
		if !strings.HasPrefix(t, "com.accountwatch.") {
			full = "com.accountwatch." + t
		}
		if !event.Type(full).Valid() {
			return fmt.Errorf("%w: types[%d]: %q is not an accountwatch event type", ErrInvalid, i, t)
		}
		e.Types[i] = full
	}
	for i := range e.Filters {
		if err := e.Filters[i].Validate(fmt.Sprintf("filters[%d]", i)); err != nil {
			return fmt.Errorf("%w: %v", ErrInvalid, err)
		}
	}
	for k, v := range e.Headers {
		if strings.HasPrefix(strings.ToLower(k), "ce-") || slices.Contains(reserved, strings.ToLower(k)) {
			return fmt.Errorf("%w: headers: %q is set by the dispatcher", ErrInvalid, k)
		}
		if http.CanonicalHeaderKey(k) == "" || strings.ContainsAny(k+v, "\r\n") {
			return fmt.Errorf("%w: headers: %q", ErrInvalid, k)
		}
	}
	switch e.ContentMode {
	case "":
		e.ContentMode = ModeStructured
	case ModeStructured, ModeBinary:
	default:
		return fmt.Errorf("%w: content_mode: %q (want structured or binary)", ErrInvalid, e.ContentMode)
	}
	if e.RateLimit < 0 {
		return fmt.Errorf("%w: rate_limit: %v (want >= 0)", ErrInvalid, e.RateLimit)
	}
	return nil
}

// Accepts reports whether the endpoint subscribes to e: its types (all when
// empty) and every filter.
func (e *Endpoint) Accepts(ev *event.Event) bool {
	if len(e.Types) > 0 && !slices.Contains(e.Types, string(ev.Type())) {
		return false
	}
	for i := range e.Filters {
		if !e.Filters[i].Match(&ev.Cloud) {
			return false
		}
	}
	return true
}

// ValidSecrets are the secrets a delivery is signed with at t: the current
// one and any rotated-out one still within its grace period.
func (e *Endpoint) ValidSecrets(t time.Time) []string {
	var out []string
	for _, s := range e.Secrets {
		if s.ExpiresAt == nil || t.Before(*s.ExpiresAt) {
			out = append(out, s.Value)
		}
	}
	return out
}

// NewSecret makes a Standard Webhooks secret: whsec_ and 24 random bytes in base64.
func NewSecret() string {
	var b [24]byte
	_, _ = rand.Read(b[:])
	return SecretPrefix + base64.StdEncoding.EncodeToString(b[:])
}

// SecretKey is the HMAC key of a secret.
func SecretKey(s string) ([]byte, error) {
	return base64.StdEncoding.DecodeString(strings.TrimPrefix(s, SecretPrefix))
}

// NewID makes an endpoint id, usable as a receiver and consumer name.
func NewID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "ep_" + hex.EncodeToString(b[:])
}

// Store reads and writes endpoints.
type Store struct {
	kv  jetstream.KeyValue
	now func() time.Time
}

// Open opens the subscriptions bucket (provisioned by eventbus.Bus.Provision).
func Open(ctx context.Context, js jetstream.JetStream) (*Store, error) {
	kv, err := js.KeyValue(ctx, eventbus.BucketSubscriptions)
	if err != nil {
		return nil, fmt.Errorf("subscriptions bucket: %w", err)
	}
	return &Store{kv: kv, now: time.Now}, nil
}

// Create stores a new endpoint with a fresh id and secret.
func (s *Store) Create(ctx context.Context, e Endpoint) (Endpoint, error) {
	if err := e.Validate(); err != nil {
		return Endpoint{}, err
	}
	now := s.now().UTC()
	e.ID, e.CreatedAt, e.UpdatedAt, e.Status = NewID(), now, now, StatusActive
	e.Secrets = []Secret{{Value: NewSecret(), CreatedAt: now}}
	b, _ := json.Marshal(e)
	if _, err := s.kv.Create(ctx, e.ID, b); err != nil {
		return Endpoint{}, fmt.Errorf("store endpoint: %w", err)
	}
	return e, nil
}

// Get reads one endpoint with its revision.
func (s *Store) Get(ctx context.Context, id string) (Endpoint, uint64, error) {
	kve, err := s.kv.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrInvalidKey) {
		return Endpoint{}, 0, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err != nil {
		return Endpoint{}, 0, fmt.Errorf("endpoint %s: %w", id, err)
	}
	var e Endpoint
	if err := json.Unmarshal(kve.Value(), &e); err != nil {
		return Endpoint{}, 0, fmt.Errorf("endpoint %s: %w", id, err)
	}
	return e, kve.Revision(), nil
}

// Update applies change to the stored endpoint with compare-and-swap,
// retrying a few times when another replica wrote meanwhile.
func (s *Store) Update(ctx context.Context, id string, change func(*Endpoint) error) (Endpoint, error) {
	for range 5 {
		e, rev, err := s.Get(ctx, id)
		if err != nil {
			return Endpoint{}, err
		}
		if err := change(&e); err != nil {
			return Endpoint{}, err
		}
		e.UpdatedAt = s.now().UTC()
		b, _ := json.Marshal(e)
		if _, err := s.kv.Update(ctx, id, b, rev); err == nil {
			return e, nil
		} else if !isWrongSequence(err) {
			return Endpoint{}, fmt.Errorf("update endpoint %s: %w", id, err)
		}
	}
	return Endpoint{}, fmt.Errorf("%w: %s", ErrConflict, id)
}

func isWrongSequence(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence
}

// Delete removes an endpoint.
func (s *Store) Delete(ctx context.Context, id string) error {
	if _, _, err := s.Get(ctx, id); err != nil {
		return err
	}
	return s.kv.Delete(ctx, id)
}

// List returns every endpoint, oldest first.
func (s *Store) List(ctx context.Context) ([]Endpoint, error) {
	lister, err := s.kv.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("list endpoints: %w", err)
	}
	var out []Endpoint
	for k := range lister.Keys() {
		e, _, err := s.Get(ctx, k)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b Endpoint) int { return a.CreatedAt.Compare(b.CreatedAt) })
	return out, nil
}

// Watch calls apply with each endpoint as it is now and as it changes (nil
// endpoint and its id for a deletion), until ctx ends. It returns once the
// present endpoints were applied.
func (s *Store) Watch(ctx context.Context, apply func(id string, e *Endpoint)) error {
	w, err := s.kv.WatchAll(ctx)
	if err != nil {
		return fmt.Errorf("watch endpoints: %w", err)
	}
	handle := func(kve jetstream.KeyValueEntry) {
		if kve.Operation() != jetstream.KeyValuePut {
			apply(kve.Key(), nil)
			return
		}
		var e Endpoint
		if json.Unmarshal(kve.Value(), &e) == nil {
			apply(kve.Key(), &e)
		}
	}
	return eventbus.Follow(ctx, w, true, handle)
}
