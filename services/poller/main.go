// Command poller reads the watched accounts of every configured upstream
// connection it leases, detects changes, and publishes one CloudEvent per real
// change to JetStream. See README.md.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/accountwatch/accountwatch/pkg/config"
	"github.com/accountwatch/accountwatch/pkg/ops"
	"github.com/accountwatch/accountwatch/services/poller/internal/app"
)

func main() {
	var s app.Settings
	if err := config.Load(&s); err != nil {
		fmt.Fprintln(os.Stderr, "poller:", err)
		os.Exit(2)
	}
	log, err := ops.NewLogger(os.Stderr, s.LogLevel, "poller")
	if err != nil {
		fmt.Fprintln(os.Stderr, "poller:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := app.Run(ctx, s, log); err != nil {
		log.Error("poller stopped", "err", err)
		os.Exit(1)
	}
}
