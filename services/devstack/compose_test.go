package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

// adminSteps are the one-shot awctl services: the credentials, then the
// streams and buckets, before any service starts.
var adminSteps = map[string]bool{"credentials": true, "provision": true}

func loadCompose(t *testing.T) *types.Project {
	t.Helper()
	root, _ := filepath.Abs(filepath.Join("..", ".."))
	opts, err := cli.NewProjectOptions([]string{filepath.Join(root, "docker-compose.yml")},
		cli.WithWorkingDirectory(root), cli.WithName("accountwatch"),
		// The dispatcher's admin token has no default: compose refuses to start without one.
		cli.WithEnv([]string{"AW_WEBHOOK_ADMIN_TOKEN=compose-test-token-0123456789", "AW_AUDITOR_TOKEN=compose-test-token-0123456789"}))
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("docker-compose.yml does not load: %v", err)
	}
	return p
}

// TestComposeNamesOnlyRealServices loads docker-compose.yml with the compose-spec
// loader and checks that every service it builds exists in the workspace, that
// the cluster has three JetStream nodes, and that each node's config exists.
func TestComposeNamesOnlyRealServices(t *testing.T) {
	p := loadCompose(t)
	root, _ := filepath.Abs(filepath.Join("..", ".."))
	work, err := os.ReadFile(filepath.Join(root, "go.work"))
	if err != nil {
		t.Fatal(err)
	}
	built, nats := 0, 0
	for name, svc := range p.Services {
		if strings.HasPrefix(name, "nats-") {
			nats++
			for _, v := range svc.Volumes {
				if v.Type == "bind" {
					if _, err := os.Stat(v.Source); err != nil {
						t.Errorf("%s mounts %s: %v", name, v.Source, err)
					}
				}
			}
		}
		if svc.Build == nil {
			continue
		}
		built++
		if svc.Build.Dockerfile != "deploy/Dockerfile" {
			t.Errorf("%s builds from %q, want deploy/Dockerfile", name, svc.Build.Dockerfile)
		}
		arg := svc.Build.Args["SERVICE"]
		if arg != nil && *arg == "awctl" && adminSteps[name] {
			continue // a one-shot admin step run with awctl
		}
		if arg == nil || *arg != name {
			t.Errorf("%s: build arg SERVICE must name the service", name)
			continue
		}
		if _, err := os.Stat(filepath.Join(root, "services", name, "main.go")); err != nil {
			t.Errorf("compose names %s, which is not a service of the workspace", name)
		}
		if !strings.Contains(string(work), "./services/"+name) {
			t.Errorf("services/%s is not in go.work", name)
		}
	}
	if nats != 3 {
		t.Errorf("want a 3-node NATS cluster, got %d nodes", nats)
	}
	if built == 0 {
		t.Error("compose builds no accountwatch service")
	}
	if _, ok := p.Services["mailcatcher"]; !ok {
		t.Error("no mail catcher")
	}
}

// TestComposeRunsEveryServiceWithItsOwnCredentials: each service that joins
// NATS reads its own nkey from a file, mounted read-only from its own folder
// of the credentials volume (never another's, never on a command line); the
// servers get only the public folder; the auditor alone the signing key;
// nothing starts before the admin has provisioned.
func TestComposeRunsEveryServiceWithItsOwnCredentials(t *testing.T) {
	p := loadCompose(t)
	joined := 0
	for name, svc := range p.Services {
		var subpaths []string
		for _, v := range svc.Volumes {
			if v.Source == "credentials" {
				if !v.ReadOnly && name != "credentials" {
					t.Errorf("%s mounts the credentials writable", name)
				}
				if v.Volume != nil {
					subpaths = append(subpaths, v.Volume.Subpath)
				}
			}
		}
		for _, a := range svc.Command {
			if strings.HasPrefix(a, "SU") || strings.Contains(strings.ToLower(a), "password") || strings.Contains(strings.ToLower(a), "token") {
				t.Errorf("%s: a credential on the command line: %q", name, a)
			}
		}
		for k, v := range svc.Environment {
			if v != nil && strings.HasPrefix(*v, "SU") {
				t.Errorf("%s: %s holds a seed", name, k)
			}
		}
		if strings.HasPrefix(name, "nats-") {
			if len(subpaths) != 1 || subpaths[0] != "public" {
				t.Errorf("%s mounts credentials %v, want the public folder only", name, subpaths)
			}
			if d, ok := svc.DependsOn["credentials"]; !ok || d.Condition != "service_completed_successfully" {
				t.Errorf("%s starts before the credentials exist", name)
			}
			continue
		}
		if svc.Environment["NATS_URL"] == nil {
			continue
		}
		joined++
		own := name
		if name == "provision" {
			own = "admin"
		}
		seed := svc.Environment["AW_NATS_NKEY_SEED_FILE"]
		if seed == nil || !strings.HasPrefix(*seed, "/run/secrets/accountwatch/") {
			t.Errorf("%s: AW_NATS_NKEY_SEED_FILE %v", name, seed)
		}
		if len(subpaths) != 1 || subpaths[0] != own {
			t.Errorf("%s mounts credentials %v, want its own folder %q only", name, subpaths, own)
		}
		if _, ok := svc.Environment["AW_CHECKPOINT_KEY_FILE"]; ok != (name == "auditor") {
			t.Errorf("%s: AW_CHECKPOINT_KEY_FILE set %v (the auditor alone signs)", name, ok)
		}
		if name != "provision" {
			if d, ok := svc.DependsOn["provision"]; !ok || d.Condition != "service_completed_successfully" {
				t.Errorf("%s starts before the admin provisioned", name)
			}
		}
	}
	if joined != 6 { // provision, the poller, three sinks, the auditor
		t.Errorf("%d services join NATS", joined)
	}
}
