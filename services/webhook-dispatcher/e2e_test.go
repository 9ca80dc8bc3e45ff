package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/accountwatch/accountwatch/pkg/deliverylog"
	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/event/eventtest"
	"github.com/accountwatch/accountwatch/pkg/eventbus"
	"github.com/accountwatch/accountwatch/pkg/eventbus/bustest"
)

const adminToken = "e2e-admin-token-0123456789"

type countingReceiver struct {
	mu    sync.Mutex
	byID  map[string]int
	delay time.Duration
}

func (c *countingReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodOptions {
		w.Header().Set("WebHook-Allowed-Origin", "*")
		return
	}
	io.Copy(io.Discard, r.Body)
	time.Sleep(c.delay)
	c.mu.Lock()
	c.byID[r.Header.Get("webhook-id")]++
	c.mu.Unlock()
}

func (c *countingReceiver) distinct() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.byID)
}

func freePort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestKilledDispatcherResumes SIGKILLs the dispatcher (a real process) twice
// while it delivers 300 events to a slow endpoint; the restarted process
// delivers every event, each with its stable webhook-id.
func TestKilledDispatcherResumes(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "webhook-dispatcher")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	bus := bustest.Start(t, bustest.Config(t, "127.0.0.1:0"))
	bustest.Provision(t, bus, deliverylog.StreamConfig(bus.Cfg, 720*time.Hour)) // the process's default AW_DELIVERY_LOG_RETENTION
	rcv := &countingReceiver{byID: map[string]int{}, delay: 5 * time.Millisecond}
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	apiAddr, opsAddr := freePort(t), freePort(t)
	env := append(os.Environ(), "NATS_URL="+bus.ClientURL(), "AW_NATS_NKEY_SEED_FILE="+bus.SeedFile(eventbus.RoleWebhook), "AW_WEBHOOK_ADMIN_TOKEN="+adminToken, "AW_WEBHOOK_API_LISTEN="+apiAddr,
		"AW_WEBHOOK_ALLOW_CIDRS=127.0.0.0/8", "AW_WEBHOOK_RETRY_SCHEDULE=100ms,200ms", "AW_SINK_ACK_WAIT=2s", "AW_OPS_LISTEN="+opsAddr, "AW_LOG_LEVEL=warn")
	startProc := func() *exec.Cmd {
		cmd := exec.Command(bin)
		cmd.Env, cmd.Stderr = env, os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			if c, err := net.Dial("tcp", apiAddr); err == nil {
				c.Close()
				return cmd
			}
			if time.Now().After(deadline) {
				t.Fatal("the dispatcher's API did not come up")
			}
		}
	}
	cmd := startProc()
	body, _ := json.Marshal(map[string]any{"url": srv.URL})
	req, _ := http.NewRequest("POST", "http://"+apiAddr+"/v1/endpoints", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 201 {
		t.Fatalf("create endpoint: %v %v", err, resp)
	}
	var ep struct{ ID string }
	json.NewDecoder(resp.Body).Decode(&ep)
	resp.Body.Close()
	// Registered once its receiver's series is on /metrics (its retry queue
	// has no consumer until something waits there).
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if resp, err := http.Get("http://" + opsAddr + "/metrics"); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if bytes.Contains(b, []byte(`aw_sink_received_total{receiver="`+ep.ID+`"`)) {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the endpoint was not registered")
		}
	}

	const n = 300
	evs := make([]*event.Event, n)
	for i := range evs {
		evs[i] = eventtest.Status(t, eventtest.Meta(fmt.Sprintf("k%03d", i), nil), "active", "credit_hold")
	}
	if _, err := eventbus.NewPublisher(bus.JS).PublishAll(context.Background(), evs); err != nil {
		t.Fatal(err)
	}
	for k := range 2 {
		target := (k + 1) * 80
		for deadline := time.Now().Add(60 * time.Second); rcv.distinct() < target; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("kill %d: %d delivered", k, rcv.distinct())
			}
		}
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
		cmd = startProc()
	}
	defer func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() }()
	for deadline := time.Now().Add(90 * time.Second); rcv.distinct() < n; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("after two kills only %d of %d events delivered", rcv.distinct(), n)
		}
	}
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	dups := 0
	for _, e := range evs {
		if rcv.byID[e.ID()] == 0 {
			t.Errorf("%s lost", e.ID())
		}
		dups += rcv.byID[e.ID()] - 1
	}
	t.Logf("%d events, 2 kills: every one delivered, %d delivered again (in flight at a kill), each under its own webhook-id", n, dups)
}
