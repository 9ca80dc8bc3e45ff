// Command chaos runs accountwatch on a 3-node JetStream cluster and breaks it:
// it builds nats-server from its pinned Go module and every service, starts
// the cluster on this machine with configurations generated from
// deploy/nats/*.conf (every stream and bucket at replicas 3), runs each
// service as its own process against it with upstream-sim as the upstream
// and loopback receivers for Slack, webhooks and SMTP, drives several hundred
// account changes through the simulator's admin API, injects faults (nodes
// killed, frozen, partitioned, two of three down, a full disk, services
// killed, a failing webhook receiver, an upstream throttling and failing),
// and prints a ledger: what was changed, what the stream holds, what each
// sink delivered, and whether anything was lost, duplicated or invented.
//
//	go run . -form short   # CI: about 4 minutes
//	go run . -form long    # make chaos: every fault, three kills per service, the disk filled
//
// It exits 1 when a check of the ledger fails, 2 when the run could not be
// made. It needs root for the network partition (a network namespace) and the
// full disk (a tmpfs); without, it says so and skips just those steps.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// form is how long and hard a run is.
type form struct {
	Name string
	// Pace is the time between two scripted changes (an account changes
	// again only once its last change's event is stored).
	Pace time.Duration
	// Accounts per provider: ActivePlatform, BSS, CAMS.
	AP, BSS, CAMS int
	// KillRounds: each service is SIGKILLed this many times.
	KillRounds int
	// NodeDown is how long a SIGKILLed node stays down.
	NodeDown time.Duration
	Freeze   time.Duration // SIGSTOP of the stream leader
	Parted   time.Duration // network partition of one node
	NoQuorum time.Duration // two nodes down
	Upstream time.Duration // throttling and 5xx bursts
	// Webhook503 then WebhookHang: the receiver fails, then hangs past the timeout.
	Webhook503, WebhookHang time.Duration
	DiskFull                time.Duration // 0: no disk-full step
	// Recover bounds the wait for the pipeline to deliver after a fault.
	Recover time.Duration
	// Race builds the services with the race detector (a data race in any
	// of them fails the run).
	Race bool
}

var forms = map[string]form{
	"short": {Name: "short", Pace: 250 * time.Millisecond, AP: 16, BSS: 8, CAMS: 6, KillRounds: 1,
		NodeDown: 5 * time.Second, Freeze: 10 * time.Second, Parted: 10 * time.Second, NoQuorum: 20 * time.Second,
		Upstream: 10 * time.Second, Webhook503: 8 * time.Second, WebhookHang: 8 * time.Second, Recover: 2 * time.Minute, Race: true},
	"long": {Name: "long", Pace: 200 * time.Millisecond, AP: 24, BSS: 12, CAMS: 8, KillRounds: 3,
		NodeDown: 10 * time.Second, Freeze: 10 * time.Second, Parted: 20 * time.Second, NoQuorum: 20 * time.Second,
		Upstream: 20 * time.Second, Webhook503: 20 * time.Second, WebhookHang: 20 * time.Second, DiskFull: 20 * time.Second,
		Recover: 3 * time.Minute},
}

func main() {
	formName := flag.String("form", "short", "short (CI) or long (make chaos)")
	root := flag.String("root", "..", "the repository root (services/, deploy/nats/)")
	keep := flag.Bool("keep", false, "keep the work directory (every log, the stores) for a post-mortem")
	jsonOut := flag.String("json", "", "also write the ledger as JSON to this file")
	only := flag.String("faults", "", "run only the faults whose names contain one of these words (comma-separated; for investigating one)")
	logLevel := flag.String("service-log-level", "info", "AW_LOG_LEVEL of the services")
	noNetns := flag.Bool("no-netns", false, "run every node on 127.0.0.1 without a network namespace (the partition step is skipped)")
	flag.Parse()
	f, ok := forms[*formName]
	if !ok {
		fmt.Fprintf(os.Stderr, "chaos: -form %q: want short or long\n", *formName)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	r, err := newRun(f, *root, *keep)
	if err == nil {
		r.only, r.logLevel, r.noNetns = *only, *logLevel, *noNetns
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		os.Exit(2)
	}
	code := r.main(ctx, *jsonOut)
	os.Exit(code)
}
