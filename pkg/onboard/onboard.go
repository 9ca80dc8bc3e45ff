// Package onboard creates Alibaba Cloud member accounts (CreateAgAccount) and
// puts them under watch: a created account emits account.created (the first
// link of its hash chain) and joins the watch list; an email that is already
// used is reported as such, and nothing is emitted.
package onboard

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/accountwatch/accountwatch/pkg/alibaba"
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
	// Created is false when the login email was already used (nothing emitted).
	Created bool
	EventID string
}

// Onboard creates the account and, if it was created, emits account.created and
// adds it to the watch list of instance with labels.
func Onboard(ctx context.Context, c Creator, st *state.Store, ws *watch.Store, instance string, req alibaba.AgAccount, labels map[string]string) (Result, error) {
	if err := event.ValidateInstance(instance); err != nil {
		return Result{}, err
	}
	rel, err := c.CreateAgAccount(ctx, req)
	if errors.Is(err, alibaba.ErrAlreadyExists) {
		return Result{UID: rel.Pk}, nil
	}
	if err != nil {
		return Result{}, err
	}
	now := time.Now().UTC()
	key := state.Key(event.ProviderAlibabaBSS, instance, rel.Pk)
	cur, err := st.Get(ctx, key)
	if err != nil {
		return Result{}, err
	}
	if len(cur.Pending) > 0 {
		if err := st.Flush(ctx, key, cur); err != nil {
			return Result{}, err
		}
	}
	m := event.Meta{Provider: event.ProviderAlibabaBSS, Instance: instance, AccountID: rel.Pk, Labels: labels, ObservedAt: now,
		Evidence: event.Evidence{RequestID: rel.Evidence.RequestID, ResponseSHA256: rel.Evidence.ResponseSHA256, Endpoint: rel.Evidence.Endpoint},
		Revision: cur.Rev, Chain: event.Chain{Seq: cur.Record.Chain.Seq + 1, Prev: cur.Record.Chain.Prev}}
	ev, err := event.Created(m, event.Onboarding{RelationType: rel.Type, Mpk: rel.Mpk}, map[string]string{"mpk": rel.Mpk, "login_email": req.LoginEmail})
	if err != nil {
		return Result{}, err
	}
	next := cur.Record
	next.Version, next.Provider, next.Instance, next.AccountID = 1, event.ProviderAlibabaBSS, instance, rel.Pk
	next.Chain = event.Chain{Seq: ev.Data.Chain.Seq, Prev: ev.Hash()}
	next.ChangedAt = now
	if err := st.Commit(ctx, key, cur, next, []*event.Event{ev}); err != nil {
		return Result{}, fmt.Errorf("account %s was created upstream, but recording it failed (run onboard again: it will answer 'already exists'; add it with 'awctl watch add'): %w", rel.Pk, err)
	}
	if err := ws.Put(ctx, watch.Entry{Provider: event.ProviderAlibabaBSS, Instance: instance, AccountID: rel.Pk, Labels: labels, Source: watch.SourceOnboarding}); err != nil {
		return Result{UID: rel.Pk, Created: true, EventID: ev.ID()}, fmt.Errorf("account %s created and announced, but adding it to the watch list failed: %w", rel.Pk, err)
	}
	return Result{UID: rel.Pk, Created: true, EventID: ev.ID()}, nil
}
