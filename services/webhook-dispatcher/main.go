// Command webhook-dispatcher delivers accountwatch events to subscribers'
// HTTP endpoints: signed (Standard Webhooks), filtered, retried for days,
// isolated per endpoint, with a subscriptions API. See README.md.
package main

import (
	"context"
	"log/slog"

	"github.com/accountwatch/accountwatch/pkg/ops"
	"github.com/accountwatch/accountwatch/services/webhook-dispatcher/internal/app"
)

// program is what --help says of the service.
var program = ops.Program{Name: "webhook-dispatcher", About: "delivers accountwatch events to subscribers' HTTP endpoints: signed (Standard Webhooks), filtered, retried for days, isolated per endpoint, with a subscriptions API."}

func main() {
	ops.Main(program, func(s *app.Settings) string { return s.LogLevel }, func(ctx context.Context, s *app.Settings, log *slog.Logger) error {
		return app.Run(ctx, *s, log, nil)
	})
}
