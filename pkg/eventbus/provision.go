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
	// BucketReceivers is the roster: every sink's receivers (pkg/roster).
	BucketReceivers = "AW_RECEIVERS"
	// BucketAlerts is the routed sinks' alerting state, keys under the
	// sink's name: what inhibits, what is reminded of, which reports went
	// out (pkg/sink). Every replica of a notifier shares it.
	BucketAlerts = "AW_ALERTS"
	// LeaseTTL is the lifetime of an unrenewed lease.
	LeaseTTL = 15 * time.Second
)

// ErrConfigConflict is returned when a stream or bucket exists with a configuration
// that differs from what this version expects.
var ErrConfigConflict = errors.New("existing configuration conflicts")

// ErrNotProvisioned is returned when a stream or bucket a service needs does
// not exist: only the admin identity creates them (`awctl provision`).
var ErrNotProvisioned = errors.New("not provisioned")

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

// MaxRedriveConsumers bounds the consumers of AW_REDRIVE: one a receiver,
// so one a webhook endpoint. nats-server caps a stream that sets no limit at
// 1,000 consumers (JSDefaultMaxConsumersPerStream), which would refuse the
// thousandth endpoint; an explicit limit replaces that default.
const MaxRedriveConsumers = 100_000

// RedriveStreamConfig holds dead letters sent back to their receiver. It is not
// the audit log: re-driving never writes to AW_EVENTS, so its dedup window cannot
// swallow a re-drive and the original events stay as they were.
func RedriveStreamConfig(c Config) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:         StreamRedrive,
		Description:  "accountwatch re-drives: dead letters sent back to their receiver",
		Subjects:     []string{RedriveRoot + ">"},
		Storage:      jetstream.FileStorage,
		Retention:    jetstream.WorkQueuePolicy,
		Replicas:     c.Replicas,
		Duplicates:   c.DedupWindow,
		MaxConsumers: MaxRedriveConsumers,
	}
}

// CheckpointStreamConfig holds the signed checkpoints of the audit log
// (pkg/checkpoint), with the log's own guarantees: no deletes, no purges,
// the same retention.
func CheckpointStreamConfig(c Config) jetstream.StreamConfig {
	sc := EventStreamConfig(c)
	sc.Name, sc.Subjects = StreamCheckpoints, []string{CheckpointRoot + ">"}
	sc.Description = "accountwatch signed checkpoints of the audit log (Merkle root of every account's chain head)"
	return sc
}

// StreamConfigs are the streams Provision creates, extra ones aside.
func StreamConfigs(c Config) []jetstream.StreamConfig {
	return []jetstream.StreamConfig{EventStreamConfig(c), DeadLetterStreamConfig(c), RedriveStreamConfig(c), CheckpointStreamConfig(c)}
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
		b(BucketReceivers, "every sink's receivers, published by the notifiers (re-drive validation)", 1),
		b(BucketAlerts, "the notifiers' alerting state: inhibition sources, reminders, report runs", 1),
	}
}

// Provision creates the streams and buckets (and extra streams, such as the
// delivery log), or checks that existing ones match: the admin's step, which
// a service never takes (the admin identity alone may create streams).
// Running it twice is a no-op; a conflicting existing configuration is an
// ErrConfigConflict that names every differing setting.
func Provision(ctx context.Context, js jetstream.JetStream, c Config, extra ...jetstream.StreamConfig) error {
	for _, sc := range append(StreamConfigs(c), extra...) {
		if err := EnsureStream(ctx, js, sc); err != nil {
			return err
		}
	}
	for _, kc := range BucketConfigs(c) {
		if _, err := EnsureBucket(ctx, js, kc); err != nil {
			return err
		}
	}
	return nil
}

// Provision provisions through this bus, which must be the admin's.
func (b *Bus) Provision(ctx context.Context, extra ...jetstream.StreamConfig) error {
	return Provision(ctx, b.JS, b.Cfg, extra...)
}

// Needs lists the streams and buckets a role works with: what Open checks.
func (r Role) Needs() (streams, buckets []string) {
	sinks := []string{StreamEvents, StreamRedrive, StreamDeadLetter}
	switch r {
	case RolePoller:
		return []string{StreamEvents}, []string{BucketState, BucketWatch, BucketLeases}
	case RoleSlack:
		return sinks, []string{BucketSilences, BucketSlackThreads, BucketReceivers, BucketAlerts, BucketState}
	case RoleEmail:
		return sinks, []string{BucketSilences, BucketReceivers, BucketAlerts, BucketState}
	case RoleWebhook:
		return sinks, []string{BucketSilences, BucketSubscriptions, BucketReceivers}
	case RoleAuditor:
		return []string{StreamEvents, StreamDeadLetter, StreamRedrive, StreamCheckpoints}, []string{BucketState, BucketSubscriptions, BucketReceivers, BucketWatch, BucketLeases}
	case RoleOperator:
		return []string{StreamEvents, StreamDeadLetter, StreamRedrive}, []string{BucketState, BucketWatch, BucketSilences, BucketReceivers}
	}
	return nil, nil
}

// Require checks that every stream and bucket role needs exists as this
// version expects: ErrNotProvisioned names all that are missing, and how to
// create them; ErrConfigConflict what differs.
func Require(ctx context.Context, js jetstream.JetStream, c Config, role Role) error {
	streams, buckets := role.Needs()
	want := map[string]jetstream.StreamConfig{}
	for _, sc := range StreamConfigs(c) {
		want[sc.Name] = sc
	}
	kvs := map[string]jetstream.KeyValueConfig{}
	for _, kc := range BucketConfigs(c) {
		kvs[kc.Bucket] = kc
	}
	var missing []string
	for _, name := range streams {
		if err := checkStream(ctx, js, want[name]); errors.Is(err, jetstream.ErrStreamNotFound) {
			missing = append(missing, "stream "+name)
		} else if err != nil {
			return err
		}
	}
	for _, name := range buckets {
		if err := checkBucket(ctx, js, kvs[name]); errors.Is(err, jetstream.ErrBucketNotFound) {
			missing = append(missing, "bucket "+name)
		} else if err != nil {
			return err
		}
	}
	if len(missing) > 0 {
		return notProvisioned(role, missing...)
	}
	return nil
}

func notProvisioned(role Role, what ...string) error {
	return fmt.Errorf("%w: %s missing; %s may not create streams or buckets: the admin provisions them (`awctl provision` with the admin credentials)",
		ErrNotProvisioned, strings.Join(what, ", "), role)
}

// EnsureStream creates a stream, or checks an existing one against want. On a
// connection of a service role it only checks: a missing stream is then
// ErrNotProvisioned at once (the server would refuse the creation, and a
// refused request only times out).
func EnsureStream(ctx context.Context, js jetstream.JetStream, want jetstream.StreamConfig) error {
	err := checkStream(ctx, js, want)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		if r := roleOf(js.Conn()); r != "" && r != RoleAdmin {
			return notProvisioned(r, "stream "+want.Name)
		}
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
	return err
}

// checkStream looks want's stream up and compares it (ErrStreamNotFound when missing).
func checkStream(ctx context.Context, js jetstream.JetStream, want jetstream.StreamConfig) error {
	s, err := js.Stream(ctx, want.Name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return err
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
		if r := roleOf(js.Conn()); r != "" && r != RoleAdmin {
			return nil, notProvisioned(r, "bucket "+want.Bucket)
		}
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
	return kv, compareBucket(ctx, kv, want)
}

// checkBucket looks want's bucket up and compares it (ErrBucketNotFound when missing).
func checkBucket(ctx context.Context, js jetstream.JetStream, want jetstream.KeyValueConfig) error {
	kv, err := js.KeyValue(ctx, want.Bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return err
	}
	if err != nil {
		return fmt.Errorf("look up bucket %s: %w", want.Bucket, err)
	}
	return compareBucket(ctx, kv, want)
}

func compareBucket(ctx context.Context, kv jetstream.KeyValue, want jetstream.KeyValueConfig) error {
	st, err := kv.Status(ctx)
	if err != nil {
		return fmt.Errorf("bucket %s status: %w", want.Bucket, err)
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
		return fmt.Errorf("%w: bucket %s: %s", ErrConfigConflict, want.Bucket, strings.Join(d, "; "))
	}
	return nil
}
