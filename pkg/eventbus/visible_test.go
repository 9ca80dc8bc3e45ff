package eventbus_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/accountwatch/accountwatch/pkg/eventbus"
	"github.com/accountwatch/accountwatch/pkg/eventbus/bustest"
)

// lagging is a cluster that acknowledges a create a moment before it serves
// the new stream: the first lookups after a create answer "not found".
type lagging struct {
	jetstream.JetStream
	hidden atomic.Int32
}

func (l *lagging) CreateStream(ctx context.Context, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	s, err := l.JetStream.CreateStream(ctx, cfg)
	l.hidden.Store(3)
	return s, err
}

func (l *lagging) CreateKeyValue(ctx context.Context, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	kv, err := l.JetStream.CreateKeyValue(ctx, cfg)
	l.hidden.Store(3)
	return kv, err
}

func (l *lagging) Stream(ctx context.Context, name string) (jetstream.Stream, error) {
	if l.hidden.Add(-1) >= 0 {
		return nil, jetstream.ErrStreamNotFound
	}
	return l.JetStream.Stream(ctx, name)
}

func (l *lagging) KeyValue(ctx context.Context, bucket string) (jetstream.KeyValue, error) {
	if l.hidden.Load() > 0 {
		return nil, jetstream.ErrBucketNotFound
	}
	return l.JetStream.KeyValue(ctx, bucket)
}

// TestEnsuredStreamsAreThereForTheNextLookup: what EnsureStream and
// EnsureBucket created answers the very next lookup, even on a cluster that
// serves a new stream a moment after acknowledging its create.
func TestEnsuredStreamsAreThereForTheNextLookup(t *testing.T) {
	b := bustest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	js := &lagging{JetStream: b.JS}
	if err := eventbus.EnsureStream(ctx, js, jetstream.StreamConfig{Name: "FRESH", Subjects: []string{"fresh.>"}, Storage: jetstream.FileStorage}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Stream(ctx, "FRESH"); err != nil {
		t.Fatalf("the stream EnsureStream created is not found: %v", err)
	}
	if _, err := eventbus.EnsureBucket(ctx, js, jetstream.KeyValueConfig{Bucket: "FRESH_KV", Storage: jetstream.FileStorage}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.KeyValue(ctx, "FRESH_KV"); err != nil {
		t.Fatalf("the bucket EnsureBucket created is not found: %v", err)
	}
}
