package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/accountwatch/accountwatch/pkg/checkpoint"
	"github.com/accountwatch/accountwatch/pkg/eventbus"
)

// The local stack's tokens (a real deployment sets its own).
const (
	DevWebhookToken = "devstack-webhook-admin-token"
	DevAuditorToken = "devstack-auditor-token"
	// ConsoleURL is the local auditor's console; the notifiers' alerts link to it.
	ConsoleURL = "http://127.0.0.1:8491"
)

// service is one process of the local stack.
type service struct {
	Name string
	Args []string
	Env  []string
	// Look lines tell a person where to look once it runs.
	Look []string
}

// stackConfig is where the local stack puts things.
type stackConfig struct {
	BinDir   string
	DataDir  string
	NATSURL  string
	SimAddr  string
	OpsBase  int // first ops (metrics) port; each service gets the next
	RootDir  string
	SinksDir string
	// CredsDir holds every role's nkey seed and the checkpoint signing key;
	// Signer is that key's fingerprint.
	CredsDir string
	Signer   string
	// ReceiverURL is the local webhook receiver's ("" none).
	ReceiverURL string
}

// CheckpointInterval is how often the local stack's auditor signs a checkpoint.
const CheckpointInterval = "1m"

// StallLeaseGrace is how long the local stack's dead-man lets a connection
// go without a poller holding its lease.
const StallLeaseGrace = "15s"

// opsOffset places each service's ops port from AW_OPS_PORT_BASE: with the
// default base each gets the port its own AW_OPS_LISTEN defaults to (and
// its README names), so `make run` and the documents agree.
var opsOffset = map[string]int{"upstream-sim": 0, "poller": 1, "slack-notifier": 2, "email-notifier": 3, "webhook-dispatcher": 4, "auditor": 5}

// services lists the stack in start order. Only those whose binary exists in
// BinDir are started, so the stack grows as services are added.
func (c stackConfig) services() []service {
	sim := "http://" + c.SimAddr
	// Each service joins with its own identity, named after it, from a file.
	common := func(name string, port int) []string {
		return []string{
			"NATS_URL=" + c.NATSURL,
			"AW_NATS_NKEY_SEED_FILE=" + filepath.Join(c.CredsDir, name, eventbus.SeedFileName),
			fmt.Sprintf("AW_OPS_LISTEN=127.0.0.1:%d", port),
			"AW_LOG_LEVEL=info",
		}
	}
	all := []service{
		{
			Name: "upstream-sim",
			// The simulator keeps its state beside the stack's: a second
			// run resumes it with the rest, instead of resetting it to the
			// seed (and alerting on changes nobody made).
			Args: []string{"--listen", c.SimAddr, "--seed", filepath.Join(c.RootDir, "deploy", "dev", "seed.yaml"), "--scenario", filepath.Join(c.RootDir, "deploy", "dev", "scenario.yaml"),
				"--state", filepath.Join(c.DataDir, "upstream-sim.json")},
			Look: []string{
				"upstream-sim   " + sim + "  (ActivePlatform, BSS, CAMS; admin API " + sim + "/admin/state)",
			},
		},
		{
			Name: "poller",
			Env:  []string{"AW_POLLER_CONFIG=" + filepath.Join(c.RootDir, "deploy", "dev", "poller.yaml"), "AW_SIM_ADDR=" + c.SimAddr, "AW_REPLICA_ID=devstack-poller"},
			Look: []string{"poller         polls upstream-sim every 5 s; `awctl watch list` shows what it watches"},
		},
		{
			Name: "slack-notifier",
			// "all": a consumer created on a fresh data directory misses no event
			// the poller published before it; on a resumed one it changes nothing.
			Env:  []string{"AW_SLACK_LOCAL_DIR=" + filepath.Join(c.SinksDir, "slack"), "AW_SINK_START=all", "AW_CONSOLE_URL=" + ConsoleURL},
			Look: []string{slackLook(c.SinksDir)},
		},
		{
			Name: "webhook-dispatcher",
			Env: []string{"AW_WEBHOOK_ADMIN_TOKEN=" + DevWebhookToken, "AW_WEBHOOK_API_LISTEN=127.0.0.1:8490",
				// A local stack delivers to local receivers; a real deployment does not allow this.
				"AW_WEBHOOK_ALLOW_CIDRS=127.0.0.0/8,::1/128"},
			Look: []string{"webhook-dispatcher http://127.0.0.1:8490/v1/endpoints (Authorization: Bearer " + DevWebhookToken + ")"},
		},
		{
			Name: "auditor",
			Env: []string{"AW_AUDITOR_TOKEN=" + DevAuditorToken, "AW_AUDITOR_LISTEN=" + strings.TrimPrefix(ConsoleURL, "http://"),
				"AW_CHECKPOINT_KEY_FILE=" + checkpoint.KeyFile(c.CredsDir), "AW_CHECKPOINT_INTERVAL=" + CheckpointInterval,
				// The demo's connections poll every 5 s: a stopped poller is
				// told as poll.stalled within 20 s or so.
				"AW_STALL_LEASE_GRACE=" + StallLeaseGrace, "AW_STALL_CHECK_EVERY=5s"},
			Look: []string{"auditor        http://127.0.0.1:8491 — the audit console (sign in with " + DevAuditorToken + ")",
				"dead-man       the auditor sends poll.stalled when a connection's poller stops (no lease for " + StallLeaseGrace + ", or no cycle in 3 intervals)",
				"checkpoints    signed every " + CheckpointInterval + " by the auditor (key " + c.Signer + "); keep one outside NATS: `go run ./services/awctl checkpoint export --output checkpoint.json`"},
		},
		{
			Name: "email-notifier",
			Env:  []string{"AW_EMAIL_LOCAL_DIR=" + filepath.Join(c.SinksDir, "email"), "AW_EMAIL_TO=finance-ops@localhost", "AW_SINK_START=all", "AW_CONSOLE_URL=" + ConsoleURL},
			Look: []string{emailLook(c.SinksDir)},
		},
	}
	for i := range all {
		port := c.OpsBase + opsOffset[all[i].Name]
		if all[i].Name != "upstream-sim" { // the simulator knows no NATS
			all[i].Env = append(common(all[i].Name, port), all[i].Env...)
		} else {
			all[i].Env = append([]string{fmt.Sprintf("AW_OPS_LISTEN=127.0.0.1:%d", port), "AW_LOG_LEVEL=info"}, all[i].Env...)
		}
		all[i].Look = append(all[i].Look, fmt.Sprintf("%-14s http://127.0.0.1:%d/metrics", all[i].Name, port))
	}
	var present []service
	for _, s := range all {
		if _, err := os.Stat(filepath.Join(c.BinDir, s.Name)); err == nil {
			present = append(present, s)
		}
	}
	return present
}

func slackLook(sinks string) string {
	if os.Getenv("AW_SLACK_TOKEN") != "" {
		return "slack-notifier posts to Slack with AW_SLACK_TOKEN (channel AW_SLACK_CHANNEL, default #accountwatch)"
	}
	return "slack-notifier no AW_SLACK_TOKEN: messages go to " + filepath.Join(sinks, "slack", "slack-messages.jsonl") + " and below as [slack-notifier] lines"
}

func emailLook(sinks string) string {
	if os.Getenv("AW_SMTP_HOST") != "" {
		return "email-notifier sends through AW_SMTP_HOST (digests every 5 min, critical at once) to AW_EMAIL_TO"
	}
	return "email-notifier no AW_SMTP_HOST: .eml files in " + filepath.Join(sinks, "email") + " (digests every 5 min, critical at once)"
}

// banner is what `make run` prints once the stack is up.
func banner(c stackConfig, started []service) string {
	var b strings.Builder
	b.WriteString("\naccountwatch is running. Where to look:\n")
	fmt.Fprintf(&b, "  %-14s %s  (data in %s; an nkey per service in %s, the admin's in %s)\n", "JetStream", c.NATSURL, c.DataDir, c.CredsDir, filepath.Join(c.CredsDir, string(eventbus.RoleAdmin), eventbus.SeedFileName))
	for _, s := range started {
		for _, l := range s.Look {
			b.WriteString("  " + l + "\n")
		}
	}
	b.WriteString("  events         printed below as [events] lines; `go run ./services/awctl watch list` (from the repo root) administers\n")
	if c.ReceiverURL != "" {
		fmt.Fprintf(&b, "  %-14s %s  (a local webhook receiver for a first endpoint; deliveries print as [webhook-receiver] lines)\n", "receiver", c.ReceiverURL)
	}
	fmt.Fprintf(&b, "  %-14s as the operator, with %s (found from the repo root; elsewhere set AW_NATS_NKEY_SEED_FILE)\n", "awctl", filepath.Join(c.CredsDir, string(eventbus.RoleOperator), eventbus.SeedFileName))
	b.WriteString("Ctrl-C stops everything; `make run` again resumes from the same data directory.\n\n")
	return b.String()
}
