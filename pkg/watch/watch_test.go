package watch_test

import (
	"context"
	"errors"
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
	live, err := s.Follow(ctx)
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
