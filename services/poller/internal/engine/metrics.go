package engine

import "github.com/prometheus/client_golang/prometheus"

// Metrics of the poller.
type Metrics struct {
	Polls        *prometheus.CounterVec
	Errors       *prometheus.CounterVec
	Changes      *prometheus.CounterVec
	Unknown      *prometheus.CounterVec
	Lag          *prometheus.GaugeVec
	CycleSeconds *prometheus.HistogramVec
	LastCycle    *prometheus.GaugeVec
	WatchSize    *prometheus.GaugeVec
	Owned        *prometheus.GaugeVec
	// PublishFailures counts commits that could not be stored (a record,
	// or its events): the change is detected again next cycle.
	PublishFailures prometheus.Counter
}

// NewMetrics registers the poller's metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Polls:        prometheus.NewCounterVec(prometheus.CounterOpts{Name: "aw_poller_polls_total", Help: "Account reads, by connection and outcome (ok, error)."}, []string{"instance", "outcome"}),
		Errors:       prometheus.NewCounterVec(prometheus.CounterOpts{Name: "aw_poller_errors_total", Help: "Upstream errors, by provider, connection and error code (or kind)."}, []string{"provider", "instance", "code"}),
		Changes:      prometheus.NewCounterVec(prometheus.CounterOpts{Name: "aw_poller_changes_total", Help: "Events published, by connection and type."}, []string{"instance", "type"}),
		Unknown:      prometheus.NewCounterVec(prometheus.CounterOpts{Name: "aw_poller_unknown_values_total", Help: "Enum values outside the documented set (passed through), by connection and field."}, []string{"instance", "field"}),
		Lag:          prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "aw_poller_poll_lag_seconds", Help: "How late the last cycle started against its schedule."}, []string{"instance"}),
		CycleSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "aw_poller_cycle_seconds", Help: "Duration of a poll cycle.", Buckets: prometheus.ExponentialBuckets(0.05, 2, 14)}, []string{"instance"}),
		LastCycle:    prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "aw_poller_last_cycle_timestamp_seconds", Help: "When the last cycle of a connection completed."}, []string{"instance"}),
		WatchSize:    prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "aw_poller_watchlist_size", Help: "Watched accounts, by connection."}, []string{"instance"}),
		Owned:        prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "aw_poller_connection_owned", Help: "1 while this replica holds the connection's lease."}, []string{"instance"}),
		PublishFailures: prometheus.NewCounter(prometheus.CounterOpts{Name: "aw_poller_publish_failures_total",
			Help: "State commits (a record and its events) the server did not store; the change is detected again next cycle."}),
	}
	reg.MustRegister(m.Polls, m.Errors, m.Changes, m.Unknown, m.Lag, m.CycleSeconds, m.LastCycle, m.WatchSize, m.Owned, m.PublishFailures)
	return m
}
