package ops

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/accountwatch/accountwatch/pkg/config"
)

// Main is what a service's main does: load its settings from the
// environment (exit 2, naming the key, when they are wrong), make its JSON
// logger at level(settings), run until SIGINT or SIGTERM, and exit 1 when
// run fails. Only mains call it.
func Main[S any](service string, level func(*S) string, run func(ctx context.Context, s *S, log *slog.Logger) error) {
	var s S
	if err := config.Load(&s); err != nil {
		fmt.Fprintln(os.Stderr, service+":", err)
		os.Exit(2)
	}
	log, err := NewLogger(os.Stderr, level(&s), service)
	if err != nil {
		fmt.Fprintln(os.Stderr, service+":", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, &s, log); err != nil {
		log.Error(service+" stopped", "err", err)
		stop()
		os.Exit(1)
	}
}
