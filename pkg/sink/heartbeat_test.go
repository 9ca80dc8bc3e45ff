package sink_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/accountwatch/accountwatch/pkg/sink"
)

// TestPullsAskForTheConfiguredHeartbeat: every consumer's pull request asks
// the server for a heartbeat every Settings.Heartbeat, so that a pull lost on
// the way (the chaos run: a node partitioned for 20 s, a consumer leader
// moving) is noticed and sent again after two missed heartbeats, not after
// the client library's default of 2 × 15 s.
func TestPullsAskForTheConfiguredHeartbeat(t *testing.T) {
	h := newHarness(t)
	pulls, err := h.bus.NC.SubscribeSync("$JS.API.CONSUMER.MSG.NEXT.>")
	if err != nil {
		t.Fatal(err)
	}
	set := fast()
	set.Heartbeat = 700 * time.Millisecond
	rcv := &recorder{}
	h.start(t, tree(t, "route: {receiver: ops, group_by: ['...'], group_wait: 0s}\n", "ops"), []sink.Receiver{{Name: "ops"}}, rcv, sink.WithSettings(set))
	seen := map[string]bool{}
	for deadline := time.Now().Add(20 * time.Second); len(seen) < 2 && time.Now().Before(deadline); {
		m, err := pulls.NextMsg(time.Second)
		if err == nats.ErrTimeout {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		var req struct {
			Heartbeat time.Duration `json:"idle_heartbeat"`
		}
		if err := json.Unmarshal(m.Data, &req); err != nil {
			t.Fatalf("pull request %s: %v", m.Data, err)
		}
		if req.Heartbeat != set.Heartbeat {
			t.Fatalf("%s asks for a heartbeat every %s, want %s", m.Subject, req.Heartbeat, set.Heartbeat)
		}
		seen[m.Subject] = true
	}
	if len(seen) < 2 {
		t.Fatalf("pull requests seen on %v; want the receiver's event and re-drive consumers", seen)
	}
}
