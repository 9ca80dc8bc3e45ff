package watch_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/eventbus/bustest"
	"github.com/accountwatch/accountwatch/pkg/watch"
)

func TestWatchList(t *testing.T) {
	b := bustest.New(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, err := watch.Open(ctx, b.JS)
	if err != nil {
		t.Fatal(err)
	}
	live, err := s.Follow(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	e := watch.Entry{Provider: event.ProviderActivePlatform, Instance: "ap-main", AccountID: "1000123", Labels: map[string]string{"team": "emea", "manager": "alice"}, Source: watch.SourceCLI}
	if err := s.Put(ctx, e); err != nil {
		t.Fatal(err)
	}
	added, err := s.Add(ctx, watch.Entry{Provider: event.ProviderActivePlatform, Instance: "ap-main", AccountID: "1000123", Source: watch.SourceDiscovery})
	if err != nil || added {
		t.Fatalf("Add over an existing entry must keep it: %v %v", added, err)
	}
	got, err := s.Get(ctx, event.ProviderActivePlatform, "ap-main", "1000123")
	if err != nil || got.Labels["manager"] != "alice" || got.Source != watch.SourceCLI {
		t.Fatalf("%+v %v", got, err)
	}
	waitFor(t, func() bool { return live.Count("ap-main") == 1 })
	if err := s.Remove(ctx, event.ProviderActivePlatform, "ap-main", "1000123"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return live.Count("") == 0 })
	if err := s.Remove(ctx, event.ProviderActivePlatform, "ap-main", "1000123"); !errors.Is(err, watch.ErrNotFound) {
		t.Fatalf("%v", err)
	}
	list, err := s.List(ctx, "")
	if err != nil || len(list) != 0 {
		t.Fatalf("%v %v", list, err)
	}
}

func TestEntryValidation(t *testing.T) {
	cases := map[string]watch.Entry{
		"provider":  {Provider: "aws", Instance: "x", AccountID: "1"},
		"instance":  {Provider: event.ProviderActivePlatform, Instance: "A B", AccountID: "1"},
		"account":   {Provider: event.ProviderActivePlatform, Instance: "x"},
		"scope":     {Provider: event.ProviderActivePlatform, Instance: "x", AccountID: "*"},
		"cams":      {Provider: event.ProviderAlibabaCAMS, Instance: "x", AccountID: "86138"},
		"label key": {Provider: event.ProviderActivePlatform, Instance: "x", AccountID: "1", Labels: map[string]string{"Team Name": "x"}},
	}
	for name, e := range cases {
		if e.Validate() == nil {
			t.Errorf("%s accepted", name)
		}
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestLiveVersion: the count and version of an instance's entries follow
// every change to them and to nothing else.
func TestLiveVersion(t *testing.T) {
	b := bustest.New(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, err := watch.Open(ctx, b.JS)
	if err != nil {
		t.Fatal(err)
	}
	live, err := s.Follow(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	entry := func(instance, id, team string) watch.Entry {
		return watch.Entry{Provider: event.ProviderActivePlatform, Instance: instance, AccountID: id, Labels: map[string]string{"team": team}, Source: watch.SourceCLI}
	}
	steps := []struct {
		name    string
		do      func() error
		changes bool // ap-a's version advances
		count   int  // ap-a's entries after
	}{
		{"add", func() error { return s.Put(ctx, entry("ap-a", "1", "emea")) }, true, 1},
		{"add another", func() error { return s.Put(ctx, entry("ap-a", "2", "emea")) }, true, 2},
		{"relabel", func() error { return s.Put(ctx, entry("ap-a", "2", "apac")) }, true, 2},
		{"other instance", func() error { return s.Put(ctx, entry("ap-b", "1", "emea")) }, false, 2},
		{"remove", func() error { return s.Remove(ctx, event.ProviderActivePlatform, "ap-a", "1") }, true, 1},
		{"remove other instance", func() error { return s.Remove(ctx, event.ProviderActivePlatform, "ap-b", "1") }, false, 1},
	}
	for _, st := range steps {
		before, _ := live.Version("ap-a")
		_, otherBefore := live.Version("ap-b")
		if err := st.do(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		// The watcher applies changes in order: wait until ap-b's change,
		// or ap-a's, has arrived.
		waitFor(t, func() bool {
			v, n := live.Version("ap-a")
			_, on := live.Version("ap-b")
			if st.changes {
				return v != before && n == st.count
			}
			return on != otherBefore
		})
		v, n := live.Version("ap-a")
		if (v != before) != st.changes || n != st.count || live.Count("ap-a") != n {
			t.Fatalf("%s: version %d→%d, count %d (Count %d), want changed=%v count %d", st.name, before, v, n, live.Count("ap-a"), st.changes, st.count)
		}
		var walked int
		if got := live.Range("ap-a", func(watch.Entry) { walked++ }); got != v || walked != n {
			t.Fatalf("%s: Range walked %d at version %d, want %d at %d", st.name, walked, got, n, v)
		}
	}
	if live.Count("") != 1 {
		t.Fatalf("all entries: %d", live.Count(""))
	}
}

// TestAddAsync: adds sent pipelined settle as Add does, each on its own: a
// new entry is added, an existing one keeps its labels, a removed one (its
// key holds a delete marker) is added again, a bad one is refused.
func TestAddAsync(t *testing.T) {
	b := bustest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := watch.Open(ctx, b.JS)
	if err != nil {
		t.Fatal(err)
	}
	entry := func(id string) watch.Entry {
		return watch.Entry{Provider: event.ProviderActivePlatform, Instance: "ap-main", AccountID: id, Source: watch.SourceDiscovery}
	}
	kept := entry("kept")
	kept.Labels, kept.Source = map[string]string{"team": "emea"}, watch.SourceCLI
	if err := s.Put(ctx, kept); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, entry("removed")); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove(ctx, event.ProviderActivePlatform, "ap-main", "removed"); err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"kept": false, "removed": true}
	var adds []*watch.Adding
	var ids []string
	for i := range 500 {
		id := fmt.Sprintf("new-%d", i)
		want[id] = true
		ids = append(ids, id)
	}
	ids = append(ids, "kept", "removed")
	for _, id := range ids {
		adds = append(adds, s.AddAsync(entry(id)))
	}
	bad := s.AddAsync(watch.Entry{Provider: event.ProviderActivePlatform, Instance: "ap-main"})
	for i, a := range adds {
		added, err := a.Wait(ctx)
		if err != nil || added != want[ids[i]] {
			t.Errorf("%s: added %v, %v; want %v", ids[i], added, err, want[ids[i]])
		}
		if again, err := a.Wait(ctx); again != added || err != nil {
			t.Errorf("%s: a second Wait says %v %v", ids[i], again, err)
		}
	}
	if _, err := bad.Wait(ctx); err == nil {
		t.Error("an entry without an account was added")
	}
	got, err := s.Get(ctx, event.ProviderActivePlatform, "ap-main", "kept")
	if err != nil || got.Labels["team"] != "emea" || got.Source != watch.SourceCLI {
		t.Errorf("the existing entry changed: %+v %v", got, err)
	}
	list, err := s.List(ctx, "ap-main")
	if err != nil || len(list) != len(ids) {
		t.Errorf("%d entries, want %d: %v", len(list), len(ids), err)
	}
}

// TestLiveHoldsWhatWasStored: the live list, loaded and following, gives
// back each entry as stored (labels, a space, an id its key token escapes,
// the time it was added), a replaced entry as replaced (labels dropped
// too), and no removed one.
func TestLiveHoldsWhatWasStored(t *testing.T) {
	b := bustest.New(t)
	ctx := t.Context()
	s, err := watch.Open(ctx, b.JS)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	entries := []watch.Entry{
		{Provider: event.ProviderActivePlatform, Instance: "ap-main", AccountID: "1", Source: watch.SourceDiscovery, AddedAt: at},
		{Provider: event.ProviderActivePlatform, Instance: "ap-main", AccountID: "2", Labels: map[string]string{"tier": "gold"}, Source: watch.SourceCLI, AddedAt: at},
		{Provider: event.ProviderActivePlatform, Instance: "ap-main", AccountID: "a.b c", Source: watch.SourceCLI, AddedAt: at},
		{Provider: event.ProviderAlibabaCAMS, Instance: "cams", AccountID: "6580000000", Space: "293483938849", Source: watch.SourceConfig, AddedAt: at},
		{Provider: event.ProviderActivePlatform, Instance: "ap-main", AccountID: "gone", Source: watch.SourceCLI, AddedAt: at},
	}
	for _, e := range entries {
		if err := s.Put(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	check := func(live *watch.Live, want []watch.Entry) {
		t.Helper()
		for _, w := range want {
			got, ok := live.Lookup(w.Provider, w.Instance, w.AccountID)
			if !ok || !reflect.DeepEqual(got, w) {
				t.Errorf("%s: %+v %v, want %+v", w.AccountID, got, ok, w)
			}
		}
		var all []watch.Entry
		live.Range("ap-main", func(e watch.Entry) { all = append(all, e) })
		all = append(all, live.Entries("cams")...)
		if len(all) != len(want) {
			t.Errorf("%d entries, want %d: %+v", len(all), len(want), all)
		}
	}
	if err := s.Remove(ctx, event.ProviderActivePlatform, "ap-main", "gone"); err != nil {
		t.Fatal(err)
	}
	entries = entries[:4]
	loaded, err := s.Follow(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	check(loaded, entries)

	entries[1].Labels, entries[1].Source = nil, watch.SourceConfig
	if err := s.Put(ctx, entries[1]); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		e, _ := loaded.Lookup(event.ProviderActivePlatform, "ap-main", "2")
		return e.Source == watch.SourceConfig
	})
	check(loaded, entries)
}
