package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/accountwatch/accountwatch/pkg/alibaba"
	"github.com/accountwatch/accountwatch/pkg/config"
	"github.com/accountwatch/accountwatch/pkg/describe"
	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/eventbus"
	"github.com/accountwatch/accountwatch/pkg/onboard"
	"github.com/accountwatch/accountwatch/pkg/state"
	"github.com/accountwatch/accountwatch/pkg/watch"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailed  = 1
	exitUsage   = 2
	exitExisted = 3 // onboard: the login email was already used
)

const usage = `awctl administers accountwatch.

  awctl watch add    --connection NAME --provider P --account ID [--space ID] [--label k=v ...]
  awctl watch remove --connection NAME --provider P --account ID
  awctl watch list   [--connection NAME] [--output table|json]
  awctl onboard      --connection NAME --email ADDRESS --account-attr A [--enterprise-name N] [--nation-code CC]
                     [--province P] [--city C] [--postcode Z] [--label k=v ...]
  awctl dlq list     [--sink S] [--receiver R] [--since 24h|TIME] [--until …] [--output table|json]
  awctl dlq redrive  (--seq N ... | --all) [--sink S] [--receiver R] [--since …] [--until …] [--dry-run]
  awctl silence add  --matcher NAME=VALUE ... (--duration 2h | --until TIME) --comment WHY [--author WHO]
  awctl silence list [--all] [--output table|json]
  awctl silence expire ID
  awctl replay       [--since 24h|TIME] [--until …] [--from-seq N] [--to-seq N] [--provider P] [--instance I]
                     [--account A] [--type T ...] [--min-severity S] [--limit N] [--format jsonl|csv|table] [--output FILE]
  awctl redrive      --sink webhook|slack|email (--receiver R | --to '#channel'|ADDRESS) [selection flags as replay] [--dry-run]
  awctl verify       [--checkpoint FILE ...] [--key PUBFILE ...] [--no-state] [--no-stored-checkpoint]
                     [--clock-skew 5m] [--stream AW_EVENTS] [--output table|json] [--heads]
                     (exit 1 when the audit log is not intact, naming each problem)
  awctl checkpoint export [--seq N] [--output FILE] [--key PUBFILE]   (a signed checkpoint, to keep outside NATS)
  awctl checkpoint keygen --out FILE [--pub FILE]                     (the auditor's signing key)
  awctl provision    [--delivery-log-retention 720h]                  (as admin: create or check streams and buckets)
  awctl credentials  --dir DIR [--owner UID:GID]                      (an nkey per role, the server's auth include, the signing key)
  awctl timeline     --provider P --instance I --account A [--format table|csv|jsonl]
  awctl deliveries   [--event ID | --seq N] [--sink S] [--receiver R] [--outcome O] [--since 24h|TIME] [--limit N] [--output table|json]

Providers: activeplatform, alibaba-bss, alibaba-cams.
Environment: NATS_URL (default nats://127.0.0.1:4222) and the AW_NATS_* auth keys (by
default, from the repository root, the make run stack's data/credentials/awctl/nats.nk, and
data/credentials/admin/nats.nk for provision); AW_CHECKPOINT_PUBLIC_KEY_FILE for --key;
onboard also reads AW_BSS_ENDPOINT, AW_BSS_PROTOCOL, AW_BSS_ACCESS_KEY_ID,
AW_BSS_ACCESS_KEY_SECRET (or AW_BSS_ACCESS_KEY_SECRET_FILE).
`

// p makes a cell or a line of what people read safe to print (no control
// character from stored data reaches the terminal).
var p = describe.Printable

type settings struct {
	eventbus.Config
	BSSEndpoint  string `envconfig:"BSS_ENDPOINT" default:"business.aliyuncs.com"`
	BSSProtocol  string `envconfig:"BSS_PROTOCOL" default:"https"`
	BSSKeyID     string `envconfig:"BSS_ACCESS_KEY_ID"`
	BSSKeySecret string `envconfig:"BSS_ACCESS_KEY_SECRET" secret:"true"`
}

type labelFlag map[string]string

func (l labelFlag) String() string { return fmt.Sprint(map[string]string(l)) }
func (l labelFlag) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("label %q: want key=value", v)
	}
	l[k] = val
	return nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	var s settings
	if err := config.Load(&s); err != nil {
		fmt.Fprintln(stderr, "awctl:", err)
		return exitUsage
	}
	if s.URL == "" {
		s.URL = "nats://127.0.0.1:4222"
	}
	s.Name, s.Role = "awctl", eventbus.RoleOperator
	if args[0] == "provision" {
		s.Role = eventbus.RoleAdmin
	}
	devDefaults(&s)
	cmd := strings.Join(args[:min(2, len(args))], " ")
	switch cmd {
	case "checkpoint export", "checkpoint keygen":
		return checkpointCmd(ctx, s, args[1], args[2:], stdout, stderr)
	case "watch add", "watch remove", "watch list":
		return watchCmd(ctx, s, args[1], args[2:], stdout, stderr)
	case "dlq list", "dlq redrive":
		return dlqCmd(ctx, s, args[1], args[2:], stdout, stderr)
	case "silence add", "silence list", "silence expire":
		return silenceCmd(ctx, s, args[1], args[2:], stdout, stderr)
	}
	switch args[0] {
	case "onboard":
		return onboardCmd(ctx, s, args[1:], stdout, stderr)
	case "replay":
		return replayCmd(ctx, s, args[1:], stdout, stderr)
	case "verify":
		return verifyCmd(ctx, s, args[1:], stdout, stderr)
	case "provision":
		return provisionCmd(ctx, s, args[1:], stdout, stderr)
	case "credentials":
		return credentialsCmd(args[1:], stdout, stderr)
	case "redrive":
		return redriveCmd(ctx, s, args[1:], stdout, stderr)
	case "timeline":
		return timelineCmd(ctx, s, args[1:], stdout, stderr)
	case "deliveries":
		return deliveriesCmd(ctx, s, args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "awctl: unknown command %q\n\n%s", strings.Join(args, " "), usage)
	return exitUsage
}

func connect(ctx context.Context, s settings, stderr io.Writer) (*eventbus.Bus, bool) {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	bus, err := eventbus.Connect(cctx, s.Config)
	if err != nil {
		fmt.Fprintln(stderr, "awctl:", err, "(is the stack running? `make run` starts one)")
		return nil, false
	}
	return bus, true
}

func watchCmd(ctx context.Context, s settings, verb string, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("awctl watch "+verb, flag.ContinueOnError)
	fs.SetOutput(stderr)
	conn := fs.String("connection", "", "connection (instance) name")
	provider := fs.String("provider", "", "provider of the connection")
	account := fs.String("account", "", "account id (phone number for CAMS)")
	space := fs.String("space", "", "CAMS CustSpaceId")
	output := fs.String("output", "table", "list output: table or json")
	labels := labelFlag{}
	fs.Var(labels, "label", "label key=value (repeatable)")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if verb != "list" && (*conn == "" || *account == "" || *provider == "") {
		fmt.Fprintf(stderr, "awctl watch %s: --connection, --provider and --account are required\n", verb)
		return exitUsage
	}
	bus, ok := connect(ctx, s, stderr)
	if !ok {
		return exitFailed
	}
	defer bus.Close()
	ws, err := watch.Open(ctx, bus.JS)
	if err != nil {
		fmt.Fprintln(stderr, "awctl:", err)
		return exitFailed
	}
	switch verb {
	case "add":
		e := watch.Entry{Provider: event.Provider(*provider), Instance: *conn, AccountID: *account, Space: *space, Labels: labels, Source: watch.SourceCLI}
		if err := ws.Put(ctx, e); err != nil {
			fmt.Fprintln(stderr, "awctl:", err)
			return exitUsage
		}
		fmt.Fprintf(stdout, "watching %s/%s\n", *conn, *account)
	case "remove":
		err := ws.Remove(ctx, event.Provider(*provider), *conn, *account)
		if errors.Is(err, watch.ErrNotFound) {
			fmt.Fprintln(stderr, "awctl:", err)
			return exitFailed
		}
		if err != nil {
			fmt.Fprintln(stderr, "awctl:", err)
			return exitFailed
		}
		fmt.Fprintf(stdout, "no longer watching %s/%s\n", *conn, *account)
	case "list":
		list, err := ws.List(ctx, *conn)
		if err != nil {
			fmt.Fprintln(stderr, "awctl:", err)
			return exitFailed
		}
		sort.Slice(list, func(i, j int) bool {
			if list[i].Instance != list[j].Instance {
				return list[i].Instance < list[j].Instance
			}
			return list[i].AccountID < list[j].AccountID
		})
		if *output == "json" {
			enc := json.NewEncoder(stdout)
			for _, e := range list {
				enc.Encode(e)
			}
			return exitOK
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "CONNECTION\tPROVIDER\tACCOUNT\tSOURCE\tLABELS\tADDED")
		for _, e := range list {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", p(e.Instance), p(string(e.Provider)), p(e.AccountID), p(e.Source), p(fmtLabels(e.Labels)), e.AddedAt.Format(time.RFC3339))
		}
		tw.Flush()
		fmt.Fprintf(stdout, "%d accounts\n", len(list))
	}
	return exitOK
}

func fmtLabels(l map[string]string) string {
	keys := make([]string, 0, len(l))
	for k := range l {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + l[k]
	}
	return strings.Join(parts, ",")
}

func onboardCmd(ctx context.Context, s settings, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("awctl onboard", flag.ContinueOnError)
	fs.SetOutput(stderr)
	conn := fs.String("connection", "", "BSS connection (instance) the new account is watched under")
	req := alibaba.AgAccount{}
	fs.StringVar(&req.LoginEmail, "email", "", "login email of the new member account")
	fs.StringVar(&req.EnterpriseName, "enterprise-name", "", "enterprise name")
	fs.StringVar(&req.NationCode, "nation-code", "", "country code, e.g. CN")
	fs.StringVar(&req.ProvinceName, "province", "", "province")
	fs.StringVar(&req.CityName, "city", "", "city")
	fs.StringVar(&req.Postcode, "postcode", "", "postal code")
	fs.StringVar(&req.AccountAttr, "account-attr", "", "account attribute, as the console's Security Settings show it (e.g. 1); required")
	labels := labelFlag{}
	fs.Var(labels, "label", "label key=value (repeatable)")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if *conn == "" || req.LoginEmail == "" || req.AccountAttr == "" {
		// CreateAgAccount requires LoginEmail and AccountAttr: say so before calling it.
		fmt.Fprintln(stderr, "awctl onboard: --connection, --email and --account-attr are required (CreateAgAccount requires LoginEmail and AccountAttr)")
		return exitUsage
	}
	if s.BSSKeyID == "" || s.BSSKeySecret == "" {
		fmt.Fprintln(stderr, "awctl onboard: AW_BSS_ACCESS_KEY_ID and AW_BSS_ACCESS_KEY_SECRET (or _FILE) are required")
		return exitUsage
	}
	bss, err := alibaba.NewBSS(alibaba.Config{AccessKeyID: s.BSSKeyID, AccessKeySecret: s.BSSKeySecret, Endpoint: s.BSSEndpoint, Protocol: s.BSSProtocol})
	if err != nil {
		fmt.Fprintln(stderr, "awctl:", err)
		return exitUsage
	}
	bus, ok := connect(ctx, s, stderr)
	if !ok {
		return exitFailed
	}
	defer bus.Close()
	st, err := state.Open(ctx, bus.JS)
	if err != nil {
		fmt.Fprintln(stderr, "awctl:", err)
		return exitFailed
	}
	ws, err := watch.Open(ctx, bus.JS)
	if err != nil {
		fmt.Fprintln(stderr, "awctl:", err)
		return exitFailed
	}
	res, err := onboard.Onboard(ctx, bss, st, ws, *conn, req, labels)
	if err != nil {
		fmt.Fprintln(stderr, "awctl onboard:", err)
		return exitFailed
	}
	switch {
	case !res.Created:
		fmt.Fprintf(stdout, "already exists: %s is account %s (nothing created, nothing emitted)\n", req.LoginEmail, res.UID)
		return exitExisted
	case res.Reconciled && res.EventID == "":
		fmt.Fprintf(stdout, "account %s was created by an earlier try and announced then; watched under %s\n", res.UID, *conn)
		return exitOK
	case res.Reconciled:
		fmt.Fprintf(stdout, "created account %s (by an earlier try that did not finish); event %s; watched under %s\n", res.UID, res.EventID, *conn)
		return exitOK
	}
	fmt.Fprintf(stdout, "created account %s; event %s; watched under %s\n", res.UID, res.EventID, *conn)
	return exitOK
}
