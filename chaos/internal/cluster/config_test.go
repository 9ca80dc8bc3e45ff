package cluster

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/accountwatch/accountwatch/pkg/eventbus"
)

var addrs = []Addr{
	{Name: "nats-1", Host: "10.213.9.1", ClientPort: 14222, ClusterPort: 16222, HTTP: 18222},
	{Name: "nats-2", Host: "10.213.9.1", ClientPort: 24222, ClusterPort: 26222, HTTP: 28222},
	{Name: "nats-3", Host: "10.213.9.2", ClientPort: 4222, ClusterPort: 4223, HTTP: 4224},
}

// TestGenerateFromDeploy turns each of deploy/nats/*.conf into the file the
// chaos run starts, and has nats-server itself read it: the node listens
// where the run put it, its routes lead to its peers' run addresses, and
// everything else the deploy file says is what the server gets.
func TestGenerateFromDeploy(t *testing.T) {
	// The deploy files include the roles' authorization, which a deployment
	// writes with awctl credentials and mounts beside them.
	creds, err := eventbus.LoadCredentials(t.TempDir(), true)
	if err != nil {
		t.Fatal(err)
	}
	deploy := t.TempDir()
	if err := copyDeploy(filepath.Join("..", "..", "..", "deploy", "nats"), deploy, map[string]string{"auth/" + eventbus.AuthConfName: creds.AuthConfigFile()}); err != nil {
		t.Fatal(err)
	}
	for i, a := range addrs {
		t.Run(a.Name, func(t *testing.T) {
			store := t.TempDir()
			b, err := Generate(filepath.Join(deploy, a.Name+".conf"), a, addrs, store)
			if err != nil {
				t.Fatal(err)
			}
			f := filepath.Join(t.TempDir(), "nats.conf")
			os.WriteFile(f, b, 0o600)
			got, err := server.ProcessConfigFile(f)
			if err != nil {
				t.Fatalf("nats-server refuses the generated file: %v\n%s", err, b)
			}
			want, err := server.ProcessConfigFile(filepath.Join(deploy, a.Name+".conf"))
			if err != nil {
				t.Fatal(err)
			}
			if got.Host != a.Host || got.Port != a.ClientPort || got.HTTPPort != a.HTTP || got.Cluster.Port != a.ClusterPort || got.StoreDir != store {
				t.Errorf("listens %s:%d http %d cluster %d store %s", got.Host, got.Port, got.HTTPPort, got.Cluster.Port, got.StoreDir)
			}
			if got.ServerName != want.ServerName || got.Cluster.Name != want.Cluster.Name || !got.JetStream {
				t.Errorf("name %q cluster %q jetstream %v, the deploy file says %q %q", got.ServerName, got.Cluster.Name, got.JetStream, want.ServerName, want.Cluster.Name)
			}
			// What the deploy file sets beyond the network stays as it is:
			// accounts, users, limits.
			if len(got.Users) != len(want.Users) || len(got.Accounts) != len(want.Accounts) || len(got.Nkeys) != len(want.Nkeys) ||
				got.JetStreamMaxStore != want.JetStreamMaxStore || got.SyncInterval != want.SyncInterval || got.MaxPayload != want.MaxPayload {
				t.Errorf("settings of the deploy file changed: users %d/%d accounts %d/%d", len(got.Users), len(want.Users), len(got.Accounts), len(want.Accounts))
			}
			if len(got.Routes) != len(want.Routes) {
				t.Fatalf("routes %v, the deploy file has %d", got.Routes, len(want.Routes))
			}
			for j, r := range got.Routes {
				if r.Host != addrs[j].Host+":"+strconv.Itoa(addrs[j].ClusterPort) || r.User.String() != want.Routes[j].User.String() {
					t.Errorf("route %d: %s, want %s:%d (node %d's own: %v)", j, r, addrs[j].Host, addrs[j].ClusterPort, i, r.Host == a.Host)
				}
			}
		})
	}
}

func TestGenerateRefuses(t *testing.T) {
	dir := t.TempDir()
	cases := map[string]string{
		"a route to an unknown host": "server_name: nats-1\njetstream {}\ncluster { name: x, listen: 0.0.0.0:6222, routes: [nats-route://elsewhere:6222] }\n",
		"no cluster block":           "server_name: nats-1\njetstream {}\n",
		"another server's file":      "server_name: nats-2\njetstream {}\ncluster { name: x, routes: [nats-route://nats-1:6222] }\n",
		"JetStream off":              "server_name: nats-1\njetstream: false\ncluster { name: x, routes: [nats-route://nats-1:6222] }\n",
		"JetStream disabled":         "server_name: nats-1\njetstream: disabled\ncluster { name: x, routes: [nats-route://nats-1:6222] }\n",
	}
	for name, conf := range cases {
		t.Run(name, func(t *testing.T) {
			f := filepath.Join(dir, strings.ReplaceAll(name, " ", "_")+".conf")
			os.WriteFile(f, []byte(conf), 0o600)
			if _, err := Generate(f, addrs[0], addrs, dir); err == nil {
				t.Fatal("generated a configuration")
			}
		})
	}
}

// TestGenerateKeepsRouteCredentials: routes with user:password keep them.
func TestGenerateKeepsRouteCredentials(t *testing.T) {
	f := filepath.Join(t.TempDir(), "nats-1.conf")
	os.WriteFile(f, []byte(`server_name: nats-1
jetstream { store_dir: /data }
cluster {
  name: accountwatch
  listen: 0.0.0.0:6222
  authorization { user: route, password: s3cret }
  routes: [nats-route://route:s3cret@nats-1:6222, nats-route://route:s3cret@nats-2:6222, nats-route://route:s3cret@nats-3:6222]
}
`), 0o600)
	b, err := Generate(f, addrs[0], addrs, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "nats-route://route:s3cret@10.213.9.2:4223") || !strings.Contains(string(b), `"password": "s3cret"`) {
		t.Fatalf("credentials lost:\n%s", b)
	}
}

// TestNewResolvesIncludes: a deploy file that includes a file a deployment
// mounts beside it (an authorization block) gets it from Options.Include.
func TestNewResolvesIncludes(t *testing.T) {
	deploy, work := t.TempDir(), t.TempDir()
	for _, a := range addrs {
		conf := "server_name: " + a.Name + "\ninclude \"auth/auth.conf\"\njetstream { store_dir: /data }\ncluster { name: accountwatch, listen: 0.0.0.0:6222, routes: [nats-route://nats-1:6222, nats-route://nats-2:6222, nats-route://nats-3:6222] }\n"
		os.WriteFile(filepath.Join(deploy, a.Name+".conf"), []byte(conf), 0o600)
	}
	auth := filepath.Join(t.TempDir(), "auth.conf")
	os.WriteFile(auth, []byte("authorization { users: [{user: admin, password: chaos-secret, permissions: {publish: [\">\"], subscribe: [\"_INBOX.admin.>\"]}}] }\n"), 0o600)
	c, err := New(Options{Bin: "nats-server", DeployDir: deploy, WorkDir: work, Include: map[string]string{"auth/auth.conf": auth}})
	if err != nil {
		t.Fatal(err)
	}
	o, err := server.ProcessConfigFile(c.Nodes[0].Conf)
	if err != nil {
		t.Fatal(err)
	}
	if len(o.Users) != 1 || o.Users[0].Username != "admin" || o.Users[0].Permissions == nil || o.Users[0].Permissions.Publish.Allow[0] != ">" {
		t.Fatalf("users %v: the included authorization is lost", o.Users)
	}
	if _, err := New(Options{Bin: "nats-server", DeployDir: deploy, WorkDir: t.TempDir()}); err == nil {
		t.Fatal("a missing include went unnoticed")
	}
}
