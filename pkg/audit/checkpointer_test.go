package audit_test

import (
	"context"
	"testing"
	"time"

	"github.com/accountwatch/accountwatch/pkg/audit"
	"github.com/accountwatch/accountwatch/pkg/audit/audittest"
	"github.com/accountwatch/accountwatch/pkg/checkpoint"
	"github.com/accountwatch/accountwatch/pkg/eventbus"
	"github.com/accountwatch/accountwatch/pkg/eventbus/bustest"
)

// TestCheckpointerSignsWhatItVerified: the signer checkpoints the log at
// start and again only once it has moved; each checkpoint names the one
// before; and each proves the log as it was when signed.
func TestCheckpointerSignsWhatItVerified(t *testing.T) {
	b := audittest.Bus(t, "")
	audittest.Commit(t, b, 2, audittest.Accounts...)
	key, _ := audittest.Key(t, t.TempDir())
	c := &audit.Checkpointer{JS: b.JS, Key: key, Interval: 20 * time.Millisecond, Skew: audittest.Skew}
	signed := c.Signed()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	wait := func(what string) checkpoint.Stored {
		t.Helper()
		select {
		case <-signed:
		case <-time.After(30 * time.Second):
			t.Fatalf("no checkpoint: %s", what)
		}
		return c.Latest()
	}
	first := wait("at start")
	if cp := first.Checkpoint(); cp.LastSeq != 6 || cp.Accounts != 3 || cp.Problems != 0 || cp.Prev != "" {
		t.Fatalf("first checkpoint %+v", cp)
	}
	// Nothing new: rounds pass without signing (the latest stays the first).
	r := c.Rounds()
	bustest.Eventually(t, "three more rounds", func() bool { return c.Rounds() >= r+3 })
	select {
	case <-signed:
		t.Fatal("a checkpoint signed over an unchanged log")
	default:
	}
	if c.Failures() != 0 {
		t.Errorf("%d rounds failed", c.Failures())
	}
	audittest.Commit(t, b, 1, audittest.Accounts[0])
	second := wait("after a new event")
	if cp := second.Checkpoint(); cp.LastSeq != 7 || cp.Prev != first.Hash() || second.Seq != first.Seq+1 {
		t.Errorf("second checkpoint %+v at %d", cp, second.Seq)
	}
	// Both prove the log as it is: each against the heads at its sequence.
	o := fullOptions()
	for _, s := range []checkpoint.Stored{first, second} {
		o.Checkpoints = append(o.Checkpoints, audit.Checkpoint{Source: eventbus.StreamCheckpoints, Signed: s.Signed})
	}
	rep, err := audit.Verify(context.Background(), b.JS, o)
	if err != nil || !rep.OK() || len(rep.Checkpoints) != 3 {
		t.Fatalf("%v %+v %+v", err, rep.Problems, rep.Checkpoints)
	}
	for _, r := range rep.Checkpoints {
		if !r.OK {
			t.Errorf("checkpoint %s at %d: %s", r.Source, r.LastSeq, r.Detail)
		}
	}
}
