package app_test

import (
	"context"
	"crypto/ed25519"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/accountwatch/accountwatch/pkg/audit/audittest"
	"github.com/accountwatch/accountwatch/pkg/checkpoint"
	"github.com/accountwatch/accountwatch/pkg/eventbus"
	"github.com/accountwatch/accountwatch/pkg/eventbus/bustest"
	"github.com/accountwatch/accountwatch/services/auditor/internal/app"
)

// TestVerifyPageShowsTamperingInBrowser: the auditor signs a checkpoint of
// the log at start; the verification page shows it, its signer's key
// fingerprint and the chain heads, intact. Then an admin deletes the event
// stream and recreates it without one account's history: the page shows the
// log tampered, naming the recreated stream, the broken checkpoint and the
// state that no longer matches.
func TestVerifyPageShowsTamperingInBrowser(t *testing.T) {
	key, pub := audittest.Key(t, t.TempDir())
	f := start(t, func(s *app.Settings) {
		s.CheckpointKeyFile, s.CheckpointInterval = strings.TrimSuffix(pub, ".pub")+".key", time.Hour
	})
	tctx, shot, text := browser(t) // after start: its cleanup closes the browser before the auditor
	ctx := context.Background()
	var cp checkpoint.Stored
	bustest.Eventually(t, "the auditor's first checkpoint", func() bool {
		var err error
		cp, err = checkpoint.Latest(ctx, f.bus.JS, eventbus.StreamEvents)
		return err == nil
	})
	if cp.Checkpoint().KeyID != checkpoint.Fingerprint(key.Public().(ed25519.PublicKey)) {
		t.Errorf("signed by %s", cp.Checkpoint().KeyID)
	}
	if cp.Checkpoint().LastSeq != 3 || cp.Checkpoint().Accounts != 2 || cp.Checkpoint().Problems != 0 {
		t.Fatalf("checkpoint %+v", cp.Checkpoint())
	}
	var flash, signer, heads, problems, cpRow string
	err := chromedp.Do(tctx,
		chromedp.Navigate(f.base+"/"),
		chromedp.WaitVisible("#token"),
		chromedp.SendKeys("#token", token),
		chromedp.Click("#signin"),
		chromedp.WaitVisible("#accounts"),
		chromedp.Navigate(f.base+"/verify"),
		chromedp.WaitVisible("#intact"),
		text("#intact", &flash),
		text("#signer", &signer),
		text("#heads", &heads),
		shot("5-verify-intact"),
	)
	if err != nil {
		t.Fatalf("browser: %v", err)
	}
	if !strings.Contains(flash, "newest signed checkpoint") || signer != cp.Checkpoint().KeyID || !strings.Contains(heads, "activeplatform/ap-main/1000123") {
		t.Errorf("intact page: %q, signer %q (want %s), heads %q", flash, signer, cp.Checkpoint().KeyID, heads)
	}

	// The admin recreates the stream and publishes back all but the frozen
	// member's event.
	s, _ := f.bus.JS.Stream(ctx, eventbus.StreamEvents)
	var keep []*nats.Msg
	for seq := uint64(1); seq <= 2; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		keep = append(keep, &nats.Msg{Subject: m.Subject, Header: m.Header, Data: m.Data})
	}
	if err := f.bus.JS.DeleteStream(ctx, eventbus.StreamEvents); err != nil {
		t.Fatal(err)
	}
	if _, err := f.bus.JS.CreateStream(ctx, eventbus.EventStreamConfig(f.bus.Cfg)); err != nil {
		t.Fatal(err)
	}
	for _, m := range keep {
		if _, err := f.bus.JS.PublishMsg(ctx, m, jetstream.WithExpectStream(eventbus.StreamEvents)); err != nil {
			t.Fatal(err)
		}
	}
	err = chromedp.Do(tctx,
		chromedp.Navigate(f.base+"/verify"),
		chromedp.WaitVisible("#broken"),
		text("#broken", &flash),
		text("#problems", &problems),
		text("#checkpoint", &cpRow),
		shot("6-verify-tampered"),
	)
	if err != nil {
		t.Fatalf("browser: %v", err)
	}
	for _, want := range []string{"recreated", "checkpoint_mismatch", "state_mismatch"} {
		if !strings.Contains(problems, want) {
			t.Errorf("the tampered page does not name %s: %q", want, problems)
		}
	}
	if !strings.Contains(flash, "Tampered") || !strings.Contains(cpRow, "broken") {
		t.Errorf("tampered page: %q; checkpoint %q", flash, cpRow)
	}
}
