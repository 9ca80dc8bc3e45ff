package ops

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/accountwatch/accountwatch/pkg/config"
	"github.com/accountwatch/accountwatch/pkg/telemetry"
)

// Program is what a service's --help says of it.
type Program struct {
	Name string
	// About says what the service does, in a sentence or two.
	About string
}

// Help answers a service's command line, which takes no arguments: -h,
// --help or help print what the service does and every environment key it
// reads with its default (from the struct tags the loader reads) and exit
// 0, touching neither NATS nor the disk; anything else is a usage error
// (2). done is false for an empty command line: the service runs.
func Help[S any](p Program, args []string, stdout, stderr io.Writer) (code int, done bool) {
	if len(args) == 0 {
		return 0, false
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		WriteUsage[S](stdout, p)
		return 0, true
	case "--probe":
		return probe[S](stdout, stderr, p), true
	}
	fmt.Fprintf(stderr, "%s: unexpected argument %q: it is configured by its environment (%s --help lists every key)\n", p.Name, args[0], p.Name)
	return 2, true
}

// WriteUsage writes a service's --help text.
func WriteUsage[S any](w io.Writer, p Program) {
	var s S
	fmt.Fprintf(w, "%s: %s\n\nUsage: %s           runs until SIGINT or SIGTERM, then drains\n       %s --help    this text\n       %s --probe   asks the running service's /readyz (AW_OPS_LISTEN) and exits 0 when it is ready: a container healthcheck\n\n", p.Name, p.About, p.Name, p.Name, p.Name)
	fmt.Fprintf(w, "Environment (a secret may instead be read from the file its _FILE key names):\n")
	config.Usage(w, &s)
	fmt.Fprintf(w, "\nTracing (OpenTelemetry, off unless an exporter is configured):\n")
	telemetry.Usage(w)
}

// Main is what a service's main does: answer --help (Help), load its
// settings from the environment (exit 2, naming the key, when they are
// wrong), make its JSON logger at level(settings), turn tracing on if the
// OTEL_* variables ask for it, run until SIGINT or SIGTERM, and exit 1
// when run fails. Only mains call it.
func Main[S any](p Program, level func(*S) string, run func(ctx context.Context, s *S, log *slog.Logger) error) {
	if code, done := Help[S](p, os.Args[1:], os.Stdout, os.Stderr); done {
		os.Exit(code)
	}
	var s S
	if err := config.Load(&s); err != nil {
		fmt.Fprintln(os.Stderr, p.Name+":", err)
		os.Exit(2)
	}
	log, err := NewLogger(os.Stderr, level(&s), p.Name)
	if err != nil {
		fmt.Fprintln(os.Stderr, p.Name+":", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	shutdown, err := telemetry.Setup(ctx, p.Name)
	if err != nil {
		fmt.Fprintln(os.Stderr, p.Name+":", err)
		os.Exit(2)
	}
	if telemetry.Enabled() {
		log.Info("tracing on (OTLP/HTTP)")
	}
	err = run(ctx, &s, log)
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	if serr := shutdown(sctx); serr != nil {
		log.Warn("flushing traces failed", "err", serr)
	}
	cancel()
	if err != nil {
		log.Error(p.Name+" stopped", "err", err)
		stop()
		os.Exit(1)
	}
}

// probe asks the running service's /readyz, on the ops address its
// environment gives (AW_OPS_LISTEN, or its default), and prints the answer:
// exit 0 when ready, 1 otherwise. It is for images without a shell or an
// HTTP client (a compose healthcheck); it reads no other setting.
func probe[S any](stdout, stderr io.Writer, p Program) int {
	var s S
	addr := ""
	for _, k := range config.Keys(&s) {
		if k.Name == "AW_OPS_LISTEN" {
			addr = k.Default
		}
	}
	if v := os.Getenv("AW_OPS_LISTEN"); v != "" {
		addr = v
	}
	return Probe(addr, p.Name, stdout, stderr)
}

// Probe asks /readyz at addr (a listen address: 0.0.0.0 is asked on
// loopback), prints the answer, and returns the exit code of a healthcheck.
func Probe(addr, name string, stdout, stderr io.Writer) int {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		fmt.Fprintf(stderr, "%s --probe: AW_OPS_LISTEN %q: %v\n", name, addr, err)
		return 1
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	c := http.Client{Timeout: 3 * time.Second}
	res, err := c.Get("http://" + net.JoinHostPort(host, port) + "/readyz")
	if err != nil {
		fmt.Fprintf(stderr, "%s --probe: %v\n", name, err)
		return 1
	}
	defer res.Body.Close()
	io.Copy(stdout, io.LimitReader(res.Body, 64<<10))
	if res.StatusCode != http.StatusOK {
		return 1
	}
	return 0
}
