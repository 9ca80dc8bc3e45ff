package app

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"
)

// TestAFailedRunnerStartsAgain: a runner that fails while its connection's
// lease is held (the chaos run: its state load answered "JetStream system
// temporarily unavailable" during a leader election) is started again, not
// left dead with the lease renewed and the connection unpolled.
func TestAFailedRunnerStartsAgain(t *testing.T) {
	restartAfter = time.Millisecond
	defer func() { restartAfter = time.Second }()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var runs atomic.Int32
	done := make(chan struct{})
	go func() {
		defer close(done)
		runConnection(ctx, slog.New(slog.DiscardHandler), "ap-main", func(ctx context.Context) error {
			if runs.Add(1) <= 2 {
				return errors.New("state load: nats: JetStream system temporarily unavailable")
			}
			<-ctx.Done() // the third one polls until the lease is lost
			return nil
		})
	}()
	deadline := time.After(20 * time.Second)
	for runs.Load() < 3 {
		select {
		case <-deadline:
			t.Fatalf("runner started %d times: a failed runner must start again", runs.Load())
		case <-time.After(time.Millisecond):
		}
	}
	cancel()
	<-done
	if n := runs.Load(); n != 3 {
		t.Fatalf("runner started %d times, want 3 (the last ran until the end)", n)
	}
}
