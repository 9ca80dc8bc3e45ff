// Command auditor serves the audit log: replay, export, verify,
// timelines and re-drive, as a console and an API. See README.md.
package main

import (
	"context"
	"log/slog"

	"github.com/accountwatch/accountwatch/pkg/ops"
	"github.com/accountwatch/accountwatch/services/auditor/internal/app"
)

// program is what --help says of the service.
var program = ops.Program{Name: "auditor", About: "serves the audit log as a console and an API: accounts by standing, timelines, events with their deliveries, dead letters and their re-drive, verification and replay; signs checkpoints of the audit log; watches the pollers (a poll.stalled event when a connection's cycles stop)."}

func main() {
	ops.Main(program, func(s *app.Settings) string { return s.LogLevel }, func(ctx context.Context, s *app.Settings, log *slog.Logger) error {
		return app.Run(ctx, *s, log, nil)
	})
}
