// Command devstack is the local stack behind `make run`: it hosts the embedded
// JetStream server on a data directory, provisions the streams and buckets,
// starts every built service joined to it with local sinks, prefixes their
// output, and drains them all on Ctrl-C.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/accountwatch/accountwatch/pkg/checkpoint"
	"github.com/accountwatch/accountwatch/pkg/config"
	"github.com/accountwatch/accountwatch/pkg/deliverylog"
	"github.com/accountwatch/accountwatch/pkg/eventbus"
	"github.com/accountwatch/accountwatch/pkg/ops"
)

// deliveryLogRetention is the services' default AW_DELIVERY_LOG_RETENTION.
const deliveryLogRetention = 720 * time.Hour

type settings struct {
	eventbus.Config
	LogLevel string `envconfig:"LOG_LEVEL" default:"info" desc:"debug, info, warn or error (JSON logs, secrets redacted)"`
	SimAddr  string `envconfig:"SIM_LISTEN" default:"127.0.0.1:8480" desc:"upstream-sim's address"`
	// ReceiverAddr is the local webhook receiver's (receiver.go).
	ReceiverAddr string `envconfig:"WEBHOOK_RECEIVER_LISTEN" default:"127.0.0.1:8492" desc:"a local webhook receiver for a first endpoint: answers the validation handshake, prints each delivery as [webhook-receiver] (none: no receiver)"`
	OpsBase      int    `envconfig:"OPS_PORT_BASE" default:"9101" desc:"ops ports (/metrics, /healthz, /readyz): upstream-sim gets this one, the poller the next, then slack-notifier, email-notifier, webhook-dispatcher, auditor"`
}

const about = "devstack: the local stack behind `make run`. It hosts an embedded NATS JetStream server on AW_DATA_DIR, provisions the streams and buckets as the admin, starts every service binary found in --bin joined to it with its own credentials and local sinks, prefixes their output, prints where to look, and drains them all on Ctrl-C."

func main() {
	bin := flag.String("bin", "bin", "folder of the built service binaries")
	root := flag.String("root", ".", "repository root (deploy/dev holds the demo seed)")
	flag.Usage = func() {
		w := flag.CommandLine.Output()
		fmt.Fprintf(w, "%s\n\nUsage: devstack [--bin DIR] [--root DIR]\n", about)
		flag.PrintDefaults()
		fmt.Fprintln(w, "\nEnvironment (NATS_URL must be unset: devstack hosts its own server):")
		config.Usage(w, &settings{})
	}
	for _, a := range os.Args[1:] {
		if a == "-h" || a == "-help" || a == "--help" {
			flag.CommandLine.SetOutput(os.Stdout) // asked for: standard output, and exit 0
		}
	}
	flag.Parse()
	var s settings
	if err := config.Load(&s); err != nil {
		fmt.Fprintln(os.Stderr, "devstack:", err)
		os.Exit(2)
	}
	log, err := ops.NewLogger(os.Stderr, s.LogLevel, "devstack")
	if err != nil {
		fmt.Fprintln(os.Stderr, "devstack:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, log, s, *bin, *root); err != nil {
		log.Error("devstack stopped", "err", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, log *slog.Logger, s settings, binDir, root string) error {
	if s.URL != "" {
		return fmt.Errorf("NATS_URL is set (%s): devstack hosts its own embedded server; unset it, or run the services directly against your cluster", s.URL)
	}
	startCtx, cancel := context.WithTimeout(ctx, time.Minute)
	// devstack hosts the server, so it is the admin: it provisions, then
	// every service joins with its own credentials (data/credentials, made
	// on the first run and kept).
	bus, err := eventbus.Connect(startCtx, s.Config)
	cancel()
	if err != nil {
		return err
	}
	defer bus.Close()
	creds, err := filepath.Abs(bus.Credentials().Dir())
	if err != nil {
		return err
	}
	signer, err := checkpoint.EnsureKey(creds)
	if err != nil {
		return err
	}
	if err := bus.Provision(ctx, deliverylog.StreamConfig(s.Config, deliveryLogRetention)); err != nil {
		return err
	}
	absData, _ := filepath.Abs(s.DataDir)
	absRoot, _ := filepath.Abs(root)
	cfg := stackConfig{BinDir: binDir, DataDir: absData, NATSURL: bus.ClientURL(), SimAddr: s.SimAddr, OpsBase: s.OpsBase, RootDir: absRoot,
		SinksDir: filepath.Join(absData, "sinks"), CredsDir: creds, Signer: checkpoint.Fingerprint(signer)}
	if cfg.NATSURL == "" {
		return fmt.Errorf("AW_NATS_LISTEN=%q: the services need a listening server", s.Listen)
	}
	if s.ReceiverAddr != "none" {
		if cfg.ReceiverURL, err = serveReceiver(ctx, s.ReceiverAddr, os.Stdout); err != nil {
			return err
		}
	}
	services := cfg.services()
	log.Info("embedded JetStream ready", "url", cfg.NATSURL, "data_dir", absData, "sync_always", s.SyncAlways, "services", len(services))
	sup := newSupervisor(log, binDir)
	for _, svc := range services {
		sup.start(ctx, svc)
	}
	go tailEvents(ctx, bus.JS, os.Stdout, log)
	fmt.Print(banner(cfg, services))
	<-ctx.Done()
	log.Info("stopping: draining services")
	sup.stopAll(20 * time.Second)
	return nil
}
