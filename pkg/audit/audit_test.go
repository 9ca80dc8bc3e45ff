package audit_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"

	"github.com/accountwatch/accountwatch/pkg/audit"
	"github.com/accountwatch/accountwatch/pkg/deadletter"
	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/event/eventtest"
	"github.com/accountwatch/accountwatch/pkg/eventbus"
	"github.com/accountwatch/accountwatch/pkg/eventbus/bustest"
)

// chain builds n linked status changes of one ActivePlatform account,
// observed from now on (after the stream was created: verify takes earlier
// observations for the sign of a recreated stream).
func chain(t *testing.T, acct string, n int) []*event.Event {
	t.Helper()
	states := []string{"active", "credit_hold"}
	var out []*event.Event
	prev := ""
	now := time.Now().UTC()
	for i := 1; i <= n; i++ {
		m := eventtest.Meta(acct, nil)
		m.Revision, m.Chain = uint64(i), event.Chain{Seq: uint64(i), Prev: prev}
		m.ObservedAt = now.Add(time.Duration(i) * time.Minute)
		e := eventtest.Status(t, m, states[(i+1)%2], states[i%2])
		prev = e.Hash()
		out = append(out, e)
	}
	return out
}

// interleave publishes the chains of several accounts round-robin.
func interleave(chains ...[]*event.Event) []*event.Event {
	var out []*event.Event
	for i := 0; ; i++ {
		added := false
		for _, c := range chains {
			if i < len(c) {
				out = append(out, c[i])
				added = true
			}
		}
		if !added {
			return out
		}
	}
}

func publish(t *testing.T, b *eventbus.Bus, evs []*event.Event) {
	t.Helper()
	if _, err := eventbus.NewPublisher(b.JS).PublishAll(context.Background(), evs); err != nil {
		t.Fatal(err)
	}
}

func TestReplayFilters(t *testing.T) {
	b := bustest.New(t)
	a, c := chain(t, "1000", 4), chain(t, "2000", 3)
	bss := eventtest.Hosting(t, "3000", "", "FREEZE")
	all := append(interleave(a, c), bss)
	publish(t, b, all)
	ids := func(sel audit.Selection) []string {
		var out []string
		if err := audit.Replay(context.Background(), b.JS, sel, nil, func(r *audit.Record) error {
			ev, err := r.Event()
			if err != nil {
				return err
			}
			out = append(out, ev.ID())
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return out
	}
	critical := 0
	for _, e := range all {
		if e.Data.Severity == event.SeverityCritical {
			critical++
		}
	}
	cases := []struct {
		name string
		sel  audit.Selection
		want int
	}{
		{"everything", audit.Selection{}, 8},
		{"one account", audit.Selection{Account: "1000"}, 4},
		{"one provider", audit.Selection{Provider: event.ProviderAlibabaBSS}, 1},
		{"one instance", audit.Selection{Instance: "ap-main"}, 7},
		{"one type", audit.Selection{Types: []event.Type{event.TypeHostingStatusChanged}}, 1},
		{"two types", audit.Selection{Types: []event.Type{event.TypeHostingStatusChanged, event.TypeStatusChanged}}, 8},
		{"sequence range", audit.Selection{FromSeq: 3, ToSeq: 5}, 3},
		{"from a sequence", audit.Selection{FromSeq: 7}, 2},
		{"critical only", audit.Selection{MinSeverity: event.SeverityCritical}, critical},
		{"limit", audit.Selection{Limit: 2}, 2},
		{"since the future", audit.Selection{Since: time.Now().Add(time.Hour)}, 0},
		{"until the past", audit.Selection{Until: time.Now().Add(-time.Hour)}, 0},
		{"account and range", audit.Selection{Account: "2000", FromSeq: 4}, 2},
	}
	for _, tc := range cases {
		if got := ids(tc.sel); len(got) != tc.want {
			t.Errorf("%s: %d events, want %d", tc.name, len(got), tc.want)
		}
	}
	if got := ids(audit.Selection{Account: "1000"}); strings.Join(got, ",") != strings.Join([]string{a[0].ID(), a[1].ID(), a[2].ID(), a[3].ID()}, ",") {
		t.Error("an account's events are not in stream order")
	}
	for _, bad := range []audit.Selection{{Provider: "aws"}, {MinSeverity: "loud"}, {FromSeq: 5, ToSeq: 2}, {Types: []event.Type{"x"}}} {
		if err := audit.Replay(context.Background(), b.JS, bad, nil, func(*audit.Record) error { return nil }); !errors.Is(err, audit.ErrInvalid) {
			t.Errorf("%+v: %v, want ErrInvalid", bad, err)
		}
	}
	var last, total uint64
	audit.Replay(context.Background(), b.JS, audit.Selection{}, func(done, tot uint64) { last, total = done, tot }, func(*audit.Record) error { return nil })
	if last != 8 || total != 8 {
		t.Errorf("progress ended at %d of %d", last, total)
	}
}

func TestExportFormatsParseBack(t *testing.T) {
	b := bustest.New(t)
	evs := chain(t, "1000", 3)
	evs = append(evs, eventtest.Debt(t, eventtest.Meta("1000", nil), "0", "512.40", "500", "above"))
	publish(t, b, evs)
	export := func(format string) string {
		var buf bytes.Buffer
		w, err := audit.NewWriter(format, &buf)
		if err != nil {
			t.Fatal(err)
		}
		if err := audit.Replay(context.Background(), b.JS, audit.Selection{}, nil, w.Write); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		return buf.String()
	}
	lines := strings.Split(strings.TrimSpace(export(audit.FormatJSONL)), "\n")
	if len(lines) != 4 {
		t.Fatalf("%d JSON lines", len(lines))
	}
	for i, l := range lines {
		var ce cloudevents.Event
		if err := json.Unmarshal([]byte(l), &ce); err != nil {
			t.Fatalf("line %d is no CloudEvent: %v", i, err)
		}
		back, err := event.FromCloud(ce)
		if err != nil || back.ID() != evs[i].ID() || back.Hash() != evs[i].Hash() {
			t.Errorf("line %d: %v; the exported event does not hash as stored", i, err)
		}
	}
	rows, err := csv.NewReader(strings.NewReader(export(audit.FormatCSV))).ReadAll()
	if err != nil || len(rows) != 5 || strings.Join(rows[0], ",") != strings.Join(audit.CSVHeader, ",") {
		t.Fatalf("csv: %v, %d rows", err, len(rows))
	}
	if rows[4][2] != evs[3].ID() || rows[4][12] != "512.4" || rows[4][len(rows[4])-1] != "USD" || rows[2][15] != "2" || rows[2][16] != evs[0].Hash() {
		t.Errorf("csv row: %v", rows[4])
	}
	table := export(audit.FormatTable)
	if !strings.Contains(table, "debt 0.00 USD → 512.40 USD (crossed above 500.00 USD)") || !strings.Contains(table, "SEQ") {
		t.Errorf("table:\n%s", table)
	}
	if _, err := audit.NewWriter("xml", &bytes.Buffer{}); !errors.Is(err, audit.ErrInvalid) {
		t.Errorf("unknown format: %v", err)
	}
}

// tamperable is a bus whose event stream allows deletes (unlike AW_EVENTS),
// to break it on purpose.
func tamperable(t *testing.T) *eventbus.Bus {
	t.Helper()
	b, err := eventbus.Connect(context.Background(), bustest.Config(t, ""))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	cfg := eventbus.EventStreamConfig(b.Cfg)
	cfg.DenyDelete, cfg.DenyPurge = false, false
	if _, err := b.JS.CreateStream(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestVerify(t *testing.T) {
	ctx := context.Background()
	t.Run("intact", func(t *testing.T) {
		b := bustest.New(t)
		publish(t, b, interleave(chain(t, "1000", 5), chain(t, "2000", 4)))
		rep, err := audit.Verify(ctx, b.JS, audit.Options{})
		if err != nil || !rep.OK() || rep.Events != 9 || rep.Accounts != 2 {
			t.Fatalf("%v %+v", err, rep)
		}
	})
	t.Run("missing event", func(t *testing.T) {
		b := tamperable(t)
		a := chain(t, "1000", 5)
		publish(t, b, interleave(a, chain(t, "2000", 3)))
		s, _ := b.JS.Stream(ctx, eventbus.StreamEvents)
		if err := s.DeleteMsg(ctx, 5); err != nil { // account 1000's third link
			t.Fatal(err)
		}
		rep, err := audit.Verify(ctx, b.JS, audit.Options{})
		if err != nil {
			t.Fatal(err)
		}
		kinds := problemKinds(rep)
		if kinds != "gap@6 missing@7" {
			t.Errorf("problems %s, want a gap at 6 and the account's missing link at 7: %+v", kinds, rep.Problems)
		}
		if !strings.Contains(rep.Problems[1].Detail, "links 3 to 3") || rep.Problems[1].Account != "activeplatform/ap-main/1000" {
			t.Errorf("detail %+v", rep.Problems[1])
		}
	})
	t.Run("altered event", func(t *testing.T) {
		b := tamperable(t)
		a := chain(t, "1000", 4)
		for i, e := range a {
			m, err := eventbus.Encode(e)
			if err != nil {
				t.Fatal(err)
			}
			if i == 1 { // the second link says the account was active, not on hold
				m.Data = bytes.Replace(m.Data, []byte(`"credit_hold"`), []byte(`"active_"`), 1)
			}
			if _, err := b.JS.PublishMsg(ctx, m); err != nil {
				t.Fatal(err)
			}
		}
		rep, err := audit.Verify(ctx, b.JS, audit.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if kinds := problemKinds(rep); kinds != "altered@2 broken_link@3" {
			t.Errorf("problems %s, want the altered event and the next link's broken reference: %+v", kinds, rep.Problems)
		}
	})
	t.Run("out of order", func(t *testing.T) {
		b := tamperable(t)
		a := chain(t, "1000", 3)
		publish(t, b, []*event.Event{a[0], a[2], a[1]})
		rep, _ := audit.Verify(ctx, b.JS, audit.Options{})
		if kinds := problemKinds(rep); kinds != "missing@2 out_of_order@3" {
			t.Errorf("problems %s: %+v", kinds, rep.Problems)
		}
	})
}

func problemKinds(r audit.Report) string {
	var out []string
	for _, p := range r.Problems {
		out = append(out, fmt.Sprintf("%s@%d", p.Kind, p.Seq))
	}
	return strings.Join(out, " ")
}

func TestTimeline(t *testing.T) {
	b := bustest.New(t)
	a := chain(t, "1000", 3)
	publish(t, b, interleave(a, chain(t, "2000", 2)))
	recs, err := audit.Timeline(context.Background(), b.JS, event.ProviderActivePlatform, "ap-main", "1000", 0)
	if err != nil || len(recs) != 3 {
		t.Fatalf("%v, %d records", err, len(recs))
	}
	for i, r := range recs {
		ev, _ := r.Event()
		if ev.ID() != a[i].ID() || ev.Data.Evidence.RequestID != "req-1000" {
			t.Errorf("record %d: %s", i, ev.ID())
		}
	}
	if _, err := audit.Timeline(context.Background(), b.JS, "", "ap-main", "1", 0); !errors.Is(err, audit.ErrInvalid) {
		t.Errorf("no provider: %v", err)
	}
}

func TestRedriveMarksReplayed(t *testing.T) {
	b := bustest.New(t)
	a := chain(t, "1000", 3)
	publish(t, b, a)
	ctx := context.Background()
	n, err := audit.Redrive(ctx, b.JS, audit.Selection{Account: "1000"}, audit.Target{Sink: "webhook", Receiver: "ep_1"}, true, nil)
	if err != nil || n != 3 {
		t.Fatalf("dry run: %d %v", n, err)
	}
	r, _ := b.JS.Stream(ctx, eventbus.StreamRedrive)
	if info, _ := r.Info(ctx); info.State.Msgs != 0 {
		t.Fatal("a dry run sent something")
	}
	for range 2 { // twice: a second re-drive of the same events is not deduplicated away
		if n, err := audit.Redrive(ctx, b.JS, audit.Selection{Account: "1000"}, audit.Target{Sink: "webhook", Receiver: "ep_1"}, false, nil); err != nil || n != 3 {
			t.Fatalf("re-drive: %d %v", n, err)
		}
	}
	info, _ := r.Info(ctx)
	if info.State.Msgs != 6 {
		t.Errorf("%d re-driven messages, want 6", info.State.Msgs)
	}
	m, err := r.GetMsg(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := eventbus.Decode(&nats.Msg{Subject: m.Subject, Header: m.Header, Data: m.Data})
	if err != nil || ev.ID() != a[0].ID() || ev.Hash() != a[0].Hash() || ev.Cloud.Extensions()[event.ExtReplayed] != "true" {
		t.Errorf("re-driven copy: %v %+v", err, ev.Cloud.Extensions())
	}
	if m.Subject != deadletter.RedriveSubject("webhook", "ep_1") || !strings.HasPrefix(m.Header.Get(deadletter.HdrEventSubject), "aw.events.activeplatform.ap-main.") {
		t.Errorf("subject %s, event subject %q", m.Subject, m.Header.Get(deadletter.HdrEventSubject))
	}
	if rep, _ := audit.Verify(ctx, b.JS, audit.Options{}); !rep.OK() || rep.Events != 3 {
		t.Errorf("the audit log changed: %+v", rep)
	}
	if _, err := audit.Redrive(ctx, b.JS, audit.Selection{}, audit.Target{Sink: "webhook", Receiver: "a.b"}, false, nil); !errors.Is(err, audit.ErrInvalid) {
		t.Errorf("bad receiver: %v", err)
	}
	if n, err := audit.Redrive(ctx, b.JS, audit.Selection{Account: "1000", Limit: 1}, audit.Target{Sink: "email", To: "cfo@acme.example"}, false, nil); err != nil || n != 1 {
		t.Fatalf("ad-hoc: %d %v", n, err)
	}
	adhoc, err := r.GetMsg(ctx, 7)
	if err != nil || !strings.HasPrefix(adhoc.Subject, "aw.redrive.email.adhoc.") || adhoc.Header.Get("Aw-Redrive-To") != "cfo@acme.example" {
		t.Errorf("ad-hoc re-drive: %v %s %v", err, adhoc.Subject, adhoc.Header)
	}
}
