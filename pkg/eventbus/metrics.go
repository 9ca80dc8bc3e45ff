package eventbus

import (
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
)

var (
	descConnected  = prometheus.NewDesc("aw_nats_connected", "1 while the service's connection to NATS is up.", nil, nil)
	descReconnects = prometheus.NewDesc("aw_nats_reconnects_total", "Times the service's connection to NATS was re-established.", nil, nil)
	descPending    = prometheus.NewDesc("aw_nats_publish_pending", "Asynchronous JetStream publishes sent and not yet acknowledged.", nil, nil)
)

// Collector exports the connection's state: every service registers it.
func (b *Bus) Collector() prometheus.Collector { return busCollector{b} }

type busCollector struct{ b *Bus }

func (c busCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descConnected
	ch <- descReconnects
	ch <- descPending
}

func (c busCollector) Collect(ch chan<- prometheus.Metric) {
	up := 0.0
	if c.b.NC.Status() == nats.CONNECTED {
		up = 1
	}
	ch <- prometheus.MustNewConstMetric(descConnected, prometheus.GaugeValue, up)
	ch <- prometheus.MustNewConstMetric(descReconnects, prometheus.CounterValue, float64(c.b.NC.Stats().Reconnects))
	ch <- prometheus.MustNewConstMetric(descPending, prometheus.GaugeValue, float64(c.b.JS.PublishAsyncPending()))
}
