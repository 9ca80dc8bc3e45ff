package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/accountwatch/accountwatch/pkg/deadletter"
	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/eventbus"
	"github.com/accountwatch/accountwatch/pkg/roster"
	"github.com/accountwatch/accountwatch/pkg/watch"
)

// errUsage marks what the operator asked wrongly (exit 2), as against what
// failed (exit 1).
var errUsage = errors.New("usage")

// checkOutput accepts --output table or json.
func checkOutput(cmd, output string, stderr io.Writer) bool {
	if output == "table" || output == "json" {
		return true
	}
	fmt.Fprintf(stderr, "%s: --output %q: want table or json\n", cmd, output)
	return false
}

// writeJSON writes v as one JSON document on w: what --output json prints
// on standard output, and nothing else (counts and notes go to standard
// error), so that `awctl … --output json | jq` always parses. A nil list
// is written as [].
func writeJSON[T any](w io.Writer, v []T) error {
	if v == nil {
		v = []T{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// checkConnection tells whether provider and instance name a connection the
// pollers announced (either may be empty: only what is given is checked).
// With none announced yet (no poller ran), there is nothing to check
// against. The error names the connections there are.
func checkConnection(ctx context.Context, bus *eventbus.Bus, provider event.Provider, instance string) error {
	if instance == "" {
		return nil
	}
	ws, err := watch.Open(ctx, bus.JS)
	if err != nil {
		return err
	}
	conns, err := ws.Connections(ctx)
	if err != nil {
		return err
	}
	if provider == "" {
		for _, c := range conns {
			if c.Name == instance {
				return nil
			}
		}
		provider = "?"
	}
	if err := watch.CheckEntry(conns, watch.Entry{Provider: provider, Instance: instance}); err != nil {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	return nil
}

// checkReceiver tells whether sink (and receiver, when given) are in the
// roster the notifiers publish; the error names the ones there are.
func checkReceiver(ctx context.Context, bus *eventbus.Bus, sink, receiver string) error {
	if sink == "" && receiver == "" {
		return nil
	}
	r, err := roster.Open(ctx, bus)
	if err != nil {
		return err
	}
	sinks, err := r.Sinks(ctx)
	if err != nil {
		return err
	}
	if sink == "" {
		for _, s := range sinks {
			if ok, err := r.Receiver(ctx, s, receiver); err != nil || ok {
				return err
			}
		}
		return fmt.Errorf("%w: receiver %q: no sink has it (sinks: %v)", errUsage, receiver, sinks)
	}
	if err := deadletter.CheckTarget(ctx, r, sink, receiver, ""); err != nil {
		if receiver == "" && errors.Is(err, deadletter.ErrInvalidTarget) && knownSink(sinks, sink) {
			return nil // the sink alone was asked for, and it is known
		}
		if errors.Is(err, deadletter.ErrInvalidTarget) {
			return fmt.Errorf("%w: %w", errUsage, err)
		}
		return err
	}
	return nil
}

func knownSink(sinks []string, s string) bool {
	for _, k := range sinks {
		if k == s {
			return true
		}
	}
	return false
}

// exitOf is the exit code of a failed check.
func exitOf(err error) int {
	if errors.Is(err, errUsage) {
		return exitUsage
	}
	return exitFailed
}
