package eventbus_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/accountwatch/accountwatch/pkg/eventbus"
	"github.com/accountwatch/accountwatch/pkg/eventbus/bustest"
)

// AW_REDRIVE holds a consumer per receiver, so one per webhook endpoint:
// nats-server caps a stream that sets no limit at 1,000 consumers, which
// refused the thousandth endpoint.
func TestRedriveTakesMoreConsumersThanTheServerDefault(t *testing.T) {
	cfg := bustest.Config(t, "")
	cfg.SyncAlways = false
	bus := bustest.Start(t, cfg)
	ctx := context.Background()
	const n = 1001 // the server's default limit, and one
	for i := range n {
		_, err := bus.JS.CreateOrUpdateConsumer(ctx, eventbus.StreamRedrive, jetstream.ConsumerConfig{
			Durable: fmt.Sprintf("webhook_ep%d_redrive", i), FilterSubject: fmt.Sprintf("%swebhook.ep%d.>", eventbus.RedriveRoot, i), AckPolicy: jetstream.AckExplicitPolicy,
		})
		if err != nil {
			t.Fatalf("consumer %d: %v", i+1, err)
		}
	}
	s, err := bus.JS.Stream(ctx, eventbus.StreamRedrive)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.CachedInfo().Config.MaxConsumers; got != eventbus.MaxRedriveConsumers {
		t.Fatalf("AW_REDRIVE max consumers %d, want %d", got, eventbus.MaxRedriveConsumers)
	}
}
