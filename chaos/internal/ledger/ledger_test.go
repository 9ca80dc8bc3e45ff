package ledger

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

var (
	acme  = Key{"activeplatform", "ap-chaos", "7000001"}
	frost = Key{"alibaba-bss", "bss-chaos", "8000001"}
)

func change(seq int, k Key, typ, field, from, to string) Change {
	return Change{Seq: seq, Key: k, Type: typ, Field: field, From: from, To: to}
}

func ev(seq uint64, id string, k Key, typ, field, prev, cur string) Event {
	return Event{Seq: seq, MsgID: id, ID: id, Key: k, Type: typ, Field: field, Prev: prev, Cur: cur}
}

// base is a clean run: three changes, their three events, every sink has
// every event once.
func base() Input {
	in := Input{
		Changes: []Change{
			change(1, acme, "account.status.changed", "status", "active", "credit hold"),
			change(2, acme, "account.debt.changed", "current_debt", "0", "75"),
			change(3, frost, "account.hosting_status.changed", "HostingStatus", "TRUSTEESHIP", "FREEZE"),
		},
		Events: []Event{
			ev(1, "aw1-a", acme, "account.status.changed", "status", "active", "credit_hold"),
			ev(2, "aw1-b", frost, "account.hosting_status.changed", "HostingStatus", "trusteeship", "freeze"),
			ev(3, "aw1-c", acme, "account.debt.changed", "current_debt", "0.00", "75.00"),
		},
		Verify: Verify{Intact: true},
	}
	for _, n := range []string{"slack", "webhook", "email"} {
		in.Sinks = append(in.Sinks, Sink{Name: n, Accepted: map[string]int{"aw1-a": 1, "aw1-b": 1, "aw1-c": 1}})
	}
	return in
}

func TestCompute(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(*Input)
		// failures the result must name (substrings); none: it passes
		fail  []string
		check func(t *testing.T, r Result)
	}{
		{name: "clean run passes", check: func(t *testing.T, r Result) {
			if r.Injected != 3 || r.Stored != 3 || r.ChangeEvents != 3 || r.Sinks[0].Delivered != 3 {
				t.Errorf("counts: %+v", r)
			}
		}},
		{name: "a re-published message with the same Nats-Msg-Id is a stream duplicate",
			mutate: func(in *Input) {
				in.Events = append(in.Events, ev(4, "aw1-a", acme, "account.status.changed", "status", "active", "credit_hold"))
			},
			fail: []string{"1 stream duplicates"}},
		{name: "the same change stored twice under two ids is a phantom",
			mutate: func(in *Input) {
				in.Events = append(in.Events, ev(4, "aw1-z", acme, "account.debt.changed", "current_debt", "0.00", "75.00"))
				for i := range in.Sinks {
					in.Sinks[i].Accepted["aw1-z"] = 1
				}
			},
			fail: []string{"1 phantom"}},
		{name: "an event of a change never made is a phantom",
			mutate: func(in *Input) {
				in.Events = append(in.Events, ev(4, "aw1-y", frost, "account.credit_limit_status.changed", "CreditLimitStatus", "thaw", "freeze"))
				for i := range in.Sinks {
					in.Sinks[i].Accepted["aw1-y"] = 1
				}
			},
			fail: []string{"1 phantom"}},
		{name: "a change without its event is lost",
			mutate: func(in *Input) {
				in.Events = in.Events[:2]
				for i := range in.Sinks {
					delete(in.Sinks[i].Accepted, "aw1-c")
				}
			},
			fail: []string{"1 changes lost"}},
		{name: "events of one field out of the order its changes were made in do not pair",
			mutate: func(in *Input) {
				in.Changes = append(in.Changes, change(4, acme, "account.status.changed", "status", "credit hold", "active"))
				in.Events = append([]Event{ev(4, "aw1-d", acme, "account.status.changed", "status", "credit_hold", "active")}, in.Events...)
				for i := range in.Sinks {
					in.Sinks[i].Accepted["aw1-d"] = 1
				}
			},
			fail: []string{"phantom", "lost"}},
		{name: "two fields of one account may be announced in either order",
			mutate: func(in *Input) {
				in.Events[0], in.Events[2] = in.Events[2], in.Events[0]
			}},
		{name: "a sink that misses an event lost it",
			mutate: func(in *Input) { delete(in.Sinks[1].Accepted, "aw1-b") },
			fail:   []string{"sink webhook lost 1"}},
		{name: "redeliveries with the same id are counted, not failed",
			mutate: func(in *Input) { in.Sinks[2].Accepted["aw1-a"] = 3 },
			check: func(t *testing.T, r Result) {
				if r.Sinks[2].Redeliver != 2 || r.Sinks[2].Lost != 0 {
					t.Errorf("email row %+v", r.Sinks[2])
				}
			}},
		{name: "a delivery of an id the stream does not hold fails",
			mutate: func(in *Input) { in.Sinks[0].Accepted["aw1-nope"] = 1 },
			fail:   []string{"sink slack received 1 event ids"}},
		{name: "degraded without recovered fails; a recovered one passes",
			mutate: func(in *Input) {
				in.Events = append(in.Events,
					ev(4, "aw1-d1", frost, "poll.degraded", "", "", ""), ev(5, "aw1-r1", frost, "poll.recovered", "", "", ""),
					ev(6, "aw1-d2", acme, "poll.degraded", "", "", ""))
				for i := range in.Sinks {
					for _, id := range []string{"aw1-d1", "aw1-r1", "aw1-d2"} {
						in.Sinks[i].Accepted[id] = 1
					}
				}
			},
			fail: []string{"1 poll.degraded never followed"}},
		{name: "the dead-man's stalled and resumed are operational, not phantom changes",
			mutate: func(in *Input) {
				in.Events = append(in.Events,
					ev(4, "aw1-s1", frost, "poll.stalled", "", "", ""), ev(5, "aw1-s2", frost, "poll.resumed", "", "", ""))
				for i := range in.Sinks {
					for _, id := range []string{"aw1-s1", "aw1-s2"} {
						in.Sinks[i].Accepted[id] = 1
					}
				}
			},
			check: func(t *testing.T, r Result) {
				if r.Operational != 2 || len(r.Phantom) != 0 {
					t.Errorf("operational %d, phantom %v", r.Operational, r.Phantom)
				}
			}},
		{name: "verify, probes, state and faults each fail the run",
			mutate: func(in *Input) {
				in.Verify = Verify{Intact: false, Problems: 2}
				in.Probes = Probes{Lost: 1, AckedWithoutQuorum: 1}
				in.State.Ahead = []string{"activeplatform.ap-chaos.7000001"}
				in.Faults = []Fault{{Name: "leader SIGKILL", Failed: "no recovery within 2m0s"}}
				in.Auditor = []string{"activeplatform/ap-chaos/7000001: the auditor counts 1 events, the stream holds 2"}
				in.Races = []string{"poller-a: 1 data races"}
			},
			fail: []string{"awctl verify", "probe publishes lost", "without a quorum", "ahead of the stream", "leader SIGKILL", "auditor", "data race: poller-a"}},
		{name: "an undecodable message is a phantom",
			mutate: func(in *Input) { in.Events = append(in.Events, Event{Seq: 9, MsgID: "x", Undecodable: "bad ce"}) },
			fail:   []string{"phantom"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := base()
			if c.mutate != nil {
				c.mutate(&in)
			}
			r := Compute(in)
			if len(c.fail) == 0 && !r.OK() {
				t.Fatalf("want a pass, failures %v", r.Failures)
			}
			all := strings.Join(r.Failures, "; ")
			for _, f := range c.fail {
				if !strings.Contains(all, f) {
					t.Errorf("failures %q do not name %q", all, f)
				}
			}
			if c.check != nil {
				c.check(t, r)
			}
			var out bytes.Buffer
			r.Print(&out)
			want := "RESULT: PASS"
			if len(c.fail) > 0 {
				want = "RESULT: FAIL"
			}
			if !strings.Contains(out.String(), want) {
				t.Errorf("table does not say %s:\n%s", want, out.String())
			}
		})
	}
}

func TestSameValue(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want bool
	}{
		{"credit hold", "credit_hold", true},
		{"FREEZE", "freeze", true},
		{"75", "75.00", true},
		{"75", "75.01", false},
		{"Acme rev 3", "Acme rev 3", true},
		{"Acme rev 3", "acme rev 3", true}, // enums and text share the comparison; the run's texts differ by number
		{"active", "administrative_hold", false},
	} {
		if got := SameValue(c.a, c.b); got != c.want {
			t.Errorf("SameValue(%q, %q) = %v", c.a, c.b, got)
		}
	}
}

func TestPrintShowsBaselineAndSkips(t *testing.T) {
	in := base()
	in.Baseline = []time.Duration{time.Second, 2 * time.Second, 3 * time.Second}
	in.Faults = []Fault{{Name: "partition", Skipped: "no network namespaces"}, {Name: "follower SIGKILL", Recovery: 2500 * time.Millisecond, Stream: time.Second}}
	var out bytes.Buffer
	Compute(in).Print(&out)
	for _, want := range []string{"baseline, median of 3", "2s", "skipped", "no network namespaces", "2.5s"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
}
