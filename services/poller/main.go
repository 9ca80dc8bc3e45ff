// Command poller reads the watched accounts of every configured upstream
// connection it leases, detects changes, and publishes one CloudEvent per real
// change to JetStream. See README.md.
package main

import (
	"context"
	"log/slog"

	"github.com/accountwatch/accountwatch/pkg/ops"
	"github.com/accountwatch/accountwatch/services/poller/internal/app"
)

func main() {
	ops.Main(ops.Program{Name: "poller", About: "reads the watched accounts of every upstream connection it leases (ActivePlatform, Alibaba BSS and CAMS), detects changes, and publishes one CloudEvent per real change to JetStream."}, func(s *app.Settings) string { return s.LogLevel }, func(ctx context.Context, s *app.Settings, log *slog.Logger) error {
		return app.Run(ctx, *s, log)
	})
}
