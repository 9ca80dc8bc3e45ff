package app_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/eventbus/bustest"
	"github.com/accountwatch/accountwatch/pkg/route"
	"github.com/accountwatch/accountwatch/pkg/sim/simtest"
	"github.com/accountwatch/accountwatch/pkg/sink"
	"github.com/accountwatch/accountwatch/pkg/telemetry"
)

// attempts records every delivery attempt a sender saw, with the span it
// ran in; the first attempt of each event fails, so every event is tried
// twice.
type attempts struct {
	mu   sync.Mutex
	seen map[string][]trace.SpanContext // event id → the attempts' spans
}

func (a *attempts) Send(ctx context.Context, n *sink.Notification) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	id := n.Events[0].ID()
	a.seen[id] = append(a.seen[id], trace.SpanContextFromContext(ctx))
	if len(a.seen[id]) == 1 {
		return sink.Transient(sink.ReasonServerError, errors.New("503 from the first attempt"))
	}
	return nil
}

func (a *attempts) of(id string) []trace.SpanContext {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]trace.SpanContext(nil), a.seen[id]...)
}

// TestOneChangeIsOneTrace: with tracing on, a change seen by the poller is
// one trace from the poll cycle, through the commit that publishes its
// event, to every attempt of every sink (a routed one with a consumer per
// receiver, and a fan-out one), each attempt a span of its own.
func TestOneChangeIsOneTrace(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(telemetry.Use(tp))

	h := start(t, simtest.Seed(), "")
	waitCycles(t, h, "ap.list", 2) // the baseline: no event
	settings := sink.DefaultSettings()
	settings.Start = "all"
	settings.BackoffInitial, settings.BackoffMax = 20*time.Millisecond, 50*time.Millisecond
	var c route.Config
	c.Route = &route.Route{Receiver: "ops", GroupBy: []string{"..."}}
	tree, err := route.NewTree(c, []string{"ops"})
	if err != nil {
		t.Fatal(err)
	}
	isChange := func(e *event.Event) bool { return e.Type() == event.TypeStatusChanged }
	sinks := map[string]*attempts{}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, name := range []string{"slack", "email", "webhook"} {
		a := &attempts{seen: map[string][]trace.SpanContext{}}
		sinks[name] = a
		opts := []sink.Option{sink.WithSettings(settings)}
		rcv, tr := []sink.Receiver{{Name: "ops"}}, tree
		if name == "webhook" {
			opts, rcv, tr = append(opts, sink.WithFanout()), nil, nil
		}
		rt, err := sink.New(h.bus.JS, name, tr, rcv, a, opts...)
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() { defer wg.Done(); rt.Run(ctx) }()
		if name == "webhook" {
			<-rt.Ready()
			if err := rt.Add(sink.Receiver{Name: "ep_1", Filter: isChange}); err != nil {
				t.Fatal(err)
			}
		}
		rt.Start()
	}
	t.Cleanup(func() { cancel(); wg.Wait() })

	if err := h.sim.State.SetAP(1000123, map[string]any{"status": "credit hold"}); err != nil {
		t.Fatal(err)
	}
	var ev *event.Event
	bustest.Eventually(t, "the change's event", func() bool {
		for _, e := range h.events(t) {
			if isChange(e) {
				ev = e
				return true
			}
		}
		return false
	})
	remote := telemetry.Remote(ev)
	if !remote.IsValid() {
		t.Fatalf("the event carries no traceparent: %v", ev.Cloud.Extensions())
	}
	bustest.Eventually(t, "two attempts at every sink", func() bool {
		for _, a := range sinks {
			if len(a.of(ev.ID())) < 2 {
				return false
			}
		}
		return true
	})
	tp.ForceFlush(context.Background())

	spans := map[trace.SpanID]tracetest.SpanStub{}
	for _, s := range exp.GetSpans() {
		if s.SpanContext.TraceID() == remote.TraceID() {
			spans[s.SpanContext.SpanID()] = s
		}
	}
	commit, ok := spans[remote.SpanID()]
	if !ok || commit.SpanKind != trace.SpanKindProducer {
		t.Fatalf("the traceparent names no commit span of the trace: %+v", commit)
	}
	cycle, ok := spans[commit.Parent.SpanID()]
	if !ok || cycle.Name != "poll ap-main" || cycle.Parent.IsValid() {
		t.Fatalf("the commit's parent is not the trace's root poll cycle: %q (parent %v)", cycle.Name, cycle.Parent)
	}
	for name, a := range sinks {
		seen := map[trace.SpanID]bool{}
		for i, sc := range a.of(ev.ID())[:2] {
			s, ok := spans[sc.SpanID()]
			switch {
			case !ok:
				t.Errorf("%s attempt %d: span %s is not in the change's trace", name, i+1, sc.SpanID())
			case s.Parent.SpanID() != commit.SpanContext.SpanID() || s.Name != "deliver "+name || s.SpanKind != trace.SpanKindConsumer:
				t.Errorf("%s attempt %d: %q, parent %s, want a consumer span under the commit", name, i+1, s.Name, s.Parent.SpanID())
			case (i == 0) != (s.Status.Code.String() == "Error"):
				t.Errorf("%s attempt %d: status %v", name, i+1, s.Status)
			}
			if seen[sc.SpanID()] {
				t.Errorf("%s: two attempts share a span", name)
			}
			seen[sc.SpanID()] = true
		}
	}
}
