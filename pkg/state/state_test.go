package state_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/accountwatch/accountwatch/pkg/detect"
	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/eventbus"
	"github.com/accountwatch/accountwatch/pkg/eventbus/bustest"
	"github.com/accountwatch/accountwatch/pkg/state"
)

func statusEvent(t *testing.T, rev uint64, prev, cur string) *event.Event {
	t.Helper()
	e, err := event.StatusChanged(event.Meta{Provider: event.ProviderActivePlatform, Instance: "ap-main", AccountID: "42",
		ObservedAt: time.Now(), Revision: rev}, event.EnumValue(prev), event.EnumValue(cur))
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestCommitPublishesThenClearsTheOutbox(t *testing.T) {
	b := bustest.New(t)
	ctx := context.Background()
	st, err := state.Open(ctx, b.JS)
	if err != nil {
		t.Fatal(err)
	}
	key := state.Key(event.ProviderActivePlatform, "ap-main", "42")
	cur, _ := st.Get(ctx, key)
	if cur.Rev != 0 {
		t.Fatal("new key has a revision")
	}
	if err := st.Put(ctx, key, cur, detect.Record{AccountID: "42", Baseline: true}); err != nil {
		t.Fatal(err)
	}
	ev := statusEvent(t, cur.Rev, "active", "credit_hold")
	if err := st.Commit(ctx, key, cur, detect.Record{AccountID: "42", Baseline: true, Name: "x"}, []*event.Event{ev}); err != nil {
		t.Fatal(err)
	}
	if state.EventCount(t, b) != 1 || len(cur.Pending) != 0 {
		t.Fatalf("stream %d, pending %d", state.EventCount(t, b), len(cur.Pending))
	}
	again, _ := st.Get(ctx, key)
	if again.Rev != cur.Rev || again.Record.Name != "x" {
		t.Fatalf("%+v vs %+v", again, cur)
	}
	// The stored outbox is left for the next commit to replace; a reader that
	// flushes it finds the event in the stream and publishes nothing.
	if len(again.Pending) != 1 {
		t.Fatalf("stored outbox %d", len(again.Pending))
	}
	if err := st.Flush(ctx, key, again); err != nil || state.EventCount(t, b) != 1 || len(again.Pending) != 0 {
		t.Fatalf("flush of a published outbox: %v, %d messages", err, state.EventCount(t, b))
	}
	ev2 := statusEvent(t, cur.Rev, "credit_hold", "active")
	if err := st.Commit(ctx, key, again, detect.Record{AccountID: "42", Baseline: true, Name: "y"}, []*event.Event{ev2}); err != nil {
		t.Fatal(err)
	}
	if state.EventCount(t, b) != 2 {
		t.Fatal("second commit")
	}
	// A stale revision is a conflict, not an overwrite.
	stale := &state.Entry{Rev: 1}
	if err := st.Put(ctx, key, stale, detect.Record{}); !errors.Is(err, state.ErrConflict) {
		t.Fatalf("want conflict, got %v", err)
	}
}

// A crash between writing the outbox and publishing: the next reader publishes
// exactly the staged events, once.
func TestCrashAfterStagingIsFlushedByTheNextReader(t *testing.T) {
	b := bustest.New(t)
	ctx := context.Background()
	st, _ := state.Open(ctx, b.JS)
	key := state.Key(event.ProviderActivePlatform, "ap-main", "42")
	cur, _ := st.Get(ctx, key)
	ev := statusEvent(t, 0, "active", "credit_hold")
	// Stage by hand, as Commit does before it publishes, then "crash".
	m, _ := eventbus.Encode(ev)
	staged := &state.Entry{Record: detect.Record{AccountID: "42", Baseline: true}, Pending: []state.Pending{{Subject: m.Subject, Header: m.Header, Data: m.Data}}}
	if err := st.Put(ctx, key, cur, staged.Record); err != nil {
		t.Fatal(err)
	}
	cur.Pending = staged.Pending
	if err := st.Put(ctx, key, cur, staged.Record); err != nil {
		t.Fatal(err)
	}
	if state.EventCount(t, b) != 0 {
		t.Fatal("published before the crash")
	}
	other, _ := state.Open(ctx, b.JS)
	got, _ := other.Get(ctx, key)
	if len(got.Pending) != 1 {
		t.Fatalf("outbox lost: %+v", got)
	}
	if err := other.Flush(ctx, key, got); err != nil {
		t.Fatal(err)
	}
	if state.EventCount(t, b) != 1 || len(got.Pending) != 0 {
		t.Fatal("outbox not published exactly once")
	}
	// The original poller published too before dying: dedup keeps one.
	if _, err := eventbus.NewPublisher(b.JS).Publish(ctx, ev); err != nil {
		t.Fatal(err)
	}
	if state.EventCount(t, b) != 1 {
		t.Fatal("a re-publish of the same event was stored twice")
	}
}

func TestLoadByConnection(t *testing.T) {
	b := bustest.New(t)
	ctx := context.Background()
	st, _ := state.Open(ctx, b.JS)
	for _, id := range []string{"1", "2", "a.b c"} {
		key := state.Key(event.ProviderActivePlatform, "ap-main", id)
		cur, _ := st.Get(ctx, key)
		if err := st.Put(ctx, key, cur, detect.Record{AccountID: id}); err != nil {
			t.Fatal(err)
		}
	}
	key := state.Key(event.ProviderAlibabaBSS, "bss", "9")
	cur, _ := st.Get(ctx, key)
	st.Put(ctx, key, cur, detect.Record{AccountID: "9"})
	all, err := st.Load(ctx, state.Prefix(event.ProviderActivePlatform, "ap-main"))
	if err != nil || len(all) != 3 || all[state.Key(event.ProviderActivePlatform, "ap-main", "a.b c")].Record.AccountID != "a.b c" {
		t.Fatalf("%v %v", all, err)
	}
	none, err := st.Load(ctx, state.Prefix(event.ProviderAlibabaCAMS, "cams"))
	if err != nil || len(none) != 0 {
		t.Fatalf("%v %v", none, err)
	}
}

// TestAppendKey: the key built into a reused buffer is Key's, without an
// allocation for an account id that needs no escaping.
func TestAppendKey(t *testing.T) {
	for _, id := range []string{"1000123", "a.b c", "~x"} {
		if got, want := string(state.AppendKey(nil, event.ProviderActivePlatform, "ap-main", id)), state.Key(event.ProviderActivePlatform, "ap-main", id); got != want || !strings.HasPrefix(got, state.Prefix(event.ProviderActivePlatform, "ap-main")) {
			t.Errorf("AppendKey(%q) = %q, Key %q", id, got, want)
		}
	}
	buf := make([]byte, 0, 64)
	if n := testing.AllocsPerRun(100, func() { buf = state.AppendKey(buf[:0], event.ProviderActivePlatform, "ap-main", "1000123") }); n != 0 {
		t.Errorf("%v allocations into a reused buffer", n)
	}
}

// TestRawAnswers: a stored record says whether it has an outbox and a
// baseline, and the listing it was processed from, from its bytes, exactly
// as decoding it would: for every combination, and whatever its
// attributes, enums, profile or outbox hold.
func TestRawAnswers(t *testing.T) {
	digest := strings.Repeat("0123456789abcdef", 4)
	fake := `"listing":"` + strings.Repeat("f", 64)
	tricky := detect.Record{
		Attrs:   map[string]string{"pending": `"pending":[`, "baseline": `"baseline":true`, "listing": strings.Repeat("e", 64), "zz": fake + `"}`},
		Enums:   map[string]event.Value{"baseline": {Value: "true"}, "pending": {Value: "["}, "listing": {Value: strings.Repeat("d", 64)}},
		Profile: map[string]event.Value{"About": {Value: `{"baseline":true,"pending":[1]}`}, "listing": {Value: fake}},
		Removed: true, Degraded: true,
	}
	for _, baseline := range []bool{false, true} {
		for _, pending := range []bool{false, true} {
			for _, listing := range []string{"", digest} {
				e := &state.Entry{Record: tricky, Listing: listing}
				e.Record.Baseline = baseline
				if pending {
					e.Pending = []state.Pending{{Subject: "s", Header: map[string][]string{"listing": {strings.Repeat("c", 64)}}, Data: []byte(`{"baseline":true}`)}}
				}
				raw, err := state.Encode(e)
				if err != nil {
					t.Fatal(err)
				}
				back, err := state.Decode("k", raw)
				if err != nil {
					t.Fatal(err)
				}
				if raw.Baselined() != back.Record.Baseline || raw.HasPending() != (len(back.Pending) > 0) || raw.Listing() != back.Listing ||
					raw.Baselined() != baseline || raw.HasPending() != pending || raw.Listing() != listing {
					t.Errorf("baseline %v pending %v listing %q: Raw says %v %v %q", baseline, pending, listing, raw.Baselined(), raw.HasPending(), raw.Listing())
				}
			}
		}
	}
}

// TestGetKnown: a record read at the revision its reader knows settled
// comes without its stored outbox and is otherwise the record Get reads; at
// any other revision (or none known) the outbox comes with it, to be flushed.
func TestGetKnown(t *testing.T) {
	b := bustest.New(t)
	ctx := t.Context()
	st, _ := state.Open(ctx, b.JS)
	key := state.Key(event.ProviderActivePlatform, "ap-main", "42")
	cur, _ := st.Get(ctx, key)
	if err := st.Put(ctx, key, cur, detect.Record{AccountID: "42", Baseline: true}); err != nil {
		t.Fatal(err)
	}
	cur.Listing = strings.Repeat("ab", 32)
	next := detect.Record{AccountID: "42", Baseline: true, Name: "x", Attrs: map[string]string{"tier": "gold"}}
	if err := st.Commit(ctx, key, cur, next, []*event.Event{statusEvent(t, cur.Rev, "active", "credit_hold")}); err != nil {
		t.Fatal(err)
	}
	full, _ := st.Get(ctx, key)
	for name, c := range map[string]struct {
		settled uint64
		pending int
	}{"settled": {cur.Rev, 0}, "none known": {0, 1}, "an older revision": {cur.Rev - 1, 1}} {
		got, err := st.GetKnown(ctx, key, c.settled)
		if err != nil || len(got.Pending) != c.pending || got.Rev != full.Rev || got.Listing != full.Listing || got.Record.Name != "x" || got.Record.Attrs["tier"] != "gold" {
			t.Errorf("%s: %+v %v, want %d pending, as %+v", name, got, err, c.pending, full)
		}
	}
	missing, err := st.GetKnown(ctx, state.Key(event.ProviderActivePlatform, "ap-main", "43"), 7)
	if err != nil || missing.Rev != 0 {
		t.Errorf("a missing record: %+v %v", missing, err)
	}
}
