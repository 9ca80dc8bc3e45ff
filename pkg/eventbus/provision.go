package eventbus

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/accountwatch/accountwatch/pkg/event"
)

// Names of the durable things accountwatch keeps in JetStream.
const (
	StreamEvents     = "AW_EVENTS"
	StreamDeadLetter = "AW_DLQ"
	// DeadLetterRoot prefixes dead-letter subjects:
	// aw.dlq.<sink>.<receiver>.<provider>.<instance>.<type>.<account>.
	DeadLetterRoot = "aw.dlq."
	// StreamRedrive holds re-driven dead letters until their receiver takes them
	// (a work queue: each subject has one consumer, which removes what it acks).
	StreamRedrive = "AW_REDRIVE"
	// RedriveRoot prefixes re-drive subjects, laid out like dead-letter subjects.
	RedriveRoot = "aw.redrive."

	BucketState         = "AW_STATE"
	BucketWatch         = "AW_WATCH"
	BucketSubscriptions = "AW_SUBSCRIPTIONS"
	BucketSlackThreads  = "AW_SLACK_THREADS"
	BucketSilences      = "AW_SILENCES"
	// BucketLeases holds poller leases and membership; entries expire after LeaseTTL
	// unless renewed, which is how a dead replica's work is freed.
	BucketLeases = "AW_LEASES"
	// LeaseTTL is the lifetime of an unrenewed lease.
	LeaseTTL = 15 * time.Second
)

// ErrConfigConflict is returned when a stream or bucket exists with a configuration
// that differs from what this version expects.
var ErrConfigConflict = errors.New("existing configuration conflicts")

// KeyToken turns any id into one KV key token: EscapeToken's mapping with '='
// for '~', which KV keys do not allow. Like EscapeToken it is reversible.
func KeyToken(id string) string { return strings.ReplaceAll(event.EscapeToken(id), "~", "=") }

// ParseKeyToken reverses KeyToken.
func ParseKeyToken(tok string) (string, error) {
	return event.UnescapeToken(strings.ReplaceAll(tok, "=", "~"))
}

// EventStreamConfig is the audit-log stream: file storage, no deletes, no purges,
// long retention, a dedup window that covers a poller restart.
func EventStreamConfig(c Config) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        StreamEvents,
		Description: "accountwatch events: the audit log (CloudEvents, binary mode)",
		Subjects:    []string{event.SubjectRoot + ">"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxAge:      c.Retention,
		Replicas:    c.Replicas,
		Duplicates:  c.DedupWindow,
		DenyDelete:  true,
		DenyPurge:   true,
		AllowDirect: true,
	}
}

// DeadLetterStreamConfig holds what sinks could not deliver, until it is re-driven.
func DeadLetterStreamConfig(c Config) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        StreamDeadLetter,
		Description: "accountwatch dead letters: exhausted or rejected deliveries, with the error",
		Subjects:    []string{DeadLetterRoot + ">"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		MaxAge:      c.DeadLetterRetention,
		Replicas:    c.Replicas,
		Duplicates:  c.DedupWindow,
		AllowDirect: true,
	}
}

// RedriveStreamConfig holds dead letters sent back to their receiver. It is not
// the audit log: re-driving never writes to AW_EVENTS, so its dedup window cannot
// swallow a re-drive and the original events stay as they were.
func RedriveStreamConfig(c Config) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        StreamRedrive,
		Description: "accountwatch re-drives: dead letters sent back to their receiver",
		Subjects:    []string{RedriveRoot + ">"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.WorkQueuePolicy,
		Replicas:    c.Replicas,
		Duplicates:  c.DedupWindow,
	}
}

// BucketConfigs are the KV buckets; history is kept where operators want to see
// what changed (watch list, subscriptions, silences).
func BucketConfigs(c Config) []jetstream.KeyValueConfig {
	b := func(name, desc string, history uint8) jetstream.KeyValueConfig {
		return jetstream.KeyValueConfig{Bucket: name, Description: desc, History: history, Storage: jetstream.FileStorage, Replicas: c.Replicas}
	}
	return []jetstream.KeyValueConfig{
		b(BucketState, "last-known state per account (CAS-updated after the event is acked)", 1),
		b(BucketWatch, "watch list: accounts, labels, and poller leases", 5),
		b(BucketSubscriptions, "webhook subscriptions", 10),
		b(BucketSlackThreads, "Slack thread ts per account", 1),
		b(BucketSilences, "silences", 5),
		{Bucket: BucketLeases, Description: "poller leases and members (expire unless renewed)", History: 1, TTL: LeaseTTL, Storage: jetstream.FileStorage, Replicas: c.Replicas},
	}
}

// Provision creates the streams and buckets, or checks that existing ones match.
// Running it twice is a no-op; a conflicting existing configuration is an
// ErrConfigConflict that names every differing setting.
func (b *Bus) Provision(ctx context.Context) error {
	for _, sc := range []jetstream.StreamConfig{EventStreamConfig(b.Cfg), DeadLetterStreamConfig(b.Cfg), RedriveStreamConfig(b.Cfg)} {
		if err := EnsureStream(ctx, b.JS, sc); err != nil {
			return err
		}
	}
	for _, kc := range BucketConfigs(b.Cfg) {
		if _, err := EnsureBucket(ctx, b.JS, kc); err != nil {
			return err
		}
	}
	return nil
}

// EnsureStream creates a stream, or checks an existing one against want.
func EnsureStream(ctx context.Context, js jetstream.JetStream, want jetstream.StreamConfig) error {
	s, err := js.Stream(ctx, want.Name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		if _, err := js.CreateStream(ctx, want); err != nil {
			if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) { // lost a race with another replica
				if err := visible(ctx, js, want.Name); err != nil {
					return err
				}
				return EnsureStream(ctx, js, want)
			}
			return fmt.Errorf("create stream %s: %w", want.Name, err)
		}
		return visible(ctx, js, want.Name)
	}
	if err != nil {
		return fmt.Errorf("look up stream %s: %w", want.Name, err)
	}
	if diffs := streamDiffs(s.CachedInfo().Config, want); len(diffs) > 0 {
		return fmt.Errorf("%w: stream %s: %s (change or migrate the stream, or the configuration, deliberately: accountwatch will not alter an audit log on its own)",
			ErrConfigConflict, want.Name, strings.Join(diffs, "; "))
	}
	return nil
}

// visible waits until a stream that was just created (by this call, or by
// a replica that won the race) answers a lookup. On a cluster the create can
// be acknowledged a moment before every server serves the stream: the chaos
// run saw the auditor, started beside the webhook dispatcher on a fresh
// cluster, ensure AW_DELIVERIES and then be told "stream not found" when it
// opened it, and stop.
func visible(ctx context.Context, js jetstream.JetStream, name string) error {
	for {
		_, err := js.Stream(ctx, name)
		if !errors.Is(err, jetstream.ErrStreamNotFound) {
			if err != nil {
				return fmt.Errorf("look up stream %s: %w", name, err)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("stream %s was created but is not found: %w", name, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func streamDiffs(have, want jetstream.StreamConfig) []string {
	var d []string
	add := func(name string, h, w any) { d = append(d, fmt.Sprintf("%s is %v, want %v", name, h, w)) }
	if !slices.Equal(have.Subjects, want.Subjects) {
		add("subjects", have.Subjects, want.Subjects)
	}
	if have.Storage != want.Storage {
		add("storage", have.Storage, want.Storage)
	}
	if have.Retention != want.Retention {
		add("retention policy", have.Retention, want.Retention)
	}
	if have.Replicas != want.Replicas {
		add("replicas", have.Replicas, want.Replicas)
	}
	if have.MaxAge != want.MaxAge {
		add("max age", fmtAge(have.MaxAge), fmtAge(want.MaxAge))
	}
	if have.Duplicates != want.Duplicates {
		add("dedup window", have.Duplicates, want.Duplicates)
	}
	if have.DenyDelete != want.DenyDelete {
		add("deny delete", have.DenyDelete, want.DenyDelete)
	}
	if have.DenyPurge != want.DenyPurge {
		add("deny purge", have.DenyPurge, want.DenyPurge)
	}
	return d
}

func fmtAge(d time.Duration) string {
	if d == 0 {
		return "unlimited"
	}
	return d.String()
}

// EnsureBucket creates a KV bucket, or checks an existing one against want.
func EnsureBucket(ctx context.Context, js jetstream.JetStream, want jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	kv, err := js.KeyValue(ctx, want.Bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = js.CreateKeyValue(ctx, want)
		if errors.Is(err, jetstream.ErrBucketExists) {
			if err := visible(ctx, js, "KV_"+want.Bucket); err != nil {
				return nil, err
			}
			return EnsureBucket(ctx, js, want)
		}
		if err != nil {
			return nil, fmt.Errorf("create bucket %s: %w", want.Bucket, err)
		}
		return kv, visible(ctx, js, "KV_"+want.Bucket)
	}
	if err != nil {
		return nil, fmt.Errorf("look up bucket %s: %w", want.Bucket, err)
	}
	st, err := kv.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("bucket %s status: %w", want.Bucket, err)
	}
	var d []string
	if h := uint8(st.History()); h != want.History {
		d = append(d, fmt.Sprintf("history is %d, want %d", h, want.History))
	}
	if st.TTL() != want.TTL {
		d = append(d, fmt.Sprintf("ttl is %s, want %s", st.TTL(), want.TTL))
	}
	if info, ok := st.(*jetstream.KeyValueBucketStatus); ok {
		cfg := info.StreamInfo().Config
		if cfg.Storage != want.Storage {
			d = append(d, fmt.Sprintf("storage is %v, want %v", cfg.Storage, want.Storage))
		}
		if want.Replicas > 0 && cfg.Replicas != want.Replicas {
			d = append(d, fmt.Sprintf("replicas is %d, want %d", cfg.Replicas, want.Replicas))
		}
	}
	if len(d) > 0 {
		return nil, fmt.Errorf("%w: bucket %s: %s", ErrConfigConflict, want.Bucket, strings.Join(d, "; "))
	}
	return kv, nil
}
