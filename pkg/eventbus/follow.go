package eventbus

import (
	"context"

	"github.com/nats-io/nats.go/jetstream"
)

// Follow applies a KV watcher's present entries, then, with follow set, keeps
// applying its updates in the background until ctx ends (stopping the
// watcher); without it, it stops the watcher. It returns once the present
// entries are applied, so a caller starts with a complete picture.
func Follow(ctx context.Context, w jetstream.KeyWatcher, follow bool, apply func(jetstream.KeyValueEntry)) error {
	for e := range w.Updates() {
		if e == nil { // the present entries are in
			break
		}
		apply(e)
	}
	if !follow {
		return w.Stop()
	}
	go func() {
		defer w.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case e, ok := <-w.Updates():
				if !ok {
					return
				}
				if e != nil {
					apply(e)
				}
			}
		}
	}()
	return nil
}
