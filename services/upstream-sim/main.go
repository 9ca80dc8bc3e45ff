// Command upstream-sim serves simulated ActivePlatform, Alibaba Cloud BSS and
// CAMS APIs from a seed file, with an admin API to change state and inject
// faults, and an optional timed scenario. See README.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/accountwatch/accountwatch/pkg/config"
	"github.com/accountwatch/accountwatch/pkg/ops"
	"github.com/accountwatch/accountwatch/pkg/sim"
)

// settings are the simulator's environment; each has a flag of the same
// meaning, which wins.
type settings struct {
	Listen     string `envconfig:"SIM_LISTEN" default:"127.0.0.1:8480" desc:"address to serve the upstream APIs and /admin on (--listen)"`
	Seed       string `envconfig:"SIM_SEED" desc:"seed file (YAML) of accounts, customers, profiles and credentials (--seed; required)"`
	Scenario   string `envconfig:"SIM_SCENARIO" desc:"scenario file (YAML) of timed changes and faults (--scenario)"`
	State      string `envconfig:"SIM_STATE" desc:"file the state is kept in across runs; a run resumes from it (--state; empty: every run starts from the seed)"`
	OpsListen  string `envconfig:"OPS_LISTEN" desc:"address of /metrics, /healthz and /readyz (--ops-listen; empty: none)"`
	AdminToken string `envconfig:"SIM_ADMIN_TOKEN" secret:"true" desc:"bearer token of /admin (--admin-token; empty: open, for local use)"`
	LogLevel   string `envconfig:"LOG_LEVEL" default:"info" desc:"debug, info, warn or error (--log-level)"`
	Vary       uint64 `envconfig:"SIM_VARY" default:"0" desc:"answer in every shape the documents allow, at random from this seed (--vary; 0: the documented examples' shapes)"`
}

const about = "upstream-sim: serves simulated ActivePlatform, Alibaba Cloud BSS and CAMS APIs from a seed file, in the shapes of their published documents, with an admin API to change the state and inject faults, and an optional timed scenario."

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	var s settings
	if err := config.Load(&s); err != nil {
		fmt.Fprintln(stderr, "upstream-sim:", err)
		return 2
	}
	fs := flag.NewFlagSet("upstream-sim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&s.Listen, "listen", s.Listen, "address to serve on")
	fs.StringVar(&s.Seed, "seed", s.Seed, "seed file (YAML) of accounts, customers, profiles and credentials")
	fs.StringVar(&s.Scenario, "scenario", s.Scenario, "optional scenario file (YAML): timed changes and faults")
	fs.StringVar(&s.State, "state", s.State, "file the state is kept in across runs (empty: every run starts from the seed)")
	fs.StringVar(&s.OpsListen, "ops-listen", s.OpsListen, "address of /metrics, /healthz, /readyz (empty: none)")
	fs.StringVar(&s.AdminToken, "admin-token", s.AdminToken, "bearer token for /admin (empty: open, for local use)")
	fs.StringVar(&s.LogLevel, "log-level", s.LogLevel, "debug, info, warn or error")
	fs.Uint64Var(&s.Vary, "vary", s.Vary, "answer in every shape the documents allow, at random from this seed (0: the documented examples' shapes)")
	probe := fs.Bool("probe", false, "ask the running simulator's /readyz (AW_OPS_LISTEN) and exit 0 when it is ready: a container healthcheck")
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "%s\n\nUsage: upstream-sim --seed FILE [flags]\n", about)
		fs.PrintDefaults()
		fmt.Fprintln(w, "\nEnvironment (each key has the flag named beside it, which wins):")
		config.Usage(w, &settings{})
	}
	for _, a := range args {
		if a == "-h" || a == "-help" || a == "--help" {
			fs.SetOutput(stdout) // asked for: standard output, and exit 0
		}
	}
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	if *probe {
		return ops.Probe(s.OpsListen, "upstream-sim", stdout, stderr)
	}
	log, err := ops.NewLogger(stderr, s.LogLevel, "upstream-sim")
	if err != nil {
		fmt.Fprintln(stderr, "upstream-sim:", err)
		return 2
	}
	if s.Seed == "" {
		fmt.Fprintln(stderr, "upstream-sim: --seed is required (see deploy/dev/seed.yaml)")
		return 2
	}
	seed, err := sim.LoadSeed(s.Seed)
	if err != nil {
		fmt.Fprintln(stderr, "upstream-sim:", err)
		return 2
	}
	var sc *sim.Scenario
	if s.Scenario != "" {
		if sc, err = sim.LoadScenario(s.Scenario); err != nil {
			fmt.Fprintln(stderr, "upstream-sim:", err)
			return 2
		}
	}
	opts := []sim.Option{sim.WithLogger(log), sim.WithAdminToken(s.AdminToken)}
	if s.Vary != 0 {
		opts = append(opts, sim.WithVariation(s.Vary))
	}
	if s.State != "" {
		opts = append(opts, sim.WithStateFile(s.State))
	}
	srv, err := sim.New(seed, opts...)
	if err != nil {
		fmt.Fprintln(stderr, "upstream-sim:", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	url, err := srv.Listen(ctx, s.Listen)
	if err != nil {
		fmt.Fprintln(stderr, "upstream-sim:", err)
		return 1
	}
	if s.OpsListen != "" {
		reg := ops.NewRegistry()
		reg.MustRegister(srv.Collector())
		o := ops.NewServer(reg)
		if err := o.Listen(s.OpsListen); err != nil {
			fmt.Fprintln(stderr, "upstream-sim:", err)
			return 1
		}
		go o.Serve(ctx)
	}
	log.Info("serving", "url", url, "activeplatform_accounts", srv.State.APCount(), "bss_customers", len(srv.State.UIDs()), "scenario", s.Scenario,
		"vary", s.Vary, "state", s.State, "resumed", srv.Resumed())
	if sc != nil {
		go srv.Run(ctx, sc, log)
	}
	<-ctx.Done()
	log.Info("stopped")
	return 0
}
