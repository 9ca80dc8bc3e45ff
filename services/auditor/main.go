// Command auditor serves the audit log: replay, export, verify,
// timelines and re-drive, as a console and an API. See README.md.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/accountwatch/accountwatch/pkg/config"
	"github.com/accountwatch/accountwatch/pkg/ops"
	"github.com/accountwatch/accountwatch/services/auditor/internal/app"
)

func main() {
	var s app.Settings
	if err := config.Load(&s); err != nil {
		fmt.Fprintln(os.Stderr, "auditor:", err)
		os.Exit(2)
	}
	log, err := ops.NewLogger(os.Stderr, s.LogLevel, "auditor")
	if err != nil {
		fmt.Fprintln(os.Stderr, "auditor:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := app.Run(ctx, s, log, nil); err != nil {
		log.Error("auditor stopped", "err", err)
		os.Exit(1)
	}
}
