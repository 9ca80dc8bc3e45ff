package sink

import "github.com/prometheus/client_golang/prometheus"

// Metrics of every sink, labelled by sink and receiver.
type Metrics struct {
	Received      *prometheus.CounterVec
	Delivered     *prometheus.CounterVec
	Notifications *prometheus.CounterVec
	Retried       *prometheus.CounterVec
	DeadLettered  *prometheus.CounterVec
	Suppressed    *prometheus.CounterVec
	Latency       *prometheus.HistogramVec
	Held          *prometheus.GaugeVec
	CircuitOpened *prometheus.CounterVec
}

// NewMetrics registers the sink metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	sr := []string{"sink", "receiver"}
	m := &Metrics{
		Received: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "aw_sink_received_total",
			Help: "Events a receiver's consumer took from the stream (redeliveries included)."}, sr),
		Delivered: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "aw_sink_delivered_total",
			Help: "Events delivered and acknowledged."}, sr),
		Notifications: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "aw_sink_notifications_total",
			Help: "Notifications sent (a group of events is one)."}, sr),
		Retried: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "aw_sink_retried_total",
			Help: "Events handed back for a later attempt, by reason."}, append(sr, "reason")),
		DeadLettered: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "aw_sink_dead_lettered_total",
			Help: "Events moved to the dead-letter stream, by reason."}, append(sr, "reason")),
		Suppressed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "aw_sink_suppressed_total",
			Help: "Events held back: silenced (dropped) or muted (deferred to the mute interval's end)."}, append(sr, "why")),
		Latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "aw_sink_delivery_latency_seconds",
			Help:    "From the event's time (its observation) to its delivery.",
			Buckets: []float64{.05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600}}, sr),
		Held: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "aw_sink_held_events",
			Help: "Events taken but not yet settled (grouping, rate limits, in flight)."}, sr),
		CircuitOpened: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "aw_sink_circuit_opened_total",
			Help: "Times a receiver's circuit opened (AW_SINK_BREAK_AFTER failures in a row, or a failed probe): no call until the retry is due."}, sr),
	}
	reg.MustRegister(m.Received, m.Delivered, m.Notifications, m.Retried, m.DeadLettered, m.Suppressed, m.Latency, m.Held, m.CircuitOpened)
	return m
}
