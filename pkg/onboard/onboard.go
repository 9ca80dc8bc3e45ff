// Package onboard creates Alibaba Cloud member accounts (CreateAgAccount) and
// puts them under watch: a created account emits account.created (the first
// link of its hash chain) and joins the watch list; an email that is already
// used is reported as such, and nothing is emitted.
//
// An onboarding is made safe to retry by an intent, written before the
// upstream is asked (in AW_WATCH, under onboarding.<instance>.<hash of the
// email>: no email at rest) and deleted once the account is announced and
// watched. When a try fails after the upstream created the account (its
// answer lost, or the commit of account.created failed), the next try is
// answered "already exists" for an email that has an intent: that account is
// this onboarding's, and it is announced then, also when the poller has
// discovered it meanwhile (account.discovered, then account.created). An
// email used before any intent is someone else's account: nothing is
// emitted.
package onboard

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/accountwatch/accountwatch/pkg/alibaba"
	"github.com/accountwatch/accountwatch/pkg/audit"
	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/state"
	"github.com/accountwatch/accountwatch/pkg/watch"
)

// Creator creates member accounts (alibaba.BSS does).
type Creator interface {
	CreateAgAccount(ctx context.Context, a alibaba.AgAccount) (*alibaba.AgRelation, error)
}

// Result says what happened.
type Result struct {
	UID string
	// Created is false when the login email was already used by an account
	// this onboarding did not create (nothing emitted).
	Created bool
	// Reconciled: the upstream answered "already exists" for an account an
	// earlier try of this onboarding created; it is announced now (EventID),
	// or was already (EventID empty).
	Reconciled bool
	EventID    string
}

// intent is an onboarding under way.
type intent struct {
	Instance    string            `json:"instance"`
	RequestedAt time.Time         `json:"requested_at"`
	Labels      map[string]string `json:"labels,omitempty"`
}

func intentKey(instance, email string) string {
	sum := sha256.Sum256([]byte(strings.ToLower(strings.TrimSpace(email))))
	return "onboarding." + instance + "." + hex.EncodeToString(sum[:16])
}

// Onboard creates the account and, if it was created, emits account.created and
// adds it to the watch list of instance with labels. LoginEmail and
// AccountAttr are required (CreateAgAccount's document): without them
// nothing is asked of the upstream.
func Onboard(ctx context.Context, c Creator, st *state.Store, ws *watch.Store, instance string, req alibaba.AgAccount, labels map[string]string) (Result, error) {
	if err := event.ValidateInstance(instance); err != nil {
		return Result{}, err
	}
	if err := req.Validate(); err != nil {
		return Result{}, err
	}
	kv := ws.KV()
	key := intentKey(instance, req.LoginEmail)
	_, err := kv.Get(ctx, key)
	prior := err == nil
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		b, _ := json.Marshal(intent{Instance: instance, RequestedAt: time.Now().UTC(), Labels: labels})
		if _, err := kv.Put(ctx, key, b); err != nil {
			return Result{}, fmt.Errorf("recording the onboarding before asking the upstream: %w", err)
		}
	case err != nil:
		return Result{}, fmt.Errorf("reading the onboarding's intent: %w", err)
	}
	rel, err := c.CreateAgAccount(ctx, req)
	// Retried: this very try created it, on an attempt whose answer was lost.
	reconciled := err == nil && rel != nil && rel.Retried
	switch {
	case errors.Is(err, alibaba.ErrAlreadyExists) && prior:
		reconciled = true // an earlier try of ours created it
	case errors.Is(err, alibaba.ErrAlreadyExists):
		kv.Delete(ctx, key)
		return Result{UID: rel.Pk}, nil
	case err != nil:
		// The account may have been created all the same (an answer lost):
		// the intent stays, and the next try reconciles.
		return Result{}, err
	}
	if rel.Pk == "" {
		return Result{}, fmt.Errorf("CreateAgAccount answered without the account's id (AgRelationDto.Pk)")
	}
	now := time.Now().UTC()
	skey := state.Key(event.ProviderAlibabaBSS, instance, rel.Pk)
	cur, err := st.Get(ctx, skey)
	if err != nil {
		return Result{}, fmt.Errorf("account %s was created upstream, but reading its record failed (run onboard again: it will be announced then): %w", rel.Pk, err)
	}
	if len(cur.Pending) > 0 {
		if err := st.Flush(ctx, skey, cur); err != nil {
			return Result{}, err
		}
	}
	res := Result{UID: rel.Pk, Created: true, Reconciled: reconciled}
	// A reconciled account whose chain has begun may have been announced by
	// the try that created it (its commit answered too late), or only
	// discovered: the poller listed it while this onboarding was in flight.
	// Then it still owes its account.created, after the discovery.
	owed := !reconciled || cur.Record.Chain.Seq == 0
	if !owed {
		done, err := announced(ctx, st.JetStream(), instance, rel.Pk)
		if err != nil {
			return Result{}, fmt.Errorf("account %s was created upstream, but reading whether it was announced failed (run onboard again): %w", rel.Pk, err)
		}
		owed = !done
	}
	if owed {
		relType := rel.Type
		if relType == "" {
			relType = "unspecified" // the document's example has FINACE_CLOUD; an answer may lack it
		}
		m := event.Meta{Provider: event.ProviderAlibabaBSS, Instance: instance, AccountID: rel.Pk, Labels: labels, ObservedAt: now,
			Evidence: event.Evidence{RequestID: rel.Evidence.RequestID, ResponseSHA256: rel.Evidence.ResponseSHA256, Endpoint: rel.Evidence.Endpoint},
			Revision: cur.Rev, Chain: event.Chain{Seq: cur.Record.Chain.Seq + 1, Prev: cur.Record.Chain.Prev}}
		ev, err := event.Created(m, event.Onboarding{RelationType: relType, Mpk: rel.Mpk}, map[string]string{"mpk": rel.Mpk, "login_email": req.LoginEmail})
		if err != nil {
			return Result{}, err
		}
		next := cur.Record
		next.Version, next.Provider, next.Instance, next.AccountID = 1, event.ProviderAlibabaBSS, instance, rel.Pk
		next.Chain = event.Chain{Seq: ev.Data.Chain.Seq, Prev: ev.Hash()}
		next.ChangedAt = now
		if err := st.Commit(ctx, skey, cur, next, []*event.Event{ev}); err != nil {
			return Result{}, fmt.Errorf("account %s was created upstream, but recording it failed (run onboard again: it will be announced then): %w", rel.Pk, err)
		}
		res.EventID = ev.ID()
	}
	if err := ws.Put(ctx, watch.Entry{Provider: event.ProviderAlibabaBSS, Instance: instance, AccountID: rel.Pk, Labels: labels, Source: watch.SourceOnboarding}); err != nil {
		return res, fmt.Errorf("account %s created and announced, but adding it to the watch list failed (run onboard again): %w", rel.Pk, err)
	}
	kv.Delete(ctx, key)
	return res, nil
}

// announced reports whether the account's events hold its account.created.
func announced(ctx context.Context, js jetstream.JetStream, instance, uid string) (bool, error) {
	found := false
	sel := audit.Selection{Provider: event.ProviderAlibabaBSS, Instance: instance, Account: uid, Types: []event.Type{event.TypeCreated}, Limit: 1}
	err := audit.Replay(ctx, js, sel, nil, func(*audit.Record) error { found = true; return nil })
	return found, err
}
