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
	"unicode"
	"unicode/utf8"

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
// the CloudEvent and the transport (RFC 9110 section 7.6.1's hop-by-hop
// fields among them).
var reserved = []string{"content-type", "content-length", "host", "webhook-id", "webhook-timestamp", "webhook-signature", "user-agent",
	"transfer-encoding", "connection", "keep-alive", "proxy-connection", "te", "trailer", "upgrade", "expect"}

// Limits on what a client may set.
const (
	MaxURL         = 2048
	MaxDescription = 1024
	MaxTypes       = 64
	MaxFilters     = 16
	// MaxFilterNodes bounds one filter's expressions, nested ones included.
	MaxFilterNodes = 64
	MaxFilterValue = 256
	MaxHeaders     = 32
	MaxHeaderName  = 128
	MaxHeaderValue = 4096
	// MinRateLimit and MaxRateLimit bound rate_limit (deliveries per second;
	// 0 is no limit). A slower limit would keep a delivery waiting for its
	// turn for minutes, and a delete or pause waits for the deliveries under way.
	MinRateLimit = 1
	MaxRateLimit = 10000
)

// Validate checks what a client may set; every message names the field.
func (e *Endpoint) Validate() error {
	switch {
	case e.URL == "":
		return fmt.Errorf("%w: url: required", ErrInvalid)
	case len(e.URL) > MaxURL:
		return fmt.Errorf("%w: url: longer than %d characters", ErrInvalid, MaxURL)
	case len(e.Description) > MaxDescription:
		return fmt.Errorf("%w: description: longer than %d bytes", ErrInvalid, MaxDescription)
	case !utf8.ValidString(e.Description) || strings.ContainsFunc(e.Description, unicode.IsControl):
		return fmt.Errorf("%w: description: holds a control character or invalid UTF-8", ErrInvalid)
	case len(e.Types) > MaxTypes:
		return fmt.Errorf("%w: types: more than %d", ErrInvalid, MaxTypes)
	case len(e.Filters) > MaxFilters:
		return fmt.Errorf("%w: filters: more than %d", ErrInvalid, MaxFilters)
	case len(e.Headers) > MaxHeaders:
		return fmt.Errorf("%w: headers: more than %d", ErrInvalid, MaxHeaders)
	}
	seen := map[string]bool{}
	for i, t := range e.Types {
		full := t
		if !strings.HasPrefix(t, "com.accountwatch.") {
			full = "com.accountwatch." + t
		}
		if !event.Type(full).Valid() {
			return fmt.Errorf("%w: types[%d]: %.80q is not an accountwatch event type", ErrInvalid, i, t)
		}
		if seen[full] {
			return fmt.Errorf("%w: types[%d]: %s is listed twice", ErrInvalid, i, t)
		}
		seen[full] = true
		e.Types[i] = full
	}
	for i := range e.Filters {
		where := fmt.Sprintf("filters[%d]", i)
		if n := e.Filters[i].size(); n > MaxFilterNodes {
			return fmt.Errorf("%w: %s: %d expressions (at most %d)", ErrInvalid, where, n, MaxFilterNodes)
		}
		if err := e.Filters[i].Validate(where); err != nil {
			return fmt.Errorf("%w: %v", ErrInvalid, err)
		}
	}
	canonical := map[string]string{}
	for k, v := range e.Headers {
		switch {
		case len(k) > MaxHeaderName || !ValidFieldName(k):
			return fmt.Errorf("%w: headers: %.80q is not a header name (RFC 9110 token: letters, digits and !#$%%&'*+-.^_`|~, up to %d)", ErrInvalid, k, MaxHeaderName)
		case strings.HasPrefix(strings.ToLower(k), "ce-") || slices.Contains(reserved, strings.ToLower(k)):
			return fmt.Errorf("%w: headers: %q is set by the dispatcher", ErrInvalid, k)
		case len(v) > MaxHeaderValue:
			return fmt.Errorf("%w: headers[%s]: longer than %d bytes", ErrInvalid, k, MaxHeaderValue)
		case !ValidFieldValue(v):
			return fmt.Errorf("%w: headers[%s]: not a header value (RFC 9110: no control character but tab, no leading or trailing space)", ErrInvalid, k)
		}
		c := http.CanonicalHeaderKey(k)
		if other, dup := canonical[c]; dup {
			return fmt.Errorf("%w: headers: %q and %q name the same header", ErrInvalid, min(k, other), max(k, other))
		}
		canonical[c] = k
	}
	switch e.ContentMode {
	case "":
		e.ContentMode = ModeStructured
	case ModeStructured, ModeBinary:
	default:
		return fmt.Errorf("%w: content_mode: %.40q (want structured or binary)", ErrInvalid, e.ContentMode)
	}
	if e.RateLimit != 0 && !(e.RateLimit >= MinRateLimit && e.RateLimit <= MaxRateLimit) {
		return fmt.Errorf("%w: rate_limit: %v (want 0 for none, or %d to %d deliveries per second)", ErrInvalid, e.RateLimit, MinRateLimit, MaxRateLimit)
	}
	return nil
}

// ValidFieldName reports whether k is an RFC 9110 field name: a token.
func ValidFieldName(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// ValidFieldValue reports whether v is an RFC 9110 field value: visible
// characters (obs-text included), spaces and tabs between them, nothing else.
func ValidFieldValue(v string) bool {
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return v == strings.Trim(v, " \t")
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

// ValidAt reports whether a delivery at t is signed with the secret: the
// current one, or a rotated-out one still within its grace period.
func (s Secret) ValidAt(t time.Time) bool { return s.ExpiresAt == nil || t.Before(*s.ExpiresAt) }

// ValidSecrets are the secrets a delivery is signed with at t (ValidAt).
func (e *Endpoint) ValidSecrets(t time.Time) []string {
	var out []string
	for _, s := range e.Secrets {
		if s.ValidAt(t) {
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
