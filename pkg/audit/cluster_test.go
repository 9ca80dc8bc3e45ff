package audit_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/accountwatch/accountwatch/pkg/audit"
	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/eventbus"
	"github.com/accountwatch/accountwatch/pkg/eventbus/bustest"
)

// TestReplayAcrossALeaderChange: on the deploy cluster (every stream at
// replicas 3), a replay and a verify go on when the events stream's leader
// steps down and when the client's connection moves to another node, both
// midway, with more left than the consumer has fetched: every event once, in
// stream order, and every chain intact. The ordered consumer is made again
// by the client (nats.go) at the next sequence; this holds it to that.
func TestReplayAcrossALeaderChange(t *testing.T) {
	url, creds := bustest.StartDeployCluster(t)
	b := bustest.ClusterAdmin(t, url, creds)
	var chains [][]*event.Event
	for a := range 40 {
		chains = append(chains, chain(t, fmt.Sprint(1000+a), 500))
	}
	all := interleave(chains...)
	for i := 0; i < len(all); i += 1000 { // within the client's window of async publishes
		publish(t, b, all[i:min(i+1000, len(all))])
	}

	// disrupt steps the leader down at a third of the events and moves the
	// connection at two thirds, each once; done says whether both happened.
	disrupt := func() (at func(done uint64), done func() bool) {
		var stepped, moved bool
		return func(done uint64) {
			switch {
			case !stepped && done >= uint64(len(all)/3):
				stepped = true
				if _, err := b.NC.Request("$JS.API.STREAM.LEADER.STEPDOWN."+eventbus.StreamEvents, nil, 10*time.Second); err != nil {
					t.Errorf("stepping the leader down: %v", err)
				}
			case !moved && done >= uint64(2*len(all)/3):
				moved = true
				was := b.NC.ConnectedUrl()
				if err := b.NC.ForceReconnect(); err != nil {
					t.Errorf("moving the connection off %s: %v", was, err)
				}
			}
		}, func() bool { return stepped && moved }
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	t.Run("replay", func(t *testing.T) {
		at, disrupted := disrupt()
		var n int
		err := audit.Replay(ctx, b.JS, audit.Selection{}, nil, func(r *audit.Record) error {
			ev, err := r.Event()
			if err != nil {
				return err
			}
			if n >= len(all) || ev.ID() != all[n].ID() || r.Seq != uint64(n+1) {
				return fmt.Errorf("record %d is %s at %d, want %s at %d", n, ev.ID(), r.Seq, all[min(n, len(all)-1)].ID(), n+1)
			}
			n++
			at(uint64(n))
			return nil
		})
		if err != nil || n != len(all) || !disrupted() {
			t.Fatalf("replayed %d of %d (leader change and reconnect made: %v): %v", n, len(all), disrupted(), err)
		}
	})
	t.Run("verify", func(t *testing.T) {
		at, disrupted := disrupt()
		rep, err := audit.Verify(ctx, b.JS, audit.Options{Progress: func(done, _ uint64) { at(done) }})
		if err != nil || !rep.OK() || rep.Events != uint64(len(all)) || rep.Accounts != len(chains) || !disrupted() {
			t.Fatalf("leader change and reconnect made: %v; %v %+v", disrupted(), err, rep)
		}
	})
}
