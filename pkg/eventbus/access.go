package eventbus

import (
	"slices"

	"github.com/accountwatch/accountwatch/pkg/event"
)

// Role is a NATS identity of accountwatch: one per service, an operator for
// awctl, and the admin that alone creates, updates and deletes streams. Every
// role is a user of one NATS account with its own publish and subscribe
// permissions (see Role.Permissions); the JetStream API is a set of subjects,
// so what a role may do to a stream is what it may publish.
type Role string

// The roles.
const (
	// RoleAdmin provisions: it alone creates, updates, purges and deletes
	// streams and buckets. No service runs as admin.
	RoleAdmin   Role = "admin"
	RolePoller  Role = "poller"
	RoleSlack   Role = "slack-notifier"
	RoleWebhook Role = "webhook-dispatcher"
	RoleEmail   Role = "email-notifier"
	// RoleAuditor reads everything, re-drives dead letters and signs checkpoints.
	RoleAuditor Role = "auditor"
	// RoleOperator is awctl's: the watch list, silences, dead letters, onboarding,
	// replay and verify; never a stream's configuration.
	RoleOperator Role = "awctl"
)

// Roles lists every role, admin first.
func Roles() []Role {
	return []Role{RoleAdmin, RolePoller, RoleSlack, RoleWebhook, RoleEmail, RoleAuditor, RoleOperator}
}

// Valid reports whether r is one of Roles.
func (r Role) Valid() bool { return slices.Contains(Roles(), r) }

// InboxPrefix is where the role's replies arrive ("_INBOX.poller"). Each role
// may subscribe to its own inboxes only: with one shared "_INBOX.>" any user
// could read the replies of every other, among them the values of buckets it
// does not own.
func (r Role) InboxPrefix() string { return "_INBOX." + string(r) }

// Permissions are the subjects a role may publish to and subscribe to; what
// they do not allow is refused by the server.
type Permissions struct {
	Publish   []string
	Subscribe []string
}

// Names of the checkpoint stream and its subjects (pkg/checkpoint writes them).
const (
	StreamCheckpoints = "AW_CHECKPOINTS"
	CheckpointRoot    = "aw.checkpoints."
	// DeliveriesRoot is AW_DELIVERIES' subject root (pkg/deliverylog).
	DeliveriesRoot = "aw.deliveries."
	// StreamDeliveries is pkg/deliverylog's stream.
	StreamDeliveries = "AW_DELIVERIES"
	// OpsRoot prefixes operator events on core NATS (a disabled webhook
	// endpoint), which the operator may subscribe to.
	OpsRoot = "aw.ops."
)

const api = "$JS.API."

// info: look a stream up (js.Stream, KeyValue, Status).
func info(stream string) []string { return []string{api + "STREAM.INFO." + stream} }

// get: read single messages, by sequence or last by subject (KV Get, the
// outbox's check of the last event on a subject, dead-letter listing).
func get(stream string) []string {
	return append(info(stream), api+"DIRECT.GET."+stream, api+"DIRECT.GET."+stream+".>", api+"STREAM.MSG.GET."+stream)
}

// read: get, and read through consumers of one's own (ordered consumers,
// KV watchers: push deliveries with flow control, to one's own inbox). The
// library's ordered consumers are never deleted by it: they expire.
func read(stream string) []string {
	return append(get(stream), api+"CONSUMER.CREATE."+stream, api+"CONSUMER.CREATE."+stream+".>",
		api+"CONSUMER.INFO."+stream+".*", api+"CONSUMER.MSG.NEXT."+stream+".*", "$JS.FC."+stream+".>")
}

// consume: read, with acknowledgements and the deletion of consumers (a sink's
// durable consumers, and those of a receiver that is removed).
func consume(stream string) []string {
	return append(read(stream), "$JS.ACK."+stream+".>", api+"CONSUMER.DELETE."+stream+".*")
}

func kvRead(bucket string) []string {
	// A watcher's consumer is ephemeral: the library deletes it when the watch stops.
	return append(read("KV_"+bucket), api+"CONSUMER.DELETE.KV_"+bucket+".*")
}

// kvWrite: put, update, delete and purge keys (a write is a publish to the
// key's subject), and read.
func kvWrite(bucket string) []string { return append(kvRead(bucket), "$KV."+bucket+".>") }

func join(parts ...[]string) []string {
	var out []string
	for _, p := range parts {
		out = append(out, p...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// sinkPermissions are a notifier's: its own durable consumers on the event
// stream and the re-drive queue, its own dead letters and delivery records,
// silences read, its own buckets written.
func sinkPermissions(sink string, buckets ...string) []string {
	ps := [][]string{
		consume(StreamEvents), consume(StreamRedrive),
		info(StreamDeadLetter), {DeadLetterRoot + sink + ".>"},
		info(StreamDeliveries), {DeliveriesRoot + sink + ".>"},
		kvRead(BucketSilences),
		// Its own entry of the roster, and no other sink's.
		info("KV_" + BucketReceivers), {"$KV." + BucketReceivers + "." + sink},
	}
	for _, b := range buckets {
		ps = append(ps, kvWrite(b))
	}
	return join(ps...)
}

// alerting is what a routed sink's alerting state takes: its own keys of
// AW_ALERTS written (inhibition sources, reminders, report runs), and the
// accounts' state read (a standing report lists those in bad standing).
func alerting(sink string) []string {
	return join(kvRead(BucketAlerts), []string{"$KV." + BucketAlerts + "." + sink + ".>"}, kvRead(BucketState))
}

// deadmanPublish: the events and the state record of event.PollerScope of
// every connection, which the auditor's dead-man keeps.
func deadmanPublish() []string {
	scope := event.EscapeToken(event.PollerScope)
	return []string{
		event.SubjectRoot + "*.*." + event.TypePollStalled.Token() + "." + scope,
		event.SubjectRoot + "*.*." + event.TypePollResumed.Token() + "." + scope,
		"$KV." + BucketState + ".*.*." + KeyToken(event.PollerScope),
	}
}

// Permissions is what r may do. Admin may do everything; every other role
// may subscribe to its own inbox (the operator to the ops events too, the
// webhook dispatcher to its retry queues' subjects), and publish what its
// work needs.
func (r Role) Permissions() Permissions {
	var pub []string
	switch r {
	case RoleAdmin:
		return Permissions{Publish: []string{">"}, Subscribe: []string{">"}}
	case RolePoller:
		pub = join([]string{event.SubjectRoot + ">"}, get(StreamEvents),
			kvWrite(BucketState), kvWrite(BucketWatch), kvWrite(BucketLeases))
	case RoleSlack:
		pub = join(sinkPermissions("slack", BucketSlackThreads), alerting("slack"))
	case RoleEmail:
		pub = join(sinkPermissions("email"), alerting("email"))
	case RoleWebhook:
		// Its retries wait in the re-drive queue, one subject per endpoint; a
		// deleted endpoint's retries are purged with it (a subject-filtered purge).
		// Its API lists an endpoint's dead letters and re-drives them.
		pub = join(sinkPermissions("webhook", BucketSubscriptions),
			[]string{RedriveRoot + "webhook.>", api + "STREAM.PURGE." + StreamRedrive, OpsRoot + "webhook.>"}, read(StreamDeliveries),
			// At start it lists the retry queues' consumers: those an older
			// version kept for every endpoint are read until empty, then deleted.
			[]string{api + "CONSUMER.NAMES." + StreamRedrive},
			get(StreamDeadLetter), []string{api + "STREAM.MSG.DELETE." + StreamDeadLetter})
	case RoleAuditor:
		// Silences are read for the event page: who silenced an event, and why.
		// The dead-man reads the leases and the pollers' progress, and
		// records a stalled connection in the auditor's own scope only
		// (event.PollerScope): its poll.stalled and poll.resumed events, and
		// their state record, never an account's or the poller's.
		pub = join(read(StreamEvents), kvRead(BucketState), kvRead(BucketSubscriptions), kvRead(BucketWatch), kvRead(BucketReceivers), kvRead(BucketSilences),
			kvRead(BucketLeases), deadmanPublish(),
			read(StreamDeadLetter), []string{api + "STREAM.MSG.DELETE." + StreamDeadLetter, RedriveRoot + ">"},
			info(StreamRedrive), read(StreamDeliveries),
			read(StreamCheckpoints), []string{CheckpointRoot + ">"})
	case RoleOperator:
		// Onboarding records the new account's first event (account.created)
		// and its state; no other event type.
		pub = join(read(StreamEvents), []string{event.SubjectRoot + "*.*." + event.TypeCreated.Token() + ".*"}, kvWrite(BucketState),
			kvWrite(BucketWatch), kvWrite(BucketSilences), kvRead(BucketLeases), kvRead(BucketSubscriptions), kvRead(BucketReceivers),
			read(StreamDeadLetter), []string{api + "STREAM.MSG.DELETE." + StreamDeadLetter, RedriveRoot + ">"},
			info(StreamRedrive), read(StreamDeliveries), read(StreamCheckpoints))
	default:
		return Permissions{}
	}
	sub := []string{r.InboxPrefix() + ".>"}
	switch r {
	case RoleOperator:
		sub = append(sub, OpsRoot+">")
	case RoleWebhook:
		// Its retry queues' subjects, whoever stores there (another replica,
		// an operator's re-drive): an endpoint's retry consumer exists only
		// while something waits for it (pkg/sink).
		sub = append(sub, RedriveRoot+"webhook.>")
	}
	return Permissions{Publish: pub, Subscribe: sub}
}
