package ops

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestLoggerRedacts(t *testing.T) {
	var buf bytes.Buffer
	log, err := NewLogger(&buf, "info", "test")
	if err != nil {
		t.Fatal(err)
	}
	log.Info("poll failed",
		"url", "https://ap/api/vendor/v1/accounts/1.json?api_token=tok123",
		"err", errors.New(`Get "https://ap/x?api_token=tok123": EOF`),
		"smtp_password", "pw123", "nats", "nats://u:pw456@h:4222")
	out := buf.String()
	for _, s := range []string{"tok123", "pw123", "pw456"} {
		if strings.Contains(out, s) {
			t.Errorf("secret %q logged: %s", s, out)
		}
	}
	if !strings.Contains(out, `"service":"test"`) || !strings.Contains(out, "api_token=REDACTED") {
		t.Fatalf("log line %s", out)
	}
	if _, err := NewLogger(io.Discard, "loud", "x"); err == nil || !strings.Contains(err.Error(), "AW_LOG_LEVEL") {
		t.Fatal("bad level must name the key")
	}
}

func TestServer(t *testing.T) {
	reg := NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "aw_test_total", Help: "test"})
	reg.MustRegister(c)
	c.Inc()
	s := NewServer(reg)
	ready := errors.New("not connected")
	s.AddCheck("nats", func(context.Context) error { return ready })
	if err := s.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Serve(ctx) }()
	get := func(path string) (int, string) {
		r, err := http.Get("http://" + s.Addr() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Body.Close()
		b, _ := io.ReadAll(r.Body)
		return r.StatusCode, string(b)
	}
	if code, body := get("/metrics"); code != 200 || !strings.Contains(body, "aw_test_total 1") || !strings.Contains(body, "go_goroutines") {
		t.Fatalf("metrics %d %s", code, body)
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Fatal(code)
	}
	pub := NewOutcomes("publishing events")
	s.AddCheck("publish", pub.Check)
	s.AddCheck("consumers", func(context.Context) error { return nil })
	pub.Observe(errors.New("nats: insufficient storage resources"))
	pub.Observe(errors.New("nats: insufficient storage resources"))
	code, body := get("/readyz")
	var res Readiness
	if err := json.Unmarshal([]byte(body), &res); err != nil || code != 503 || res.Status != "unready" {
		t.Fatalf("readyz %d %s (%v)", code, body, err)
	}
	if res.Failing["nats"] != "not connected" || !strings.Contains(res.Failing["publish"], "publishing events failing since") ||
		!strings.Contains(res.Failing["publish"], "(2 attempts in a row): nats: insufficient storage") || res.Checks["consumers"] != "ok" || len(res.Failing) != 2 {
		t.Errorf("readyz reasons %+v", res)
	}
	ready = nil
	pub.Observe(nil)
	if code, body := get("/readyz"); code != 200 || !strings.Contains(body, `"status": "ready"`) {
		t.Fatal(code, body)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

type probeSettings struct {
	OpsListen string `envconfig:"OPS_LISTEN" default:"127.0.0.1:1" desc:"ops"`
}

// TestProbe: --probe answers what the running service's /readyz says, on
// the address of AW_OPS_LISTEN, as a container healthcheck needs.
func TestProbe(t *testing.T) {
	s := NewServer(NewRegistry())
	var failing error = errors.New("not connected")
	s.AddCheck("nats", func(context.Context) error { return failing })
	if err := s.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Serve(ctx)
	p := Program{Name: "svc", About: "does things"}
	var out, errs strings.Builder
	if code, _ := Help[probeSettings](p, []string{"--probe"}, &out, &errs); code != 1 || !strings.Contains(errs.String(), "127.0.0.1:1") {
		t.Errorf("nothing on the default address: exit %d, %q", code, errs.String())
	}
	_, port, _ := net.SplitHostPort(s.Addr())
	t.Setenv("AW_OPS_LISTEN", "0.0.0.0:"+port)
	out.Reset()
	if code, _ := Help[probeSettings](p, []string{"--probe"}, &out, &errs); code != 1 || !strings.Contains(out.String(), "not connected") {
		t.Errorf("unready: exit %d, %q", code, out.String())
	}
	failing = nil
	if code, _ := Help[probeSettings](p, []string{"--probe"}, &out, &errs); code != 0 {
		t.Errorf("ready: exit %d", code)
	}
}
