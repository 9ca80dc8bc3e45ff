package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/accountwatch/accountwatch/pkg/config"
	"github.com/accountwatch/accountwatch/pkg/deliverylog"
	"github.com/accountwatch/accountwatch/pkg/eventbus"
)

// deliveriesCmd lists the delivery log: what became of an event at every
// receiver of every sink, or a receiver's recent records.
func deliveriesCmd(ctx context.Context, s settings, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("awctl deliveries", flag.ContinueOnError)
	fs.SetOutput(stderr)
	eventID := fs.String("event", "", "an event id (aw1-…)")
	seq := fs.Uint64("seq", 0, "an event's sequence in the audit log (the console's /events/N)")
	sinkName := fs.String("sink", "", "only this sink (slack, email, webhook)")
	receiver := fs.String("receiver", "", "only this receiver")
	outcome := fs.String("outcome", "", "only this outcome (delivered, failed, silenced, muted, grouped, dead_lettered, …)")
	since := fs.String("since", "", "only records since: a duration (24h) or an RFC 3339 time")
	limit := fs.Int("limit", 100, "the newest this many records (at most 1000)")
	output := fs.String("output", "table", "table or json")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	q := deliverylog.Query{Sink: *sinkName, Receiver: *receiver, EventID: *eventID, Limit: *limit}
	var err error
	if q.Since, err = config.ParseTime(*since, time.Now()); err != nil {
		fmt.Fprintln(stderr, "awctl deliveries: --since", err)
		return exitUsage
	}
	if *eventID != "" && *seq != 0 {
		fmt.Fprintln(stderr, "awctl deliveries: --event or --seq, not both")
		return exitUsage
	}
	bus, ok := connect(ctx, s, stderr)
	if !ok {
		return exitFailed
	}
	defer bus.Close()
	if *seq != 0 {
		id, err := eventAt(ctx, bus, *seq)
		if err != nil {
			fmt.Fprintf(stderr, "awctl deliveries: event %d: %v\n", *seq, err)
			return exitFailed
		}
		q.EventID = id
	}
	l, err := deliverylog.Existing(ctx, bus.JS)
	if err != nil {
		fmt.Fprintln(stderr, "awctl deliveries:", err)
		return exitFailed
	}
	recs, err := l.List(ctx, q)
	if err != nil {
		fmt.Fprintln(stderr, "awctl deliveries:", err)
		return exitFailed
	}
	n := 0
	enc := json.NewEncoder(stdout)
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	if *output != "json" {
		fmt.Fprintln(tw, "WHEN\tSINK\tRECEIVER\tEVENT\tATTEMPT\tOUTCOME\tSTATUS\tLATENCY\tDETAIL")
	}
	for _, r := range recs {
		if *outcome != "" && r.Outcome != *outcome {
			continue
		}
		n++
		if *output == "json" {
			enc.Encode(r)
			continue
		}
		attempt, status, latency := "", "", ""
		if deliverylog.Attempted(r.Outcome) {
			attempt, latency = fmt.Sprint(r.Attempt), fmt.Sprintf("%.1fms", r.LatencyMS)
		}
		if r.Status != 0 {
			status = fmt.Sprint(r.Status)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.At.UTC().Format(time.RFC3339), r.Sink, r.Receiver, r.EventID, attempt, r.Outcome, status, latency, strings.ReplaceAll(r.Describe(), "\t", " "))
	}
	if *output != "json" {
		tw.Flush()
		fmt.Fprintf(stdout, "%d records\n", n)
	}
	return exitOK
}

// eventAt is the id of the event at seq in the audit log.
func eventAt(ctx context.Context, bus *eventbus.Bus, seq uint64) (string, error) {
	st, err := bus.JS.Stream(ctx, eventbus.StreamEvents)
	if err != nil {
		return "", err
	}
	m, err := st.GetMsg(ctx, seq)
	if err != nil {
		return "", err
	}
	ev, err := eventbus.Decode(&nats.Msg{Subject: m.Subject, Header: m.Header, Data: m.Data})
	if err != nil {
		return "", err
	}
	return ev.ID(), nil
}
