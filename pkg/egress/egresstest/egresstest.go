// Package egresstest is a loopback canary for tests of the egress guard: a
// listener on 127.0.0.1 and ::1 that counts the connections it receives,
// and the ways to spell its address in a URL.
package egresstest

import (
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
)

// Canary listens on one port of both loopbacks and counts connections.
type Canary struct {
	Port string
	n    atomic.Int64
}

// NewCanary starts a canary, closed when the test ends. Without an IPv6
// loopback only 127.0.0.1 listens (the IPv6 spellings must be refused all
// the same).
func NewCanary(t testing.TB) *Canary {
	t.Helper()
	ln4, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &Canary{Port: strconv.Itoa(ln4.Addr().(*net.TCPAddr).Port)}
	lns := []net.Listener{ln4}
	if ln6, err := net.Listen("tcp", net.JoinHostPort("::1", c.Port)); err == nil {
		lns = append(lns, ln6)
	} else {
		t.Logf("no IPv6 loopback (%v)", err)
	}
	for _, ln := range lns {
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				conn, err := ln.Accept()
				if err != nil {
					return
				}
				c.n.Add(1)
				conn.Close()
			}
		}()
	}
	return c
}

// Connections is how many connections arrived.
func (c *Canary) Connections() int64 { return c.n.Load() }

// Loopback are URL templates ({port} the port) that all reach loopback: every
// literal spelling, embedding forms, zones, inet_aton's forms, and names.
var Loopback = []string{
	"http://127.0.0.1:{port}/",
	"http://127.0.0.2:{port}/",
	"http://127.1:{port}/",
	"http://127.0.1:{port}/",
	"http://2130706433:{port}/",
	"http://0x7f000001:{port}/",
	"http://0X7F.0.0.1:{port}/",
	"http://0177.0.0.1:{port}/",
	"http://017700000001:{port}/",
	"http://127.000.000.001:{port}/",
	"http://127.0.0.1.:{port}/",
	"https://127.0.0.1:{port}/",
	"http://[::1]:{port}/",
	"http://[0:0:0:0:0:0:0:1]:{port}/",
	"http://[0000:0000:0000:0000:0000:0000:0000:0001]:{port}/",
	"http://[::1%25lo]:{port}/",
	"http://[::1%25eth0]:{port}/",
	"http://[::ffff:127.0.0.1]:{port}/",
	"http://[::ffff:7f00:1]:{port}/",
	"http://[::127.0.0.1]:{port}/",
	"http://[::ffff:0:127.0.0.1]:{port}/",
	"http://[64:ff9b::127.0.0.1]:{port}/",
	"http://[64:ff9b:1::7f00:1]:{port}/",
	"http://[2002:7f00:1::1]:{port}/",
	"http://[2001:0:7f00:1::1]:{port}/",
	"http://localhost:{port}/",
	"http://LOCALHOST.:{port}/",
	"http://api.localhost:{port}/",
}

// URLs are the Loopback templates with the canary's port.
func (c *Canary) URLs() []string {
	out := make([]string, len(Loopback))
	for i, u := range Loopback {
		out[i] = strings.Replace(u, "{port}", c.Port, 1)
	}
	return out
}
