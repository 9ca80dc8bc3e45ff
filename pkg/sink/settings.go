package sink

import (
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/accountwatch/accountwatch/pkg/config"
	"github.com/accountwatch/accountwatch/pkg/deadletter"
	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/route"
)

// Settings tune the runtime; every notifier embeds them in its environment
// (AW_SINK_*), so the knobs are the same for Slack, webhooks and email. The
// struct tags hold the defaults, the only place they are written
// (DefaultSettings reads them).
type Settings struct {
	// MaxDeliver is how many attempts an event gets before it is dead-lettered.
	MaxDeliver int `envconfig:"SINK_MAX_DELIVER" default:"10" desc:"attempts before an event is dead-lettered"`
	// BackoffInitial doubles per attempt, with jitter, up to BackoffMax.
	BackoffInitial time.Duration `envconfig:"SINK_BACKOFF_INITIAL" default:"2s" desc:"first retry backoff; doubles per attempt, half of it random"`
	BackoffMax     time.Duration `envconfig:"SINK_BACKOFF_MAX" default:"10m" desc:"longest retry backoff"`
	// RetrySchedule, when set, replaces the exponential backoff: the waits
	// before the 2nd, 3rd, … attempt (comma-separated durations, e.g.
	// "5s,5m,30m,2h,5h,10h,10h"), each jittered by ±10%; an event is
	// dead-lettered after the last, so it decides the attempts too (its
	// length + 1). Setting it and a key it replaces is a start-up error.
	RetrySchedule string `envconfig:"SINK_RETRY_SCHEDULE" excludes:"SINK_MAX_DELIVER,SINK_BACKOFF_INITIAL,SINK_BACKOFF_MAX" desc:"instead of the backoff: the waits before the 2nd, 3rd, … attempt (5s,5m,30m,2h), each ±10%; attempts are its length + 1"`
	schedule      []time.Duration
	// MaxRetryAfter caps a receiver's Retry-After (a longer one is taken as this).
	MaxRetryAfter time.Duration `envconfig:"SINK_MAX_RETRY_AFTER" default:"1h" desc:"a longer Retry-After is taken as this"`
	// BreakAfter is how many failed attempts in a row open a receiver's
	// circuit: no call until the last one's retry is due, then one probe
	// alone (0: no breaker). A permanent failure does not count.
	BreakAfter int `envconfig:"SINK_BREAK_AFTER" default:"3" desc:"failed attempts in a row that open a receiver's circuit: no call until the last one's retry is due, then one probe at a time (0: never)"`
	// AckWait is how long the server waits for an ack before redelivering; held
	// events (waiting in a group, or rate-limited) are kept alive meanwhile.
	AckWait       time.Duration `envconfig:"SINK_ACK_WAIT" default:"60s" desc:"redelivery after a crash; held events are kept alive meanwhile"`
	MaxAckPending int           `envconfig:"SINK_MAX_ACK_PENDING" default:"20000" desc:"events a receiver (or the fan-out) may hold unsettled"`
	// Concurrency is how many deliveries one receiver runs at once; a group's
	// notifications always go one after another, in order.
	Concurrency int `envconfig:"SINK_CONCURRENCY" default:"4" desc:"deliveries in flight per receiver"`
	// SendTimeout bounds one delivery.
	SendTimeout time.Duration `envconfig:"SINK_SEND_TIMEOUT" default:"30s" desc:"one delivery"`
	// DrainTimeout is how long in-flight deliveries may finish on shutdown.
	DrainTimeout time.Duration `envconfig:"SINK_DRAIN_TIMEOUT" default:"15s" desc:"in-flight deliveries on shutdown"`
	// Filter is the comma-separated subject filter of the consumers.
	Filter string `envconfig:"SINK_FILTER" default:"aw.events.>" desc:"subject filter of the consumers (comma-separated)"`
	// Start says where a new consumer begins: "new" (events from now on) or
	// "all" (the whole audit log). An existing consumer resumes where it was.
	Start string `envconfig:"SINK_START" default:"new" desc:"where a new consumer starts: new, or all (the whole audit log)"`
	// Heartbeat is how often the server tells a waiting consumer it is
	// there; after two missed the consumer asks again. A request for events
	// lost on the way (a partition, a leader moving) stalls a receiver for
	// two heartbeats: the client library's default (15 s) made it 30 s.
	Heartbeat time.Duration `envconfig:"SINK_HEARTBEAT" default:"5s" desc:"how often the server tells a waiting consumer it is there (two missed: ask again)"`
	// LogRetention is how long the delivery log (AW_DELIVERIES) keeps records.
	LogRetention time.Duration `envconfig:"DELIVERY_LOG_RETENTION" default:"720h" desc:"how long the delivery log keeps records"`
}

// DefaultSettings are Settings with the defaults of their struct tags, for
// tests and tools.
func DefaultSettings() Settings {
	var s Settings
	if err := config.Defaults(&s); err != nil {
		panic(err) // a default tag that does not parse: a bug caught by every test
	}
	return s
}

// Validate names the first wrong key.
func (s Settings) Validate() error {
	switch {
	case s.MaxDeliver < 1:
		return fmt.Errorf("AW_SINK_MAX_DELIVER: %d (want >= 1)", s.MaxDeliver)
	case s.BackoffInitial <= 0 || s.BackoffMax < s.BackoffInitial:
		return fmt.Errorf("AW_SINK_BACKOFF_INITIAL / AW_SINK_BACKOFF_MAX: %s / %s (want 0 < initial <= max)", s.BackoffInitial, s.BackoffMax)
	case s.MaxRetryAfter <= 0:
		return fmt.Errorf("AW_SINK_MAX_RETRY_AFTER: %s (want > 0)", s.MaxRetryAfter)
	case s.BreakAfter < 0:
		return fmt.Errorf("AW_SINK_BREAK_AFTER: %d (want >= 0; 0 turns the breaker off)", s.BreakAfter)
	case s.AckWait < time.Second:
		return fmt.Errorf("AW_SINK_ACK_WAIT: %s (want >= 1s)", s.AckWait)
	case s.MaxAckPending < 1:
		return fmt.Errorf("AW_SINK_MAX_ACK_PENDING: %d (want >= 1)", s.MaxAckPending)
	case s.Concurrency < 1 || s.Concurrency > 256:
		return fmt.Errorf("AW_SINK_CONCURRENCY: %d (want 1 to 256)", s.Concurrency)
	case s.SendTimeout <= 0:
		return fmt.Errorf("AW_SINK_SEND_TIMEOUT: %s (want > 0)", s.SendTimeout)
	case s.DrainTimeout < 0:
		return fmt.Errorf("AW_SINK_DRAIN_TIMEOUT: %s (want >= 0)", s.DrainTimeout)
	case s.Start != "new" && s.Start != "all":
		return fmt.Errorf("AW_SINK_START: %q (want new or all)", s.Start)
	case s.Heartbeat < 0 || s.Heartbeat > maxHeartbeat:
		return fmt.Errorf("AW_SINK_HEARTBEAT: %s (want 0 for the default, up to %s)", s.Heartbeat, maxHeartbeat)
	case s.LogRetention <= 0:
		return fmt.Errorf("AW_DELIVERY_LOG_RETENTION: %s (want > 0)", s.LogRetention)
	}
	if _, err := parseSchedule(s.RetrySchedule); err != nil {
		return err
	}
	for _, f := range s.filters() {
		if !strings.HasPrefix(f, event.SubjectRoot) {
			return fmt.Errorf("AW_SINK_FILTER: %q (every filter starts with %s)", f, event.SubjectRoot)
		}
	}
	return nil
}

// prepare applies RetrySchedule (sink.New calls it): the schedule replaces
// the backoff and sets MaxDeliver.
func (s *Settings) prepare() error {
	sched, err := parseSchedule(s.RetrySchedule)
	if err != nil {
		return err
	}
	s.schedule = sched
	if len(sched) > 0 {
		s.MaxDeliver = len(sched) + 1
	}
	return nil
}

// maxHeartbeat is below half the client's pull expiry (30 s), which the
// client requires.
const maxHeartbeat = 14 * time.Second

// pullOpts are the options of every consumer's pull.
func (s Settings) pullOpts() []jetstream.PullMessagesOpt {
	hb := s.Heartbeat
	if hb == 0 {
		hb = DefaultSettings().Heartbeat
	}
	return []jetstream.PullMessagesOpt{jetstream.PullMaxMessages(min(s.MaxAckPending, 1000)), jetstream.PullHeartbeat(hb)}
}

func parseSchedule(spec string) ([]time.Duration, error) {
	if spec == "" {
		return nil, nil
	}
	var out []time.Duration
	for _, p := range strings.Split(spec, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(p))
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("AW_SINK_RETRY_SCHEDULE: %q: %q is not a duration > 0", spec, p)
		}
		out = append(out, d)
	}
	return out, nil
}

// filters are the consumers' subject filters. The stream's own subject
// (the default) becomes no filter: the server then reads messages in order
// without matching each one's subject, which costs it a third of its rate.
func (s Settings) filters() []string {
	var out []string
	for _, f := range strings.Split(s.Filter, ",") {
		if f = strings.TrimSpace(f); f == event.SubjectRoot+">" {
			return nil
		} else if f != "" {
			out = append(out, f)
		}
	}
	return out
}

func (s Settings) deliverPolicy() jetstream.DeliverPolicy {
	if s.Start == "all" {
		return jetstream.DeliverAllPolicy
	}
	return jetstream.DeliverNewPolicy
}

// Routing checks the receiver names of a notifier's file — usable in consumer
// names and subjects, unique, not the reserved deadletter.AdhocReceiver — and
// builds its routing tree. Errors name the file and the key.
func Routing(path string, c route.Config, names []string) (*route.Tree, error) {
	seen := map[string]bool{}
	for i, n := range names {
		if !route.ValidName(n) || n == deadletter.AdhocReceiver || seen[n] {
			return nil, fmt.Errorf("%w: %s: receivers[%d].name: %q (unique; letters, digits, - and _; %q is reserved)", config.ErrInvalid, path, i, n, deadletter.AdhocReceiver)
		}
		seen[n] = true
	}
	tree, err := route.NewTree(c, names)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", config.ErrInvalid, path, err)
	}
	return tree, nil
}
