package state

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/accountwatch/accountwatch/pkg/detect"
	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/eventbus"
	"github.com/accountwatch/accountwatch/pkg/eventbus/bustest"
)

// groupWrite builds the write of one change of account id at revision rev.
func groupWrite(t *testing.T, id string, rev uint64) (*write, *event.Event) {
	t.Helper()
	e, err := event.StatusChanged(event.Meta{Provider: event.ProviderActivePlatform, Instance: "ap-main", AccountID: id,
		ObservedAt: time.Now(), Revision: rev}, event.EnumValue("active"), event.EnumValue("credit hold"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := eventbus.Encode(e)
	if err != nil {
		t.Fatal(err)
	}
	w := &write{key: Key(event.ProviderActivePlatform, "ap-main", id), msgs: []*nats.Msg{m},
		entry: &Entry{Record: detect.Record{AccountID: id, Baseline: true}, Rev: rev}}
	w.data, _ = encodeEntry(w.entry)
	return w, e
}

// leadAll commits ws as one leader would find them queued.
func leadAll(ctx context.Context, s *Store, ws []*write) {
	for _, w := range ws {
		w.done = make(chan struct{})
	}
	s.group.mu.Lock()
	s.group.queue, s.group.leading = append(s.group.queue, ws...), true
	s.lead(ctx)
}

// openStore opens a Store on a new embedded server.
func openStore(t *testing.T) (*eventbus.Bus, *Store) {
	t.Helper()
	b := bustest.New(t)
	s, err := Open(context.Background(), b.JS)
	if err != nil {
		t.Fatal(err)
	}
	return b, s
}

func encodeEntry(e *Entry) ([]byte, error) { r, err := Encode(e); return r.Data, err }

// EventCount is how many events the stream holds (shared with the package's
// external tests).
func EventCount(t *testing.T, b *eventbus.Bus) uint64 {
	t.Helper()
	s, err := b.JS.Stream(context.Background(), eventbus.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	info, _ := s.Info(context.Background())
	return info.State.Msgs
}

// TestGroupPaths: in one group, a record changed under us is a conflict (its
// events stay unpublished), an event already in the stream is taken as
// published, and a new record over a deleted key is created; the others are
// stored as if alone.
func TestGroupPaths(t *testing.T) {
	ctx := context.Background()
	const stale, republished, deleted = 1, 2, 3
	b, s := openStore(t)
	var ws []*write
	for i := range 5 {
		id := fmt.Sprintf("g%d", i)
		key := Key(event.ProviderActivePlatform, "ap-main", id)
		switch i {
		case stale: // someone else wrote the record meanwhile
			if _, err := s.kv.Put(ctx, key, []byte(`{}`)); err != nil {
				t.Fatal(err)
			}
		case deleted:
			if _, err := s.kv.Put(ctx, key, []byte(`{}`)); err != nil {
				t.Fatal(err)
			}
			if err := s.kv.Delete(ctx, key); err != nil {
				t.Fatal(err)
			}
		}
		w, _ := groupWrite(t, id, 0)
		if i == republished {
			if _, err := s.pub.PublishMsgs(ctx, w.msgs); err != nil {
				t.Fatal(err)
			}
		}
		ws = append(ws, w)
	}
	leadAll(ctx, s, ws)
	for i, w := range ws {
		if i == stale {
			if !errors.Is(w.err, ErrConflict) {
				t.Errorf("write %d on a changed record: %v, want a conflict", i, w.err)
			}
			continue
		}
		if w.err != nil || w.pubErr != nil {
			t.Fatalf("write %d: %v / %v", i, w.err, w.pubErr)
		}
		got, err := s.Get(ctx, w.key)
		if err != nil || got.Rev != w.entry.Rev || got.Record.AccountID != w.entry.Record.AccountID {
			t.Errorf("write %d: stored %+v (%v), committed revision %d", i, got, err, w.entry.Rev)
		}
	}
	if n := EventCount(t, b); n != uint64(len(ws)-1) {
		t.Errorf("%d events in the stream, want %d (all but the conflicting write's, each once)", n, len(ws)-1)
	}
}

// TestGroupCommitConcurrent: many accounts committing at once are grouped,
// and each commit ends as if alone (its revision, its event once).
func TestGroupCommitConcurrent(t *testing.T) {
	ctx := context.Background()
	b, s := openStore(t)
	const n = 200
	start := make(chan struct{})
	var wg sync.WaitGroup
	curs := make([]*Entry, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := Key(event.ProviderActivePlatform, "ap-main", fmt.Sprint(i))
			cur := &Entry{}
			<-start
			if err := s.Put(ctx, key, cur, detect.Record{AccountID: fmt.Sprint(i), Baseline: true}); err != nil {
				t.Error(err)
				return
			}
			_, e := groupWrite(t, fmt.Sprint(i), cur.Rev)
			if err := s.Commit(ctx, key, cur, detect.Record{AccountID: fmt.Sprint(i), Baseline: true, Name: "x"}, []*event.Event{e}); err != nil {
				t.Error(err)
			}
			curs[i] = cur
		}()
	}
	close(start)
	wg.Wait()
	if n := EventCount(t, b); n != 200 {
		t.Fatalf("%d events, want 200", n)
	}
	for i, cur := range curs {
		got, err := s.Get(ctx, Key(event.ProviderActivePlatform, "ap-main", fmt.Sprint(i)))
		if err != nil || cur == nil || got.Rev != cur.Rev || got.Record.Name != "x" || len(cur.Pending) != 0 {
			t.Fatalf("account %d: stored %+v, committed %+v (%v)", i, got, cur, err)
		}
	}
	groups, commits := s.Grouping()
	t.Logf("%d commits in %d groups", commits, groups)
	if commits != 2*n {
		t.Errorf("%d commits counted, want %d", commits, 2*n)
	}
}

// TestGroupPipeline: with more queued than a group holds, the leader writes
// each group's records while the group before's events are in flight, and
// every commit still ends as if alone: its record stored before its event,
// each event once.
func TestGroupPipeline(t *testing.T) {
	ctx := context.Background()
	b, s := openStore(t)
	s.maxGroup = 3
	const n = 10
	var ws []*write
	for i := range n {
		w, _ := groupWrite(t, fmt.Sprintf("p%d", i), 0)
		ws = append(ws, w)
	}
	// As writers arriving during a group would be: all queued for one leader.
	leadAll(ctx, s, ws)
	for i, w := range ws {
		select {
		case <-w.done:
		default:
			t.Fatalf("write %d not settled when the leader returned", i)
		}
		if w.err != nil || w.pubErr != nil {
			t.Fatalf("write %d: %v / %v", i, w.err, w.pubErr)
		}
		rec, err := s.kv.Get(ctx, w.key)
		if err != nil || rec.Revision() != w.entry.Rev {
			t.Fatalf("write %d: stored %v (%v), committed revision %d", i, rec, err, w.entry.Rev)
		}
		ev, err := s.events.GetLastMsgForSubject(ctx, w.msgs[0].Subject)
		if err != nil {
			t.Fatal(err)
		}
		if ev.Time.Before(rec.Created()) {
			t.Errorf("write %d: event stored at %v, before its record at %v", i, ev.Time, rec.Created())
		}
	}
	if got := EventCount(t, b); got != n {
		t.Errorf("%d events in the stream, want %d", got, n)
	}
	groups, commits := s.Grouping()
	// Groups of 3, 3, 3, 1.
	if groups != 4 || commits != n {
		t.Errorf("%d commits in %d groups, want %d in 4", commits, groups, n)
	}
	if p := s.pipelined.Load(); p != groups-1 {
		t.Errorf("%d groups pipelined, want every one after the first (%d)", p, groups-1)
	}
}
