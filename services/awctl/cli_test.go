package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/accountwatch/accountwatch/pkg/audit/audittest"
	"github.com/accountwatch/accountwatch/pkg/config/configtest"
	"github.com/accountwatch/accountwatch/pkg/deadletter"
	"github.com/accountwatch/accountwatch/pkg/deliverylog"
	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/event/eventtest"
	"github.com/accountwatch/accountwatch/pkg/eventbus"
	"github.com/accountwatch/accountwatch/pkg/eventbus/bustest"
	"github.com/accountwatch/accountwatch/pkg/roster"
	"github.com/accountwatch/accountwatch/pkg/sim/simtest"
	"github.com/accountwatch/accountwatch/pkg/watch"
)

func TestCLI(t *testing.T) {
	b := bustest.Start(t, bustest.Config(t, "127.0.0.1:0"))
	_, simURL := simtest.Start(t, simtest.Seed())
	t.Setenv("NATS_URL", b.ClientURL())
	t.Setenv("AW_NATS_NKEY_SEED_FILE", b.SeedFile(eventbus.RoleOperator))
	t.Setenv("AW_BSS_ENDPOINT", strings.TrimPrefix(simURL, "http://"))
	t.Setenv("AW_BSS_PROTOCOL", "http")
	t.Setenv("AW_BSS_ACCESS_KEY_ID", simtest.AccessKeyID)
	t.Setenv("AW_BSS_ACCESS_KEY_SECRET", simtest.AccessSecret)
	cases := []struct {
		name string
		args string
		code int
		out  string
	}{
		{"help", "help", 0, "awctl watch add"},
		{"add", "watch add --connection ap-main --provider activeplatform --account 1000123 --label team=emea --label tier=gold", 0, "watching ap-main/1000123"},
		{"add missing flag", "watch add --connection ap-main --account 1", 2, "required"},
		{"add bad provider", "watch add --connection ap-main --provider aws --account 1", 2, "unknown provider"},
		{"add bad label", "watch add --connection ap-main --provider activeplatform --account 1 --label nolabel", 2, "key=value"},
		{"list", "watch list", 0, "tier=gold"},
		{"list json", "watch list --output json", 0, `"account_id":"1000123"`},
		{"remove", "watch remove --connection ap-main --provider activeplatform --account 1000123", 0, "no longer watching"},
		{"remove again", "watch remove --connection ap-main --provider activeplatform --account 1000123", 1, "not on the watch list"},
		{"onboard without account-attr", "onboard --connection bss --email fresh@partner.example", 2, "--account-attr are required"},
		{"onboard", "onboard --connection bss --email fresh@partner.example --account-attr 1 --label manager=bob", 0, "created account"},
		{"onboard used email", "onboard --connection bss --email fresh@partner.example --account-attr 1", 3, "already exists"},
		{"onboard bad domain", "onboard --connection bss --email x@elsewhere.example --account-attr 1", 1, "EMAIL_DOMAIN_NOT_AUTHORIZED"},
		{"list after onboard", "watch list --connection bss", 0, "onboarding"},
		{"unknown", "frobnicate", 2, "unknown command"},
	}
	for _, c := range cases {
		var out, errb bytes.Buffer
		code := run(context.Background(), strings.Fields(c.args), &out, &errb)
		all := combined(t, c.name, c.args, code, &out, &errb)
		if code != c.code || !strings.Contains(all, c.out) {
			t.Errorf("%s: exit %d, want %d; output %q lacks %q", c.name, code, c.code, all, c.out)
		}
		if strings.Contains(all, simtest.AccessSecret) {
			t.Errorf("%s: secret in output", c.name)
		}
	}
}

// publishRoster publishes what the notifiers publish when they start.
func publishRoster(t *testing.T, b *eventbus.Bus) {
	t.Helper()
	ctx := context.Background()
	subs, _ := b.JS.KeyValue(ctx, eventbus.BucketSubscriptions)
	subs.Put(ctx, "ep_1", []byte(`{"id":"ep_1"}`))
	for _, e := range []roster.Entry{
		{Sink: "webhook", ReceiverBucket: eventbus.BucketSubscriptions},
		{Sink: "slack", Receivers: []string{"ops"}, Adhoc: deadletter.AddressSlackChannel},
		{Sink: "email", Receivers: []string{"default"}, Adhoc: deadletter.AddressEmail},
	} {
		if err := roster.Publish(ctx, b, e); err != nil {
			t.Fatal(err)
		}
	}
}

func TestDeadLettersAndSilences(t *testing.T) {
	b := bustest.Start(t, bustest.Config(t, "127.0.0.1:0"))
	t.Setenv("NATS_URL", b.ClientURL())
	t.Setenv("AW_NATS_NKEY_SEED_FILE", b.SeedFile(eventbus.RoleOperator))
	publishRoster(t, b)
	ev := eventtest.Status(t, eventtest.Meta("1000123", nil), "active", "credit_hold")
	msg, err := eventbus.Encode(ev)
	if err != nil {
		t.Fatal(err)
	}
	w := deadletter.NewWriter(b.JS)
	for i, rcv := range []string{"ops", "finance"} {
		e := deadletter.Entry{Sink: "slack", Receiver: rcv, Reason: "client_error", Err: errors.New("channel_not_found"), Attempts: 1, OriginSeq: uint64(i + 1)}
		if err := w.Write(context.Background(), e, msg.Subject, msg.Header, msg.Data); err != nil {
			t.Fatal(err)
		}
	}
	var silenceID string
	cases := []struct {
		name string
		args string
		code int
		out  string
	}{
		{"list", "dlq list", 0, "2 dead letters"},
		{"list one receiver", "dlq list --sink slack --receiver finance --output json", 0, `"receiver":"finance"`},
		{"list since future", "dlq list --since 2099-01-01T00:00:00Z", 0, "0 dead letters"},
		{"bad since", "dlq list --since yesterday", 2, "want a duration"},
		{"redrive needs a selection", "dlq redrive", 2, "--seq N"},
		{"dry run", "dlq redrive --all --receiver ops --dry-run", 0, "would re-drive 1 letters"},
		{"redrive one", "dlq redrive --seq 1", 0, "1 re-driven, 0 failed"},
		{"redrive gone", "dlq redrive --seq 1", 1, "dead letter not found"},
		{"redrive to a receiver that is gone", "dlq redrive --seq 2", 2, `receiver: sink slack has no receiver "finance"`},
		{"one left", "dlq list", 0, "1 dead letters"},
		{"the refused one is kept", "dlq list --receiver finance", 0, "finance"},
		{"silence add", "silence add --matcher account=1000123 --matcher severity=critical --duration 2h --comment maintenance --author ops", 0, "account=1000123,severity=critical until"},
		{"silence bad matcher", "silence add --matcher account~1 --duration 1h --comment x", 2, "matcher"},
		{"silence no end", "silence add --matcher account=1 --comment x", 2, "--duration or --until"},
		{"silence no comment", "silence add --matcher account=1 --duration 1h", 2, "created_by, comment"},
		{"silence list", "silence list", 0, "active"},
		{"expire unknown", "silence expire deadbeef", 1, "not found"},
	}
	for _, c := range cases {
		var out, errb bytes.Buffer
		code := run(context.Background(), strings.Fields(c.args), &out, &errb)
		all := combined(t, c.name, c.args, code, &out, &errb)
		if code != c.code || !strings.Contains(all, c.out) {
			t.Errorf("%s: exit %d, want %d; output %q lacks %q", c.name, code, c.code, all, c.out)
		}
		if c.name == "silence add" {
			silenceID = strings.TrimSuffix(strings.Fields(out.String())[1], ":")
		}
	}
	r, err := b.JS.Stream(context.Background(), eventbus.StreamRedrive)
	if err != nil {
		t.Fatal(err)
	}
	if info, _ := r.Info(context.Background()); info.State.Msgs != 1 {
		t.Errorf("re-drive stream holds %d messages, want 1", info.State.Msgs)
	}
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"silence", "expire", silenceID}, &out, &errb); code != 0 {
		t.Fatalf("expire %s: %d %s", silenceID, code, errb.String())
	}
	out.Reset()
	run(context.Background(), []string{"silence", "list"}, &out, &errb)
	if !strings.Contains(out.String(), "0 silences") {
		t.Errorf("expired silence still listed without --all: %s", out.String())
	}
	out.Reset()
	run(context.Background(), []string{"silence", "list", "--all"}, &out, &errb)
	if !strings.Contains(out.String(), "expired") {
		t.Errorf("--all does not show the expired silence: %s", out.String())
	}
}

func TestAuditCommands(t *testing.T) {
	b := bustest.Start(t, bustest.Config(t, "127.0.0.1:0"))
	t.Setenv("NATS_URL", b.ClientURL())
	t.Setenv("AW_NATS_NKEY_SEED_FILE", b.SeedFile(eventbus.RoleOperator))
	// Observed after the stream was created, with the poller's records:
	// a log that verifies.
	publishRoster(t, b)
	m := eventtest.Meta("1000123", nil)
	m.ObservedAt = time.Now().UTC()
	first := eventtest.Status(t, m, "active", "credit_hold")
	m.Revision, m.Chain = 1, event.Chain{Seq: 2, Prev: first.Hash()}
	second := eventtest.Debt(t, m, "0", "512.40", "500", "above")
	om := eventtest.Meta("1500000000000001", nil)
	om.Provider, om.Instance, om.ObservedAt = event.ProviderAlibabaBSS, "bss-main", m.ObservedAt
	other := eventtest.Must(t)(event.HostingStatusChanged(om, event.EnumValue(""), event.EnumValue("FREEZE")))
	if _, err := eventbus.NewPublisher(b.JS).PublishAll(context.Background(), []*event.Event{first, second, other}); err != nil {
		t.Fatal(err)
	}
	audittest.RecordHeads(t, b, first, second, other)
	file := filepath.Join(t.TempDir(), "export.csv")
	cases := []struct {
		name, args string
		code       int
		out        string
	}{
		{"replay all as jsonl", "replay", 0, `"id":"` + other.ID() + `"`},
		{"replay one account", "replay --account 1000123 --format table", 0, "crossed above 500.00 USD"},
		{"replay a type", "replay --type account.hosting_status.changed --format csv", 0, other.ID()},
		{"replay critical to a file", "replay --min-severity critical --format csv --output " + file, 0, "events"},
		{"replay bad severity", "replay --min-severity loud", 2, "severity"},
		{"replay bad range", "replay --from-seq 5 --to-seq 2", 2, "sequence range"},
		{"replay bad format", "replay --format xml", 2, "format"},
		{"redrive dry run", "redrive --account 1000123 --sink webhook --receiver ep_1 --dry-run", 0, "dry run: 2 events would go to webhook/ep_1"},
		{"redrive", "redrive --account 1000123 --sink slack --receiver ops", 0, "2 events re-driven to slack/ops, marked replayed"},
		{"redrive needs a receiver", "redrive --account 1000123 --sink slack", 2, "--receiver"},
		{"redrive to an address", "redrive --account 1000123 --sink email --to cfo@acme.example", 0, "2 events re-driven to email cfo@acme.example"},
		{"redrive to an unknown sink", "redrive --account 1000123 --sink pager --receiver ops", 2, `sink: "pager" is not a sink that has started (known: email, slack, webhook)`},
		{"redrive to an unknown receiver", "redrive --account 1000123 --sink slack --receiver nobody", 2, `receiver: sink slack has no receiver "nobody"`},
		{"redrive to a deleted endpoint", "redrive --account 1000123 --sink webhook --receiver ep_2", 2, "receiver: sink webhook has no receiver"},
		{"redrive to a webhook URL", "redrive --account 1000123 --sink webhook --to http://127.0.0.1:9/", 2, "to: sink webhook takes no ad-hoc destination"},
		{"redrive to a bad address", "redrive --account 1000123 --sink email --to cfo", 2, "to: \"cfo\" is not an email address"},
		{"redrive to a bad channel", "redrive --account 1000123 --sink slack --to #Ops!", 2, "not a Slack channel"},
		{"verify", "verify", 0, "intact"},
		{"verify json", "verify --output json", 0, `"accounts":2`},
		{"timeline", "timeline --provider activeplatform --instance ap-main --account 1000123", 0, "Acme 1000123"},
		{"timeline needs an account", "timeline --provider activeplatform", 2, "required"},
	}
	for _, c := range cases {
		var out, errb bytes.Buffer
		code := run(context.Background(), strings.Fields(c.args), &out, &errb)
		all := combined(t, c.name, c.args, code, &out, &errb)
		if code != c.code || !strings.Contains(all, c.out) {
			t.Errorf("%s: exit %d, want %d; output %q lacks %q", c.name, code, c.code, all, c.out)
		}
	}
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"redrive", "--account", "1000123", "--sink", "email", "--to", "cfo@acme.example\r\nBcc: all@acme.example"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), "control character") {
		t.Errorf("an address with CRLF: exit %d %s", code, errb.String())
	}
	rs, _ := b.JS.Stream(context.Background(), eventbus.StreamRedrive)
	if info, _ := rs.Info(context.Background()); info.State.Msgs != 4 {
		t.Errorf("AW_REDRIVE holds %d messages, want the 4 of the valid re-drives", info.State.Msgs)
	}
	csvOut, _ := os.ReadFile(file)
	if !strings.Contains(string(csvOut), first.ID()) || strings.Contains(string(csvOut), "info") {
		t.Errorf("critical export:\n%s", csvOut)
	}
}

// TestTablesEscapeControlCharacters: names from upstream with CR, LF, tabs
// and escape sequences are shown escaped, one row per event.
func TestTablesEscapeControlCharacters(t *testing.T) {
	b := bustest.Start(t, bustest.Config(t, "127.0.0.1:0"))
	t.Setenv("NATS_URL", b.ClientURL())
	t.Setenv("AW_NATS_NKEY_SEED_FILE", b.SeedFile(eventbus.RoleOperator))
	m := eventtest.Meta("1000123", nil)
	m.AccountName = "Acme\r\n9\t2026-01-01 00:00:00\tforged\x1b[2J\x1b]0;owned\a"
	if _, err := eventbus.NewPublisher(b.JS).PublishAll(context.Background(), []*event.Event{eventtest.Status(t, m, "active", "credit_hold")}); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"replay", "--format", "table"}, {"timeline", "--provider", "activeplatform", "--instance", "ap-main", "--account", "1000123"}} {
		var out, errb bytes.Buffer
		if code := run(context.Background(), args, &out, &errb); code != 0 {
			t.Fatalf("%v: exit %d %s", args, code, errb.String())
		}
		if strings.ContainsAny(out.String(), "\r\x1b\a") || strings.Count(out.String(), "\n") != 2 || !strings.Contains(out.String(), `Acme\r\n9\t2026`) {
			t.Errorf("%v:\n%q", args, out.String())
		}
	}
}

// combined is what a command wrote, for a test to look into: with --output
// json, standard output must be one valid JSON document on its own (then
// compacted, so that a test looks for "key":"value"), and standard error
// is added after it.
func combined(t *testing.T, name, args string, code int, out, errb *bytes.Buffer) string {
	t.Helper()
	if !strings.Contains(args, "--output json") || code != 0 {
		return out.String() + errb.String()
	}
	var c bytes.Buffer
	if err := json.Compact(&c, out.Bytes()); err != nil {
		t.Errorf("%s: --output json wrote what is not JSON (%v):\n%s", name, err, out.String())
		return out.String() + errb.String()
	}
	return c.String() + "\n" + errb.String()
}

// TestRefusesWhatDoesNotExist: a connection no poller announced, a
// provider that is not the connection's, a sink or receiver that is not in
// the roster, an output that is no format: each is a usage error (exit 2)
// whose message names what there is; and --output json is one JSON
// document on standard output alone.
func TestRefusesWhatDoesNotExist(t *testing.T) {
	b := bustest.Start(t, bustest.Config(t, "127.0.0.1:0"))
	t.Setenv("NATS_URL", b.ClientURL())
	t.Setenv("AW_NATS_NKEY_SEED_FILE", b.SeedFile(eventbus.RoleOperator))
	ws, err := watch.Open(context.Background(), b.JS)
	if err != nil {
		t.Fatal(err)
	}
	if err := ws.Announce(context.Background(), []watch.Connection{
		{Name: "ap-main", Provider: event.ProviderActivePlatform, Interval: time.Minute},
		{Name: "bss-main", Provider: event.ProviderAlibabaBSS, Interval: time.Minute},
	}); err != nil {
		t.Fatal(err)
	}
	publishRoster(t, b)
	bustest.Publish(t, b, eventtest.Status(t, eventtest.Meta("1000123", nil), "active", "credit_hold"))
	t.Setenv("USER", "") // a container has none: --author is optional all the same
	cases := []struct {
		name string
		args string
		code int
		out  string
	}{
		{"an unknown connection", "watch add --connection nope --provider activeplatform --account 1", 2, `unknown connection "nope": the pollers have ap-main (activeplatform), bss-main (alibaba-bss)`},
		{"another provider's connection", "watch add --connection bss-main --provider activeplatform --account 1", 2, "connection bss-main is of provider alibaba-bss, not activeplatform"},
		{"a known one", "watch add --connection ap-main --provider activeplatform --account 1", 0, "watching ap-main/1"},
		{"list an unknown connection", "watch list --connection nope", 2, "the pollers have ap-main"},
		{"onboard to a connection not of BSS", "onboard --connection ap-main --email a@partner.example --account-attr 1", 2, "is of provider activeplatform, not alibaba-bss"},
		{"a timeline of a mismatch", "timeline --provider alibaba-bss --instance ap-main --account 1", 2, "is of provider activeplatform"},
		{"a replay of a mismatch", "replay --provider alibaba-bss --instance ap-main", 2, "is of provider activeplatform"},
		{"a replay of a removed connection", "replay --provider activeplatform --instance ap-old --format table", 0, "0 events"},
		{"redrive to an unknown receiver", "redrive --account 1000123 --sink slack --receiver nobody", 2, `has no receiver "nobody" (its receivers: ops)`},
		{"redrive to an unknown endpoint", "redrive --account 1000123 --sink webhook --receiver ep_9", 2, "(its receivers: ep_1)"},
		{"redrive to an unknown sink", "redrive --account 1000123 --sink sms --receiver ops", 2, "known: email, slack, webhook"},
		{"dead letters of an unknown receiver", "dlq list --sink slack --receiver opps", 2, `has no receiver "opps" (its receivers: ops)`},
		{"dead letters of an unknown sink", "dlq list --sink sms", 2, "known: email, slack, webhook"},
		{"re-drive letters of an unknown receiver", "dlq redrive --all --sink slack --receiver opps", 2, "(its receivers: ops)"},
		{"deliveries of an unknown receiver", "deliveries --sink email --receiver finance", 2, "(its receivers: default)"},
		{"an output that is no format", "watch list --output yaml", 2, "want table or json"},
		{"json alone: watch list", "watch list --output json", 0, `[{"provider":"activeplatform","instance":"ap-main","account_id":"1"`},
		{"json alone: an empty list", "dlq list --output json", 0, "[]\n0 dead letters"},
		{"json alone: a dry run", "dlq redrive --all --dry-run --output json", 0, "[]\ndry run: would re-drive 0 letters"},
		{"json alone: silences", "silence list --output json", 0, "[]"},
		{"a silence without --author or $USER", "silence add --matcher account=1 --duration 1h --comment migration", 0, "silence "},
	}
	t.Setenv("AW_BSS_ACCESS_KEY_ID", "LTAIx")
	t.Setenv("AW_BSS_ACCESS_KEY_SECRET", "never-used")
	bustest.Provision(t, b, deliverylog.StreamConfig(b.Cfg, time.Hour))
	for _, c := range cases {
		var out, errb bytes.Buffer
		code := run(context.Background(), strings.Fields(c.args), &out, &errb)
		all := combined(t, c.name, c.args, code, &out, &errb)
		if code != c.code || !strings.Contains(all, c.out) {
			t.Errorf("%s: exit %d, want %d; output %q lacks %q", c.name, code, c.code, all, c.out)
		}
	}
	var out, errb bytes.Buffer
	run(context.Background(), strings.Fields("silence list --output json"), &out, &errb)
	if !strings.Contains(out.String(), `"created_by": "awctl@`) {
		t.Errorf("the silence's author without --author or $USER: %s", out.String())
	}
}

// TestHelpListsEveryKey: --help names every key awctl reads, with its
// default and meaning, and connects to nothing.
func TestHelpListsEveryKey(t *testing.T) {
	t.Setenv("NATS_URL", "nats://127.0.0.1:1")
	for _, arg := range []string{"--help", "-h", "help"} {
		var out, errb bytes.Buffer
		if code := run(context.Background(), []string{arg}, &out, &errb); code != 0 || errb.Len() > 0 {
			t.Fatalf("%s: exit %d, %s", arg, code, errb.String())
		}
		configtest.Help(t, &settings{}, out.String())
	}
}
