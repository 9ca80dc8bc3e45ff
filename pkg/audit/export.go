package audit

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/accountwatch/accountwatch/pkg/describe"
	"github.com/accountwatch/accountwatch/pkg/event"
)

// Formats of an export.
const (
	FormatJSONL = "jsonl" // one CloudEvent (structured JSON) per line
	FormatCSV   = "csv"
	FormatTable = "table"
)

// Writer writes replayed records in one format.
type Writer interface {
	Write(Record) error
	// Close flushes what is buffered.
	Close() error
}

// NewWriter writes format to w.
func NewWriter(format string, w io.Writer) (Writer, error) {
	switch format {
	case FormatJSONL:
		bw := bufio.NewWriterSize(w, 64<<10)
		return &jsonlWriter{bw: bw}, nil
	case FormatCSV:
		cw := csv.NewWriter(w)
		return &csvWriter{cw: cw}, cw.Write(CSVHeader)
	case FormatTable:
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		_, err := fmt.Fprintln(tw, "SEQ\tSTORED\tTYPE\tPROVIDER/INSTANCE\tACCOUNT\tSEVERITY\tCHANGE")
		return &tableWriter{tw: tw}, err
	}
	return nil, fmt.Errorf("%w: format %q (want jsonl, csv or table)", ErrInvalid, format)
}

type jsonlWriter struct{ bw *bufio.Writer }

func (j *jsonlWriter) Write(r Record) error {
	b, err := json.Marshal(r.Event.Cloud)
	if err != nil {
		return fmt.Errorf("seq %d: %w", r.Seq, err)
	}
	j.bw.Write(b)
	return j.bw.WriteByte('\n')
}

func (j *jsonlWriter) Close() error { return j.bw.Flush() }

// CSVHeader names the CSV columns.
var CSVHeader = []string{"seq", "stored", "id", "time", "type", "provider", "instance", "account", "account_name", "severity",
	"field", "previous", "current", "previous_raw", "current_raw", "chain_seq", "chain_prev", "chain_hash", "request_id", "response_sha256"}

type csvWriter struct{ cw *csv.Writer }

func (c *csvWriter) Write(r Record) error {
	d := r.Event.Data
	val := func(v *event.Value) (string, string) {
		if v == nil {
			return "", ""
		}
		return v.Value, v.Raw
	}
	pv, pr := val(d.Previous)
	cv, cr := val(d.Current)
	hash, _ := r.Event.Cloud.Extensions()[event.ExtChainHash].(string)
	return c.cw.Write([]string{
		strconv.FormatUint(r.Seq, 10), r.Stored.UTC().Format(time.RFC3339Nano), r.Event.ID(), r.Event.Cloud.Time().UTC().Format(time.RFC3339Nano),
		r.Event.Type().Tail(), string(d.Provider), d.Instance, d.AccountID, d.AccountName, string(d.Severity),
		d.Field, pv, cv, pr, cr, strconv.FormatUint(d.Chain.Seq, 10), d.Chain.Prev, hash, d.Evidence.RequestID, d.Evidence.ResponseSHA256,
	})
}

func (c *csvWriter) Close() error {
	c.cw.Flush()
	return c.cw.Error()
}

type tableWriter struct{ tw *tabwriter.Writer }

func (t *tableWriter) Write(r Record) error {
	d := r.Event.Data
	change := strings.ReplaceAll(describe.Change(r.Event), "\t", " ")
	_, err := fmt.Fprintf(t.tw, "%d\t%s\t%s\t%s/%s\t%s\t%s\t%s\n", r.Seq, r.Stored.UTC().Format("2006-01-02 15:04:05"), r.Event.Type().Tail(),
		d.Provider, d.Instance, describe.Account(d), d.Severity, change)
	return err
}

func (t *tableWriter) Close() error { return t.tw.Flush() }
