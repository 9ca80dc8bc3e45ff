package conform

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/shopspring/decimal"

	"github.com/accountwatch/accountwatch/chaos/internal/ledger"
)

// Conns names the poller's connections of each upstream product: the
// instance of an event, per provider (and per CAMS space).
type Conns struct {
	AP, BSS string
	CAMS    map[string]string // CustSpaceId → connection
}

// Provider names of the events.
const (
	ProviderAP   = "activeplatform"
	ProviderBSS  = "alibaba-bss"
	ProviderCAMS = "alibaba-cams"
)

// profileFields are the watched CAMS business-profile fields.
var profileFields = map[string]bool{"Vertical": true, "Description": true, "Email": true, "Address": true,
	"ProfilePictureUrl": true, "Websites": true, "About": true}

// Row is one ledger line and the event it must cause (none for a change of
// a field nobody watches, a fault, or a step below the policy's).
type Row struct {
	Entry
	Phase    string
	Expected *ledger.Change
	Why      string // why no event is expected
	// Alt is the one other event type that may stand for Expected: an
	// account onboarded through CreateAgAccount is announced by awctl
	// (account.created) unless the poller's listing saw it first
	// (account.discovered); one of the two, once.
	Alt string
}

// Expect turns the upstream's ledger into the events the pipeline owes:
// a watched field set to another value is its change event; an account
// added is account.discovered (account.created when CreateAgAccount made
// it); one removed is account.removed. Debt is owed when it moved by at
// least step (the scripts move it by more).
func Expect(entries []Entry, conns Conns, step decimal.Decimal, phase func(seq int) string) []Row {
	rows := make([]Row, 0, len(entries))
	for _, e := range entries {
		r := Row{Entry: e}
		if phase != nil {
			r.Phase = phase(e.Seq)
		}
		key, ok := keyOf(e, conns)
		switch {
		case e.Op == "seed" || e.Op == "fault" || e.Op == "clear_faults":
			r.Why = e.Op
		case !ok:
			r.Why = "no connection reads it"
		case e.Op == "add" && e.Source == "CreateAgAccount":
			r.Expected, r.Alt = &ledger.Change{Key: key, Type: "account.created"}, "account.discovered"
		case e.Op == "add":
			r.Expected = &ledger.Change{Key: key, Type: "account.discovered"}
		case e.Op == "remove":
			r.Expected = &ledger.Change{Key: key, Type: "account.removed"}
		case e.Op == "set":
			r.Expected, r.Why = expectSet(e, key, step)
		default:
			r.Why = "unknown op " + e.Op
		}
		if r.Expected != nil {
			r.Expected.Seq, r.Expected.At, r.Expected.Phase = e.Seq, e.At, r.Phase
		}
		rows = append(rows, r)
	}
	return rows
}

func keyOf(e Entry, c Conns) (ledger.Key, bool) {
	switch e.Provider {
	case "activeplatform":
		return ledger.Key{Provider: ProviderAP, Instance: c.AP, Account: e.Account}, c.AP != ""
	case "bss":
		return ledger.Key{Provider: ProviderBSS, Instance: c.BSS, Account: e.Account}, c.BSS != ""
	case "cams":
		inst, ok := c.CAMS[e.Space]
		return ledger.Key{Provider: ProviderCAMS, Instance: inst, Account: e.Account}, ok
	}
	return ledger.Key{}, false
}

func expectSet(e Entry, key ledger.Key, step decimal.Decimal) (*ledger.Change, string) {
	from, to := Text(e.From), Text(e.To)
	if ledger.SameValue(from, to) {
		return nil, "same value"
	}
	c := &ledger.Change{Key: key, Field: e.Field, From: from, To: to}
	switch {
	case e.Provider == "activeplatform" && e.Field == "status":
		c.Type = "account.status.changed"
	case e.Provider == "activeplatform" && e.Field == "current_debt":
		a, errA := decimal.NewFromString(from)
		b, errB := decimal.NewFromString(to)
		if errA != nil || errB != nil {
			return nil, "debt to or from null: a baseline, not a move"
		}
		if b.Sub(a).Abs().LessThan(step) {
			return nil, "debt moved less than the policy's step"
		}
		c.Type = "account.debt.changed"
	case e.Provider == "bss" && e.Field == "HostingStatus":
		c.Type = "account.hosting_status.changed"
	case e.Provider == "bss" && e.Field == "CreditLimitStatus":
		c.Type = "account.credit_limit_status.changed"
	case e.Provider == "cams" && profileFields[e.Field]:
		c.Type = "phone_profile.changed"
	default:
		return nil, "field not watched"
	}
	return c, ""
}

// Text is a ledger value as an event carries it: a string as it is, a
// list as its items joined by ", ", null as nothing, anything else its
// JSON literal.
func Text(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var items []string
	if json.Unmarshal(raw, &items) == nil {
		return strings.Join(items, ", ")
	}
	return string(raw)
}

// Settle resolves each row's Alt against the stream: where the stream holds
// no event of the expected type for the account but one of the Alt type,
// that one is expected (and the row says so).
func Settle(rows []Row, events []ledger.Event) {
	for i := range rows {
		r := &rows[i]
		if r.Alt == "" || r.Expected == nil {
			continue
		}
		has := map[string]bool{}
		for _, e := range events {
			if e.Key == r.Expected.Key {
				has[e.Type] = true
			}
		}
		if !has[r.Expected.Type] && has[r.Alt] {
			r.Why = "announced by the poller's listing before awctl's commit"
			r.Expected.Type = r.Alt
		}
	}
}

// Changes are the expected events of rows, in ledger order.
func Changes(rows []Row) []ledger.Change {
	var out []ledger.Change
	for _, r := range rows {
		if r.Expected != nil {
			out = append(out, *r.Expected)
		}
	}
	return out
}

// Pair finds, per account field, the event of each expected change (the
// way ledger.Compute pairs them: changes in ledger order, events in stream
// order); it returns the event per change seq.
func Pair(changes []ledger.Change, events []ledger.Event) map[int]ledger.Event {
	byKey := map[ledger.FieldKey][]ledger.Event{}
	seen := map[string]bool{}
	for _, e := range events {
		if e.Undecodable != "" || seen[e.MsgID] || e.Type == "poll.degraded" || e.Type == "poll.recovered" || e.Type == "poll.stalled" || e.Type == "poll.resumed" {
			continue
		}
		seen[e.MsgID] = true
		byKey[e.FieldKey()] = append(byKey[e.FieldKey()], e)
	}
	out := map[int]ledger.Event{}
	next := map[ledger.FieldKey]int{}
	for _, c := range changes {
		k := c.FieldKey()
		es := byKey[k]
		for i := next[k]; i < len(es); i++ {
			if c.Matches(es[i]) {
				out[c.Seq] = es[i]
				next[k] = i + 1
				break
			}
		}
	}
	return out
}

// Window is one injected fault: when it was live.
type Window struct {
	Entry
	Start, End time.Time
	// Outage: the upstream could not be read (the connection must go
	// degraded and recover); otherwise throttling, which must be waited
	// out without a state change.
	Outage bool
	// Conns are the connections it hit.
	Conns []string
	// Degraded and Recovered count the operational events of those
	// connections stored while it was live or shortly after.
	Degraded, Recovered int
	// hit are the connections with a poll.degraded in it.
	hit map[string]bool
}

// throttles are fault kinds that slow an upstream down without an outage.
var throttles = map[string]bool{"throttle": true, "throttle_body": true, "slow": true}

// Windows are the faults of the ledger; each lasts its seconds (a fault by
// count lasts until the next clear_faults, or grace).
func Windows(entries []Entry, conns Conns) []Window {
	var out []Window
	for _, e := range entries {
		if e.Op != "fault" {
			continue
		}
		w := Window{Entry: e, Start: e.At, End: e.At.Add(time.Duration(e.Seconds * float64(time.Second))), Outage: !throttles[e.Kind] && e.Kind != "create_then_fail"}
		switch e.Provider {
		case "activeplatform":
			w.Conns = []string{conns.AP}
		case "bss":
			w.Conns = []string{conns.BSS}
		case "cams":
			set := map[string]bool{}
			for _, c := range conns.CAMS {
				set[c] = true
			}
			for c := range set {
				w.Conns = append(w.Conns, c)
			}
			sort.Strings(w.Conns)
		}
		if e.Kind == "create_then_fail" {
			w.Conns = nil // an onboarding's fault: no connection polls CreateAgAccount
		}
		out = append(out, w)
	}
	return out
}

// CheckDegraded holds the operational events to the faults: every
// poll.degraded falls in a fault of its connection (or within grace after
// it), every outage fault degrades each connection it hit, and every
// degraded connection recovers. It fills each window's counts.
func CheckDegraded(windows []Window, events []ledger.Event, grace time.Duration) []string {
	var problems []string
	open := map[ledger.Key]bool{}
	for _, e := range events {
		if e.Type != "poll.degraded" && e.Type != "poll.recovered" {
			continue
		}
		in := -1
		for i, w := range windows {
			if contains(w.Conns, e.Key.Instance) && !e.Stored.Before(w.Start) && !e.Stored.After(w.End.Add(grace)) {
				in = i
			}
		}
		if e.Type == "poll.degraded" {
			open[e.Key] = true
			if in < 0 {
				problems = append(problems, fmt.Sprintf("stream seq %d: poll.degraded of %s outside every injected fault", e.Seq, e.Key))
				continue
			}
			windows[in].Degraded++
			if windows[in].hit == nil {
				windows[in].hit = map[string]bool{}
			}
			windows[in].hit[e.Key.Instance] = true
			continue
		}
		if !open[e.Key] {
			problems = append(problems, fmt.Sprintf("stream seq %d: poll.recovered of %s, which was not degraded", e.Seq, e.Key))
		}
		delete(open, e.Key)
		if in >= 0 {
			windows[in].Recovered++
		}
	}
	for k := range open {
		problems = append(problems, fmt.Sprintf("%s: poll.degraded never followed by poll.recovered", k))
	}
	for _, w := range windows {
		if w.Outage && len(w.hit) < len(w.Conns) {
			problems = append(problems, fmt.Sprintf("fault #%d (%s %s on %s, %gs): poll.degraded of %d of the %d connections it hit", w.Seq, w.Provider, w.Kind, w.Action, w.Seconds, len(w.hit), len(w.Conns)))
		}
	}
	sort.Strings(problems)
	return problems
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Report is the conformance run's ledger.
type Report struct {
	Rows    []Row
	Windows []Window
	Events  []ledger.Event
	Result  ledger.Result
	// Tallies are, per sink, how often each event id was accepted.
	Tallies map[string]map[string]int
	// Stats are the upstream's counters.
	Stats map[string]int
	// Problems beyond ledger.Compute's (faults, the upstream's refusals).
	Problems []string
}

// OK reports whether every check held.
func (r *Report) OK() bool { return len(r.Result.Failures) == 0 && len(r.Problems) == 0 }

// Print writes the ledger: one line per injected change with the event it
// caused and what each sink accepted of it, the faults, the totals, the
// upstream's counters and what failed.
func (r *Report) Print(w io.Writer, sinks []string) {
	paired := Pair(r.Result.Changes, r.Events)
	for _, p := range upstreamProviders {
		fmt.Fprintf(w, "%s: changes scripted on the upstream, and the events they caused\n", strings.ToUpper(p))
		tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
		fmt.Fprintf(tw, "  #\tphase\tinjected upstream\texpected event\tstream seq\tseverity\t%s\n", strings.Join(sinks, "\t"))
		for _, row := range r.Rows {
			if row.Provider != p || !isChange(row.Op) {
				continue
			}
			what := describe(row.Entry)
			if row.Expected == nil {
				fmt.Fprintf(tw, "  %d\t%s\t%s\tnone (%s)\t-\t-\t%s\n", row.Seq, row.Phase, what, row.Why, strings.Repeat("-\t", len(sinks)-1)+"-")
				continue
			}
			ev, ok := paired[row.Seq]
			seq, sev, counts := "LOST", "-", make([]string, len(sinks))
			if ok {
				seq, sev = fmt.Sprint(ev.Seq), ev.Severity
			}
			for i, s := range sinks {
				n := 0
				if ok {
					n = r.Tallies[s][ev.ID]
				}
				counts[i] = fmt.Sprint(n)
			}
			typ := row.Expected.Type
			if row.Why != "" {
				typ += " (" + row.Why + ")"
			}
			fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%s\t%s\t%s\n", row.Seq, row.Phase, what, typ, seq, sev, strings.Join(counts, "\t"))
		}
		tw.Flush()
		fmt.Fprintln(w)
	}
	r.printSummary(w, paired)
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "#\tfault\tconnections\tpoll.degraded\tpoll.recovered\texpected")
	for _, f := range r.Windows {
		want := "no state change (degraded allowed)"
		if f.Outage {
			want = "degraded and recovered, no state change"
		}
		if len(f.Conns) == 0 {
			want = "the onboarding retries"
		}
		fmt.Fprintf(tw, "%d\t%s %s on %s for %gs\t%s\t%d\t%d\t%s\n", f.Seq, f.Provider, f.Kind, f.Action, f.Seconds, strings.Join(f.Conns, ","), f.Degraded, f.Recovered, want)
	}
	tw.Flush()
	fmt.Fprintln(w)
	r.printAnswers(w)
	res := r.Result
	tw = tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	line := func(k string, v any, want string) { fmt.Fprintf(tw, "  %s\t%v\t%s\n", k, v, want) }
	fmt.Fprintln(tw, "TOTALS\t\t")
	line("ledger lines (changes, adds, removes)", countRows(r.Rows), "")
	line("events owed", len(res.Changes), "")
	line("events in the stream", res.Stored, fmt.Sprintf("(%d account changes, %d poll.degraded/recovered)", res.ChangeEvents, res.Operational))
	line("stream duplicates by Nats-Msg-Id", res.Duplicates, "must be 0")
	line("phantom events (no such change)", len(res.Phantom), "must be 0")
	line("changes lost (no event)", len(res.Lost), "must be 0")
	line("degraded, never recovered", res.OpenDegraded, "must be 0")
	verify := "intact"
	if !res.Verify.Intact {
		verify = fmt.Sprintf("NOT INTACT (%d problems)", res.Verify.Problems)
	}
	line("awctl verify", verify, fmt.Sprintf("(%d events, %d accounts)", res.Verify.Events, res.Verify.Accounts))
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SINK\texpected\tdelivered\tlost\tdelivered twice\tunknown ids")
	for _, s := range res.Sinks {
		fmt.Fprintf(tw, "  %s\t%d\t%d\t%d\t%d\t%d\n", s.Name, s.Expected, s.Delivered, s.Lost, s.Redeliver, s.Unknown)
	}
	tw.Flush()
	fmt.Fprintln(w)
	keys := make([]string, 0, len(r.Stats))
	for k := range r.Stats {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	fmt.Fprintln(w, "UPSTREAM (what the independent upstream served and refused)")
	var b strings.Builder
	for i, k := range keys {
		fmt.Fprintf(&b, "  %s=%d", k, r.Stats[k])
		if i%4 == 3 {
			b.WriteString("\n")
		}
	}
	fmt.Fprintln(w, strings.TrimRight(b.String(), "\n"))
	show := func(title string, list []string) { ledger.Show(w, title, list, 30) }
	show("phantom events", res.Phantom)
	show("lost changes", res.Lost)
	show("problems", r.Problems)
	ledger.Verdict(w, r.OK(), res.Failures, r.Problems)
}

// upstreamProviders are the upstream's provider names, in report order.
var upstreamProviders = []string{"activeplatform", "bss", "cams"}

func isChange(op string) bool { return op == "set" || op == "add" || op == "remove" }

// eventProvider is the event provider of an upstream provider name.
var eventProvider = map[string]string{"activeplatform": ProviderAP, "bss": ProviderBSS, "cams": ProviderCAMS}

// printSummary is the table per provider: changes scripted, events they
// owe, events detected and delivered, what was lost and what came extra.
func (r *Report) printSummary(w io.Writer, paired map[int]ledger.Event) {
	used := map[string]bool{}
	for _, e := range paired {
		used[e.MsgID] = true
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PROVIDER\tscripted\tno event owed\tevents owed\tdetected\tlost\textra events\tdelivered to every sink")
	for _, p := range upstreamProviders {
		var scripted, quiet, owed, detected, everywhere int
		for _, row := range r.Rows {
			if row.Provider != p || !isChange(row.Op) {
				continue
			}
			scripted++
			if row.Expected == nil {
				quiet++
				continue
			}
			owed++
			ev, ok := paired[row.Seq]
			if !ok {
				continue
			}
			detected++
			all := true
			for _, t := range r.Tallies {
				all = all && t[ev.ID] > 0
			}
			if all {
				everywhere++
			}
		}
		extra, seen := 0, map[string]bool{}
		for _, e := range r.Events {
			if e.Undecodable != "" || seen[e.MsgID] || e.Key.Provider != eventProvider[p] || e.Type == "poll.degraded" || e.Type == "poll.recovered" || e.Type == "poll.stalled" || e.Type == "poll.resumed" {
				continue
			}
			seen[e.MsgID] = true
			if !used[e.MsgID] {
				extra++
			}
		}
		fmt.Fprintf(tw, "  %s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\n", p, scripted, quiet, owed, detected, owed-detected, extra, everywhere)
	}
	tw.Flush()
	fmt.Fprintln(w)
}

// answerHandling is how the documents' error answers must be taken; the
// faults table and the ledger above check that they were.
var answerHandling = map[string]string{
	"VnoNoDataError":          "the customer is gone: account.removed (once baselined)",
	"Unknown.ResourceOwnerId": "the number is gone: account.removed (once baselined)",
	"InternalError":           "a failed read: retried; poll.degraded after 3, then poll.recovered",
	"NotAuthorized":           "a failed read: poll.degraded, then poll.recovered",
	"Ram.PermissionDeny":      "a failed read: poll.degraded, then poll.recovered",
	"Product.Unsubscript":     "a failed read: poll.degraded, then poll.recovered",
	"Throttling.User":         "throttling: backed off, never a state change",
	"System.LimitControl":     "throttling: backed off (every connection of the AccessKey), never a state change",
}

// printAnswers lists the documented error and throttling answers the
// upstream gave (injected or its own, such as the CAMS 10 QPS limit) and
// how each must be taken.
func (r *Report) printAnswers(w io.Writer) {
	keys := make([]string, 0, len(r.Stats))
	for k := range r.Stats {
		if strings.Contains(k, ".error.") || k == "cams.throttled.qps" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DOCUMENTED ERROR ANSWERS SERVED\ttimes\tmust be taken as")
	for _, k := range keys {
		how := "of them not injected: the documented 10 QPS per AccessKey exceeded (System.LimitControl)"
		if i := strings.LastIndex(k, ".error."); i >= 0 {
			if how = answerHandling[k[i+len(".error."):]]; how == "" {
				how = "(not a documented answer: see problems)"
			}
		}
		fmt.Fprintf(tw, "  %s\t%d\t%s\n", k, r.Stats[k], how)
	}
	tw.Flush()
	fmt.Fprintln(w)
}

func countRows(rows []Row) int {
	n := 0
	for _, r := range rows {
		if r.Op == "set" || r.Op == "add" || r.Op == "remove" {
			n++
		}
	}
	return n
}

func describe(e Entry) string {
	acct := e.Provider + "/" + e.Account
	if e.Space != "" {
		acct = e.Provider + "/" + e.Space + "/" + e.Account
	}
	switch e.Op {
	case "set":
		return fmt.Sprintf("%s %s: %s → %s", acct, e.Field, short(Text(e.From)), short(Text(e.To)))
	case "add":
		if e.Source != "" {
			return fmt.Sprintf("%s added (%s)", acct, e.Source)
		}
		return acct + " added"
	}
	return acct + " " + e.Op + "d"
}

func short(s string) string {
	if s == "" {
		return "∅"
	}
	if len(s) > 32 {
		return s[:31] + "…"
	}
	return s
}
