package audit_test

import (
	"context"
	"crypto/ed25519"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/accountwatch/accountwatch/pkg/audit"
	"github.com/accountwatch/accountwatch/pkg/audit/audittest"
	"github.com/accountwatch/accountwatch/pkg/checkpoint"
	"github.com/accountwatch/accountwatch/pkg/eventbus"
)

func fullOptions() audit.Options {
	o := audit.DefaultOptions()
	o.Skew = audittest.Skew
	return o
}

func kinds(r audit.Report) []string {
	var out []string
	for _, p := range r.Problems {
		out = append(out, p.Kind)
	}
	return out
}

// TestVerifyPassesAnIntactLog: a log the poller wrote, with its state and a
// signed checkpoint, stored and exported, verifies with every check on.
func TestVerifyPassesAnIntactLog(t *testing.T) {
	b := audittest.Bus(t, "")
	evs := audittest.Commit(t, b, 3, audittest.Accounts...)
	key, pubFile := audittest.Key(t, t.TempDir())
	file := audittest.Checkpoint(t, b, key, t.TempDir())
	more := audittest.Commit(t, b, 1, audittest.Accounts...) // events after the checkpoint
	cp, err := checkpoint.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := checkpoint.LoadPublicKey(pubFile)
	o := fullOptions()
	o.Checkpoints, o.Trusted, o.Heads = []audit.Checkpoint{{Source: file, Signed: cp}}, []ed25519.PublicKey{pub}, true
	rep, err := audit.Verify(context.Background(), b.JS, o)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || rep.Events != uint64(len(evs)+len(more)) || rep.Accounts != 3 || !rep.StateChecked || len(rep.Heads) != 3 {
		t.Fatalf("intact log: %+v", rep)
	}
	if len(rep.Checkpoints) != 2 || !rep.Checkpoints[0].OK || !rep.Checkpoints[1].OK {
		t.Errorf("checkpoints: %+v", rep.Checkpoints)
	}
	for _, h := range rep.Heads {
		if h.Seq != 4 {
			t.Errorf("head %+v, want link 4", h)
		}
	}
}

// TestVerifyCatchesEveryTampering: each way an insider rewrites history is
// named by verify; the full rewrite, only by an exported checkpoint.
func TestVerifyCatchesEveryTampering(t *testing.T) {
	for _, c := range audittest.Cases() {
		t.Run(c.Name, func(t *testing.T) {
			b := audittest.Bus(t, "")
			evs := audittest.Commit(t, b, 3, audittest.Accounts...)
			o := fullOptions()
			var file string
			if c.Checkpoint {
				key, _ := audittest.Key(t, t.TempDir())
				file = audittest.Checkpoint(t, b, key, t.TempDir())
			}
			c.Tamper(t, b, evs)
			if c.Checkpoint {
				rep, err := audit.Verify(context.Background(), b.JS, o)
				if err != nil {
					t.Fatal(err)
				}
				if !rep.OK() {
					t.Fatalf("the rewrite was meant to fool every check inside NATS; found %v", kinds(rep))
				}
				cp, err := checkpoint.ReadFile(file)
				if err != nil {
					t.Fatal(err)
				}
				o.Checkpoints = []audit.Checkpoint{{Source: file, Signed: cp}}
			}
			rep, err := audit.Verify(context.Background(), b.JS, o)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("found %v", kinds(rep))
			if !slices.Contains(kinds(rep), c.Kind) {
				t.Fatalf("problems %v, want %s: %+v", kinds(rep), c.Kind, rep.Problems)
			}
			for _, p := range rep.Problems {
				if p.Detail == "" {
					t.Errorf("%s without a detail", p.Kind)
				}
			}
		})
	}
}

// TestVerifyStateTakesTheOutboxAndLiveCommits: a record ahead of the stream
// by the events of its outbox (a poller between its two writes) is no problem.
func TestVerifyStateTakesTheOutbox(t *testing.T) {
	b := audittest.Bus(t, "")
	evs := audittest.Commit(t, b, 2, "1000")
	s, _ := b.JS.Stream(context.Background(), eventbus.StreamEvents)
	// The last event is gone from the stream but still in the record's outbox.
	if err := s.DeleteMsg(context.Background(), 2); err != nil {
		t.Fatal(err)
	}
	o := fullOptions()
	rep, _ := audit.Verify(context.Background(), b.JS, o)
	if got := strings.Join(kinds(rep), " "); got != "gap" {
		t.Errorf("problems %q, want only the stream's gap (the outbox still holds link %d): %+v", got, evs[1].Data.Chain.Seq, rep.Problems)
	}
}

// TestVerifyUntrustedCheckpoint: a checkpoint stored by someone without the
// signer's key is named as such.
func TestVerifyUntrustedCheckpoint(t *testing.T) {
	b := audittest.Bus(t, "")
	audittest.Commit(t, b, 1, audittest.Accounts...)
	forger, _ := audittest.Key(t, t.TempDir())
	audittest.Checkpoint(t, b, forger, t.TempDir())
	_, pubFile := audittest.Key(t, t.TempDir())
	pub, _ := checkpoint.LoadPublicKey(pubFile)
	o := fullOptions()
	o.Trusted = []ed25519.PublicKey{pub}
	rep, err := audit.Verify(context.Background(), b.JS, o)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(kinds(rep), audit.ProblemCheckpointInvalid) {
		t.Errorf("problems %v", kinds(rep))
	}
}

var _ = time.Second
