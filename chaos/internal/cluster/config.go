// Package cluster runs a 3-node NATS JetStream cluster on this machine for the
// chaos run: nats-server built from its Go module, one process per node with
// a configuration generated from deploy/nats/*.conf, and the faults the run
// injects into it (SIGKILL, SIGSTOP, a network partition of one node in its
// own network namespace, a store on a small tmpfs that fills up).
package cluster

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"

	"github.com/nats-io/nats-server/v2/conf"
)

// Addr is where one node listens.
type Addr struct {
	// Name is the node's server_name (deploy/nats/<name>.conf), also the host
	// name its peers' routes use in docker-compose.yml.
	Name string
	// Host is the IP address the node listens on.
	Host                          string
	ClientPort, ClusterPort, HTTP int
}

// ClientURL is the node's client URL.
func (a Addr) ClientURL() string {
	return "nats://" + net.JoinHostPort(a.Host, strconv.Itoa(a.ClientPort))
}

// MonitorURL is the node's monitoring base URL.
func (a Addr) MonitorURL() string { return "http://" + net.JoinHostPort(a.Host, strconv.Itoa(a.HTTP)) }

// keys that place a server on the network; the generated file sets listen
// and http instead.
var networkKeys = []string{"host", "net", "port", "http_port", "monitor_port", "https", "https_port", "http_host"}

// Generate turns a node's deploy configuration (deploy/nats/<name>.conf) into
// the one this machine runs: everything the file says (authorization,
// accounts, limits, JetStream settings) is kept; only where the node listens,
// where it stores, and where its routes point change. Routes name their peers
// by host name (nats-2:6222, as in docker-compose.yml); each becomes that
// peer's address in all, with any route credentials kept. The result is JSON,
// which nats-server reads as a configuration file.
func Generate(deployConf string, self Addr, all []Addr, storeDir string) ([]byte, error) {
	m, err := conf.ParseFile(deployConf)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", deployConf, err)
	}
	if n, _ := m["server_name"].(string); n != self.Name {
		return nil, fmt.Errorf("%s: server_name is %q, want %q", deployConf, n, self.Name)
	}
	for _, k := range networkKeys {
		delete(m, k)
	}
	m["listen"] = net.JoinHostPort(self.Host, strconv.Itoa(self.ClientPort))
	m["http"] = net.JoinHostPort(self.Host, strconv.Itoa(self.HTTP))

	js, ok := m["jetstream"].(map[string]any)
	if !ok {
		switch v := m["jetstream"].(type) {
		case nil:
			return nil, fmt.Errorf("%s: no jetstream block", deployConf)
		case bool:
			ok = v
		case string: // jetstream: enabled
			ok = v != "disabled" && v != "false"
		}
		if !ok {
			return nil, fmt.Errorf("%s: jetstream is off", deployConf)
		}
		js = map[string]any{}
	}
	delete(js, "store")
	js["store_dir"] = storeDir
	m["jetstream"] = js

	cl, ok := m["cluster"].(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%s: no cluster block", deployConf)
	}
	delete(cl, "host")
	delete(cl, "port")
	cl["listen"] = net.JoinHostPort(self.Host, strconv.Itoa(self.ClusterPort))
	routes, err := rewriteRoutes(cl["routes"], all)
	if err != nil {
		return nil, fmt.Errorf("%s: cluster.routes: %w", deployConf, err)
	}
	cl["routes"] = routes
	// nats-server's parser knows no \u escapes: a subject wildcard (">")
	// must stay as it is, not become \u003e.
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(m); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func rewriteRoutes(v any, all []Addr) ([]any, error) {
	var list []any
	switch r := v.(type) {
	case []any:
		list = r
	case string:
		list = []any{r}
	default:
		return nil, errors.New("missing")
	}
	out := make([]any, 0, len(list))
	for _, x := range list {
		s, _ := x.(string)
		u, err := url.Parse(s)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("%q is not a route URL", s)
		}
		var peer *Addr
		for i := range all {
			if all[i].Name == u.Hostname() {
				peer = &all[i]
			}
		}
		if peer == nil {
			return nil, fmt.Errorf("%q names no node of the cluster", s)
		}
		u.Host = net.JoinHostPort(peer.Host, strconv.Itoa(peer.ClusterPort))
		out = append(out, u.String())
	}
	return out, nil
}
