package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/eventbus"
)

// tailEvents prints one line per new event of the stream, so that `make run`
// shows the pipeline moving before any sink is configured.
func tailEvents(ctx context.Context, js jetstream.JetStream, w io.Writer, log *slog.Logger) {
	c, err := js.OrderedConsumer(ctx, eventbus.StreamEvents, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverNewPolicy})
	if err != nil {
		log.Warn("event tail unavailable", "err", err)
		return
	}
	// One long pull: an ordered consumer's Next would create its consumer
	// anew for every event.
	it, err := c.Messages()
	if err != nil {
		log.Warn("event tail unavailable", "err", err)
		return
	}
	defer it.Stop()
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	for ctx.Err() == nil {
		m, err := it.Next()
		if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
			return
		}
		if err != nil {
			continue
		}
		e, err := eventbus.DecodeMsg(m)
		if err != nil {
			log.Warn("undecodable event", "subject", m.Subject(), "err", err)
			continue
		}
		outMu.Lock()
		fmt.Fprintln(w, "[events] "+summary(e))
		outMu.Unlock()
	}
}

// summary is one readable line: severity, type, connection/account, what changed.
func summary(e *event.Event) string {
	s := fmt.Sprintf("%-8s %s %s/%s", e.Severity(), e.Type().Tail(), e.Data.Instance, e.Data.AccountID)
	if e.Data.AccountName != "" {
		s += " (" + e.Data.AccountName + ")"
	}
	if e.Data.Field != "" && e.Data.Previous != nil && e.Data.Current != nil {
		s += fmt.Sprintf(": %s %q → %q", e.Data.Field, e.Data.Previous.Value, e.Data.Current.Value)
	}
	if e.Data.Debt != nil && e.Data.Debt.Crossed != "" {
		s += " (crossed " + e.Data.Debt.Crossed + " " + e.Data.Debt.Threshold + ")"
	}
	if e.Data.Poll != nil {
		s += fmt.Sprintf(": %d failures since %s", e.Data.Poll.ConsecutiveFailures, e.Data.Poll.Since.Format(time.TimeOnly))
	}
	return s
}
