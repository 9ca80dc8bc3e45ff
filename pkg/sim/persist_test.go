package sim_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/accountwatch/accountwatch/pkg/sim"
	"github.com/accountwatch/accountwatch/pkg/sim/simtest"
)

// TestStateResumes: with a state file, a second simulator starts from what
// the first one's world had become (a PATCH, an added and a removed
// customer, a profile change, the scenario's position), not from the seed.
func TestStateResumes(t *testing.T) {
	file := filepath.Join(t.TempDir(), "data", "upstream-sim.json")
	first, err := sim.New(simtest.Seed(), sim.WithStateFile(file))
	if err != nil {
		t.Fatal(err)
	}
	if first.Resumed() {
		t.Fatal("resumed without a state file")
	}
	if _, err := os.Stat(file); err != nil {
		t.Fatalf("no state file after the start: %v", err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(first.State.SetAP(1000123, map[string]any{"status": "credit hold"}))
	must(first.State.AddCustomer(sim.BSSCustomer{UID: "1800000000000001", LoginEmail: "new@partner.example", HostingStatus: "TRUSTEESHIP"}))
	must(first.State.RemoveCustomer("1234567890123457"))
	must(first.State.SetProfile(simtest.Space, "8613800000001", map[string]any{"Description": "open 24/7"}))
	sc := &sim.Scenario{Steps: []sim.Step{{After: time.Millisecond, Note: "one"}, {After: time.Millisecond, Note: "two"}, {After: time.Hour, Note: "three"}}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { first.Run(ctx, sc, slog.New(slog.DiscardHandler)); close(done) }()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(read(t, file), `"scenario_step": 2`) {
		if time.Now().After(deadline) {
			t.Fatalf("the scenario's position is not saved:\n%s", read(t, file))
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done

	again, err := sim.New(simtest.Seed(), sim.WithStateFile(file))
	if err != nil {
		t.Fatal(err)
	}
	if !again.Resumed() {
		t.Fatal("the second run did not resume")
	}
	if a, _ := again.State.APAccount(1000123); a.Status != "credit hold" {
		t.Errorf("the PATCH was undone: status %q", a.Status)
	}
	if _, ok := again.State.Customer("1800000000000001"); !ok {
		t.Error("the onboarded customer is gone")
	}
	if _, ok := again.State.Customer("1234567890123457"); ok {
		t.Error("the removed customer is back")
	}
	if p, _ := again.State.Phone(simtest.Space, "8613800000001"); p.Profile.Description != "open 24/7" {
		t.Errorf("profile %q", p.Profile.Description)
	}
	if a, b := first.State.APCount(), again.State.APCount(); a != b {
		t.Errorf("%d accounts, then %d", a, b)
	}
	// The scenario goes on with its third step, not its first.
	step := make(chan string, 4)
	log := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		if s := string(p); strings.Contains(s, "scenario step") {
			step <- s
		}
		return len(p), nil
	}), nil))
	sc.Steps[2].After = time.Millisecond
	again.Run(context.Background(), sc, log)
	if got := <-step; !strings.Contains(got, "note=three") {
		t.Errorf("resumed at %q, want the third step", got)
	}

	os.WriteFile(file, []byte("{"), 0o600)
	if _, err := sim.New(simtest.Seed(), sim.WithStateFile(file)); err == nil || !strings.Contains(err.Error(), "remove it to start from the seed") {
		t.Errorf("a broken state file: %v", err)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func read(t *testing.T, path string) string {
	t.Helper()
	b, _ := os.ReadFile(path)
	return string(b)
}
