package sink

import (
	"context"

	"github.com/accountwatch/accountwatch/pkg/telemetry"
)

// send is one delivery attempt, on both consumer paths: the sender's Send
// inside a span that continues the trace its events carry (their
// traceparent). While tracing is off it is Send alone.
func (r *Runtime) send(ctx context.Context, n *Notification) error {
	ctx, end := telemetry.Attempt(ctx, r.sink, n.Receiver, n.Attempt, n.Events)
	err := r.sender.Send(ctx, n)
	end(err)
	return err
}
