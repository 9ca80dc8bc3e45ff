package bustest

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/accountwatch/accountwatch/pkg/eventbus"
)

// StartDeployCluster starts the 3-node cluster of deploy/nats/nats-{1,2,3}.conf
// in this process on loopback, each node with the authorization include
// `awctl credentials` writes; only what cannot be the same on one machine is
// changed: ports, store directories, route addresses. It returns the client
// URLs of the nodes (comma-separated) and the credentials.
func StartDeployCluster(t testing.TB) (string, *eventbus.Credentials) {
	t.Helper()
	_, here, _, _ := runtime.Caller(0)
	deploy := filepath.Join(filepath.Dir(here), "..", "..", "..", "deploy", "nats")
	creds, err := eventbus.LoadCredentials(filepath.Join(t.TempDir(), "credentials"), true)
	if err != nil {
		t.Fatal(err)
	}
	// JetStream in a cluster wants every node's routes configured: the
	// route ports are chosen first.
	ports := make([]int, 3)
	var routes []string
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ports[i] = l.Addr().(*net.TCPAddr).Port
		l.Close()
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", ports[i]))
	}
	var urls []string
	for n := 1; n <= 3; n++ {
		dir := t.TempDir()
		conf, err := os.ReadFile(filepath.Join(deploy, fmt.Sprintf("nats-%d.conf", n)))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(conf), `include "auth/auth.conf"`) {
			t.Fatalf("nats-%d.conf does not include the authorization of every role", n)
		}
		os.WriteFile(filepath.Join(dir, "nats.conf"), conf, 0o644)
		os.MkdirAll(filepath.Join(dir, "auth"), 0o755)
		auth, _ := os.ReadFile(creds.AuthConfigFile())
		os.WriteFile(filepath.Join(dir, "auth", "auth.conf"), auth, 0o644)
		opts, err := server.ProcessConfigFile(filepath.Join(dir, "nats.conf"))
		if err != nil {
			t.Fatalf("nats-%d.conf: %v", n, err)
		}
		if len(opts.Nkeys) != len(eventbus.Roles()) || !opts.JetStream || opts.Cluster.Name != "accountwatch" {
			t.Fatalf("nats-%d.conf: %d users, jetstream %v, cluster %q", n, len(opts.Nkeys), opts.JetStream, opts.Cluster.Name)
		}
		opts.Host, opts.Port, opts.HTTPHost, opts.HTTPPort = "127.0.0.1", -1, "", 0
		opts.StoreDir, opts.NoLog, opts.NoSigs = filepath.Join(dir, "store"), true, true
		opts.Cluster.Host, opts.Cluster.Port = "127.0.0.1", ports[n-1]
		opts.Routes = server.RoutesFromStr(strings.Join(routes, ","))
		s, err := server.NewServer(opts)
		if err != nil {
			t.Fatal(err)
		}
		go s.Start()
		if !s.ReadyForConnections(30 * time.Second) {
			t.Fatalf("nats-%d did not start", n)
		}
		t.Cleanup(s.Shutdown)
		urls = append(urls, s.ClientURL())
	}
	return strings.Join(urls, ","), creds
}

// ClusterAdmin connects to a cluster StartDeployCluster started as the admin
// role, every stream at replicas 3, and provisions it: a new cluster elects
// its JetStream leader first, so provisioning is tried for up to a minute.
func ClusterAdmin(t testing.TB, url string, creds *eventbus.Credentials) *eventbus.Bus {
	t.Helper()
	cfg := eventbus.DefaultConfig()
	cfg.URL, cfg.Replicas, cfg.Role, cfg.NKeySeedFile = url, 3, eventbus.RoleAdmin, creds.SeedFile(eventbus.RoleAdmin)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	admin, err := eventbus.Connect(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(admin.Close)
	var perr error
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		perr = admin.Provision(ctx)
		cancel()
		if perr == nil {
			return admin
		}
	}
	t.Fatal(perr)
	return nil
}
