// Command upstream-sim serves simulated ActivePlatform, Alibaba Cloud BSS and
// CAMS APIs from a seed file, with an admin API to change state and inject
// faults, and an optional timed scenario. See README.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/accountwatch/accountwatch/pkg/ops"
	"github.com/accountwatch/accountwatch/pkg/sim"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8480", "address to serve on")
	seedPath := flag.String("seed", "", "seed file (YAML) of accounts, customers, profiles and credentials")
	scenarioPath := flag.String("scenario", "", "optional scenario file (YAML): timed changes and faults")
	opsListen := flag.String("ops-listen", os.Getenv("AW_OPS_LISTEN"), "address of /metrics, /healthz, /readyz (empty: none)")
	adminToken := flag.String("admin-token", os.Getenv("AW_SIM_ADMIN_TOKEN"), "bearer token for /admin (empty: open, for local use)")
	logLevel := flag.String("log-level", envOr("AW_LOG_LEVEL", "info"), "debug, info, warn or error")
	vary := flag.Uint64("vary", 0, "answer in every shape the documents allow, at random from this seed (0: the documented examples' shapes)")
	flag.Parse()
	log, err := ops.NewLogger(os.Stderr, *logLevel, "upstream-sim")
	if err != nil {
		fail(err)
	}
	if *seedPath == "" {
		fail(fmt.Errorf("--seed is required (see deploy/dev/seed.yaml)"))
	}
	seed, err := sim.LoadSeed(*seedPath)
	if err != nil {
		fail(err)
	}
	var sc *sim.Scenario
	if *scenarioPath != "" {
		if sc, err = sim.LoadScenario(*scenarioPath); err != nil {
			fail(err)
		}
	}
	opts := []sim.Option{sim.WithLogger(log), sim.WithAdminToken(*adminToken)}
	if *vary != 0 {
		opts = append(opts, sim.WithVariation(*vary))
	}
	s, err := sim.New(seed, opts...)
	if err != nil {
		fail(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	url, err := s.Listen(ctx, *listen)
	if err != nil {
		fail(err)
	}
	if *opsListen != "" {
		reg := ops.NewRegistry()
		reg.MustRegister(s.Collector())
		o := ops.NewServer(reg)
		if err := o.Listen(*opsListen); err != nil {
			fail(err)
		}
		go o.Serve(ctx)
	}
	log.Info("serving", "url", url, "activeplatform_accounts", s.State.APCount(), "bss_customers", len(s.State.UIDs()), "scenario", *scenarioPath, "vary", *vary)
	if sc != nil {
		go s.Run(ctx, sc, log)
	}
	<-ctx.Done()
	log.Info("stopped")
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "upstream-sim:", err)
	os.Exit(2)
}
