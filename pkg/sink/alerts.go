package sink

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/eventbus"
	"github.com/accountwatch/accountwatch/pkg/route"
)

// alerting is a routed sink's alerting state, kept in AW_ALERTS under the
// sink's name so that every replica of the notifier, and the next one after
// a restart, sees the same: the inhibition sources of each account, what
// each receiver reminds of (and when it last told), when each report went
// out. Replicas write with compare-and-swap and follow each other's writes
// through a watch; every decision reads the in-memory mirror.
//
//	<sink>.src.<provider>.<instance>.<account>              inhibition sources
//	<sink>.remind.<receiver>.<provider>.<instance>.<account> the last notification of an account in bad standing
//	<sink>.report.<receiver>.<route>                         the last report sent
type alerting struct {
	kv    jetstream.KeyValue
	sink  string
	rules []*route.InhibitRule
	log   *slog.Logger

	mu      sync.RWMutex
	sources map[string]*sourceEntry
	remind  map[string]*remindEntry

	// lately holds, per reminder key without an entry yet, the latest event
	// a receiver read and did not tell (its route dropped it): the
	// notification that creates the entry may still be on its way (events
	// are read ahead of their delivery), and must then remind of where the
	// account stands now, not of what it told. Bounded: the window is one
	// delivery.
	latelyMu sync.Mutex
	lately   map[string]*event.Event
}

// latelyMax bounds lately; past it the oldest window is forgotten.
const latelyMax = 8192

// sourceEntry is one account's events that are inhibition sources: per
// condition (route.Condition) the latest event's attributes, while they
// match a rule's source_matchers. Seq is the account's latest chain
// sequence applied, Standing its problems then (a source's standing is the
// account's current one, not the one of its own event).
type sourceEntry struct {
	Seq        uint64                `json:"seq"`
	Standing   string                `json:"standing"`
	Conditions map[string]sourceCond `json:"conditions"`
	rev        uint64
}

type sourceCond struct {
	EventID  string            `json:"event_id"`
	Headline string            `json:"headline"`
	Attrs    map[string]string `json:"attrs"`
}

// attrs are the condition's attributes with the account's current standing.
func (e *sourceEntry) attrs(c sourceCond) map[string]string {
	a := make(map[string]string, len(c.Attrs)+1)
	for k, v := range c.Attrs {
		a[k] = v
	}
	if e.Standing == "" {
		delete(a, route.FieldStanding)
	} else {
		a[route.FieldStanding] = e.Standing
	}
	return a
}

// remindEntry is the last notification a receiver sent of an account in bad
// standing: the latest event it carried, when, and since when the receiver
// has been telling.
type remindEntry struct {
	Seq   uint64          `json:"seq"`
	Event json.RawMessage `json:"event"`
	// Leaf is the route that told (the latest event may be one it takes not).
	Leaf       string    `json:"leaf,omitempty"`
	NotifiedAt time.Time `json:"notified_at"`
	Since      time.Time `json:"since"`
	Reminders  int       `json:"reminders"`
	rev        uint64
	ev         *event.Event
}

// reportEntry is when a report of a route last went out (its scheduled moment).
type reportEntry struct {
	Last time.Time `json:"last"`
}

func openAlerting(ctx context.Context, js jetstream.JetStream, sink string, rules []*route.InhibitRule, log *slog.Logger) (*alerting, error) {
	kv, err := js.KeyValue(ctx, eventbus.BucketAlerts)
	if err != nil {
		return nil, fmt.Errorf("alerting state bucket %s: %w", eventbus.BucketAlerts, err)
	}
	a := &alerting{kv: kv, sink: sink, rules: rules, log: log, sources: map[string]*sourceEntry{}, remind: map[string]*remindEntry{}, lately: map[string]*event.Event{}}
	w, err := kv.Watch(ctx, sink+".>")
	if err != nil {
		return nil, fmt.Errorf("watch %s: %w", eventbus.BucketAlerts, err)
	}
	if err := eventbus.Follow(ctx, w, true, a.apply); err != nil {
		return nil, err
	}
	return a, nil
}

// apply takes a write of any replica into the mirror (newer revisions only).
func (a *alerting) apply(e jetstream.KeyValueEntry) {
	a.mu.Lock()
	defer a.mu.Unlock()
	key := e.Key()
	del := e.Operation() != jetstream.KeyValuePut
	switch {
	// A deleted key stays in the mirror as a tombstone with its revision:
	// the watch may still bring an older write after this process deleted it.
	case strings.HasPrefix(key, a.sink+".src."):
		if cur := a.sources[key]; cur != nil && cur.rev >= e.Revision() {
			return
		}
		var s sourceEntry
		if del || json.Unmarshal(e.Value(), &s) != nil {
			s = sourceEntry{}
		}
		s.rev = e.Revision()
		a.sources[key] = &s
	case strings.HasPrefix(key, a.sink+".remind."):
		if cur := a.remind[key]; cur != nil && cur.rev >= e.Revision() {
			return
		}
		var r remindEntry
		if del || json.Unmarshal(e.Value(), &r) != nil {
			r = remindEntry{}
		}
		r.rev = e.Revision()
		a.remind[key] = &r
	}
}

func accountToken(e *event.Event) string {
	return string(e.Data.Provider) + "." + e.Data.Instance + "." + eventbus.KeyToken(e.Data.AccountID)
}

func (a *alerting) sourceKey(e *event.Event) string { return a.sink + ".src." + accountToken(e) }

func (a *alerting) remindKey(receiver string, e *event.Event) string {
	return a.sink + ".remind." + receiver + "." + accountToken(e)
}

func (a *alerting) reportKey(receiver, routeID string) string {
	return a.sink + ".report." + receiver + "." + routeID
}

// errSkip leaves a key as it is.
var errSkip = errors.New("skip")

// cas applies change to the key's value (nil: none) with compare-and-swap,
// again on a conflict: it returns the next value (nil: delete), or errSkip.
// The write goes into the mirror at once.
func (a *alerting) cas(ctx context.Context, key string, change func(cur []byte) ([]byte, error)) error {
	for range 8 {
		var cur []byte
		var rev uint64
		e, err := a.kv.Get(ctx, key)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
		case err != nil:
			return err
		default:
			cur, rev = e.Value(), e.Revision()
		}
		next, err := change(cur)
		if errors.Is(err, errSkip) {
			return nil
		}
		if err != nil {
			return err
		}
		var newRev uint64
		switch {
		case next == nil && rev == 0:
			return nil
		case next == nil:
			if err = a.kv.Delete(ctx, key, jetstream.LastRevision(rev)); err == nil {
				// The tombstone's revision is the next one of the bucket's
				// stream; any later than rev keeps the older write out.
				newRev = rev + 1
			}
		case rev == 0:
			newRev, err = a.kv.Create(ctx, key, next)
		default:
			newRev, err = a.kv.Update(ctx, key, next, rev)
		}
		if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			continue // another replica wrote first: read again
		}
		if err != nil {
			return err
		}
		a.applyLocal(key, next, newRev)
		return nil
	}
	return fmt.Errorf("%s: too many concurrent writers", key)
}

// localEntry is a write of this process, taken into the mirror at once.
type localEntry struct {
	jetstream.KeyValueEntry
	key string
	val []byte
	rev uint64
}

func (l localEntry) Key() string      { return l.key }
func (l localEntry) Value() []byte    { return l.val }
func (l localEntry) Revision() uint64 { return l.rev }
func (l localEntry) Operation() jetstream.KeyValueOp {
	if l.val == nil {
		return jetstream.KeyValueDelete
	}
	return jetstream.KeyValuePut
}

func (a *alerting) applyLocal(key string, val []byte, rev uint64) {
	a.apply(localEntry{key: key, val: val, rev: rev})
}

// isSource reports whether attrs are the source of some rule.
func (a *alerting) isSource(attrs map[string]string) bool {
	for _, r := range a.rules {
		if r.Source(attrs) {
			return true
		}
	}
	return false
}

// observe keeps the account's inhibition sources current with e, an event
// read from the stream (by whichever receiver reads it first; the others
// find it applied). Accounts that never were a source cost nothing.
func (a *alerting) observe(ctx context.Context, e *event.Event, headline string) {
	if len(a.rules) == 0 {
		return
	}
	key := a.sourceKey(e)
	attrs := route.Attributes(e)
	seq := e.Data.Chain.Seq
	a.mu.RLock()
	cur := a.sources[key]
	done := cur != nil && cur.Seq >= seq
	none := cur == nil || len(cur.Conditions) == 0
	a.mu.RUnlock()
	if done || none && !a.isSource(attrs) {
		return
	}
	cond := route.Condition(e)
	err := a.cas(ctx, key, func(b []byte) ([]byte, error) {
		var s sourceEntry
		if b != nil {
			if err := json.Unmarshal(b, &s); err != nil {
				s = sourceEntry{}
			}
		}
		if s.Seq >= seq {
			return nil, errSkip
		}
		if s.Conditions == nil {
			s.Conditions = map[string]sourceCond{}
		}
		s.Seq, s.Standing = seq, attrs[route.FieldStanding]
		delete(s.Conditions, cond)
		if a.isSource(attrs) {
			s.Conditions[cond] = sourceCond{EventID: e.ID(), Headline: headline, Attrs: attrs}
		}
		for c, sc := range s.Conditions {
			if !a.isSource(s.attrs(sc)) {
				delete(s.Conditions, c) // no longer a source with the account's new standing
			}
		}
		if len(s.Conditions) == 0 {
			return nil, nil
		}
		return json.Marshal(s)
	})
	if err != nil {
		a.log.Warn("inhibition source not recorded", "sink", a.sink, "event", e.ID(), "err", err)
	}
}

// inhibitor is what inhibits an event: the rule and its source event.
type inhibitor struct {
	rule           string
	event, summary string
}

func (i inhibitor) String() string {
	return fmt.Sprintf("%s (source: %s, event %s)", i.rule, i.summary, i.event)
}

// inhibitedBy says what inhibits e, if anything holds that does.
func (a *alerting) inhibitedBy(e *event.Event) (inhibitor, bool) {
	if a == nil || len(a.rules) == 0 {
		return inhibitor{}, false
	}
	a.mu.RLock()
	defer a.mu.RUnlock()
	for _, r := range a.rules {
		if !r.Target(e) {
			continue
		}
		for _, s := range a.sources {
			for _, c := range s.Conditions {
				if c.EventID != e.ID() && r.Inhibits(s.attrs(c), e) {
					return inhibitor{rule: r.Name, event: c.EventID, summary: c.Headline}, true
				}
			}
		}
	}
	return inhibitor{}, false
}

// notified records that receiver told of ev (the latest event of its
// account in a delivered notification) at t: while the account is in bad
// standing it is reminded of from then on; once it is back in good
// standing it is forgotten.
func (a *alerting) notified(ctx context.Context, receiver, leaf string, ev *event.Event, t time.Time) {
	if ev.Data.Standing == nil {
		return // an event of a poller that says no standing: nothing to remind of
	}
	raw, err := json.Marshal(ev.Cloud)
	if err != nil {
		return
	}
	key := a.remindKey(receiver, ev)
	if later := a.takeLately(key, ev.Data.Chain.Seq); later != nil {
		// The account moved on before this notification was delivered.
		if raw, err = json.Marshal(later.Cloud); err != nil {
			return
		}
		ev = later
	}
	seq := ev.Data.Chain.Seq
	err = a.cas(ctx, key, func(b []byte) ([]byte, error) {
		var r remindEntry
		if b != nil && json.Unmarshal(b, &r) == nil && r.Seq > seq {
			return nil, errSkip // a later event of the account was told already
		}
		if !ev.Data.Standing.Bad() {
			return nil, nil
		}
		if r.Since.IsZero() {
			r.Since = t.UTC()
		}
		r.Seq, r.Event, r.NotifiedAt, r.Reminders = seq, raw, t.UTC(), 0
		if leaf != "" {
			r.Leaf = leaf
		}
		return json.Marshal(r)
	})
	if err != nil {
		a.log.Warn("reminder state not recorded", "sink", a.sink, "receiver", receiver, "event", ev.ID(), "err", err)
	}
}

// seen keeps receiver's reminder of ev's account current with ev, an event
// the receiver read whether or not it tells of it (a route that takes only
// critical events drops the recovery): back in good standing, the account
// is forgotten; still in bad standing, the reminder says where it stands
// now, on the same schedule. Accounts without a reminder cost nothing.
func (a *alerting) seen(ctx context.Context, receiver string, ev *event.Event) {
	if ev.Data.Standing == nil {
		return
	}
	key := a.remindKey(receiver, ev)
	seq := ev.Data.Chain.Seq
	a.mu.RLock()
	cur := a.remind[key]
	a.mu.RUnlock()
	if cur == nil || cur.Event == nil {
		a.noteLately(key, ev)
		return
	}
	if cur.Seq >= seq {
		return
	}
	raw, err := json.Marshal(ev.Cloud)
	if err != nil {
		return
	}
	err = a.cas(ctx, key, func(b []byte) ([]byte, error) {
		var r remindEntry
		if b == nil || json.Unmarshal(b, &r) != nil || r.Seq >= seq {
			return nil, errSkip
		}
		if !ev.Data.Standing.Bad() {
			return nil, nil
		}
		r.Seq, r.Event = seq, raw
		return json.Marshal(r)
	})
	if err != nil {
		a.noteLately(key, ev) // the reminders of this process still say where it stands
		a.log.Warn("reminder state not updated", "sink", a.sink, "receiver", receiver, "event", ev.ID(), "err", err)
	}
}

// noteLately keeps ev as the latest untold event of key's account.
func (a *alerting) noteLately(key string, ev *event.Event) {
	a.latelyMu.Lock()
	defer a.latelyMu.Unlock()
	if cur := a.lately[key]; cur != nil && cur.Data.Chain.Seq >= ev.Data.Chain.Seq {
		return
	}
	if len(a.lately) >= latelyMax {
		clear(a.lately)
	}
	a.lately[key] = ev
}

// laterThan is the untold event of key's account after seq, if any, kept.
func (a *alerting) laterThan(key string, seq uint64) *event.Event {
	a.latelyMu.Lock()
	defer a.latelyMu.Unlock()
	if ev := a.lately[key]; ev != nil && ev.Data.Chain.Seq > seq {
		return ev
	}
	return nil
}

// takeLately returns (and forgets) the untold event of key's account that
// came after seq, if any.
func (a *alerting) takeLately(key string, seq uint64) *event.Event {
	a.latelyMu.Lock()
	defer a.latelyMu.Unlock()
	ev := a.lately[key]
	delete(a.lately, key)
	if ev == nil || ev.Data.Chain.Seq <= seq {
		return nil
	}
	return ev
}

// moveReminder changes an entry if it is still what the caller saw (rev):
// the claim of one replica among several (the reminder's time moved to the
// look), its hand-back should sending fail, the time it was sent.
func (a *alerting) moveReminder(ctx context.Context, key string, rev uint64, change func(*remindEntry)) (uint64, bool) {
	a.mu.RLock()
	cur := a.remind[key]
	a.mu.RUnlock()
	if cur == nil || cur.rev != rev || cur.Event == nil {
		return 0, false
	}
	next := *cur
	change(&next)
	b, err := json.Marshal(next)
	if err != nil {
		return 0, false
	}
	newRev, err := a.kv.Update(ctx, key, b, rev)
	if err != nil {
		return 0, false // another replica claimed it, or the account moved on
	}
	a.applyLocal(key, b, newRev)
	return newRev, true
}

// reminders lists receiver's entries.
func (a *alerting) reminders(receiver string) map[string]remindEntry {
	prefix := a.sink + ".remind." + receiver + "."
	out := map[string]remindEntry{}
	a.mu.Lock()
	defer a.mu.Unlock()
	for k, r := range a.remind {
		if !strings.HasPrefix(k, prefix) || r.Event == nil {
			continue
		}
		if r.ev == nil {
			var ce cloudevents.Event
			if json.Unmarshal(r.Event, &ce) != nil {
				continue
			}
			ev, err := event.FromCloud(ce)
			if err != nil {
				continue
			}
			r.ev = ev
		}
		out[k] = *r
	}
	return out
}

// lastAlert is when receiver last told of the account (zero: never, or not
// since it was last in good standing).
func (a *alerting) lastAlert(receiver string, p event.Provider, instance, account string) time.Time {
	key := a.sink + ".remind." + receiver + "." + string(p) + "." + instance + "." + eventbus.KeyToken(account)
	a.mu.RLock()
	defer a.mu.RUnlock()
	if r := a.remind[key]; r != nil && r.Event != nil {
		return r.NotifiedAt
	}
	return time.Time{}
}

// claimReport marks the report of due as sent: true when this replica is
// to send it (false: already sent, by this one or another), with when the
// report before went out (for unclaimReport, should sending fail). A report
// never sent before whose time is long past (first says) is only marked.
func (a *alerting) claimReport(ctx context.Context, key string, due time.Time, first func(time.Time) bool) (bool, time.Time, error) {
	claimed := false
	var before time.Time
	err := a.cas(ctx, key, func(b []byte) ([]byte, error) {
		var r reportEntry
		if b != nil && json.Unmarshal(b, &r) == nil && !r.Last.Before(due) {
			return nil, errSkip
		}
		claimed, before = b != nil || first(due), r.Last
		r.Last = due
		return json.Marshal(r)
	})
	return claimed && err == nil, before, err
}

// unclaimReport hands a claimed report back (its sending failed): the next
// look sends it again.
func (a *alerting) unclaimReport(ctx context.Context, key string, due, before time.Time) {
	_ = a.cas(ctx, key, func(b []byte) ([]byte, error) {
		var r reportEntry
		if b == nil || json.Unmarshal(b, &r) != nil || !r.Last.Equal(due) {
			return nil, errSkip
		}
		r.Last = before
		return json.Marshal(r)
	})
}
