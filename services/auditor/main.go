// Command auditor serves the audit log: replay, export, verify,
// timelines and re-drive, as a console and an API. See README.md.
package main

import (
	"context"
	"log/slog"

	"github.com/accountwatch/accountwatch/pkg/ops"
	"github.com/accountwatch/accountwatch/services/auditor/internal/app"
)

func main() {
	ops.Main("auditor", func(s *app.Settings) string { return s.LogLevel }, func(ctx context.Context, s *app.Settings, log *slog.Logger) error {
		return app.Run(ctx, *s, log, nil)
	})
}
