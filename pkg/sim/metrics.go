package sim

import "github.com/prometheus/client_golang/prometheus"

var requestsDesc = prometheus.NewDesc("aw_sim_requests_total", "Requests the simulator answered, per upstream endpoint.", []string{"endpoint"}, nil)

// Collector exposes the request counts of Stats as Prometheus counters.
func (s *Server) Collector() prometheus.Collector { return simCollector{s} }

type simCollector struct{ s *Server }

func (c simCollector) Describe(ch chan<- *prometheus.Desc) { ch <- requestsDesc }

func (c simCollector) Collect(ch chan<- prometheus.Metric) {
	for ep, n := range c.s.Stats() {
		ch <- prometheus.MustNewConstMetric(requestsDesc, prometheus.CounterValue, float64(n), ep)
	}
}
