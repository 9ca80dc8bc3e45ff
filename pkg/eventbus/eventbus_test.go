package eventbus_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	natsce "github.com/cloudevents/sdk-go/protocol/nats_jetstream/v2"
	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/eventbus"
	"github.com/accountwatch/accountwatch/pkg/eventbus/bustest"
)

func sample(t testing.TB, acct string, rev uint64) *event.Event {
	t.Helper()
	e, err := event.StatusChanged(event.Meta{
		Provider: event.ProviderActivePlatform, Instance: "ap-main", AccountID: acct, AccountName: "Acme",
		ObservedAt: time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC), Revision: rev,
		Evidence: event.Evidence{RequestID: "req-1", ResponseSHA256: strings.Repeat("cd", 32)},
	}, event.EnumValue("active"), event.EnumValue("credit hold"))
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestPublishDeduplicates(t *testing.T) {
	b := bustest.New(t)
	ctx := ctxT(t)
	p := eventbus.NewPublisher(b.JS)
	e := sample(t, "acct.with dots*", 1)
	first, err := p.Publish(ctx, e)
	if err != nil || first.Duplicate {
		t.Fatalf("first publish: %+v %v", first, err)
	}
	again, err := p.Publish(ctx, sample(t, "acct.with dots*", 1))
	if err != nil {
		t.Fatal(err)
	}
	if !again.Duplicate || again.Sequence != first.Sequence {
		t.Fatalf("second publish of the same id: %+v, want duplicate of seq %d", again, first.Sequence)
	}
	acks, err := p.PublishAll(ctx, []*event.Event{sample(t, "a", 1), sample(t, "b", 1), sample(t, "a", 1)})
	if err != nil {
		t.Fatal(err)
	}
	if acks[0].Duplicate || acks[1].Duplicate || !acks[2].Duplicate {
		t.Fatalf("batch acks %+v", acks)
	}
	s, _ := b.JS.Stream(ctx, eventbus.StreamEvents)
	info, _ := s.Info(ctx)
	if info.State.Msgs != 3 {
		t.Fatalf("stream holds %d messages, want 3", info.State.Msgs)
	}
}

func TestEncodeDecodeBinaryAndStructured(t *testing.T) {
	b := bustest.New(t)
	ctx := ctxT(t)
	e := sample(t, "+86 138.0", 3)
	msg, err := eventbus.Encode(e)
	if err != nil {
		t.Fatal(err)
	}
	if msg.Subject != "aw.events.activeplatform.ap-main.account-status-changed.~2B86~20138~2E0" {
		t.Fatalf("subject %q", msg.Subject)
	}
	for _, h := range []string{"ce-specversion", "ce-id", "ce-source", "ce-type", "ce-subject", "ce-time", "ce-dataschema", "ce-provider", "ce-accountid", "ce-severity", "ce-chainhash", "content-type", "Nats-Msg-Id"} {
		if msg.Header.Get(h) == "" {
			t.Errorf("header %s missing: %v", h, msg.Header)
		}
	}
	if msg.Header.Get("Nats-Msg-Id") != e.ID() {
		t.Fatal("Nats-Msg-Id must be the event id")
	}
	if string(msg.Data) != string(e.Cloud.Data()) {
		t.Fatalf("binary body is not the data: %s", msg.Data)
	}
	// Through the server and back.
	if _, err := eventbus.NewPublisher(b.JS).Publish(ctx, e); err != nil {
		t.Fatal(err)
	}
	s, _ := b.JS.Stream(ctx, eventbus.StreamEvents)
	raw, err := s.GetLastMsgForSubject(ctx, msg.Subject)
	if err != nil {
		t.Fatal(err)
	}
	got, err := eventbus.Decode(&nats.Msg{Subject: raw.Subject, Header: raw.Header, Data: raw.Data})
	if err != nil {
		t.Fatal(err)
	}
	if got.ID() != e.ID() || got.Data.Current.Value != "credit_hold" || got.Hash() != e.Hash() || got.Cloud.Extensions()["severity"] != "critical" {
		t.Fatalf("decoded %+v", got)
	}
	// Structured mode: the whole CloudEvent as JSON in the body, no ce- headers.
	structured, err := json.Marshal(e.Cloud)
	if err != nil {
		t.Fatal(err)
	}
	got, err = eventbus.Decode(&nats.Msg{Subject: msg.Subject, Data: structured, Header: nats.Header{"content-type": []string{"application/cloudevents+json"}}})
	if err != nil {
		t.Fatal(err)
	}
	if got.ID() != e.ID() || got.Data.AccountID != "+86 138.0" || got.Hash() != e.Hash() {
		t.Fatalf("structured decode %+v", got.Data)
	}
	for name, m := range map[string]*nats.Msg{
		"garbage":      {Subject: "x", Data: []byte("{not json")},
		"unknown type": {Subject: "x", Header: nats.Header{"ce-specversion": {"1.0"}, "ce-id": {"1"}, "ce-source": {"s"}, "ce-type": {"other"}}, Data: []byte("{}")},
	} {
		if _, err := eventbus.Decode(m); !errors.Is(err, event.ErrInvalid) {
			t.Errorf("%s: want ErrInvalid, got %v", name, err)
		}
	}
}

// encodeWithSDK encodes through the SDK's generic nats_jetstream binding writer:
// the reference eventbus.Encode must match.
func encodeWithSDK(e *event.Event) (*nats.Msg, error) {
	subject, err := e.Subject()
	if err != nil {
		return nil, err
	}
	var body bytes.Buffer
	h, err := natsce.WriteMsg(binding.WithForceBinary(context.Background()), binding.ToMessage(&e.Cloud), &body)
	if err != nil {
		return nil, err
	}
	h.Set("content-type", event.ContentType)
	h.Set(jetstream.MsgIDHeader, e.ID())
	return &nats.Msg{Subject: subject, Header: h, Data: body.Bytes()}, nil
}

func TestEncodeMatchesSDK(t *testing.T) {
	for _, acct := range []string{"1", "+86 138.0", "日本"} {
		e := sample(t, acct, 9)
		fast, err := eventbus.Encode(e)
		if err != nil {
			t.Fatal(err)
		}
		sdk, err := encodeWithSDK(e)
		if err != nil {
			t.Fatal(err)
		}
		if fast.Subject != sdk.Subject || string(fast.Data) != string(sdk.Data) {
			t.Fatalf("subject/body differ: %q %q", fast.Subject, sdk.Subject)
		}
		if len(fast.Header) != len(sdk.Header) {
			t.Fatalf("headers differ:\n%v\n%v", fast.Header, sdk.Header)
		}
		for k, v := range sdk.Header {
			if fast.Header.Get(k) != v[0] {
				t.Errorf("header %s: %q, SDK wrote %q", k, fast.Header.Get(k), v[0])
			}
		}
	}
}

func TestProvisionIsIdempotentAndReportsConflicts(t *testing.T) {
	b := bustest.New(t) // provisions once
	ctx := ctxT(t)
	if err := b.Provision(ctx); err != nil {
		t.Fatalf("second provisioning: %v", err)
	}
	s, _ := b.JS.Stream(ctx, eventbus.StreamEvents)
	info, _ := s.Info(ctx)
	c := info.Config
	if !c.DenyDelete || !c.DenyPurge || c.Storage != jetstream.FileStorage || c.Duplicates != 15*time.Minute || c.MaxAge != 61362*time.Hour {
		t.Fatalf("stream config %+v", c)
	}
	if err := s.DeleteMsg(ctx, 1); err == nil {
		t.Fatal("the audit log must refuse deletes")
	}
	if err := s.Purge(ctx); err == nil {
		t.Fatal("the audit log must refuse purges")
	}
	for _, name := range []string{eventbus.BucketState, eventbus.BucketWatch, eventbus.BucketSubscriptions, eventbus.BucketSlackThreads, eventbus.BucketSilences, eventbus.BucketLeases} {
		if _, err := b.JS.KeyValue(ctx, name); err != nil {
			t.Errorf("bucket %s: %v", name, err)
		}
	}

	other := bustest.Config(t, "")
	ob, err := eventbus.Connect(ctx, other)
	if err != nil {
		t.Fatal(err)
	}
	defer ob.Close()
	conflicting := eventbus.EventStreamConfig(other)
	conflicting.Storage = jetstream.MemoryStorage
	conflicting.Duplicates = 2 * time.Minute
	if _, err := ob.JS.CreateStream(ctx, conflicting); err != nil {
		t.Fatal(err)
	}
	err = ob.Provision(ctx)
	if !errors.Is(err, eventbus.ErrConfigConflict) {
		t.Fatalf("want ErrConfigConflict, got %v", err)
	}
	for _, want := range []string{"AW_EVENTS", "storage is Memory, want File", "dedup window is 2m0s, want 15m0s"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("conflict message %q lacks %q", err, want)
		}
	}
}

func TestBucketConflict(t *testing.T) {
	ctx := ctxT(t)
	cfg := bustest.Config(t, "")
	b, err := eventbus.Connect(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := b.JS.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: eventbus.BucketWatch, History: 1}); err != nil {
		t.Fatal(err)
	}
	err = b.Provision(ctx)
	if !errors.Is(err, eventbus.ErrConfigConflict) || !strings.Contains(err.Error(), "AW_WATCH: history is 1, want 5") {
		t.Fatalf("got %v", err)
	}
}

func TestRestartKeepsStreamAndKV(t *testing.T) {
	ctx := ctxT(t)
	cfg := bustest.Config(t, "")
	b, err := eventbus.Connect(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	e := sample(t, "42", 1)
	ack, err := eventbus.NewPublisher(b.JS).Publish(ctx, e)
	if err != nil {
		t.Fatal(err)
	}
	kv, _ := b.JS.KeyValue(ctx, eventbus.BucketState)
	if _, err := kv.Put(ctx, "activeplatform.ap-main.42", []byte(`{"status":"credit_hold"}`)); err != nil {
		t.Fatal(err)
	}
	b.Close()

	b2, err := eventbus.Connect(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Close()
	if err := b2.Provision(ctx); err != nil {
		t.Fatalf("provision after restart: %v", err)
	}
	kv2, _ := b2.JS.KeyValue(ctx, eventbus.BucketState)
	entry, err := kv2.Get(ctx, "activeplatform.ap-main.42")
	if err != nil || string(entry.Value()) != `{"status":"credit_hold"}` {
		t.Fatalf("state after restart: %v %v", entry, err)
	}
	again, err := eventbus.NewPublisher(b2.JS).Publish(ctx, e)
	if err != nil {
		t.Fatal(err)
	}
	if !again.Duplicate || again.Sequence != ack.Sequence {
		t.Fatalf("dedup state lost across restart: %+v", again)
	}
}

func TestConnectErrorsRedactCredentials(t *testing.T) {
	cfg := eventbus.DefaultConfig()
	cfg.URL = "nats://alice:s3cret@127.0.0.1:1"
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, err := eventbus.Connect(ctx, cfg)
	if !errors.Is(err, eventbus.ErrConnect) {
		t.Fatalf("want ErrConnect, got %v", err)
	}
	if strings.Contains(err.Error(), "s3cret") || !strings.Contains(err.Error(), "***@127.0.0.1:1") {
		t.Fatalf("credentials not redacted: %v", err)
	}
}

func TestConfigValidateNamesKeys(t *testing.T) {
	cases := map[string]func(*eventbus.Config){
		"AW_STREAM_REPLICAS":       func(c *eventbus.Config) { c.Replicas = 7 },
		"AW_STREAM_DEDUP_WINDOW":   func(c *eventbus.Config) { c.DedupWindow = 0 },
		"AW_STREAM_RETENTION":      func(c *eventbus.Config) { c.Retention = time.Minute },
		"AW_PUBLISH_MAX_PENDING":   func(c *eventbus.Config) { c.MaxPending = 0 },
		"AW_NATS_TLS_CERT":         func(c *eventbus.Config) { c.TLSCert = "x" },
		"AW_NATS_USER and AW_NATS": func(c *eventbus.Config) { c.User, c.Token = "u", "t" },
	}
	for key, mutate := range cases {
		c := eventbus.DefaultConfig()
		mutate(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("%s: got %v", key, err)
		}
	}
	if err := eventbus.DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestKeyToken(t *testing.T) {
	for _, id := range []string{"1000123", "+86 138.0", "a~b=c", "日本"} {
		tok := eventbus.KeyToken(id)
		if strings.ContainsAny(tok, "~ +") {
			t.Fatalf("%q -> %q is not a KV key token", id, tok)
		}
		back, err := eventbus.ParseKeyToken(tok)
		if err != nil || back != id {
			t.Fatalf("%q -> %q -> %q %v", id, tok, back, err)
		}
	}
}
