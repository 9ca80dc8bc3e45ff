package drive

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// What the chaos and conformance runs share to stand the pipeline up: one
// build, polling until a condition holds, the readiness and endpoint calls,
// the baseline wait, progress lines and the report's files.

// Build compiles services (directories under root/services) into bin with
// one go build: the workspace resolves every module, and one build compiles
// them side by side.
func Build(ctx context.Context, root, bin string, race bool, services ...string) error {
	if err := os.MkdirAll(bin, 0o750); err != nil {
		return err
	}
	args := []string{"build", "-o", bin + "/"}
	if race {
		args = append(args, "-race")
	}
	for _, s := range services {
		args = append(args, "./services/"+s)
	}
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, b)
	}
	return nil
}

// stopError ends a Retry at once with its error.
type stopError struct{ error }

func (s stopError) Unwrap() error { return s.error }

// Stop makes f's error end a Retry at once instead of being retried.
func Stop(err error) error { return stopError{err} }

// Retry calls f every interval until it succeeds, returns Stop(err), or
// ctx ends; then it returns f's last error.
func Retry(ctx context.Context, every time.Duration, f func() error) error {
	for {
		err := f()
		if err == nil {
			return nil
		}
		var stop stopError
		if errors.As(err, &stop) {
			return stop.error
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(every):
		}
	}
}

// Within is Retry for at most d.
func Within(ctx context.Context, d, every time.Duration, f func() error) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	return Retry(ctx, every, f)
}

// HTTPOK is nil when a GET of url (with token as a bearer token, if any)
// answers 200 within 3 s.
func HTTPOK(ctx context.Context, url, token string) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	return nil
}

// CreateEndpoint registers url as a webhook endpoint at the dispatcher's
// API (api is its host:port, token the admin token), without the
// handshake: the run's receiver is the endpoint.
func CreateEndpoint(ctx context.Context, api, token, url, description string) error {
	body, err := json.Marshal(map[string]any{"url": url, "description": description, "skip_handshake": true})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+api+"/v1/endpoints", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("creating the webhook endpoint: %s: %s", resp.Status, bytes.TrimSpace(b))
	}
	return nil
}

// WaitRecords polls AW_STATE until want accounts have a record (the
// baseline: from then on every change is an event); ctx bounds it.
func WaitRecords(ctx context.Context, js jetstream.JetStream, want int, every time.Duration) error {
	err := Retry(ctx, every, func() error {
		n, err := Records(ctx, js)
		if err != nil {
			return err
		}
		if n < want {
			return fmt.Errorf("%d of %d accounts baselined", n, want)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("baseline: %w", err)
	}
	return nil
}

// Log prints progress lines with the time since Started, one at a time.
type Log struct {
	Prefix  string
	Started time.Time
	mu      sync.Mutex
}

// Printf writes one progress line to stderr.
func (l *Log) Printf(format string, a ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(os.Stderr, "%s %6.1fs  %s\n", l.Prefix, time.Since(l.Started).Seconds(), fmt.Sprintf(format, a...))
}

// WriteReport prints a run's table to stdout, keeps it as work/ledger.txt,
// and writes report as indented JSON to jsonOut if that is not empty.
func (l *Log) WriteReport(work, jsonOut string, table []byte, report any) {
	os.Stdout.Write(table)
	_ = os.WriteFile(filepath.Join(work, "ledger.txt"), table, 0o644)
	if jsonOut == "" {
		return
	}
	b, err := json.MarshalIndent(report, "", "  ")
	if err == nil {
		err = os.WriteFile(jsonOut, b, 0o644)
	}
	if err != nil {
		l.Printf("writing %s: %v", jsonOut, err)
	}
}

// RouteConfig is a notifier's configuration of one receiver, name, whose
// address is the YAML field kind: to, every event alone, without delay.
func RouteConfig(name, kind, to string) string {
	return fmt.Sprintf("receivers:\n  - {name: %s, %s: %s}\nroute:\n  receiver: %s\n  group_by: [\"...\"]\n  group_wait: 0s\n  group_interval: 1s\n", name, kind, to, name)
}
