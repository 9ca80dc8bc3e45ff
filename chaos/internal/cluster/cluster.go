package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/accountwatch/accountwatch/chaos/internal/proc"
)

// Module is the nats-server module the cluster is built from (go.mod pins it).
const Module = "github.com/nats-io/nats-server/v2"

// Build compiles nats-server from the module pinned in moduleDir's go.mod
// into dir and returns the binary's path.
func Build(ctx context.Context, moduleDir, dir string) (string, error) {
	out := filepath.Join(dir, "nats-server")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, Module)
	cmd.Dir = moduleDir
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %v\n%s", Module, err, b)
	}
	return out, nil
}

// Node is one server of the cluster.
type Node struct {
	Addr
	*proc.Proc
	Conf  string
	Store string
}

// Options place the cluster.
type Options struct {
	Bin string
	// DeployDir holds nats-1.conf, nats-2.conf and nats-3.conf.
	DeployDir string
	WorkDir   string
	// Names of the nodes, in order (default nats-1, nats-2, nats-3).
	Names []string
	// Net isolates the last node in a network namespace (nil: every node on
	// 127.0.0.1 and no partition possible).
	Net *Netns
	// SmallStore puts this node's store on a tmpfs of SmallStoreBytes.
	SmallStore      string
	SmallStoreBytes int64
	// Include supplies files the deploy configurations include but the
	// repository does not hold (a deployment mounts them beside the file):
	// path relative to DeployDir → the file to use.
	Include map[string]string
}

// Cluster is the running cluster.
type Cluster struct {
	Nodes []*Node
	Net   *Netns
	Disk  *Tmpfs
}

// New prepares the nodes (ports, stores, configurations); Start starts them.
func New(o Options) (*Cluster, error) {
	if len(o.Names) == 0 {
		o.Names = []string{"nats-1", "nats-2", "nats-3"}
	}
	c := &Cluster{Net: o.Net}
	addrs := make([]Addr, len(o.Names))
	for i, name := range o.Names {
		host := "127.0.0.1"
		if o.Net != nil {
			host = o.Net.HostIP
			if i == len(o.Names)-1 {
				host = o.Net.NsIP
			}
		}
		ports, err := freePorts(o.Net, o.Net != nil && i == len(o.Names)-1, host, 3)
		if err != nil {
			return nil, err
		}
		addrs[i] = Addr{Name: name, Host: host, ClientPort: ports[0], ClusterPort: ports[1], HTTP: ports[2]}
	}
	for i, a := range addrs {
		dir := filepath.Join(o.WorkDir, a.Name)
		store := filepath.Join(dir, "store")
		if err := os.MkdirAll(store, 0o750); err != nil {
			return nil, err
		}
		if a.Name == o.SmallStore {
			t, err := MountTmpfs(store, o.SmallStoreBytes)
			if err != nil {
				c.Close()
				return nil, err
			}
			c.Disk = t
		}
		// The deploy directory is copied beside the node, with the included
		// files a deployment would mount, so that the file's includes
		// resolve as they do in production.
		deploy := filepath.Join(dir, "deploy")
		if err := copyDeploy(o.DeployDir, deploy, o.Include); err != nil {
			c.Close()
			return nil, err
		}
		b, err := Generate(filepath.Join(deploy, a.Name+".conf"), a, addrs, store)
		if err != nil {
			c.Close()
			return nil, err
		}
		cf := filepath.Join(dir, "nats.conf")
		if err := os.WriteFile(cf, b, 0o600); err != nil {
			c.Close()
			return nil, err
		}
		n := &Node{Addr: a, Conf: cf, Store: store, Proc: &proc.Proc{Name: a.Name, Path: o.Bin, Args: []string{"-c", cf}, Log: filepath.Join(dir, "nats.log")}}
		if o.Net != nil && i == len(addrs)-1 {
			n.Proc.Netns = o.Net.Name
		}
		c.Nodes = append(c.Nodes, n)
	}
	return c, nil
}

// copyDeploy copies the deploy directory's files to dst, then the included
// files a deployment mounts into it.
func copyDeploy(src, dst string, include map[string]string) error {
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		return copyFile(p, filepath.Join(dst, rel))
	})
	if err != nil {
		return fmt.Errorf("copying %s: %w", src, err)
	}
	for rel, from := range include {
		if err := copyFile(from, filepath.Join(dst, rel)); err != nil {
			return fmt.Errorf("include %s: %w", rel, err)
		}
	}
	return nil
}

func copyFile(from, to string) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o750); err != nil {
		return err
	}
	return os.WriteFile(to, b, 0o600)
}

// freePorts finds n free TCP ports on host (inside the namespace for its node).
func freePorts(ns *Netns, inNs bool, host string, n int) ([]int, error) {
	if inNs {
		// Nothing else listens inside our own namespace: any ports do.
		return ns.ports(n), nil
	}
	var out []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		out = append(out, l.Addr().(*net.TCPAddr).Port)
	}
	return out, nil
}

// URLs is every node's client URL, comma-separated (NATS_URL).
func (c *Cluster) URLs() string {
	var u []string
	for _, n := range c.Nodes {
		u = append(u, n.ClientURL())
	}
	return strings.Join(u, ",")
}

// Node finds a node by name.
func (c *Cluster) Node(name string) *Node {
	for _, n := range c.Nodes {
		if n.Addr.Name == name {
			return n
		}
	}
	return nil
}

// Start starts every node and waits until each answers its health check.
func (c *Cluster) Start(ctx context.Context) error {
	for _, n := range c.Nodes {
		if err := n.Start(); err != nil {
			return err
		}
	}
	for _, n := range c.Nodes {
		if err := n.WaitHealthy(ctx); err != nil {
			return err
		}
	}
	return nil
}

// Healthy asks the node's /healthz: JetStream on, and every stream and
// consumer it holds current with its leader.
func (n *Node) Healthy(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, n.MonitorURL()+"/healthz", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s /healthz: %s", n.Addr.Name, resp.Status)
	}
	return nil
}

// WaitHealthy waits until Healthy passes or ctx ends; a node that exits
// meanwhile fails it at once.
func (n *Node) WaitHealthy(ctx context.Context) error {
	var last error
	for {
		if last = n.Healthy(ctx); last == nil {
			return nil
		}
		if !n.Running() {
			return fmt.Errorf("%s exited (see %s)", n.Addr.Name, n.Log)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not healthy: %v (%w)", n.Addr.Name, last, ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// StreamLeader names the node leading a stream.
func StreamLeader(ctx context.Context, js jetstream.JetStream, stream string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return "", err
	}
	info := s.CachedInfo()
	if info.Cluster == nil || info.Cluster.Leader == "" {
		return "", errors.New("stream " + stream + " has no leader")
	}
	return info.Cluster.Leader, nil
}

// Close stops every node and removes the tmpfs; the namespace is the caller's.
func (c *Cluster) Close() {
	for _, n := range c.Nodes {
		n.Terminate(10 * time.Second)
	}
	if c.Disk != nil {
		c.Disk.Close()
	}
}
