// Command awctl administers accountwatch: the watch list, onboarding, dead
// letters, silences, and the audit log (replay, verify, timeline). It talks
// to JetStream at NATS_URL.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}
