package sink

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/accountwatch/accountwatch/pkg/eventbus"
	"github.com/accountwatch/accountwatch/pkg/ops"
)

// Check is a readiness check: every durable consumer the runtime reads the
// event stream through exists, and JetStream answers for it (a server out
// of disk disables JetStream: then no event is delivered, and no ack or
// dead letter is stored). Before Run has made them, it fails too.
func (r *Runtime) Check(ctx context.Context) error {
	select {
	case <-r.ready:
	default:
		return errors.New("the runtime has not started its consumers yet")
	}
	names := []string{r.sink + "_fanout"}
	if r.fan == nil {
		names = names[:0]
		for _, rc := range r.receivers {
			if !rc.RedriveOnly {
				names = append(names, ConsumerName(r.sink, rc.Name))
			}
		}
	}
	var bad []string
	for _, n := range names {
		if _, err := r.js.Consumer(ctx, eventbus.StreamEvents, n); err != nil {
			bad = append(bad, fmt.Sprintf("%s: %v", n, err))
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("consumers of %s: %s", eventbus.StreamEvents, strings.Join(bad, "; "))
	}
	return nil
}

// Writes follows what the runtime must store to settle an event: dead
// letters and hand-offs to a retry queue (ops.Outcomes: its check fails
// while the last of them failed).
func (r *Runtime) Writes() *ops.Outcomes { return r.writes }
