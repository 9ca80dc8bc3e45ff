package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
)

// TestComposeNamesOnlyRealServices loads docker-compose.yml with the compose-spec
// loader and checks that every service it builds exists in the workspace, that
// the cluster has three JetStream nodes, and that each node's config exists.
func TestComposeNamesOnlyRealServices(t *testing.T) {
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
