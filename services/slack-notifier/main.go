// Command slack-notifier sends accountwatch events to Slack: routed, grouped,
// one thread per account, with retries and dead letters. See README.md.
package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/accountwatch/accountwatch/pkg/ops"
	"github.com/accountwatch/accountwatch/services/slack-notifier/internal/app"
)

// program is what --help says of the service.
var program = ops.Program{Name: "slack-notifier", About: "sends accountwatch events to Slack: routed, grouped, one thread per account, with retries and dead letters."}

func main() {
	ops.Main(program, func(s *app.Settings) string { return s.LogLevel }, func(ctx context.Context, s *app.Settings, log *slog.Logger) error {
		return app.Run(ctx, *s, log, os.Stdout)
	})
}
