// Package conform runs accountwatch against the independent upstream of
// conformance/upstream (Python, written from the providers' documents by
// other hands): it talks to that upstream's control port, turns the ledger
// of changes it injected into the events each must cause, and checks the
// stream and every sink against them.
package conform

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/accountwatch/accountwatch/chaos/internal/drive"
)

// Entry is one line of the upstream's ledger: an injected change, account
// added or removed, or fault.
type Entry struct {
	Seq      int             `json:"seq"`
	At       time.Time       `json:"at"`
	Op       string          `json:"op"` // seed, set, add, remove, fault, clear_faults
	Provider string          `json:"provider"`
	Space    string          `json:"space"`
	Account  string          `json:"account"`
	Field    string          `json:"field"`
	From     json.RawMessage `json:"from"`
	To       json.RawMessage `json:"to"`
	Source   string          `json:"source"` // CreateAgAccount for an account created through the API
	// Faults
	Action  string  `json:"action"`
	Kind    string  `json:"kind"`
	Count   *int    `json:"count"`
	Seconds float64 `json:"seconds"`
}

// Upstream is the control port of conformance/upstream/server.py.
type Upstream struct {
	Base   string
	client http.Client
}

// NewUpstream talks to the control port at base (http://host:port).
func NewUpstream(base string) *Upstream {
	return &Upstream{Base: base, client: http.Client{Timeout: 10 * time.Second}}
}

func (u *Upstream) do(ctx context.Context, method, path string, body, out any) error {
	if err := drive.DoJSON(ctx, &u.client, method, u.Base+path, body, out); err != nil {
		return fmt.Errorf("upstream control: %w", err)
	}
	return nil
}

// Inject sends one injection (or a list) and returns the ledger lines it wrote.
func (u *Upstream) Inject(ctx context.Context, ops ...map[string]any) ([]Entry, error) {
	var out []Entry
	err := u.do(ctx, http.MethodPost, "/inject", ops, &out)
	return out, err
}

// ClearFaults drops every live fault.
func (u *Upstream) ClearFaults(ctx context.Context) error {
	return u.do(ctx, http.MethodPost, "/faults/clear", map[string]any{}, nil)
}

// Ledger is every line the upstream wrote.
func (u *Upstream) Ledger(ctx context.Context) ([]Entry, error) {
	var out []Entry
	err := u.do(ctx, http.MethodGet, "/ledger", nil, &out)
	return out, err
}

// Stats are the upstream's counters (requests per action, shapes served,
// signatures, errors, faults applied).
func (u *Upstream) Stats(ctx context.Context) (map[string]int, error) {
	out := map[string]int{}
	err := u.do(ctx, http.MethodGet, "/stats", nil, &out)
	return out, err
}

// State is the upstream's accounts as it holds them.
type State struct {
	ActivePlatform []map[string]any                     `json:"activeplatform"`
	BSS            []map[string]any                     `json:"bss"`
	CAMS           map[string]map[string]map[string]any `json:"cams"`
}

// State reads the upstream's accounts.
func (u *Upstream) State(ctx context.Context) (*State, error) {
	var s State
	err := u.do(ctx, http.MethodGet, "/state", nil, &s)
	return &s, err
}

// Health reports whether the control port answers.
func (u *Upstream) Health(ctx context.Context) error {
	return u.do(ctx, http.MethodGet, "/health", nil, nil)
}
