package app_test

import (
	"context"
	"strings"
	"testing"

	"github.com/accountwatch/accountwatch/pkg/deadletter"
	"github.com/accountwatch/accountwatch/pkg/eventbus/bustest"
	"github.com/accountwatch/accountwatch/pkg/roster"
)

// TestPublishesItsReceivers: at start the notifier publishes its receivers
// and the ad-hoc destinations it takes, against which re-drives are checked.
func TestPublishesItsReceivers(t *testing.T) {
	yaml := `receivers: [{name: ops, channel: "#ops"}, {name: finance, channel: "#finance"}]
route: {receiver: ops}`
	st := start(t, yaml, nil)
	r, err := roster.Open(context.Background(), st.bus)
	if err != nil {
		t.Fatal(err)
	}
	bustest.Eventually(t, "the roster entry", func() bool {
		e, ok, _ := r.Get(context.Background(), "slack")
		return ok && strings.Join(e.Receivers, ",") == "finance,ops" && e.Adhoc == deadletter.AddressSlackChannel
	})
	if err := deadletter.CheckTarget(context.Background(), r, "slack", "nobody", ""); err == nil {
		t.Error("a receiver the notifier does not have passed")
	}
}
