// Command email-notifier emails accountwatch events: routed, digested,
// threaded per account, with retries and dead letters. See README.md.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/accountwatch/accountwatch/pkg/config"
	"github.com/accountwatch/accountwatch/pkg/ops"
	"github.com/accountwatch/accountwatch/services/email-notifier/internal/app"
)

func main() {
	var s app.Settings
	if err := config.Load(&s); err != nil {
		fmt.Fprintln(os.Stderr, "email-notifier:", err)
		os.Exit(2)
	}
	log, err := ops.NewLogger(os.Stderr, s.LogLevel, "email-notifier")
	if err != nil {
		fmt.Fprintln(os.Stderr, "email-notifier:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := app.Run(ctx, s, log, os.Stdout); err != nil {
		log.Error("email-notifier stopped", "err", err)
		os.Exit(1)
	}
}
