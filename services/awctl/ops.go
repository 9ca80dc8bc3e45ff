package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/accountwatch/accountwatch/pkg/config"
	"github.com/accountwatch/accountwatch/pkg/deadletter"
	"github.com/accountwatch/accountwatch/pkg/roster"
	"github.com/accountwatch/accountwatch/pkg/route"
	"github.com/accountwatch/accountwatch/pkg/silence"
)

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func dlqCmd(ctx context.Context, s settings, verb string, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("awctl dlq "+verb, flag.ContinueOnError)
	fs.SetOutput(stderr)
	sinkName := fs.String("sink", "", "sink (slack, webhook, email)")
	receiver := fs.String("receiver", "", "receiver of the sink")
	since := fs.String("since", "", "only letters written since: a duration (24h) or an RFC 3339 time")
	until := fs.String("until", "", "only letters written before: a duration ago or an RFC 3339 time")
	output := fs.String("output", "table", "list output: table or json")
	all := fs.Bool("all", false, "redrive: every letter the filters select")
	dry := fs.Bool("dry-run", false, "redrive: show what would be re-driven, send nothing")
	var seqs listFlag
	fs.Var(&seqs, "seq", "redrive: a letter's sequence (repeatable)")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	now := time.Now()
	f := deadletter.Filter{Sink: *sinkName, Receiver: *receiver}
	var err error
	if f.Since, err = config.ParseTime(*since, now); err != nil {
		fmt.Fprintln(stderr, "awctl dlq: --since", err)
		return exitUsage
	}
	if f.Until, err = config.ParseTime(*until, now); err != nil {
		fmt.Fprintln(stderr, "awctl dlq: --until", err)
		return exitUsage
	}
	if !checkOutput("awctl dlq "+verb, *output, stderr) {
		return exitUsage
	}
	if verb == "redrive" && len(seqs) == 0 && !*all {
		fmt.Fprintln(stderr, "awctl dlq redrive: name letters with --seq N, or select them with --all and the filters")
		return exitUsage
	}
	var picked []uint64
	for _, v := range seqs {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil || n == 0 {
			fmt.Fprintf(stderr, "awctl dlq redrive: --seq %q: want a positive number\n", v)
			return exitUsage
		}
		picked = append(picked, n)
	}
	bus, ok := connect(ctx, s, stderr)
	if !ok {
		return exitFailed
	}
	defer bus.Close()
	receivers, err := roster.Open(ctx, bus)
	if err != nil {
		fmt.Fprintln(stderr, "awctl:", err)
		return exitFailed
	}
	store, err := deadletter.Open(ctx, bus.JS, deadletter.WithRoster(receivers))
	if err != nil {
		fmt.Fprintln(stderr, "awctl:", err)
		return exitFailed
	}
	if verb == "redrive" && len(picked) == 0 {
		// A selection for a receiver that is not one: nothing would go anywhere.
		if err := checkReceiver(ctx, bus, *sinkName, *receiver); err != nil {
			fmt.Fprintln(stderr, "awctl dlq redrive:", err)
			return exitOf(err)
		}
	}
	var letters []deadletter.Letter
	if len(picked) > 0 {
		for _, n := range picked {
			l, err := store.Get(ctx, n)
			if err != nil {
				fmt.Fprintln(stderr, "awctl dlq:", err)
				return exitFailed
			}
			letters = append(letters, l)
		}
	} else if letters, err = store.List(ctx, f); err != nil {
		fmt.Fprintln(stderr, "awctl dlq:", err)
		return exitFailed
	}
	if verb == "list" && len(letters) == 0 {
		// Nothing listed: say so when that is because the sink or the
		// receiver is not one (a typo), naming the ones there are. Letters
		// of a receiver since removed are still listed.
		if err := checkReceiver(ctx, bus, *sinkName, *receiver); err != nil {
			fmt.Fprintln(stderr, "awctl dlq list:", err)
			return exitOf(err)
		}
	}
	if verb == "list" || *dry {
		note := stdout
		if *output == "json" {
			note = stderr
		}
		if *dry {
			fmt.Fprintf(note, "dry run: would re-drive %d letters\n", len(letters))
		}
		printLetters(stdout, note, letters, *output)
		return exitOK
	}
	failed, invalid := 0, 0
	for i, l := range letters {
		if _, err := store.Redrive(ctx, l.Seq); err != nil {
			fmt.Fprintf(stderr, "awctl dlq redrive: %d: %v\n", l.Seq, err)
			failed++
			if errors.Is(err, deadletter.ErrInvalidTarget) {
				invalid++
			}
			continue
		}
		fmt.Fprintf(stdout, "[%d/%d] re-driven %d (%s/%s, event %s)\n", i+1, len(letters), l.Seq, p(l.Sink), p(l.Receiver), p(l.EventID))
	}
	fmt.Fprintf(stdout, "%d re-driven, %d failed\n", len(letters)-failed, failed)
	switch {
	case invalid > 0:
		return exitUsage // a sink or receiver that is gone: the letters stay
	case failed > 0:
		return exitFailed
	}
	return exitOK
}

func printLetters(w, note io.Writer, letters []deadletter.Letter, output string) {
	if output == "json" {
		writeJSON(w, letters)
		fmt.Fprintf(note, "%d dead letters\n", len(letters))
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tAT\tSINK\tRECEIVER\tREASON\tATTEMPTS\tACCOUNT\tTYPE\tERROR")
	for _, l := range letters {
		msg := l.Error
		if len(msg) > 100 {
			msg = msg[:100] + "…"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", l.Seq, l.At.Format(time.RFC3339), p(l.Sink), p(l.Receiver), p(l.Reason), l.Attempts,
			p(l.AccountID), p(strings.TrimPrefix(l.EventType, "com.accountwatch.")), p(msg))
	}
	tw.Flush()
	fmt.Fprintf(w, "%d dead letters\n", len(letters))
}

func silenceCmd(ctx context.Context, s settings, verb string, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("awctl silence "+verb, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var matchers listFlag
	fs.Var(&matchers, "matcher", "add: name=value, name!=value, name=~regex or name!~regex (repeatable; names: type, provider, instance, account, severity or a label)")
	duration := fs.Duration("duration", 0, "add: how long it lasts (e.g. 2h)")
	untilS := fs.String("until", "", "add: when it ends (RFC 3339), instead of --duration")
	comment := fs.String("comment", "", "add: why")
	author := fs.String("author", defaultAuthor(), "add: who (default: $USER, else awctl@host)")
	all := fs.Bool("all", false, "list: include expired silences")
	output := fs.String("output", "table", "list output: table or json")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if !checkOutput("awctl silence "+verb, *output, stderr) {
		return exitUsage
	}
	var sl silence.Silence
	switch verb {
	case "add":
		ms, err := route.ParseMatchers(matchers)
		if err != nil {
			fmt.Fprintln(stderr, "awctl silence add:", err)
			return exitUsage
		}
		sl = silence.Silence{Matchers: ms, CreatedBy: *author, Comment: *comment}
		switch {
		case *untilS != "":
			if sl.EndsAt, err = time.Parse(time.RFC3339, *untilS); err != nil {
				fmt.Fprintln(stderr, "awctl silence add: --until:", err)
				return exitUsage
			}
		case *duration > 0:
			sl.EndsAt = time.Now().Add(*duration)
		default:
			fmt.Fprintln(stderr, "awctl silence add: --duration or --until is required")
			return exitUsage
		}
	case "expire":
		if fs.NArg() != 1 {
			fmt.Fprintln(stderr, "awctl silence expire: give the silence id")
			return exitUsage
		}
	}
	bus, ok := connect(ctx, s, stderr)
	if !ok {
		return exitFailed
	}
	defer bus.Close()
	store, err := silence.Open(ctx, bus.JS)
	if err != nil {
		fmt.Fprintln(stderr, "awctl:", err)
		return exitFailed
	}
	switch verb {
	case "add":
		sl, err = store.Add(ctx, sl)
		if errors.Is(err, silence.ErrInvalid) {
			fmt.Fprintln(stderr, "awctl silence add:", err)
			return exitUsage
		}
		if err != nil {
			fmt.Fprintln(stderr, "awctl silence add:", err)
			return exitFailed
		}
		fmt.Fprintf(stdout, "silence %s: %s until %s\n", sl.ID, matcherText(sl.Matchers), sl.EndsAt.Format(time.RFC3339))
	case "expire":
		sl, err = store.Expire(ctx, fs.Arg(0))
		if err != nil {
			fmt.Fprintln(stderr, "awctl silence expire:", err)
			return exitFailed
		}
		fmt.Fprintf(stdout, "silence %s expired\n", sl.ID)
	case "list":
		list, err := store.List(ctx)
		if err != nil {
			fmt.Fprintln(stderr, "awctl silence list:", err)
			return exitFailed
		}
		now := time.Now()
		shown := list[:0]
		for _, sl := range list {
			if *all || sl.State(now) != "expired" {
				shown = append(shown, sl)
			}
		}
		if *output == "json" {
			writeJSON(stdout, shown)
			return exitOK
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tSTATE\tMATCHERS\tSTARTS\tENDS\tBY\tCOMMENT")
		for _, sl := range shown {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", sl.ID, sl.State(now), p(matcherText(sl.Matchers)), sl.StartsAt.Format(time.RFC3339), sl.EndsAt.Format(time.RFC3339), p(sl.CreatedBy), p(sl.Comment))
		}
		tw.Flush()
		fmt.Fprintf(stdout, "%d silences\n", len(shown))
	}
	return exitOK
}

func matcherText(ms route.Matchers) string {
	parts := make([]string, len(ms))
	for i, m := range ms {
		parts[i] = m.String()
	}
	return strings.Join(parts, ",")
}

// defaultAuthor names who adds a silence without --author: the login, or
// where it came from when there is none (a container has no $USER).
func defaultAuthor() string {
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	host, _ := os.Hostname()
	return "awctl@" + host
}
