// Package telemetry is accountwatch's tracing: OpenTelemetry, off by default
// and on with the standard OTEL_* variables, and the W3C trace context
// carried from the poll that saw a change, in its event (the CloudEvents
// distributed-tracing extension, traceparent and tracestate), to every
// sink's delivery attempts, and on to a webhook subscriber in the
// request's headers.
//
// While tracing is off, nothing here allocates or takes a lock: Start
// returns its context unchanged, and an event carries no traceparent.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"text/tabwriter"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.39.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/accountwatch/accountwatch/pkg/event"
)

// ScopeName is the instrumentation scope of every accountwatch span.
const ScopeName = "github.com/accountwatch/accountwatch"

// The CloudEvents distributed-tracing extension's attributes.
const (
	ExtTraceParent = event.ExtTraceParent
	ExtTraceState  = "tracestate"
)

var (
	enabled atomic.Bool
	tracer  atomic.Pointer[trace.Tracer]
	prop    = propagation.TraceContext{}
)

// Enabled reports whether tracing is on in this process.
func Enabled() bool { return enabled.Load() }

// Key is one OTEL_* variable accountwatch honours, for --help.
type Key struct{ Name, Default, Desc string }

// Keys are the standard variables read at start (by Setup and the SDK).
var Keys = []Key{
	{"OTEL_EXPORTER_OTLP_ENDPOINT", "-", "OTLP/HTTP collector base URL (http://collector:4318); setting it turns tracing on"},
	{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "-", "the traces URL itself (…/v1/traces), instead of the base; turns tracing on too"},
	{"OTEL_EXPORTER_OTLP_HEADERS", "-", "headers of every export (key=value,…), e.g. an API key"},
	{"OTEL_EXPORTER_OTLP_TIMEOUT", "10000", "milliseconds an export may take"},
	{"OTEL_TRACES_EXPORTER", "-", "otlp turns tracing on (with the default endpoint http://localhost:4318), none turns it off"},
	{"OTEL_SDK_DISABLED", "false", "true turns tracing off whatever else is set"},
	{"OTEL_SERVICE_NAME", "the service's name", "service.name of every span"},
	{"OTEL_RESOURCE_ATTRIBUTES", "-", "more resource attributes (key=value,…)"},
	{"OTEL_TRACES_SAMPLER", "parentbased_always_on", "the sampler (always_on, traceidratio, parentbased_traceidratio, …)"},
	{"OTEL_TRACES_SAMPLER_ARG", "-", "the sampler's argument (a ratio)"},
}

// Usage writes Keys as --help shows them.
func Usage(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	for _, k := range Keys {
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", k.Name, k.Default, k.Desc)
	}
	return tw.Flush()
}

// ErrConfig is returned by Setup for OTEL_* variables it cannot use.
var ErrConfig = errors.New("tracing configuration")

// on reports whether the environment asks for tracing: an OTLP endpoint, or
// OTEL_TRACES_EXPORTER=otlp, unless OTEL_SDK_DISABLED or
// OTEL_TRACES_EXPORTER=none says otherwise. (The specification's default
// exporter is otlp; accountwatch exports nothing unless asked, so that a
// service never dials a collector that is not there.)
func on(getenv func(string) string) (bool, error) {
	if strings.EqualFold(strings.TrimSpace(getenv("OTEL_SDK_DISABLED")), "true") {
		return false, nil
	}
	switch exp := strings.ToLower(strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER"))); exp {
	case "none":
		return false, nil
	case "otlp":
		return true, nil
	case "":
		return getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != "", nil
	default:
		return false, fmt.Errorf("%w: OTEL_TRACES_EXPORTER: %q (want otlp or none)", ErrConfig, exp)
	}
}

// Setup turns tracing on when the environment asks for it (see Keys): spans
// are batched to the OTLP/HTTP collector, with service as service.name
// unless OTEL_SERVICE_NAME names another. It returns the function that
// flushes and stops the exporter (a no-op while tracing is off).
func Setup(ctx context.Context, service string) (shutdown func(context.Context) error, err error) {
	none := func(context.Context) error { return nil }
	ok, err := on(os.Getenv)
	if err != nil || !ok {
		return none, err
	}
	exp, err := otlptracehttp.New(ctx)
	if err != nil {
		return none, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	res, err := resource.New(ctx, resource.WithAttributes(semconv.ServiceName(service)), resource.WithFromEnv(), resource.WithTelemetrySDK(), resource.WithHost())
	if err != nil && res == nil {
		return none, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	restore := Use(tp)
	return func(ctx context.Context) error {
		defer restore()
		return tp.Shutdown(ctx)
	}, nil
}

// Use installs tp as the tracer provider and turns tracing on (Setup does;
// tests give it the SDK's in-memory exporter). The returned function turns
// tracing off again.
func Use(tp trace.TracerProvider) (restore func()) {
	t := tp.Tracer(ScopeName)
	tracer.Store(&t)
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(prop)
	enabled.Store(true)
	return func() {
		enabled.Store(false)
		n := noop.NewTracerProvider().Tracer(ScopeName)
		tracer.Store(&n)
		otel.SetTracerProvider(noop.NewTracerProvider())
	}
}

// noSpan is what Start returns while tracing is off.
var noSpan = trace.SpanFromContext(context.Background())

// Start begins a span while tracing is on; otherwise it returns ctx as it
// is and a span that records nothing (no allocation on a hot path).
func Start(ctx context.Context, name string, kind trace.SpanKind, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	if !enabled.Load() {
		return ctx, noSpan
	}
	return (*tracer.Load()).Start(ctx, name, trace.WithSpanKind(kind), trace.WithAttributes(attrs...))
}

// End ends span, marking it failed when err is not nil.
func End(span trace.Span, err error) {
	if !span.IsRecording() {
		span.End()
		return
	}
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// ceCarrier reads and writes the trace context as CloudEvents extensions.
type ceCarrier struct{ ce *cloudevents.Event }

func (c ceCarrier) Get(key string) string {
	v, ok := c.ce.Extensions()[key]
	if !ok {
		return ""
	}
	s, _ := v.(string)
	return s
}

func (c ceCarrier) Set(key, value string) { c.ce.SetExtension(key, value) }

func (c ceCarrier) Keys() []string { return []string{ExtTraceParent, ExtTraceState} }

// Inject stamps e with the trace context of ctx's span (traceparent, and
// tracestate when there is one); an event built outside a sampled span
// carries none. The extension is outside the event's hash: it does not
// touch the chain, the id or the deduplication.
func Inject(ctx context.Context, e *event.Event) {
	if sc := trace.SpanContextFromContext(ctx); !sc.IsValid() {
		return
	}
	prop.Inject(ctx, ceCarrier{&e.Cloud})
}

// Remote is the span context an event carries (invalid when none).
func Remote(e *event.Event) trace.SpanContext {
	if _, ok := e.Cloud.Extensions()[ExtTraceParent]; !ok {
		return trace.SpanContext{}
	}
	return trace.SpanContextFromContext(prop.Extract(context.Background(), ceCarrier{&e.Cloud}))
}

// InjectHTTP sets the traceparent (and tracestate) header of an outgoing
// request from ctx's span.
func InjectHTTP(ctx context.Context, h http.Header) {
	if !enabled.Load() || !trace.SpanContextFromContext(ctx).IsValid() {
		return
	}
	prop.Inject(ctx, propagation.HeaderCarrier(h))
}

// Attempt starts the span of one delivery attempt of events to a sink's
// receiver, continuing the trace of the first event (a notification that
// groups several events links the traces of the others). Call the returned
// function with the attempt's outcome.
func Attempt(ctx context.Context, sink, receiver string, attempt uint64, events []*event.Event) (context.Context, func(error)) {
	if !enabled.Load() {
		return ctx, endNothing
	}
	var links []trace.Link
	parent := trace.SpanContext{}
	ids := make([]string, 0, len(events))
	for _, e := range events {
		ids = append(ids, e.ID())
		sc := Remote(e)
		switch {
		case !sc.IsValid():
		case !parent.IsValid():
			parent = sc
		default:
			links = append(links, trace.Link{SpanContext: sc})
		}
	}
	if parent.IsValid() {
		ctx = trace.ContextWithRemoteSpanContext(ctx, parent)
	}
	ctx, span := (*tracer.Load()).Start(ctx, "deliver "+sink, trace.WithSpanKind(trace.SpanKindConsumer), trace.WithLinks(links...),
		trace.WithAttributes(
			attribute.String("accountwatch.sink", sink),
			attribute.String("accountwatch.receiver", receiver),
			attribute.Int64("accountwatch.attempt", int64(attempt)),
			attribute.StringSlice("accountwatch.event_ids", ids),
			semconv.MessagingSystemKey.String("nats"),
		))
	return ctx, func(err error) { End(span, err) }
}

func endNothing(error) {}
