package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/accountwatch/accountwatch/pkg/audit/audittest"
	"github.com/accountwatch/accountwatch/pkg/checkpoint"
	"github.com/accountwatch/accountwatch/pkg/eventbus"
	"github.com/accountwatch/accountwatch/pkg/eventbus/bustest"
)

func awctl(t *testing.T, args ...string) (int, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb)
	return code, out.String() + errb.String()
}

// asRole points awctl at b's server with r's credentials.
func asRole(t *testing.T, b *eventbus.Bus, r eventbus.Role) {
	t.Setenv("NATS_URL", b.ClientURL())
	t.Setenv("AW_NATS_NKEY_SEED_FILE", b.SeedFile(r))
}

// TestVerifyExitsOneNamingEveryTampering: awctl verify, with the operator's
// credentials, passes an intact log and exits 1 naming each tampering; the
// full rewrite only against a checkpoint exported with awctl beforehand.
func TestVerifyExitsOneNamingEveryTampering(t *testing.T) {
	skew := "--clock-skew=" + audittest.Skew.String()
	t.Run("intact", func(t *testing.T) {
		b := audittest.Bus(t, "127.0.0.1:0")
		audittest.Commit(t, b, 3, audittest.Accounts...)
		asRole(t, b, eventbus.RoleOperator)
		if code, out := awctl(t, "verify", skew); code != 0 || !strings.Contains(out, "intact") {
			t.Fatalf("exit %d:\n%s", code, out)
		}
	})
	for _, c := range audittest.Cases() {
		t.Run(c.Name, func(t *testing.T) {
			b := audittest.Bus(t, "127.0.0.1:0")
			evs := audittest.Commit(t, b, 3, audittest.Accounts...)
			asRole(t, b, eventbus.RoleOperator)
			args := []string{"verify", skew}
			if c.Checkpoint {
				key, pub := audittest.Key(t, t.TempDir())
				audittest.Checkpoint(t, b, key, t.TempDir())
				file := filepath.Join(t.TempDir(), "kept.json")
				if code, out := awctl(t, "checkpoint", "export", "--key", pub, "--output", file); code != 0 {
					t.Fatalf("export: %d %s", code, out)
				}
				args = append(args, "--checkpoint", file, "--key", pub)
			}
			c.Tamper(t, b, evs)
			if c.Checkpoint {
				if code, out := awctl(t, "verify", skew); code != 0 {
					t.Fatalf("the rewrite should pass every check inside NATS: exit %d\n%s", code, out)
				}
			}
			code, out := awctl(t, args...)
			if code != exitFailed || !strings.Contains(out, " "+c.Kind+" ") || !strings.Contains(out, "not intact") {
				t.Fatalf("exit %d, want 1 naming %s:\n%s", code, c.Kind, out)
			}
		})
	}
}

// TestProvisionIsTheAdminsStep: on a server with nothing provisioned, a
// service fails at start naming what is missing, the operator cannot
// provision, the admin can.
func TestProvisionIsTheAdminsStep(t *testing.T) {
	cfg := bustest.Config(t, "127.0.0.1:0")
	b, err := eventbus.Connect(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	svc := eventbus.DefaultConfig()
	svc.URL, svc.NKeySeedFile, svc.Role = b.ClientURL(), b.SeedFile(eventbus.RolePoller), eventbus.RolePoller
	if _, err := eventbus.Open(context.Background(), svc); err == nil || !strings.Contains(err.Error(), "stream AW_EVENTS") || !strings.Contains(err.Error(), "awctl provision") {
		t.Errorf("a poller on an unprovisioned server: %v", err)
	}
	asRole(t, b, eventbus.RoleOperator)
	t.Setenv("AW_NATS_NKEY_SEED_FILE", b.SeedFile(eventbus.RoleOperator))
	if code, out := awctl(t, "provision"); code != exitFailed || !strings.Contains(out, "not the admin") {
		t.Errorf("operator provisions: exit %d %s", code, out)
	}
	t.Setenv("AW_NATS_NKEY_SEED_FILE", b.SeedFile(eventbus.RoleAdmin))
	for range 2 { // twice: the second run checks and changes nothing
		if code, out := awctl(t, "provision"); code != 0 || !strings.Contains(out, "AW_DELIVERIES") || !strings.Contains(out, "AW_CHECKPOINTS") {
			t.Fatalf("admin provisions: exit %d %s", code, out)
		}
	}
	bus, err := eventbus.Open(context.Background(), svc)
	if err != nil {
		t.Fatalf("the poller after provisioning: %v", err)
	}
	bus.Close()
}

func TestCredentialsAndKeygen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "creds")
	code, out := awctl(t, "credentials", "--dir", dir)
	if code != 0 || !strings.Contains(out, "SHA256:") {
		t.Fatalf("exit %d %s", code, out)
	}
	first, _ := os.ReadFile(filepath.Join(dir, "poller", eventbus.SeedFileName))
	conf, _ := os.ReadFile(filepath.Join(dir, eventbus.PublicDir, eventbus.AuthConfName))
	if !bytes.HasPrefix(first, []byte("SU")) || bytes.Contains(conf, bytes.TrimSpace(first)) || !bytes.Contains(conf, []byte("nkey:")) {
		t.Errorf("seed %q…, the auth include holds it, or no key", first[:2])
	}
	if st, _ := os.Stat(filepath.Join(dir, "auditor", checkpoint.KeyName)); st == nil || st.Mode().Perm() != 0o600 {
		t.Errorf("signing key: %v", st)
	}
	awctl(t, "credentials", "--dir", dir)
	if again, _ := os.ReadFile(filepath.Join(dir, "poller", eventbus.SeedFileName)); !bytes.Equal(first, again) {
		t.Error("a second run replaced a seed")
	}
	key := filepath.Join(t.TempDir(), "signer.key")
	if code, out := awctl(t, "checkpoint", "keygen", "--out", key); code != 0 || !strings.Contains(out, "signer.pub") {
		t.Errorf("keygen: %d %s", code, out)
	}
	if code, _ := awctl(t, "checkpoint", "keygen", "--out", key); code != exitFailed {
		t.Error("keygen overwrote a key")
	}
}
