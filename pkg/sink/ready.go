package sink

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/accountwatch/accountwatch/pkg/eventbus"
	"github.com/accountwatch/accountwatch/pkg/ops"
)

// Check is a readiness check: every durable consumer the runtime reads the
// event stream through exists, and JetStream answers for it (a server out
// of disk disables JetStream: then no event is delivered, and no ack or
// dead letter is stored). Before Run has made them, it fails too.
func (r *Runtime) Check(ctx context.Context) error {
	select {
	case <-r.ready:
	default:
		return errors.New("the runtime has not started its consumers yet")
	}
	var bad []string
	for _, n := range r.consumerNames() {
		if _, err := r.js.Consumer(ctx, eventbus.StreamEvents, n); err != nil {
			bad = append(bad, fmt.Sprintf("%s: %v", n, err))
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("consumers of %s: %s", eventbus.StreamEvents, strings.Join(bad, "; "))
	}
	return nil
}

// consumerNames are the durable consumers the runtime reads the event
// stream through: the shared one of a fan-out, else one per receiver.
func (r *Runtime) consumerNames() []string {
	if r.fan != nil {
		return []string{r.sink + "_fanout"}
	}
	var names []string
	for _, rc := range r.receivers {
		if !rc.RedriveOnly {
			names = append(names, ConsumerName(r.sink, rc.Name))
		}
	}
	return names
}

var (
	descPending    = prometheus.NewDesc("aw_sink_consumer_pending", "Events of the stream a consumer has not yet been delivered: how far the sink lags behind the audit log.", []string{"sink", "consumer"}, nil)
	descAckPending = prometheus.NewDesc("aw_sink_consumer_ack_pending", "Events delivered to a consumer and not yet acknowledged.", []string{"sink", "consumer"}, nil)
)

// Collector exports each consumer's lag, as the server tells it at scrape
// time (a consumer the server does not answer for is left out: readiness
// says why).
func (r *Runtime) Collector() prometheus.Collector { return consumerCollector{r} }

type consumerCollector struct{ r *Runtime }

func (c consumerCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descPending
	ch <- descAckPending
}

func (c consumerCollector) Collect(ch chan<- prometheus.Metric) {
	select {
	case <-c.r.ready:
	default:
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	for _, n := range c.r.consumerNames() {
		cons, err := c.r.js.Consumer(ctx, eventbus.StreamEvents, n)
		if err != nil {
			continue
		}
		info, err := cons.Info(ctx)
		if err != nil {
			continue
		}
		ch <- prometheus.MustNewConstMetric(descPending, prometheus.GaugeValue, float64(info.NumPending), c.r.sink, n)
		ch <- prometheus.MustNewConstMetric(descAckPending, prometheus.GaugeValue, float64(info.NumAckPending), c.r.sink, n)
	}
}

// Writes follows what the runtime must store to settle an event: dead
// letters and hand-offs to a retry queue (ops.Outcomes: its check fails
// while the last of them failed).
func (r *Runtime) Writes() *ops.Outcomes { return r.writes }
