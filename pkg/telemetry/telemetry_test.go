package telemetry_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/eventbus"
	"github.com/accountwatch/accountwatch/pkg/telemetry"
)

func newEvent(t testing.TB, account string) *event.Event {
	t.Helper()
	e, err := event.StatusChanged(event.Meta{Provider: event.ProviderActivePlatform, Instance: "ap-main", AccountID: account, ObservedAt: time.Now()},
		event.EnumValue("active"), event.EnumValue("credit hold"))
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// recorder turns tracing on with the SDK's in-memory exporter.
func recorder(t *testing.T) *tracetest.InMemoryExporter {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(telemetry.Use(tp))
	return exp
}

func TestOffCostsNothing(t *testing.T) {
	if telemetry.Enabled() {
		t.Fatal("tracing on without Setup or Use")
	}
	ctx := context.Background()
	e := newEvent(t, "1")
	allocs := testing.AllocsPerRun(100, func() {
		c, span := telemetry.Start(ctx, "poll cycle", trace.SpanKindInternal)
		telemetry.Inject(c, e)
		telemetry.End(span, nil)
		_, end := telemetry.Attempt(ctx, "slack", "ops", 1, []*event.Event{e})
		end(nil)
	})
	if allocs != 0 {
		t.Errorf("%v allocations a cycle while tracing is off", allocs)
	}
	if _, ok := e.Cloud.Extensions()[telemetry.ExtTraceParent]; ok {
		t.Error("an event built while tracing is off carries a traceparent")
	}
}

func TestTraceTravelsInTheEvent(t *testing.T) {
	exp := recorder(t)
	ctx, commit := telemetry.Start(context.Background(), "commit", trace.SpanKindProducer)
	e := newEvent(t, "1000123")
	hash := e.Hash()
	telemetry.Inject(ctx, e)
	commit.End()
	if e.Hash() != hash || e.Cloud.Extensions()[event.ExtChainHash] != hash {
		t.Fatal("the traceparent changed the event's hash")
	}
	// Through the wire and back, as a sink reads it.
	m, err := eventbus.Encode(e)
	if err != nil {
		t.Fatal(err)
	}
	tp := m.Header.Get("ce-traceparent")
	if !strings.HasPrefix(tp, "00-"+commit.SpanContext().TraceID().String()+"-"+commit.SpanContext().SpanID().String()+"-01") {
		t.Fatalf("ce-traceparent %q, want the commit span's", tp)
	}
	got, err := eventbus.Decode(m)
	if err != nil {
		t.Fatal(err)
	}
	other := newEvent(t, "1000124")
	octx, otherSpan := telemetry.Start(context.Background(), "commit", trace.SpanKindProducer)
	telemetry.Inject(octx, other)
	otherSpan.End()

	actx, end := telemetry.Attempt(context.Background(), "webhook", "ep_1", 2, []*event.Event{got, other})
	h := http.Header{}
	telemetry.InjectHTTP(actx, h)
	end(errors.New("503"))

	spans := exp.GetSpans()
	attempt := spans[len(spans)-1]
	if attempt.Parent.SpanID() != commit.SpanContext().SpanID() || attempt.SpanContext.TraceID() != commit.SpanContext().TraceID() {
		t.Errorf("the attempt's parent %s, want the commit span %s", attempt.Parent.SpanID(), commit.SpanContext().SpanID())
	}
	if len(attempt.Links) != 1 || attempt.Links[0].SpanContext.SpanID() != otherSpan.SpanContext().SpanID() {
		t.Errorf("the second event's trace is not linked: %+v", attempt.Links)
	}
	if attempt.Status.Code.String() != "Error" {
		t.Errorf("a failed attempt's status %v", attempt.Status)
	}
	if want := "00-" + attempt.SpanContext.TraceID().String() + "-" + attempt.SpanContext.SpanID().String() + "-01"; h.Get("traceparent") != want {
		t.Errorf("the request's traceparent %q, want the attempt span's %q", h.Get("traceparent"), want)
	}
}

func TestSetupReadsTheStandardVariables(t *testing.T) {
	cases := []struct {
		name string
		env  map[string]string
		on   bool
		err  string
	}{
		{"nothing set: off", nil, false, ""},
		{"an endpoint: on", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1"}, true, ""},
		{"a traces endpoint: on", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:1/v1/traces"}, true, ""},
		{"exporter otlp: on", map[string]string{"OTEL_TRACES_EXPORTER": "otlp"}, true, ""},
		{"exporter none wins", map[string]string{"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1"}, false, ""},
		{"sdk disabled wins", map[string]string{"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1"}, false, ""},
		{"an unknown exporter", map[string]string{"OTEL_TRACES_EXPORTER": "zipkin"}, false, "OTEL_TRACES_EXPORTER"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, k := range telemetry.Keys {
				t.Setenv(k.Name, "")
			}
			for k, v := range c.env {
				t.Setenv(k, v)
			}
			stop, err := telemetry.Setup(context.Background(), "poller")
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) || !errors.Is(err, telemetry.ErrConfig) {
					t.Fatalf("err %v, want one naming %s", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if telemetry.Enabled() != c.on {
				t.Errorf("enabled %v, want %v", telemetry.Enabled(), c.on)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			stop(ctx) // nothing was exported; nothing listens anyway
			if telemetry.Enabled() {
				t.Error("still on after shutdown")
			}
		})
	}
}

// BenchmarkStartOff is a poll's span and its event's traceparent while
// tracing is off, against doing nothing (Baseline) in the same run.
func BenchmarkStartOff(b *testing.B) {
	e := newEvent(b, "1")
	ctx := context.Background()
	b.Run("Baseline", func(b *testing.B) {
		for b.Loop() {
			_ = ctx.Err()
		}
	})
	b.Run("Off", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			c, span := telemetry.Start(ctx, "commit", trace.SpanKindProducer)
			telemetry.Inject(c, e)
			telemetry.End(span, nil)
		}
	})
}
