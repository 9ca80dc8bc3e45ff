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

func main() {
	ops.Main(ops.Program{Name: "webhook-dispatcher", About: "delivers accountwatch events to subscribers' HTTP endpoints: signed (Standard Webhooks), filtered, retried for days, isolated per endpoint, with a subscriptions API."}, func(s *app.Settings) string { return s.LogLevel }, func(ctx context.Context, s *app.Settings, log *slog.Logger) error {
		return app.Run(ctx, *s, log, nil)
	})
}
