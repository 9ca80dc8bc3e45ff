package conform

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/accountwatch/accountwatch/chaos/internal/ledger"
)

var testConns = Conns{AP: "ap", BSS: "bss", CAMS: map[string]string{"s1": "cams-a"}}

func entry(seq int, op, provider, account, field, from, to string) Entry {
	e := Entry{Seq: seq, Op: op, Provider: provider, Account: account, Field: field}
	if from != "" {
		e.From = json.RawMessage(from)
	}
	if to != "" {
		e.To = json.RawMessage(to)
	}
	return e
}

func TestExpect(t *testing.T) {
	cams := entry(0, "set", "cams", "8613800000", "Websites", `["https://alibaba.com"]`, `["https://a.example","https://b.example"]`)
	cams.Space = "s1"
	otherSpace := cams
	otherSpace.Space = "s9"
	created := entry(0, "add", "bss", "1728240534507590", "", "", "")
	created.Source = "CreateAgAccount"
	cases := []struct {
		name string
		in   Entry
		// want is the expected event type, field, from and to; "" for none
		want, from, to string
	}{
		{"status with a space", entry(0, "set", "activeplatform", "431", "status", `"active"`, `"credit hold"`), "account.status.changed", "active", "credit hold"},
		{"debt moved by the step", entry(0, "set", "activeplatform", "431", "current_debt", `"24.0"`, `"124.0"`), "account.debt.changed", "24.0", "124.0"},
		{"debt as numbers", entry(0, "set", "activeplatform", "431", "current_debt", `24.0`, `100`), "account.debt.changed", "24.0", "100"},
		{"debt below the step", entry(0, "set", "activeplatform", "431", "current_debt", `"24.0"`, `"30"`), "", "", ""},
		{"debt from null is a baseline", entry(0, "set", "activeplatform", "431", "current_debt", `null`, `"300"`), "", "", ""},
		{"an unwatched field", entry(0, "set", "activeplatform", "431", "balance", `"453.2"`, `"1"`), "", "", ""},
		{"the same value", entry(0, "set", "bss", "1", "HostingStatus", `"TRUSTEESHIP"`, `"Trusteeship"`), "", "", ""},
		{"HostingStatus", entry(0, "set", "bss", "1", "HostingStatus", `"FREEZE"`, `"TRUSTEESHIP"`), "account.hosting_status.changed", "FREEZE", "TRUSTEESHIP"},
		{"CreditLimitStatus", entry(0, "set", "bss", "1", "CreditLimitStatus", `"Freeze"`, `"Thaw"`), "account.credit_limit_status.changed", "Freeze", "Thaw"},
		{"a profile list", cams, "phone_profile.changed", "https://alibaba.com", "https://a.example, https://b.example"},
		{"a space no connection reads", otherSpace, "", "", ""},
		{"an account added", entry(0, "add", "activeplatform", "5000", "", "", ""), "account.discovered", "", ""},
		{"an account onboarded", created, "account.created", "", ""},
		{"an account removed", entry(0, "remove", "bss", "1", "", "", ""), "account.removed", "", ""},
		{"a fault", entry(0, "fault", "bss", "", "", "", ""), "", "", ""},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.in.Seq = i + 1
			rows := Expect([]Entry{tc.in}, testConns, decimal.NewFromInt(50), nil)
			got := rows[0].Expected
			if tc.want == "" {
				if got != nil {
					t.Fatalf("expected no event, got %s", got)
				}
				if rows[0].Why == "" {
					t.Error("no reason given for expecting no event")
				}
				return
			}
			if got == nil || got.Type != tc.want || got.From != tc.from || got.To != tc.to || got.Seq != i+1 {
				t.Fatalf("got %v, want %s %s → %s", got, tc.want, tc.from, tc.to)
			}
		})
	}
}

func TestSettleAndPair(t *testing.T) {
	key := ledger.Key{Provider: ProviderBSS, Instance: "bss", Account: "7820164378544771"}
	created := entry(1, "add", "bss", key.Account, "", "", "")
	created.Source = "CreateAgAccount"
	status := entry(2, "set", "bss", key.Account, "HostingStatus", `"TRUSTEESHIP"`, `"FREEZE"`)
	credit := entry(3, "set", "bss", key.Account, "CreditLimitStatus", `"Thaw"`, `"Freeze"`)
	ev := func(seq uint64, typ, field, prev, cur string) ledger.Event {
		id := typ + field
		return ledger.Event{Seq: seq, MsgID: id, ID: id, Key: key, Type: typ, Field: field, Prev: prev, Cur: cur}
	}
	cases := []struct {
		name   string
		events []ledger.Event
		paired int
		typ    string // the onboarding's first expected type after Settle
	}{
		{"announced by awctl; two fields in the other order", []ledger.Event{
			ev(1, "account.created", "", "", ""), ev(2, "account.credit_limit_status.changed", "CreditLimitStatus", "thaw", "freeze"),
			ev(3, "account.hosting_status.changed", "HostingStatus", "trusteeship", "freeze")}, 3, "account.created"},
		{"listed first, then announced", []ledger.Event{
			ev(1, "account.discovered", "", "", ""), ev(2, "account.created", "", "", ""),
			ev(3, "account.hosting_status.changed", "HostingStatus", "trusteeship", "freeze")}, 3, "account.discovered"},
		{"listed and never announced: the created one is still owed", []ledger.Event{
			ev(1, "account.discovered", "", "", ""), ev(2, "account.hosting_status.changed", "HostingStatus", "trusteeship", "freeze")}, 2, "account.discovered"},
		{"not announced", []ledger.Event{ev(2, "account.hosting_status.changed", "HostingStatus", "trusteeship", "freeze")}, 1, "account.created"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rows := Settle(Expect([]Entry{created, status, credit}, testConns, decimal.NewFromInt(1), nil), tc.events)
			if rows[0].Expected.Type != tc.typ {
				t.Errorf("onboarding expects %s, want %s", rows[0].Expected.Type, tc.typ)
			}
			if got := len(Pair(Changes(rows), tc.events)); got != tc.paired {
				t.Errorf("%d changes paired, want %d", got, tc.paired)
			}
		})
	}
}

func TestCheckDegraded(t *testing.T) {
	at := time.Date(2026, 12, 1, 23, 0, 0, 0, time.UTC)
	conns := Conns{CAMS: map[string]string{"s1": "cams-a", "s2": "cams-b"}}
	outage := Entry{Seq: 1, Op: "fault", Provider: "cams", Action: "QueryPhoneBusinessProfile", Kind: "auth", Seconds: 8, At: at}
	throttle := Entry{Seq: 2, Op: "fault", Provider: "cams", Action: "*", Kind: "throttle", Seconds: 6, At: at.Add(time.Minute)}
	op := func(typ, inst, acct string, d time.Duration) ledger.Event {
		return ledger.Event{Type: typ, Key: ledger.Key{Provider: ProviderCAMS, Instance: inst, Account: acct}, Stored: at.Add(d)}
	}
	cases := []struct {
		name    string
		events  []ledger.Event
		problem string
	}{
		{"both connections degraded and recovered", []ledger.Event{
			op("poll.degraded", "cams-a", "1", 3*time.Second), op("poll.degraded", "cams-b", "2", 3*time.Second),
			op("poll.recovered", "cams-a", "1", 9*time.Second), op("poll.recovered", "cams-b", "2", 9*time.Second)}, ""},
		{"many accounts of one connection are not both connections", []ledger.Event{
			op("poll.degraded", "cams-a", "1", 3*time.Second), op("poll.degraded", "cams-a", "3", 3*time.Second),
			op("poll.recovered", "cams-a", "1", 9*time.Second), op("poll.recovered", "cams-a", "3", 9*time.Second)}, "poll.degraded of 1 of the 2"},
		{"never recovered", []ledger.Event{
			op("poll.degraded", "cams-a", "1", 3*time.Second), op("poll.degraded", "cams-b", "2", 3*time.Second),
			op("poll.recovered", "cams-a", "1", 9*time.Second)}, "never followed by poll.recovered"},
		{"degraded outside every fault", []ledger.Event{
			op("poll.degraded", "cams-a", "1", 3*time.Second), op("poll.degraded", "cams-b", "2", 3*time.Second),
			op("poll.recovered", "cams-a", "1", 9*time.Second), op("poll.recovered", "cams-b", "2", 9*time.Second),
			op("poll.degraded", "cams-a", "1", 10*time.Minute), op("poll.recovered", "cams-a", "1", 11*time.Minute)}, "outside every injected fault"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := CheckDegraded(Windows([]Entry{outage, throttle}, conns), tc.events, 20*time.Second)
			if tc.problem == "" {
				if len(got) > 0 {
					t.Fatalf("problems %v", got)
				}
				return
			}
			if len(got) == 0 || !strings.Contains(strings.Join(got, "\n"), tc.problem) {
				t.Fatalf("problems %v, want one naming %q", got, tc.problem)
			}
		})
	}
}

func TestWindowsEndAtAClear(t *testing.T) {
	at := time.Date(2026, 12, 2, 3, 0, 0, 0, time.UTC)
	conns := Conns{AP: "ap", CAMS: map[string]string{"s1": "cams-b", "s2": "cams-a", "s3": "cams-a"}}
	entries := []Entry{
		{Seq: 1, Op: "fault", Provider: "cams", Action: "*", Kind: "auth", Seconds: 45, At: at},
		{Seq: 2, Op: "clear_faults", At: at.Add(12 * time.Second)},
		{Seq: 3, Op: "fault", Provider: "activeplatform", Action: "list", Kind: "throttle", Seconds: 6, At: at.Add(time.Minute)},
	}
	ws := Windows(entries, conns)
	if len(ws) != 2 {
		t.Fatalf("%d windows, want 2", len(ws))
	}
	if got := ws[0].End.Sub(ws[0].Start); got != 12*time.Second || !ws[0].Outage || fmt.Sprint(ws[0].Conns) != "[cams-a cams-b]" {
		t.Errorf("cleared outage: %s long, outage %v, conns %v; want 12s, an outage of [cams-a cams-b]", got, ws[0].Outage, ws[0].Conns)
	}
	if got := ws[1].End.Sub(ws[1].Start); got != 6*time.Second || ws[1].Outage || fmt.Sprint(ws[1].Conns) != "[ap]" {
		t.Errorf("throttle: %s long, outage %v, conns %v; want 6s, no outage, [ap]", got, ws[1].Outage, ws[1].Conns)
	}
}
