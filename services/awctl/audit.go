package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/accountwatch/accountwatch/pkg/audit"
	"github.com/accountwatch/accountwatch/pkg/config"
	"github.com/accountwatch/accountwatch/pkg/deadletter"
	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/eventbus"
	"github.com/accountwatch/accountwatch/pkg/roster"
)

// progressBar draws "[#####.....] 45% 450000/1000000" on a terminal, at most
// ten times a second; elsewhere it draws nothing.
type progressBar struct {
	w    io.Writer
	mu   sync.Mutex
	last time.Time
	on   bool
}

func newProgressBar(w io.Writer) *progressBar {
	f, ok := w.(*os.File)
	if !ok {
		return &progressBar{w: w}
	}
	st, err := f.Stat()
	return &progressBar{w: w, on: err == nil && st.Mode()&os.ModeCharDevice != 0}
}

func (p *progressBar) update(done, total uint64) {
	if !p.on || total == 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if time.Since(p.last) < 100*time.Millisecond && done < total {
		return
	}
	p.last = time.Now()
	const width = 30
	n := int(done * width / total)
	fmt.Fprintf(p.w, "\r[%s%s] %3d%% %d/%d", strings.Repeat("#", n), strings.Repeat(".", width-n), done*100/total, done, total)
}

func (p *progressBar) finish() {
	if p.on {
		fmt.Fprintln(p.w)
	}
}

type typeFlag []event.Type

func (t *typeFlag) String() string { return fmt.Sprint(*t) }
func (t *typeFlag) Set(v string) error {
	if !strings.HasPrefix(v, "com.accountwatch.") {
		v = "com.accountwatch." + v
	}
	*t = append(*t, event.Type(v))
	return nil
}

// selectionFlags adds the replay selection's flags to fs; the returned func
// reads them once fs is parsed.
func selectionFlags(fs *flag.FlagSet) func() (audit.Selection, error) {
	since := fs.String("since", "", "events stored since: a duration (24h) or an RFC 3339 time")
	until := fs.String("until", "", "events stored before: a duration ago or an RFC 3339 time")
	from := fs.Uint64("from-seq", 0, "first stream sequence")
	to := fs.Uint64("to-seq", 0, "last stream sequence")
	provider := fs.String("provider", "", "provider")
	instance := fs.String("instance", "", "connection (instance)")
	account := fs.String("account", "", "account id")
	severity := fs.String("min-severity", "", "info, warning or critical")
	limit := fs.Int("limit", 0, "at most this many events")
	var types typeFlag
	fs.Var(&types, "type", "event type, e.g. account.status.changed (repeatable)")
	return func() (audit.Selection, error) {
		now := time.Now()
		sel := audit.Selection{FromSeq: *from, ToSeq: *to, Provider: event.Provider(*provider), Instance: *instance, Account: *account, Types: types, Limit: *limit}
		var err error
		if sel.Since, err = config.ParseTime(*since, now); err != nil {
			return sel, fmt.Errorf("--since %w", err)
		}
		if sel.Until, err = config.ParseTime(*until, now); err != nil {
			return sel, fmt.Errorf("--until %w", err)
		}
		if *severity != "" {
			if sel.MinSeverity, err = event.ParseSeverity(*severity); err != nil {
				return sel, fmt.Errorf("--min-severity: %w", err)
			}
		}
		return sel, sel.Validate()
	}
}

func replayCmd(ctx context.Context, s settings, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("awctl replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	selection := selectionFlags(fs)
	format := fs.String("format", audit.FormatJSONL, "jsonl (CloudEvents), csv or table")
	out := fs.String("output", "", "write to this file instead of standard output")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	sel, err := selection()
	if err != nil {
		fmt.Fprintln(stderr, "awctl replay:", err)
		return exitUsage
	}
	dst := stdout
	if *out != "" {
		f, err := os.Create(*out)
		if err != nil {
			fmt.Fprintln(stderr, "awctl replay:", err)
			return exitFailed
		}
		defer f.Close()
		dst = f
	}
	w, err := audit.NewWriter(*format, dst)
	if err != nil {
		fmt.Fprintln(stderr, "awctl replay:", err)
		return exitUsage
	}
	bus, ok := connect(ctx, s, stderr)
	if !ok {
		return exitFailed
	}
	defer bus.Close()
	if err := checkSelection(ctx, bus, sel); err != nil {
		fmt.Fprintln(stderr, "awctl replay:", err)
		return exitOf(err)
	}
	bar := newProgressBar(stderr)
	n := 0
	err = audit.Replay(ctx, bus.JS, sel, bar.update, func(r *audit.Record) error {
		n++
		return w.Write(r)
	})
	bar.finish()
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		fmt.Fprintln(stderr, "awctl replay:", err)
		return exitFailed
	}
	if *out != "" || *format == audit.FormatTable {
		fmt.Fprintf(stderr, "%d events\n", n)
	}
	return exitOK
}

// checkSelection refuses a selection whose provider and connection
// disagree, as the pollers announced them. An unknown connection is
// allowed: the audit log keeps the history of connections since removed.
func checkSelection(ctx context.Context, bus *eventbus.Bus, sel audit.Selection) error {
	if sel.Provider == "" || sel.Instance == "" {
		return nil
	}
	err := checkConnection(ctx, bus, sel.Provider, sel.Instance)
	if err != nil && strings.Contains(err.Error(), "is of provider") {
		return err
	}
	if err != nil && !errors.Is(err, errUsage) {
		return err
	}
	return nil
}

// redriveCmd sends a selection to one receiver of one sink, marked replayed.
func redriveCmd(ctx context.Context, s settings, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("awctl redrive", flag.ContinueOnError)
	fs.SetOutput(stderr)
	selection := selectionFlags(fs)
	sinkName := fs.String("sink", "", "sink: webhook, slack or email")
	receiver := fs.String("receiver", "", "the sink's receiver (a webhook endpoint id, a Slack or email receiver)")
	to := fs.String("to", "", "instead of a receiver: a Slack channel or an email address")
	dry := fs.Bool("dry-run", false, "show what would be sent, send nothing")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	sel, err := selection()
	if err == nil && (*sinkName == "" || *receiver == "" && *to == "") {
		err = errors.New("--sink and --receiver (or --to) are required")
	}
	if err != nil {
		fmt.Fprintln(stderr, "awctl redrive:", err)
		return exitUsage
	}
	bus, ok := connect(ctx, s, stderr)
	if !ok {
		return exitFailed
	}
	defer bus.Close()
	receivers, err := roster.Open(ctx, bus)
	if err == nil {
		err = deadletter.CheckTarget(ctx, receivers, *sinkName, *receiver, *to)
	}
	if err == nil {
		err = checkSelection(ctx, bus, sel)
		if errors.Is(err, errUsage) {
			fmt.Fprintln(stderr, "awctl redrive:", err)
			return exitUsage
		}
	}
	if err != nil {
		fmt.Fprintln(stderr, "awctl redrive:", err)
		if errors.Is(err, deadletter.ErrInvalidTarget) {
			return exitUsage
		}
		return exitFailed
	}
	target := audit.Target{Sink: *sinkName, Receiver: *receiver, To: *to}
	where := *sinkName + "/" + *receiver
	if *to != "" {
		where = *sinkName + " " + *to
	}
	n, err := audit.Redrive(ctx, bus.JS, sel, target, *dry, func(r *audit.Record) {
		if *dry {
			fmt.Fprintf(stdout, "would send seq %d, event %s\n", r.Seq, p(r.Raw.Header.Get("ce-id")))
		}
	})
	if err != nil {
		fmt.Fprintln(stderr, "awctl redrive:", err)
		if errors.Is(err, audit.ErrInvalid) {
			return exitUsage
		}
		return exitFailed
	}
	if *dry {
		fmt.Fprintf(stdout, "dry run: %d events would go to %s, marked replayed\n", n, where)
	} else {
		fmt.Fprintf(stdout, "%d events re-driven to %s, marked replayed\n", n, where)
	}
	return exitOK
}

func timelineCmd(ctx context.Context, s settings, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("awctl timeline", flag.ContinueOnError)
	fs.SetOutput(stderr)
	provider := fs.String("provider", "", "provider")
	instance := fs.String("instance", "", "connection (instance)")
	account := fs.String("account", "", "account id")
	format := fs.String("format", audit.FormatTable, "table, csv or jsonl")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if *provider == "" || *instance == "" || *account == "" {
		fmt.Fprintln(stderr, "awctl timeline: --provider, --instance and --account are required")
		return exitUsage
	}
	w, err := audit.NewWriter(*format, stdout)
	if err != nil {
		fmt.Fprintln(stderr, "awctl timeline:", err)
		return exitUsage
	}
	bus, ok := connect(ctx, s, stderr)
	if !ok {
		return exitFailed
	}
	defer bus.Close()
	if err := checkConnection(ctx, bus, event.Provider(*provider), *instance); err != nil {
		fmt.Fprintln(stderr, "awctl timeline:", err)
		return exitOf(err)
	}
	recs, err := audit.Timeline(ctx, bus.JS, event.Provider(*provider), *instance, *account, 0)
	if err != nil {
		fmt.Fprintln(stderr, "awctl timeline:", err)
		return exitFailed
	}
	for _, r := range recs {
		if err := w.Write(&r); err != nil {
			fmt.Fprintln(stderr, "awctl timeline:", err)
			return exitFailed
		}
	}
	w.Close()
	return exitOK
}
