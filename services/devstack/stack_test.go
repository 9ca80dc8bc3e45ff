package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/event/eventtest"
	"github.com/accountwatch/accountwatch/pkg/eventbus/bustest"
	"github.com/accountwatch/accountwatch/pkg/ops/opstest"
)

func TestStackStartsOnlyBuiltServices(t *testing.T) {
	bin := t.TempDir()
	os.WriteFile(filepath.Join(bin, "poller"), []byte("#!/bin/sh\n"), 0o755)
	c := stackConfig{BinDir: bin, DataDir: "/data", NATSURL: "nats://127.0.0.1:4222", SimAddr: "127.0.0.1:8480", OpsBase: 9101, RootDir: "/repo"}
	svcs := c.services()
	if len(svcs) != 1 || svcs[0].Name != "poller" {
		t.Fatalf("services %+v", svcs)
	}
	env := strings.Join(svcs[0].Env, " ")
	for _, want := range []string{"NATS_URL=nats://127.0.0.1:4222", "AW_POLLER_CONFIG=/repo/deploy/dev/poller.yaml", "AW_SIM_ADDR=127.0.0.1:8480", "AW_OPS_LISTEN=127.0.0.1:9102"} {
		if !strings.Contains(env, want) {
			t.Errorf("poller env lacks %s: %s", want, env)
		}
	}
	b := banner(c, svcs)
	for _, want := range []string{"nats://127.0.0.1:4222", "http://127.0.0.1:9102/metrics", "Ctrl-C"} {
		if !strings.Contains(b, want) {
			t.Errorf("banner lacks %q:\n%s", want, b)
		}
	}
}

func TestStackRunsSlackNotifierWithLocalSink(t *testing.T) {
	bin := t.TempDir()
	for _, n := range []string{"poller", "slack-notifier", "webhook-dispatcher", "auditor", "email-notifier"} {
		os.WriteFile(filepath.Join(bin, n), []byte("#!/bin/sh\n"), 0o755)
	}
	t.Setenv("AW_SLACK_TOKEN", "")
	c := stackConfig{BinDir: bin, DataDir: "/data", NATSURL: "nats://127.0.0.1:4222", SimAddr: "127.0.0.1:8480", OpsBase: 9101, RootDir: "/repo", SinksDir: "/data/sinks"}
	c.CredsDir = "/data/credentials"
	svcs := c.services()
	// Every service joins with its own credentials, from a file; nothing
	// secret is on a command line.
	for _, svc := range svcs {
		env := strings.Join(svc.Env, " ")
		if want := "AW_NATS_NKEY_SEED_FILE=/data/credentials/" + svc.Name + "/nats.nk"; !strings.Contains(env, want) {
			t.Errorf("%s: env lacks %s: %s", svc.Name, want, env)
		}
		for _, a := range svc.Args {
			if strings.Contains(a, "credentials") || strings.Contains(a, "token") || strings.HasPrefix(a, "SU") {
				t.Errorf("%s: a credential on the command line: %q", svc.Name, a)
			}
		}
	}
	if env := strings.Join(svcs[3].Env, " "); !strings.Contains(env, "AW_CHECKPOINT_KEY_FILE=/data/credentials/auditor/checkpoint.key") {
		t.Errorf("the auditor has no signing key: %s", env)
	}
	if len(svcs) != 5 || svcs[1].Name != "slack-notifier" || svcs[2].Name != "webhook-dispatcher" || svcs[3].Name != "auditor" || svcs[4].Name != "email-notifier" {
		t.Fatalf("services %+v", svcs)
	}
	env := strings.Join(svcs[1].Env, " ")
	for _, want := range []string{"AW_SLACK_LOCAL_DIR=/data/sinks/slack", "AW_SINK_START=all", "AW_OPS_LISTEN=127.0.0.1:9103"} {
		if !strings.Contains(env, want) {
			t.Errorf("slack-notifier env lacks %s: %s", want, env)
		}
	}
	t.Setenv("AW_SMTP_HOST", "")
	if env := strings.Join(svcs[2].Env, " "); !strings.Contains(env, "AW_WEBHOOK_ADMIN_TOKEN=") || !strings.Contains(env, "AW_WEBHOOK_ALLOW_CIDRS=127.0.0.0/8") {
		t.Errorf("webhook-dispatcher env: %s", env)
	}
	if env := strings.Join(svcs[3].Env, " "); !strings.Contains(env, "AW_AUDITOR_TOKEN=") {
		t.Errorf("auditor env: %s", env)
	}
	if env := strings.Join(svcs[4].Env, " "); !strings.Contains(env, "AW_EMAIL_LOCAL_DIR=/data/sinks/email") || !strings.Contains(env, "AW_EMAIL_TO=") {
		t.Errorf("email-notifier env: %s", env)
	}
	if b := banner(c, svcs); !strings.Contains(b, "no AW_SLACK_TOKEN: messages go to /data/sinks/slack/slack-messages.jsonl") || !strings.Contains(b, ".eml files in /data/sinks/email") {
		t.Errorf("banner does not say where Slack messages go:\n%s", b)
	}
}

func TestEventSummary(t *testing.T) {
	e, err := event.StatusChanged(event.Meta{Provider: event.ProviderActivePlatform, Instance: "ap-main", AccountID: "1000123", AccountName: "Acme",
		ObservedAt: time.Now()}, event.EnumValue("active"), event.EnumValue("credit hold"))
	if err != nil {
		t.Fatal(err)
	}
	if got := summary(e); got != `critical account.status.changed ap-main/1000123 (Acme): status "active" → "credit_hold"` {
		t.Fatalf("%q", got)
	}
}

// TestTailEvents: every event published after the tail starts is printed once,
// and the tail ends with its context.
func TestTailEvents(t *testing.T) {
	bus := bustest.New(t)
	var out opstest.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { tailEvents(ctx, bus.JS, &out, slog.New(slog.DiscardHandler)); close(done) }()
	time.Sleep(200 * time.Millisecond) // the tail delivers new events only
	var evs []*event.Event
	for i := range 5 {
		evs = append(evs, eventtest.Status(t, eventtest.Meta(fmt.Sprintf("t%d", i), nil), "active", "credit_hold"))
	}
	bustest.Publish(t, bus, evs...)
	bustest.Eventually(t, "a line per event", func() bool { return strings.Count(out.String(), "[events] ") == len(evs) })
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the tail did not end with its context")
	}
	for _, e := range evs {
		if !strings.Contains(out.String(), e.Data.AccountID) {
			t.Errorf("no line for %s:\n%s", e.Data.AccountID, out.String())
		}
	}
}
