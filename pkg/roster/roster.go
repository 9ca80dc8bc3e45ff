// Package roster is the list of every sink's receivers, kept in the
// AW_RECEIVERS bucket: each notifier publishes its receivers (and the kind of
// ad-hoc destination it takes) when it starts, and re-drives are validated
// against it (deadletter.CheckTarget), so that nothing is parked in
// AW_REDRIVE for a sink or receiver that will never consume it.
package roster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/accountwatch/accountwatch/pkg/deadletter"
	"github.com/accountwatch/accountwatch/pkg/eventbus"
)

// Bucket holds one entry per sink, keyed by the sink's name.
const Bucket = eventbus.BucketReceivers

// Entry is what a sink publishes about itself.
type Entry struct {
	Sink string `json:"sink"`
	// Receivers are the receivers' names (deadletter.AdhocReceiver left out).
	Receivers []string `json:"receivers,omitempty"`
	// ReceiverBucket, when set, says the receivers are the keys of that KV
	// bucket (the webhook dispatcher's endpoints, which come and go).
	ReceiverBucket string `json:"receiver_bucket,omitempty"`
	// Adhoc is the kind of ad-hoc destination (to=) the sink takes; "" none.
	Adhoc     deadletter.Address `json:"adhoc,omitempty"`
	UpdatedAt time.Time          `json:"updated_at"`
}

// config is the bucket's, as the admin provisions it (eventbus.BucketConfigs).
func config(c eventbus.Config) jetstream.KeyValueConfig {
	for _, kc := range eventbus.BucketConfigs(c) {
		if kc.Bucket == Bucket {
			return kc
		}
	}
	panic("eventbus.BucketConfigs lacks " + Bucket)
}

// Roster reads (and writes) the bucket; it implements deadletter.Roster.
type Roster struct {
	js jetstream.JetStream
	kv jetstream.KeyValue
}

// Open opens the bucket (only the admin creates it: a service's Open fails,
// naming it, when it was not provisioned).
func Open(ctx context.Context, bus *eventbus.Bus) (*Roster, error) {
	kv, err := eventbus.EnsureBucket(ctx, bus.JS, config(bus.Cfg))
	if err != nil {
		return nil, err
	}
	return &Roster{js: bus.JS, kv: kv}, nil
}

// Publish writes a sink's entry (the one call a notifier makes at start).
func Publish(ctx context.Context, bus *eventbus.Bus, e Entry) error {
	r, err := Open(ctx, bus)
	if err != nil {
		return err
	}
	return r.Put(ctx, e)
}

// Put writes e, replacing what its sink published before.
func (r *Roster) Put(ctx context.Context, e Entry) error {
	if !validKey(e.Sink) {
		return fmt.Errorf("roster: sink name %q", e.Sink)
	}
	e.Receivers = slices.Sorted(slices.Values(e.Receivers))
	if e.UpdatedAt.IsZero() {
		e.UpdatedAt = time.Now().UTC()
	}
	b, _ := json.Marshal(e)
	if _, err := r.kv.Put(ctx, e.Sink, b); err != nil {
		return fmt.Errorf("roster: publish %s: %w", e.Sink, err)
	}
	return nil
}

// Get reads a sink's entry; ok is false for a sink that never published.
func (r *Roster) Get(ctx context.Context, sinkName string) (Entry, bool, error) {
	if !validKey(sinkName) {
		return Entry{}, false, nil
	}
	kve, err := r.kv.Get(ctx, sinkName)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Entry{}, false, nil
	}
	if err != nil {
		return Entry{}, false, fmt.Errorf("roster: %s: %w", sinkName, err)
	}
	var e Entry
	if err := json.Unmarshal(kve.Value(), &e); err != nil {
		return Entry{}, false, fmt.Errorf("roster: %s: %w", sinkName, err)
	}
	return e, true, nil
}

// Sinks lists the sinks that published.
func (r *Roster) Sinks(ctx context.Context) ([]string, error) {
	keys, err := r.kv.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("roster: %w", err)
	}
	var out []string
	for k := range keys.Keys() {
		out = append(out, k)
	}
	slices.Sort(out)
	return out, nil
}

// Adhoc tells whether sinkName published, and the ad-hoc destination it takes.
func (r *Roster) Adhoc(ctx context.Context, sinkName string) (deadletter.Address, bool, error) {
	e, ok, err := r.Get(ctx, sinkName)
	return e.Adhoc, ok, err
}

// Receiver tells whether sinkName has receiver: in its list, or a live key
// of its ReceiverBucket.
func (r *Roster) Receiver(ctx context.Context, sinkName, receiver string) (bool, error) {
	e, ok, err := r.Get(ctx, sinkName)
	if err != nil || !ok {
		return false, err
	}
	if e.ReceiverBucket == "" {
		return slices.Contains(e.Receivers, receiver), nil
	}
	if !validKey(receiver) {
		return false, nil
	}
	bucket, err := r.js.KeyValue(ctx, e.ReceiverBucket)
	if err != nil {
		return false, fmt.Errorf("roster: %s receivers (%s): %w", sinkName, e.ReceiverBucket, err)
	}
	_, err = bucket.Get(ctx, receiver)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return false, nil
	}
	return err == nil, err
}

// validKey: receiver and sink names are letters, digits, - and _ (and a key
// must be one token).
func validKey(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
