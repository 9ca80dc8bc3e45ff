package eventbus_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/eventbus"
	"github.com/accountwatch/accountwatch/pkg/eventbus/bustest"
)

// The intended access, written out here by hand (not derived from
// Role.Permissions, which is what is under test): which buckets each service
// role reads, which it writes, and which event, dead-letter and checkpoint
// subjects it publishes to. Everything else must be refused.
var (
	reads = map[eventbus.Role][]string{
		eventbus.RolePoller:   {eventbus.BucketState, eventbus.BucketWatch, eventbus.BucketLeases},
		eventbus.RoleSlack:    {eventbus.BucketSilences, eventbus.BucketSlackThreads},
		eventbus.RoleEmail:    {eventbus.BucketSilences},
		eventbus.RoleWebhook:  {eventbus.BucketSilences, eventbus.BucketSubscriptions},
		eventbus.RoleAuditor:  {eventbus.BucketState, eventbus.BucketSubscriptions, eventbus.BucketWatch, eventbus.BucketReceivers, eventbus.BucketSilences},
		eventbus.RoleOperator: {eventbus.BucketState, eventbus.BucketWatch, eventbus.BucketSilences, eventbus.BucketLeases, eventbus.BucketSubscriptions, eventbus.BucketReceivers},
	}
	// rosterKey: each sink writes its own entry of the roster (and can look
	// the bucket up), no other entry, and reads none.
	rosterKey = map[eventbus.Role]string{eventbus.RoleSlack: "slack", eventbus.RoleEmail: "email", eventbus.RoleWebhook: "webhook"}
	writes    = map[eventbus.Role][]string{
		eventbus.RolePoller:   {eventbus.BucketState, eventbus.BucketWatch, eventbus.BucketLeases},
		eventbus.RoleSlack:    {eventbus.BucketSlackThreads},
		eventbus.RoleWebhook:  {eventbus.BucketSubscriptions},
		eventbus.RoleOperator: {eventbus.BucketState, eventbus.BucketWatch, eventbus.BucketSilences},
	}
	// publishes: the subjects each role may publish to, of those probed below.
	publishes = map[eventbus.Role][]string{
		eventbus.RolePoller:   {statusSubject, createdSubject},
		eventbus.RoleSlack:    {"aw.dlq.slack.ops.x", "aw.deliveries.slack.ops.x"},
		eventbus.RoleEmail:    {"aw.dlq.email.ops.x", "aw.deliveries.email.ops.x"},
		eventbus.RoleWebhook:  {"aw.dlq.webhook.ep_1.x", "aw.deliveries.webhook.ep_1.x", "aw.redrive.webhook.ep_1.x"},
		eventbus.RoleAuditor:  {"aw.checkpoints.AW_EVENTS", "aw.redrive.webhook.ep_1.x"},
		eventbus.RoleOperator: {createdSubject, "aw.redrive.webhook.ep_1.x"},
	}
	probes = []string{statusSubject, createdSubject, "aw.dlq.slack.ops.x", "aw.dlq.webhook.ep_1.x", "aw.dlq.email.ops.x",
		"aw.deliveries.slack.ops.x", "aw.deliveries.webhook.ep_1.x", "aw.deliveries.email.ops.x",
		"aw.redrive.webhook.ep_1.x", "aw.checkpoints.AW_EVENTS"}
	allBuckets = []string{eventbus.BucketState, eventbus.BucketWatch, eventbus.BucketSubscriptions, eventbus.BucketSlackThreads, eventbus.BucketSilences, eventbus.BucketLeases, eventbus.BucketReceivers}
)

const (
	statusSubject  = "aw.events.activeplatform.ap-main.account-status-changed.1000"
	createdSubject = "aw.events.alibaba-bss.bss-main.account-created.1500"
)

// roleConn is a connection as one role that records what the server refused.
type roleConn struct {
	role    eventbus.Role
	nc      *nats.Conn
	js      jetstream.JetStream
	mu      sync.Mutex
	refusal []string
}

func (c *roleConn) refusals() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.refusal)
}

// target is a server to probe: its URL, the admin's bus, each role's seed.
type target struct {
	url   string
	admin *eventbus.Bus
	seed  func(eventbus.Role) string
}

func embedded(b *eventbus.Bus) target { return target{b.ClientURL(), b, b.SeedFile} }

func dialRole(t *testing.T, tg target, r eventbus.Role) *roleConn {
	t.Helper()
	c := &roleConn{role: r}
	seed, err := nats.NkeyOptionFromSeed(tg.seed(r))
	if err != nil {
		t.Fatal(err)
	}
	c.nc, err = nats.Connect(tg.url, seed, nats.CustomInboxPrefix(r.InboxPrefix()),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			if errors.Is(err, nats.ErrPermissionViolation) {
				c.mu.Lock()
				c.refusal = append(c.refusal, err.Error())
				c.mu.Unlock()
			}
		}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.nc.Close)
	c.js, _ = jetstream.New(c.nc)
	return c
}

// refused runs op and requires the server to refuse it: a permission
// violation on the subject (or subject prefix) want, reported to the client.
// An op that completes without one is a failure, and so is one that fails
// for another reason.
func (c *roleConn) refused(t *testing.T, what, want string, op func(ctx context.Context) error) {
	t.Helper()
	before := len(c.refusals())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- op(ctx) }()
	seen := func() bool {
		for _, r := range c.refusals()[before:] {
			if strings.Contains(r, `"`+want) {
				return true
			}
		}
		return false
	}
	// A refused JetStream request is answered by nothing: it ends only by
	// its context, which is cancelled once the refusal has arrived. A plain
	// publish returns at once; its refusal follows (before the flush's pong,
	// reported asynchronously after it).
	var opErr error
	finished := false
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); {
		if seen() {
			cancel()
			if !finished {
				<-done
			}
			return
		}
		if !finished {
			select {
			case opErr = <-done:
				finished = true
				c.nc.Flush()
			case <-time.After(5 * time.Millisecond):
			}
		} else {
			time.Sleep(5 * time.Millisecond)
		}
	}
	if finished && opErr == nil {
		t.Errorf("%s may %s: it was allowed", c.role, what)
	} else {
		t.Errorf("%s %s: no refusal of %s (err %v, refusals %v)", c.role, what, want, opErr, c.refusals()[before:])
	}
}

func accessFixture(t *testing.T) target {
	t.Helper()
	b := bustest.Start(t, bustest.Config(t, "127.0.0.1:0"))
	fill(t, b)
	return embedded(b)
}

func fill(t *testing.T, b *eventbus.Bus) {
	bustest.Publish(t, b, sample(t, "1000", 1))
	fillBuckets(t, b)
}

// fillBuckets puts key k in every bucket (again: AW_LEASES' entries expire).
func fillBuckets(t *testing.T, b *eventbus.Bus) {
	t.Helper()
	ctx := ctxT(t)
	for _, name := range allBuckets {
		kv, err := b.JS.KeyValue(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := kv.Put(ctx, "k", []byte("secret of "+name)); err != nil {
			t.Fatal(err)
		}
	}
}

// TestEveryForbiddenOperationIsRefused: for every service role, every
// operation on streams and buckets it must not do is refused by the server,
// and what it must do works. Admin, the control, does all of it.
func TestEveryForbiddenOperationIsRefused(t *testing.T) { checkMatrix(t, accessFixture(t)) }

// checkMatrix tries every operation on tg with every role.
func checkMatrix(t *testing.T, tg target) {
	b := tg.admin
	fake := func(subject string) *nats.Msg {
		m := &nats.Msg{Subject: subject, Header: nats.Header{}, Data: []byte(`{"account_id":"1000"}`)}
		m.Header.Set("ce-id", "forged")
		return m
	}
	for _, r := range eventbus.Roles() {
		if r == eventbus.RoleAdmin {
			continue
		}
		t.Run(string(r), func(t *testing.T) {
			fillBuckets(t, b)
			c := dialRole(t, tg, r)
			streamOps := []struct {
				what, subject string
				op            func(ctx context.Context) error
			}{
				{"delete AW_EVENTS", "$JS.API.STREAM.DELETE.AW_EVENTS", func(ctx context.Context) error { return c.js.DeleteStream(ctx, eventbus.StreamEvents) }},
				{"update AW_EVENTS", "$JS.API.STREAM.UPDATE.AW_EVENTS", func(ctx context.Context) error {
					cfg := eventbus.EventStreamConfig(b.Cfg)
					cfg.DenyDelete, cfg.DenyPurge, cfg.MaxAge = false, false, time.Hour
					_, err := c.js.UpdateStream(ctx, cfg)
					return err
				}},
				{"purge AW_EVENTS", "$JS.API.STREAM.PURGE.AW_EVENTS", func(ctx context.Context) error {
					s, err := c.js.Stream(ctx, eventbus.StreamEvents)
					if err != nil {
						return err
					}
					return s.Purge(ctx)
				}},
				{"delete an event", "$JS.API.STREAM.MSG.DELETE.AW_EVENTS", func(ctx context.Context) error {
					_, err := c.nc.RequestWithContext(ctx, "$JS.API.STREAM.MSG.DELETE.AW_EVENTS", []byte(`{"seq":1}`))
					return err
				}},
				{"create a stream", "$JS.API.STREAM.CREATE.AW_EVENTS2", func(ctx context.Context) error {
					cfg := eventbus.EventStreamConfig(b.Cfg)
					cfg.Name, cfg.Subjects = "AW_EVENTS2", []string{"aw.events2.>"}
					_, err := c.js.CreateStream(ctx, cfg)
					return err
				}},
				{"recreate AW_EVENTS with a new first sequence", "$JS.API.STREAM.CREATE.AW_EVENTS", func(ctx context.Context) error {
					cfg := eventbus.EventStreamConfig(b.Cfg)
					cfg.FirstSeq = 100
					_, err := c.js.CreateStream(ctx, cfg)
					return err
				}},
				{"delete the checkpoints", "$JS.API.STREAM.DELETE.AW_CHECKPOINTS", func(ctx context.Context) error { return c.js.DeleteStream(ctx, eventbus.StreamCheckpoints) }},
				{"delete the state bucket", "$JS.API.STREAM.DELETE.KV_AW_STATE", func(ctx context.Context) error { return c.js.DeleteKeyValue(ctx, eventbus.BucketState) }},
				{"create a bucket", "$JS.API.STREAM.CREATE.KV_AW_EVIL", func(ctx context.Context) error {
					_, err := c.nc.RequestWithContext(ctx, "$JS.API.STREAM.CREATE.KV_AW_EVIL", []byte(`{"name":"KV_AW_EVIL","subjects":["$KV.AW_EVIL.>"]}`))
					return err
				}},
				{"read every other inbox", "_INBOX.>", func(ctx context.Context) error {
					_, err := c.nc.Subscribe("_INBOX.>", func(*nats.Msg) {})
					if err == nil {
						err = c.nc.FlushWithContext(ctx)
						<-ctx.Done()
					}
					return err
				}},
				{"listen to bucket writes", "$KV.>", func(ctx context.Context) error {
					_, err := c.nc.Subscribe("$KV.>", func(*nats.Msg) {})
					if err == nil {
						err = c.nc.FlushWithContext(ctx)
						<-ctx.Done()
					}
					return err
				}},
			}
			for _, o := range streamOps {
				c.refused(t, o.what, o.subject, o.op)
			}
			if own, ok := rosterKey[r]; ok {
				kv, err := c.js.KeyValue(ctxT(t), eventbus.BucketReceivers)
				if err != nil {
					t.Fatalf("%s looks the roster up: %v", r, err)
				}
				if _, err := kv.Put(ctxT(t), own, []byte(`{"sink":"`+own+`"}`)); err != nil {
					t.Errorf("%s writes its roster entry: %v", r, err)
				}
				for _, other := range rosterKey {
					if other != own {
						c.refused(t, "write the roster entry of "+other, "$KV.AW_RECEIVERS."+other, func(ctx context.Context) error {
							_, err := kv.Put(ctx, other, []byte("{}"))
							return err
						})
					}
				}
			}
			for _, subj := range probes {
				allowed := slices.Contains(publishes[r], subj)
				if allowed {
					continue // the services' own tests publish there
				}
				c.refused(t, "publish to "+subj, subj, func(ctx context.Context) error {
					if strings.HasPrefix(subj, event.SubjectRoot) || strings.HasPrefix(subj, eventbus.CheckpointRoot) {
						_, err := c.js.PublishMsg(ctx, fake(subj))
						return err
					}
					return c.nc.PublishMsg(fake(subj))
				})
			}
			ctx := ctxT(t)
			for _, name := range allBuckets {
				if !slices.Contains(reads[r], name) {
					if _, ok := rosterKey[r]; !ok || name != eventbus.BucketReceivers {
						c.refused(t, "read bucket "+name, "$JS.API.STREAM.INFO.KV_"+name, func(ctx context.Context) error {
							_, err := c.js.KeyValue(ctx, name)
							return err
						})
					}
					c.refused(t, "get a key of "+name, "$JS.API.DIRECT.GET.KV_"+name, func(ctx context.Context) error {
						_, err := c.nc.RequestWithContext(ctx, "$JS.API.DIRECT.GET.KV_"+name+".$KV."+name+".k", nil)
						return err
					})
					c.refused(t, "watch bucket "+name, "$JS.API.CONSUMER.CREATE.KV_"+name, func(ctx context.Context) error {
						_, err := c.js.OrderedConsumer(ctx, "KV_"+name, jetstream.OrderedConsumerConfig{})
						return err
					})
					continue
				}
				kv, err := c.js.KeyValue(ctx, name)
				if err != nil {
					t.Fatalf("%s reads %s: %v", r, name, err)
				}
				if name == eventbus.BucketReceivers {
					for _, other := range rosterKey {
						c.refused(t, "write the roster entry of "+other, "$KV."+name+"."+other, func(ctx context.Context) error {
							_, err := kv.Put(ctx, other, []byte("{}"))
							return err
						})
					}
				}
				if e, err := kv.Get(ctx, "k"); err != nil || string(e.Value()) != "secret of "+name {
					t.Errorf("%s reads %s: %v", r, name, err)
				}
				if !slices.Contains(writes[r], name) {
					c.refused(t, "write bucket "+name, "$KV."+name+".k", func(ctx context.Context) error {
						_, err := kv.Put(ctx, "k", []byte("overwritten"))
						return err
					})
					c.refused(t, "delete a key of "+name, "$KV."+name+".k", func(ctx context.Context) error { return kv.Delete(ctx, "k") })
				} else if _, err := kv.Put(ctx, "k2", []byte("mine")); err != nil {
					t.Errorf("%s writes %s: %v", r, name, err)
				}
			}
		})
	}
	// Nothing refused took effect.
	ctx := ctxT(t)
	s, err := b.JS.Stream(ctx, eventbus.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	if info, _ := s.Info(ctx); info.State.Msgs != 1 || info.Config.FirstSeq != 0 || !info.Config.DenyDelete || info.Config.MaxAge != b.Cfg.Retention {
		t.Errorf("AW_EVENTS changed: %+v %+v", info.State, info.Config)
	}
	for _, name := range allBuckets {
		kv, _ := b.JS.KeyValue(ctx, name)
		if e, err := kv.Get(ctx, "k"); name != eventbus.BucketLeases && (err != nil || string(e.Value()) != "secret of "+name) {
			t.Errorf("bucket %s changed: %v", name, err)
		}
	}
	t.Run("admin", func(t *testing.T) {
		c := dialRole(t, tg, eventbus.RoleAdmin)
		cfg := eventbus.EventStreamConfig(b.Cfg)
		cfg.Name, cfg.Subjects = "AW_EVENTS2", []string{"aw.events2.>"}
		if _, err := c.js.CreateStream(ctx, cfg); err != nil {
			t.Fatalf("admin creates a stream: %v", err)
		}
		cfg.MaxAge = time.Hour
		if _, err := c.js.UpdateStream(ctx, cfg); err != nil {
			t.Errorf("admin updates a stream: %v", err)
		}
		if err := c.js.DeleteStream(ctx, "AW_EVENTS2"); err != nil {
			t.Errorf("admin deletes a stream: %v", err)
		}
		if got := c.refusals(); len(got) > 0 {
			t.Errorf("admin refused: %v", got)
		}
	})
}

// TestPermittedPublishesAreStored: every subject a role may publish to, of
// those probed, is taken (the stream stores it or the publish goes through).
func TestPermittedPublishesAreStored(t *testing.T) {
	tg := accessFixture(t)
	ctx := ctxT(t)
	for r, subjects := range publishes {
		c := dialRole(t, tg, r)
		for _, subj := range subjects {
			if err := c.nc.Publish(subj, []byte("{}")); err != nil {
				t.Errorf("%s publishes %s: %v", r, subj, err)
			}
		}
		// A refusal comes before the flush's pong, and sets the last error.
		if err := c.nc.FlushWithContext(ctx); err != nil {
			t.Fatal(err)
		}
		if err := c.nc.LastError(); err != nil {
			t.Errorf("%s refused: %v", r, err)
		}
	}
}

// TestAuthConfigMatchesServer: the nats-server include deploy/nats/*.conf
// load parses to the users and permissions the embedded server runs with.
func TestAuthConfigMatchesServer(t *testing.T) {
	creds, err := eventbus.LoadCredentials(t.TempDir(), true)
	if err != nil {
		t.Fatal(err)
	}
	opts, err := server.ProcessConfigFile(creds.AuthConfigFile())
	if err != nil {
		t.Fatalf("auth.conf does not load: %v", err)
	}
	want := creds.Users()
	if len(opts.Nkeys) != len(want) {
		t.Fatalf("%d users, want %d", len(opts.Nkeys), len(want))
	}
	for i, u := range opts.Nkeys {
		w := want[i]
		if u.Nkey != w.Nkey || !slices.Equal(u.Permissions.Publish.Allow, w.Permissions.Publish.Allow) || !slices.Equal(u.Permissions.Subscribe.Allow, w.Permissions.Subscribe.Allow) {
			t.Errorf("user %d: %+v %+v, want %+v %+v", i, u.Nkey, u.Permissions, w.Nkey, w.Permissions)
		}
	}
	again, err := eventbus.LoadCredentials(creds.Dir(), false)
	if err != nil || again.PublicKey(eventbus.RolePoller) != creds.PublicKey(eventbus.RolePoller) {
		t.Errorf("reloading gives other keys: %v", err)
	}
}

// TestServicesOnlyCheck: a service's connection never creates a stream or a
// bucket; a missing one is ErrNotProvisioned at once, naming it.
func TestServicesOnlyCheck(t *testing.T) {
	cfg := bustest.Config(t, "127.0.0.1:0")
	host, err := eventbus.Connect(ctxT(t), cfg) // nothing provisioned
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(host.Close)
	svc := eventbus.DefaultConfig()
	svc.URL, svc.NKeySeedFile, svc.Role = host.ClientURL(), host.SeedFile(eventbus.RoleWebhook), eventbus.RoleWebhook
	b, err := eventbus.Connect(ctxT(t), svc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	start := time.Now()
	err = eventbus.EnsureStream(ctxT(t), b.JS, jetstream.StreamConfig{Name: "AW_DELIVERIES", Subjects: []string{"aw.deliveries.>"}})
	if !errors.Is(err, eventbus.ErrNotProvisioned) || !strings.Contains(err.Error(), "stream AW_DELIVERIES") {
		t.Errorf("EnsureStream as a service: %v", err)
	}
	if _, err := eventbus.EnsureBucket(ctxT(t), b.JS, eventbus.BucketConfigs(b.Cfg)[2]); !errors.Is(err, eventbus.ErrNotProvisioned) || !strings.Contains(err.Error(), "bucket AW_SUBSCRIPTIONS") {
		t.Errorf("EnsureBucket as a service: %v", err)
	}
	if time.Since(start) > 10*time.Second { // a refused creation would wait for its timeout
		t.Errorf("took %s", time.Since(start))
	}
	if err := eventbus.Require(ctxT(t), b.JS, b.Cfg, eventbus.RoleWebhook); !errors.Is(err, eventbus.ErrNotProvisioned) ||
		!strings.Contains(err.Error(), "stream AW_EVENTS, stream AW_REDRIVE, stream AW_DLQ, bucket AW_SILENCES, bucket AW_SUBSCRIPTIONS") {
		t.Errorf("Require: %v", err)
	}
}

// TestOpenEmbeddedWorksAsTheRole: a service that hosts the embedded server
// provisions as admin, then works as its own role.
func TestOpenEmbeddedWorksAsTheRole(t *testing.T) {
	cfg := bustest.Config(t, "")
	cfg.Role = eventbus.RolePoller
	b, err := eventbus.Open(ctxT(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	if b.NC.Opts.InboxPrefix != "_INBOX.poller" || !b.Embedded() {
		t.Errorf("inbox %q", b.NC.Opts.InboxPrefix)
	}
	bustest.Publish(t, b, sample(t, "1000", 1))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := b.JS.DeleteStream(ctx, eventbus.StreamEvents); err == nil {
		t.Error("the poller deleted the event stream")
	}
	if _, err := eventbus.Open(ctxT(t), bustest.Config(t, "")); !errors.Is(err, eventbus.ErrRoleless) {
		t.Errorf("Open without a role: %v", err)
	}
}
