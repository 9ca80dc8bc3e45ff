// Package source is what the poller's engine reads an upstream connection
// through: a Source, its capabilities (Caps), and the registry of providers.
// A provider is one adapter file in package provider, which turns its
// client's answers into detect.Observations, lists accounts, says what its
// upstream can do, and registers its connection settings with the
// configuration. Provider wire formats stop there; this package and the
// engine know none of them.
package source

import (
	"context"
	"fmt"
	"time"

	"github.com/accountwatch/accountwatch/pkg/detect"
	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/upstream"
	"github.com/accountwatch/accountwatch/pkg/watch"
	"github.com/accountwatch/accountwatch/services/poller/internal/config"
)

// Caps are what a connection's upstream can do; the engine reads them
// instead of provider names.
type Caps struct {
	// Lists: the upstream lists its accounts (discovery, and removals).
	Lists bool
	// Full: the listing carries each account's whole state, so accounts are
	// observed through it rather than read one by one, and a failed listing
	// is the connection failing.
	Full bool
	// Incremental: the listing can hold only the accounts updated since a
	// time; a full listing then runs every FullScanEvery cycles.
	Incremental bool
	// Authoritative: a complete listing holds every account there is, so a
	// discovered account it lacks is gone (once a read of it confirms it).
	Authoritative bool
}

// Listed is one account of a listing, already observed when the listing
// carries its full state, or nil (ids only).
type Listed struct {
	AccountID string
	Space     string
	Obs       *detect.Observation
	// Sum fingerprints the account's raw JSON in the listing (Size bytes);
	// Unchanged is set (and Obs left nil) when Memory.Known recognised it: the
	// same bytes as when the account was last processed.
	// Obs.Evidence.ResponseSHA256 of a listed account is the SHA-256 of
	// those bytes: the poller stores it with the account's record, and a
	// poller starting again recognises the bytes by it (Known).
	Sum       upstream.Fingerprint
	Size      int
	Unchanged bool
	// Err is an account the listing holds but that could not be decoded:
	// that account failed, not the listing.
	Err error
}

// Memory is what the poller remembers of the listing bytes it processed.
type Memory interface {
	// Known maps the sum of an account's raw JSON (item) to the account
	// whose last processing saw exactly those bytes.
	Known(sum upstream.Fingerprint, item []byte) (accountID string, ok bool)
	// Predict guesses the size and sum of the listing's next account from
	// the last scan.
	Predict() (size int, sum upstream.Fingerprint, ok bool)
}

// Source reads one upstream connection.
type Source interface {
	Caps() Caps
	// Observe reads one account.
	Observe(ctx context.Context, e watch.Entry) (detect.Observation, error)
	// List streams the connection's accounts to fn as pages arrive. full=false
	// may list only those updated since `since` (Caps.Incremental); complete
	// reports whether that was the whole listing, every account of it read.
	List(ctx context.Context, full bool, since time.Time, mem Memory, fn func(Listed)) (complete bool, err error)
}

// Adapter builds the sources of one provider's connections.
type Adapter func(c config.Connection, allow *event.AllowList, now func() time.Time) (Source, error)

var adapters = map[event.Provider]Adapter{}

// Register makes a provider pollable (each adapter file of package provider,
// at init): its sources, and its settings in the configuration.
func Register(p event.Provider, settings config.Provider, a Adapter) {
	adapters[p] = a
	config.RegisterProvider(p, settings)
}

// New builds the source of a connection.
func New(c config.Connection, allow *event.AllowList, now func() time.Time) (Source, error) {
	a, ok := adapters[c.Provider]
	if !ok {
		return nil, fmt.Errorf("unknown provider %q", c.Provider)
	}
	return a(c, allow, now)
}

// Evidence is an upstream answer's evidence in an event.
func Evidence(e upstream.Evidence) event.Evidence {
	return event.Evidence{RequestID: e.RequestID, ResponseSHA256: e.ResponseSHA256, Endpoint: e.Endpoint}
}

// PartialError is a listing read to its end in which some accounts could not
// be decoded nor even named: every other account was read, but the listing
// is not complete (an absent account may be one of them).
type PartialError struct {
	Unnamed int
	First   error
}

func (e *PartialError) Error() string {
	return fmt.Sprintf("%d listed accounts could not be read, nor named (the first: %v)", e.Unnamed, e.First)
}

func (e *PartialError) Unwrap() error { return e.First }
