// Package ledger is the chaos run's bookkeeping: the account changes the run
// made upstream, the events the stream holds, what each sink's receiver
// accepted, and the checks that must hold whatever faults were injected
// (nothing lost, nothing stored twice, no event without a change behind it,
// an intact audit log, no state ahead of the stream), printed as one table.
package ledger

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/shopspring/decimal"
)

// Key names one account of one connection.
type Key struct{ Provider, Instance, Account string }

func (k Key) String() string { return k.Provider + "/" + k.Instance + "/" + k.Account }

// FieldKey names one field of one account: changes and events pair in
// order per FieldKey.
type FieldKey struct {
	Key
	Field string
}

// FieldKey is the field of the account c changed.
func (c Change) FieldKey() FieldKey { return FieldKey{c.Key, c.Field} }

// FieldKey is the field of the account e announces.
func (e Event) FieldKey() FieldKey { return FieldKey{e.Key, e.Field} }

// Change is one change the run made upstream, as the event it must cause
// would describe it (type tail, field, previous and current value).
type Change struct {
	Seq   int
	Key   Key
	Type  string // e.g. account.status.changed
	Field string
	From  string
	To    string
	At    time.Time
	// Phase is the fault (or calm stretch) it was made in.
	Phase string
}

func (c Change) String() string {
	return fmt.Sprintf("#%d %s %s %s: %s → %s (%s)", c.Seq, c.Key, c.Type, c.Field, c.From, c.To, c.Phase)
}

// Event is one message of the event stream, decoded.
type Event struct {
	Seq   uint64 // stream sequence
	MsgID string // Nats-Msg-Id
	ID    string // CloudEvents id
	Key   Key
	Type  string // type tail
	Field string
	Prev  string
	Cur   string
	// Undecodable is set (with the error) for a message that is not an event.
	Undecodable string
	// Severity and Attrs (the allow-listed account attributes) as the event
	// carries them.
	Severity string            `json:",omitempty"`
	Attrs    map[string]string `json:",omitempty"`
	// Stored is when the stream stored it (the server's timestamp).
	Stored time.Time `json:"-"`
}

// Operational event types: the poller's own health, not account changes
// (poll.stalled and poll.resumed are the auditor's dead-man's: a poller
// killed or frozen by a fault is rightly told as stalled).
var operational = map[string]bool{"poll.degraded": true, "poll.recovered": true, "poll.stalled": true, "poll.resumed": true}

// Matches reports whether e is the event c must cause.
func (c Change) Matches(e Event) bool {
	return c.Key == e.Key && c.Type == e.Type && c.Field == e.Field && SameValue(c.From, e.Prev) && SameValue(c.To, e.Cur)
}

// SameValue compares values the way the event normalises them: enums in
// lower snake case ("credit hold" is credit_hold), money as decimals ("75"
// is 75.00), other text exactly.
func SameValue(a, b string) bool {
	if a == b {
		return true
	}
	if da, err := decimal.NewFromString(a); err == nil {
		if db, err := decimal.NewFromString(b); err == nil {
			return da.Equal(db)
		}
	}
	return normEnum(a) == normEnum(b)
}

func normEnum(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	return strings.NewReplacer(" ", "_", "-", "_").Replace(s)
}

// Sink is what one sink's receiver accepted: times accepted, per event id.
type Sink struct {
	Name     string
	Accepted map[string]int
	// Attempts and Refused count the requests the receiver saw and turned
	// down (faults it was scripted to answer).
	Attempts, Refused int
}

// Verify is what `awctl verify` said.
type Verify struct {
	Intact   bool
	Events   uint64
	Accounts int
	Problems int
	// StateChecked: every chain head was compared with AW_STATE;
	// Checkpoints counts the signed checkpoints that were checked.
	StateChecked bool
	Checkpoints  int
	Output       string
}

// Probes are the run's own publishes to a replicated probe stream.
type Probes struct {
	Sent, Acked, Failed int
	// Lost: acknowledged, not in the stream afterwards.
	Lost int
	// AckedWithoutQuorum: acknowledged while two of three nodes were down.
	AckedWithoutQuorum int
	// Details name each lost or wrongly acknowledged probe.
	Details []string
}

// StateCheck compares each account's state record with the stream.
type StateCheck struct {
	Records int
	// Ahead lists records whose hash chain names an event that is neither in
	// the stream nor in the record's own outbox: state advanced past an
	// event that was never acknowledged.
	Ahead []string
	// Checks counts how many times the check ran (after each quorum loss,
	// and at the end).
	Checks int
}

// Fault is one injected fault and what it cost.
type Fault struct {
	Name string
	// Recovery is from the end of the fault (or, for a node killed and left
	// down, from the kill) until a change made at that moment reached every
	// sink; zero with Skipped or Failed set.
	Recovery time.Duration
	// Stream is the part of Recovery until the change's event was stored.
	Stream  time.Duration
	Detail  string
	Skipped string
	Failed  string
}

// Input is everything the run collected.
type Input struct {
	Changes []Change
	Events  []Event
	Sinks   []Sink
	Verify  Verify
	Probes  Probes
	State   StateCheck
	Faults  []Fault
	// Baseline is the same end-to-end measure as a fault's recovery, taken
	// with no fault (one sample per calm canary).
	Baseline []time.Duration
	// Auditor lists accounts whose events the auditor's index does not
	// count as the stream holds them (it follows AW_STATE with a KV watcher).
	Auditor []string
	// Replicas lists streams and buckets not at replicas 3.
	Replicas []string
	// Crashes lists services that exited on their own (the run restarted them).
	Crashes []string
	// Races lists services whose race detector reported a data race.
	Races []string
	// Load is the machine's load average while the run ran.
	Load string
}

// SinkRow is one sink's line of the table.
type SinkRow struct {
	Name                                 string
	Expected, Delivered, Lost, Redeliver int
	Unknown                              int
}

// Result is the ledger and what is wrong with it.
type Result struct {
	Input
	Injected   int
	Stored     int // messages in the stream
	Unique     int // distinct Nats-Msg-Id
	Duplicates int // messages whose Nats-Msg-Id an earlier message carried
	// ChangeEvents are the account-change events; Operational the poller's
	// own (poll.degraded/recovered), OpenDegraded those never recovered.
	ChangeEvents, Operational, OpenDegraded int
	Phantom                                 []string
	Lost                                    []string
	Sinks                                   []SinkRow
	Failures                                []string
}

// Compute checks the run.
func Compute(in Input) Result {
	r := Result{Input: in, Injected: len(in.Changes), Stored: len(in.Events)}
	seen := map[string]bool{}
	var uniq []Event
	for _, e := range in.Events {
		if e.Undecodable != "" {
			r.Phantom = append(r.Phantom, fmt.Sprintf("stream seq %d: not an event: %s", e.Seq, e.Undecodable))
			continue
		}
		if seen[e.MsgID] {
			r.Duplicates++
			continue
		}
		seen[e.MsgID] = true
		uniq = append(uniq, e)
	}
	r.Unique = len(seen)

	// Per account and field, the changes in the order they were made and
	// the events in stream order: the run changes a field again only once
	// the event of its last change is stored, so the two lists must pair one
	// to one. Fields changed in one observation may be announced in any
	// order (the account's hash chain, which awctl verify checks, fixes it).
	changes := map[FieldKey][]Change{}
	for _, c := range in.Changes {
		changes[c.FieldKey()] = append(changes[c.FieldKey()], c)
	}
	events := map[FieldKey][]Event{}
	degraded := map[Key]int{}
	for _, e := range uniq {
		if operational[e.Type] {
			r.Operational++
			switch e.Type {
			case "poll.degraded":
				degraded[e.Key]++
			case "poll.recovered":
				degraded[e.Key]--
			}
			continue
		}
		r.ChangeEvents++
		events[e.FieldKey()] = append(events[e.FieldKey()], e)
	}
	for _, n := range degraded {
		if n > 0 {
			r.OpenDegraded += n
		}
	}
	keys := map[FieldKey]bool{}
	for k := range changes {
		keys[k] = true
	}
	for k := range events {
		keys[k] = true
	}
	for _, k := range sortedKeys(keys) {
		cs, es := changes[k], events[k]
		i := 0
		for _, e := range es {
			if i < len(cs) && cs[i].Matches(e) {
				i++
				continue
			}
			r.Phantom = append(r.Phantom, fmt.Sprintf("stream seq %d %s %s %s: %s → %s: no such change was made", e.Seq, k.Key, e.Type, e.Field, e.Prev, e.Cur))
		}
		for _, c := range cs[i:] {
			r.Lost = append(r.Lost, c.String())
		}
	}

	for _, s := range in.Sinks {
		row := SinkRow{Name: s.Name, Expected: r.Unique}
		for id, n := range s.Accepted {
			if !seen[id] {
				row.Unknown++
				continue
			}
			row.Delivered++
			row.Redeliver += n - 1
		}
		row.Lost = row.Expected - row.Delivered
		r.Sinks = append(r.Sinks, row)
	}

	fail := func(format string, a ...any) { r.Failures = append(r.Failures, fmt.Sprintf(format, a...)) }
	if r.Duplicates > 0 {
		fail("%d stream duplicates by Nats-Msg-Id", r.Duplicates)
	}
	if len(r.Phantom) > 0 {
		fail("%d phantom events", len(r.Phantom))
	}
	if len(r.Lost) > 0 {
		fail("%d changes lost", len(r.Lost))
	}
	if r.OpenDegraded > 0 {
		fail("%d poll.degraded never followed by poll.recovered", r.OpenDegraded)
	}
	for _, s := range r.Sinks {
		if s.Lost > 0 {
			fail("sink %s lost %d events", s.Name, s.Lost)
		}
		if s.Unknown > 0 {
			fail("sink %s received %d event ids the stream does not hold", s.Name, s.Unknown)
		}
	}
	if !in.Verify.Intact {
		fail("awctl verify: not intact (%d problems)", in.Verify.Problems)
	}
	if in.Probes.Lost > 0 {
		fail("%d acknowledged probe publishes lost", in.Probes.Lost)
	}
	if in.Probes.AckedWithoutQuorum > 0 {
		fail("%d probe publishes acknowledged without a quorum", in.Probes.AckedWithoutQuorum)
	}
	if len(in.State.Ahead) > 0 {
		fail("%d state records ahead of the stream", len(in.State.Ahead))
	}
	if len(in.Auditor) > 0 {
		fail("%d accounts stale in the auditor's index", len(in.Auditor))
	}
	for _, s := range in.Replicas {
		fail("not replicated: %s", s)
	}
	for _, c := range in.Crashes {
		fail("crash: %s", c)
	}
	for _, race := range in.Races {
		fail("data race: %s", race)
	}
	for _, f := range in.Faults {
		if f.Failed != "" {
			fail("fault %q: %s", f.Name, f.Failed)
		}
	}
	return r
}

func sortedKeys(m map[FieldKey]bool) []FieldKey {
	out := make([]FieldKey, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool {
		if a, b := out[i].Key.String(), out[j].Key.String(); a != b {
			return a < b
		}
		return out[i].Field < out[j].Field
	})
	return out
}

// OK reports whether every check held.
func (r Result) OK() bool { return len(r.Failures) == 0 }

// Print writes the ledger table, the recovery times and what failed.
func (r Result) Print(w io.Writer) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	line := func(k string, v any, want string) { fmt.Fprintf(tw, "  %s\t%v\t%s\n", k, v, want) }
	fmt.Fprintln(tw, "LEDGER\t\t")
	line("changes injected upstream", r.Injected, "")
	line("events in the stream", r.Stored, fmt.Sprintf("(%d account changes, %d poll.degraded/recovered)", r.ChangeEvents, r.Operational))
	line("stream duplicates by Nats-Msg-Id", r.Duplicates, "must be 0")
	line("phantom events (no such change)", len(r.Phantom), "must be 0")
	line("changes lost (no event)", len(r.Lost), "must be 0")
	line("degraded, never recovered", r.OpenDegraded, "must be 0")
	verify := "intact"
	if !r.Verify.Intact {
		verify = fmt.Sprintf("NOT INTACT (%d problems)", r.Verify.Problems)
	}
	state := ""
	if r.Verify.StateChecked {
		state = ", every head against AW_STATE"
	}
	line("awctl verify", verify, fmt.Sprintf("(%d events, %d accounts%s, %d signed checkpoints)", r.Verify.Events, r.Verify.Accounts, state, r.Verify.Checkpoints))
	line("state records ahead of the stream", len(r.State.Ahead), fmt.Sprintf("must be 0 (%d records, checked %d times)", r.State.Records, r.State.Checks))
	line("accounts stale in the auditor's index", len(r.Auditor), "must be 0")
	line("streams and buckets below replicas 3", len(r.Replicas), "must be 0")
	line("services that exited on their own", len(r.Crashes), "must be 0")
	line("probe publishes acked / failed", fmt.Sprintf("%d / %d", r.Probes.Acked, r.Probes.Failed), fmt.Sprintf("(of %d sent)", r.Probes.Sent))
	line("probes acked, then lost", r.Probes.Lost, "must be 0")
	line("probes acked without a quorum", r.Probes.AckedWithoutQuorum, "must be 0")
	fmt.Fprintln(tw, "\t\t")
	fmt.Fprintln(tw, "SINK\texpected\tdelivered\tlost\tredelivered (same id)\tunknown ids\treceiver attempts / refused")
	for i, s := range r.Sinks {
		var att, ref int
		if i < len(r.Input.Sinks) {
			att, ref = r.Input.Sinks[i].Attempts, r.Input.Sinks[i].Refused
		}
		fmt.Fprintf(tw, "  %s\t%d\t%d\t%d\t%d\t%d\t%d / %d\n", s.Name, s.Expected, s.Delivered, s.Lost, s.Redeliver, s.Unknown, att, ref)
	}
	fmt.Fprintln(tw, "\t\t")
	fmt.Fprintln(tw, "FAULT\trecovery\tof it, to the stream\tdetail")
	if len(r.Baseline) > 0 {
		fmt.Fprintf(tw, "  (no fault: baseline, median of %d)\t%s\t\t%s\n", len(r.Baseline), round(median(r.Baseline)), rangeOf(r.Baseline))
	}
	for _, f := range r.Faults {
		switch {
		case f.Skipped != "":
			fmt.Fprintf(tw, "  %s\tskipped\t\t%s\n", f.Name, f.Skipped)
		case f.Failed != "":
			fmt.Fprintf(tw, "  %s\tFAILED\t\t%s %s\n", f.Name, f.Failed, f.Detail)
		default:
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", f.Name, round(f.Recovery), round(f.Stream), f.Detail)
		}
	}
	tw.Flush()
	if r.Load != "" {
		fmt.Fprintf(w, "load average during the run: %s\n", r.Load)
	}
	show := func(title string, list []string) { Show(w, title, list, 20) }
	show("phantom events", r.Phantom)
	show("lost changes", r.Lost)
	show("state ahead of the stream", r.State.Ahead)
	show("probes", r.Probes.Details)
	show("stale in the auditor's index", r.Auditor)
	show("services that exited on their own", r.Crashes)
	show("not replicated", r.Replicas)
	show("data races", r.Races)
	Verdict(w, r.OK(), r.Failures)
}

// Verdict writes a run's result line and, when it failed, every reason.
func Verdict(w io.Writer, ok bool, reasons ...[]string) {
	if ok {
		fmt.Fprintln(w, "RESULT: PASS")
		return
	}
	fmt.Fprintln(w, "RESULT: FAIL")
	for _, list := range reasons {
		for _, s := range list {
			fmt.Fprintln(w, "  - "+s)
		}
	}
}

func round(d time.Duration) string { return d.Round(100 * time.Millisecond).String() }

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func rangeOf(ds []time.Duration) string {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return fmt.Sprintf("range %s–%s", round(s[0]), round(s[len(s)-1]))
}

// Show writes a titled list (nothing when it is empty), at most most lines
// of it.
func Show(w io.Writer, title string, list []string, most int) {
	if len(list) == 0 {
		return
	}
	fmt.Fprintf(w, "%s (%d):\n", title, len(list))
	for i, s := range list {
		if i == most {
			fmt.Fprintf(w, "  … %d more\n", len(list)-most)
			break
		}
		fmt.Fprintln(w, "  "+s)
	}
}
