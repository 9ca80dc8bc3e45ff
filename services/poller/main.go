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

// program is what --help says of the service.
var program = ops.Program{Name: "poller", About: "reads the watched accounts of every upstream connection it leases (ActivePlatform, Alibaba BSS and CAMS), detects changes, and publishes one CloudEvent per real change to JetStream."}

func main() {
	ops.Main(program, func(s *app.Settings) string { return s.LogLevel }, func(ctx context.Context, s *app.Settings, log *slog.Logger) error {
		return app.Run(ctx, *s, log)
	})
}
