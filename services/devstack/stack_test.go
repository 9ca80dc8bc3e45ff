package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/accountwatch/accountwatch/pkg/event"
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
