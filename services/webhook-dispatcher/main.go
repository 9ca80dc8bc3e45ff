// Command webhook-dispatcher delivers accountwatch events to subscribers'
// HTTP endpoints: signed (Standard Webhooks), filtered, retried for days,
// isolated per endpoint, with a subscriptions API. See README.md.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/accountwatch/accountwatch/pkg/config"
	"github.com/accountwatch/accountwatch/pkg/ops"
	"github.com/accountwatch/accountwatch/services/webhook-dispatcher/internal/app"
)

func main() {
	var s app.Settings
	if err := config.Load(&s); err != nil {
		fmt.Fprintln(os.Stderr, "webhook-dispatcher:", err)
		os.Exit(2)
	}
	log, err := ops.NewLogger(os.Stderr, s.LogLevel, "webhook-dispatcher")
	if err != nil {
		fmt.Fprintln(os.Stderr, "webhook-dispatcher:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := app.Run(ctx, s, log, nil); err != nil {
		log.Error("webhook-dispatcher stopped", "err", err)
		os.Exit(1)
	}
}
