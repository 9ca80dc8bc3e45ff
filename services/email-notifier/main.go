// Command email-notifier emails accountwatch events: routed, digested,
// threaded per account, with retries and dead letters. See README.md.
package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/accountwatch/accountwatch/pkg/ops"
	"github.com/accountwatch/accountwatch/services/email-notifier/internal/app"
)

// program is what --help says of the service.
var program = ops.Program{Name: "email-notifier", About: "emails accountwatch events: routed, digested, threaded per account, with retries and dead letters."}

func main() {
	ops.Main(program, func(s *app.Settings) string { return s.LogLevel }, func(ctx context.Context, s *app.Settings, log *slog.Logger) error {
		return app.Run(ctx, *s, log, os.Stdout)
	})
}
