package silence_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/accountwatch/accountwatch/pkg/event/eventtest"
	"github.com/accountwatch/accountwatch/pkg/eventbus/bustest"
	"github.com/accountwatch/accountwatch/pkg/route"
	"github.com/accountwatch/accountwatch/pkg/silence"
)

func TestStore(t *testing.T) {
	ctx := context.Background()
	b := bustest.New(t)
	writer, err := silence.Open(ctx, b.JS)
	if err != nil {
		t.Fatal(err)
	}
	reader, _ := silence.Open(ctx, b.JS)
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := reader.Follow(fctx); err != nil {
		t.Fatal(err)
	}
	ms, _ := route.ParseMatchers([]string{"account=~100.*", "severity=critical"})
	now := time.Now()
	sl, err := writer.Add(ctx, silence.Silence{Matchers: ms, EndsAt: now.Add(time.Hour), CreatedBy: "ops", Comment: "maintenance"})
	if err != nil {
		t.Fatal(err)
	}
	hit := eventtest.Status(t, eventtest.Meta("1001", nil), "active", "credit_hold")
	missSeverity := eventtest.Status(t, eventtest.Meta("1001", nil), "credit_hold", "active")
	missAccount := eventtest.Status(t, eventtest.Meta("2001", nil), "active", "credit_hold")
	waitFor(t, func() bool { _, ok := reader.Silenced(hit, time.Now()); return ok })
	if id, _ := reader.Silenced(hit, time.Now()); id != sl.ID {
		t.Errorf("silenced by %q, want %q", id, sl.ID)
	}
	if _, ok := reader.Silenced(missSeverity, time.Now()); ok {
		t.Error("info event silenced by a severity=critical silence")
	}
	if _, ok := reader.Silenced(missAccount, time.Now()); ok {
		t.Error("other account silenced")
	}
	if _, ok := reader.Silenced(hit, now.Add(2*time.Hour)); ok {
		t.Error("silenced after its end")
	}
	if _, err := writer.Expire(ctx, sl.ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { _, ok := reader.Silenced(hit, time.Now()); return !ok })
	list, err := writer.List(ctx)
	if err != nil || len(list) != 1 || list[0].State(time.Now()) != "expired" {
		t.Fatalf("list %+v, %v", list, err)
	}
	if _, err := writer.Expire(ctx, "nope"); !errors.Is(err, silence.ErrNotFound) {
		t.Errorf("expire unknown: %v", err)
	}
	bad := []silence.Silence{
		{EndsAt: now.Add(time.Hour), CreatedBy: "a", Comment: "c"},
		{Matchers: ms, EndsAt: now.Add(-time.Hour), CreatedBy: "a", Comment: "c"},
		{Matchers: ms, EndsAt: now.Add(time.Hour)},
	}
	for i, s := range bad {
		if _, err := writer.Add(ctx, s); !errors.Is(err, silence.ErrInvalid) {
			t.Errorf("bad[%d]: %v, want ErrInvalid", i, err)
		}
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatal("condition not met within 10s")
}
