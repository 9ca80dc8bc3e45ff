package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/accountwatch/accountwatch/pkg/deliverylog"
	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/event/eventtest"
	"github.com/accountwatch/accountwatch/pkg/eventbus"
	"github.com/accountwatch/accountwatch/pkg/eventbus/bustest"
	"github.com/accountwatch/accountwatch/pkg/sink"
	"github.com/accountwatch/accountwatch/services/slack-notifier/internal/app"
	"github.com/accountwatch/accountwatch/services/slack-notifier/internal/slackcapture"
)

// buildBinary builds this command once per test binary.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "slack-notifier")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

// TestKilledNotifierResumes SIGKILLs the notifier (a real process) three times
// while it delivers 400 events to a slow Slack, restarting it each time. Every
// event must reach Slack, and no event the stream had recorded as acknowledged
// when the process died may be sent again afterwards.
func TestKilledNotifierResumes(t *testing.T) {
	bin := buildBinary(t)
	bus := bustest.Start(t, bustest.Config(t, "127.0.0.1:0"))
	bustest.Provision(t, bus, deliverylog.StreamConfig(bus.Cfg, 720*time.Hour)) // the process's default AW_DELIVERY_LOG_RETENTION
	slack := slackcapture.Start(nil)
	defer slack.Stop()
	slack.SetDelay(10 * time.Millisecond)

	const n = 400
	evs := make([]*event.Event, n)
	seqOf := map[string]uint64{}
	for i := range evs {
		evs[i] = eventtest.Status(t, eventtest.Meta(fmt.Sprintf("k%03d", i), nil), "active", "credit_hold")
	}
	acks, err := eventbus.NewPublisher(bus.JS).PublishAll(context.Background(), evs)
	if err != nil {
		t.Fatal(err)
	}
	for i, a := range acks {
		seqOf[evs[i].ID()] = a.Sequence
	}
	cfg := filepath.Join(t.TempDir(), "slack.yaml")
	os.WriteFile(cfg, []byte("receivers: [{name: ops, channel: '#ops'}]\nroute: {receiver: ops, group_wait: 0s, group_interval: 0s}\n"), 0o600)
	env := append(os.Environ(),
		"NATS_URL="+bus.ClientURL(), "AW_NATS_NKEY_SEED_FILE="+bus.SeedFile(eventbus.RoleSlack), "AW_SLACK_TOKEN=xoxb-test", "AW_SLACK_API_URL="+slack.URL(), "AW_SLACK_CONFIG="+cfg,
		"AW_SINK_START=all", "AW_SINK_ACK_WAIT=2s", "AW_OPS_LISTEN=127.0.0.1:0", "AW_LOG_LEVEL=warn")
	startProc := func() *exec.Cmd {
		cmd := exec.Command(bin)
		cmd.Env = env
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	consumer := func() *jetstream.ConsumerInfo {
		c, err := bus.JS.Consumer(context.Background(), eventbus.StreamEvents, sink.ConsumerName(app.SinkName, "ops"))
		if err != nil {
			return &jetstream.ConsumerInfo{}
		}
		info, err := c.Info(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return info
	}

	type kill struct {
		at       time.Time
		ackFloor uint64
	}
	var kills []kill
	for k := range 3 {
		cmd := startProc()
		target := (k + 1) * 90
		for deadline := time.Now().Add(60 * time.Second); len(slack.Posted("chat.postMessage")) < target; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("kill %d: only %d posts", k, len(slack.Posted("chat.postMessage")))
			}
		}
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
		kills = append(kills, kill{at: time.Now(), ackFloor: consumer().AckFloor.Stream})
	}
	final := startProc()
	defer func() { _ = final.Process.Signal(syscall.SIGTERM); _ = final.Wait() }()

	posted := func() map[string]int {
		m := map[string]int{}
		for _, p := range slack.Posted("chat.postMessage") {
			for _, id := range p.EventIDs {
				m[id]++
			}
		}
		return m
	}
	for deadline := time.Now().Add(90 * time.Second); len(posted()) < n; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("after restarts only %d of %d events reached Slack", len(posted()), n)
		}
	}
	for _, k := range kills {
		for _, p := range slack.Posted("chat.postMessage") {
			if p.At.After(k.at) && seqOf[p.EventIDs[0]] <= k.ackFloor {
				t.Errorf("event at stream seq %d was acknowledged (ack floor %d) when the notifier died, yet sent again", seqOf[p.EventIDs[0]], k.ackFloor)
			}
		}
	}
	dups := 0
	for _, c := range posted() {
		dups += c - 1
	}
	t.Logf("%d events, 3 kills, %d re-sent (in flight and not yet acknowledged at a kill)", n, dups)
}
