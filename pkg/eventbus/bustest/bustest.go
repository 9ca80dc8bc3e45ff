// Package bustest starts real embedded JetStream servers for tests.
package bustest

import (
	"context"
	"testing"
	"time"

	"github.com/accountwatch/accountwatch/pkg/eventbus"
)

// Config is a test configuration: a fresh data directory, in-process only unless
// listen is given ("127.0.0.1:0" for a random port).
func Config(t testing.TB, listen string) eventbus.Config {
	t.Helper()
	cfg := eventbus.DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.Listen = "none"
	if listen != "" {
		cfg.Listen = listen
	}
	return cfg
}

// New connects a provisioned bus to a new embedded server, closed at cleanup.
func New(t testing.TB) *eventbus.Bus {
	t.Helper()
	return Start(t, Config(t, ""))
}

// Start connects and provisions with cfg, closing at cleanup.
func Start(t testing.TB, cfg eventbus.Config) *eventbus.Bus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := eventbus.Connect(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	if err := b.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	return b
}
