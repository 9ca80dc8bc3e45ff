package eventbus_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/accountwatch/accountwatch/pkg/eventbus"
	"github.com/accountwatch/accountwatch/pkg/eventbus/bustest"
)

// blackhole forwards TCP connections to a server until Freeze: from then on
// it reads and drops everything, answering nothing and resetting nothing,
// as a frozen (SIGSTOP) or partitioned server looks to its clients.
type blackhole struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	frozen bool
	conns  []net.Conn
}

func newBlackhole(t *testing.T, target string) *blackhole {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &blackhole{ln: ln, target: target}
	t.Cleanup(b.close)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			b.mu.Lock()
			b.conns = append(b.conns, c, u)
			b.mu.Unlock()
			go b.pipe(c, u)
			go b.pipe(u, c)
		}
	}()
	return b
}

func (b *blackhole) url() string { return "nats://" + b.ln.Addr().String() }

func (b *blackhole) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if err != nil {
			return
		}
		b.mu.Lock()
		frozen := b.frozen
		b.mu.Unlock()
		if frozen {
			continue // swallowed
		}
		if _, err := dst.Write(buf[:n]); err != nil {
			return
		}
	}
}

func (b *blackhole) freeze() {
	b.mu.Lock()
	b.frozen = true
	b.mu.Unlock()
}

func (b *blackhole) close() {
	b.ln.Close()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, c := range b.conns {
		c.Close()
	}
}

// TestAFrozenServerIsLeftForAnother: a service whose server stops answering
// (frozen, or cut off by a partition that resets nothing) moves to another
// server within a few ping intervals instead of the client library's
// default of minutes; a pipelined publish waiting for an acknowledgement
// that cannot come fails after PublishTimeout, to be published again,
// rather than holding its publisher. The chaos run found pollers held 30 s
// by acknowledgements a frozen stream leader never sent.
func TestAFrozenServerIsLeftForAnother(t *testing.T) {
	srv := bustest.Start(t, bustest.Config(t, "127.0.0.1:0"))
	addr := strings.TrimPrefix(srv.ClientURL(), "nats://")
	a, b := newBlackhole(t, addr), newBlackhole(t, addr)
	cfg := eventbus.DefaultConfig()
	cfg.URL = a.url() + "," + b.url()
	cfg.Role, cfg.NKeySeedFile = eventbus.RolePoller, srv.SeedFile(eventbus.RolePoller)
	cfg.PingInterval, cfg.PublishTimeout = 200*time.Millisecond, 500*time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	bus, err := eventbus.Connect(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer bus.Close()
	// Both proxies lead to the one server: whichever the client chose is frozen.
	first := bus.NC.ConnectedUrl()
	cut := a
	if first == b.url() {
		cut = b
	}
	if _, err := bus.JS.Stream(ctx, eventbus.StreamEvents); err != nil {
		t.Fatal(err)
	}
	cut.freeze()

	// A publish sent into the frozen connection: no acknowledgement can come.
	pub := eventbus.NewPublisher(bus.JS)
	m := &nats.Msg{Subject: "aw.events.activeplatform.ap-main.account-status-changed.1", Data: []byte("{}"),
		Header: nats.Header{jetstream.MsgIDHeader: []string{"frozen-1"}}}
	_, err = pub.PublishMsgs(ctx, []*nats.Msg{m})
	if !errors.Is(err, eventbus.ErrPublish) || ctx.Err() != nil {
		t.Fatalf("publish into a frozen server: %v (context %v); want a failed publish long before the context ends", err, ctx.Err())
	}
	// And the connection moves to the other proxy.
	for bus.NC.ConnectedUrl() == first || !bus.NC.IsConnected() {
		select {
		case <-ctx.Done():
			t.Fatalf("still on the frozen server %s after a minute", first)
		case <-time.After(50 * time.Millisecond):
		}
	}
	if _, err := pub.PublishMsgs(ctx, []*nats.Msg{m}); err != nil {
		t.Fatalf("publish after moving servers: %v", err)
	}
}
