package bustest

import (
	"errors"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// PublishWindow publishes msgs(i) for each i of n asynchronously, as many in
// flight as window (an acknowledgement awaited as each new message goes
// out), and awaits them all: a raw load to compare a pipeline with. The first
// failure, or an acknowledgement a minute late, ends it.
func PublishWindow(js jetstream.JetStream, n, window int, msgs func(i int) []*nats.Msg) error {
	ring := make([]jetstream.PubAckFuture, window)
	await := func(f jetstream.PubAckFuture) error {
		if f == nil {
			return nil
		}
		select {
		case <-f.Ok():
			return nil
		case err := <-f.Err():
			return err
		case <-time.After(time.Minute):
			return errors.New("raw publishes not acknowledged")
		}
	}
	sent := 0
	for i := range n {
		for _, m := range msgs(i) {
			if err := await(ring[sent%window]); err != nil {
				return err
			}
			f, err := js.PublishMsgAsync(m)
			if err != nil {
				return err
			}
			ring[sent%window] = f
			sent++
		}
	}
	for _, f := range ring {
		if err := await(f); err != nil {
			return err
		}
	}
	return nil
}
