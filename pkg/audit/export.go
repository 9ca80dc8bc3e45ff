package audit

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"

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
	Write(*Record) error
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

type jsonlWriter struct {
	bw  *bufio.Writer
	buf []byte
	// keys are the last message's header keys, sorted, the ce- ones
	// marked: the next message, which has the same keys almost always,
	// reuses the order instead of sorting its own.
	keys []headerKey
}

type headerKey struct {
	key string
	ce  bool
}

// Write turns the stored binary-mode message into structured JSON directly:
// the ce- headers become attributes, the data goes in as stored (it is JSON),
// so the event's bytes, and with them its chain hash, are exactly the
// stored ones. Messages in another mode go through the SDK.
func (j *jsonlWriter) Write(r *Record) error {
	j.buf = j.buf[:0]
	if b, ok := j.structured(j.buf, r.Raw); ok {
		j.buf = b
	} else {
		ev, err := r.Event()
		if err != nil {
			return err
		}
		if j.buf, err = json.Marshal(ev.Cloud); err != nil {
			return fmt.Errorf("seq %d: %w", r.Seq, err)
		}
	}
	j.bw.Write(j.buf)
	return j.bw.WriteByte('\n')
}

// maxAttributes bounds the ce- headers taken as attributes.
const maxAttributes = 24

// structured appends the CloudEvents JSON of a binary-mode message to b,
// attributes in name order. The data is the object the publisher encoded; it
// is not re-validated (that would double the cost of an export): a message
// whose bytes were tampered with is what `verify` reports.
func (j *jsonlWriter) structured(b []byte, m *nats.Msg) ([]byte, bool) {
	d := m.Data
	if len(m.Header["ce-specversion"]) == 0 || m.Header.Get("ce-datacontenttype") != event.ContentType || len(d) < 2 || d[0] != '{' || d[len(d)-1] != '}' {
		return b, false
	}
	if !j.sameKeys(m.Header) {
		j.keys = j.keys[:0]
		for k := range m.Header {
			j.keys = append(j.keys, headerKey{k, len(k) > 3 && strings.EqualFold(k[:3], "ce-")})
		}
		slices.SortFunc(j.keys, func(a, b headerKey) int { return strings.Compare(a.key, b.key) })
	}
	b = append(b, '{')
	n := 0
	for _, k := range j.keys {
		vs := m.Header[k.key]
		if !k.ce || len(vs) == 0 || n == maxAttributes {
			continue
		}
		n++
		name := k.key[3:]
		if strings.ToLower(name) != name {
			name = strings.ToLower(name)
		}
		b = appendString(b, name)
		b = append(b, ':')
		b = appendString(b, vs[0])
		b = append(b, ',')
	}
	b = append(b, `"data":`...)
	b = append(b, m.Data...)
	return append(b, '}'), true
}

// sameKeys reports whether h has exactly the keys of the last message (as
// many, each of them there).
func (j *jsonlWriter) sameKeys(h nats.Header) bool {
	if len(h) != len(j.keys) || len(j.keys) == 0 {
		return false
	}
	for _, k := range j.keys {
		if len(h[k.key]) == 0 {
			return false
		}
	}
	return true
}

// appendString appends s as a JSON string.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= 0x80 {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

func (j *jsonlWriter) Close() error { return j.bw.Flush() }

// CSVHeader names the CSV columns. An amount (previous and current of a
// debt) is an exact decimal, its currency in the last column (empty when
// the upstream and the connection named none); new columns go last.
var CSVHeader = []string{"seq", "stored", "id", "time", "type", "provider", "instance", "account", "account_name", "severity",
	"field", "previous", "current", "previous_raw", "current_raw", "chain_seq", "chain_prev", "chain_hash", "request_id", "response_sha256", "currency"}

type csvWriter struct{ cw *csv.Writer }

func (c *csvWriter) Write(r *Record) error {
	ev, err := r.Event()
	if err != nil {
		return err
	}
	d := ev.Data
	val := func(v *event.Value) (string, string) {
		if v == nil {
			return "", ""
		}
		return v.Value, v.Raw
	}
	pv, pr := val(d.Previous)
	cv, cr := val(d.Current)
	hash, _ := ev.Cloud.Extensions()[event.ExtChainHash].(string)
	var currency string
	if d.Debt != nil {
		currency = d.Debt.Currency
	}
	row := []string{
		strconv.FormatUint(r.Seq, 10), r.Stored.UTC().Format(time.RFC3339Nano), ev.ID(), ev.Cloud.Time().UTC().Format(time.RFC3339Nano),
		ev.Type().Tail(), string(d.Provider), d.Instance, d.AccountID, d.AccountName, string(d.Severity),
		d.Field, pv, cv, pr, cr, strconv.FormatUint(d.Chain.Seq, 10), d.Chain.Prev, hash, d.Evidence.RequestID, d.Evidence.ResponseSHA256, currency,
	}
	for i := range row {
		row[i] = CSVCell(row[i])
	}
	return c.cw.Write(row)
}

// CSVCell neutralises a cell a spreadsheet would read as a formula (OWASP's
// CSV injection guidance): a cell that starts, after any spaces, with = + -
// @, a tab, a carriage return, a line feed or NUL gets a leading single
// quote, which spreadsheets take as "this is text". A plain number ("-12.50")
// is left as it is: it is no formula, and finance wants it as a number.
func CSVCell(s string) string {
	t := strings.TrimLeft(s, " ")
	if t == "" || !strings.ContainsRune("=+-@\t\r\n\x00", rune(t[0])) || plainNumber(t) {
		return s
	}
	return "'" + s
}

// plainNumber: an optional sign, digits, an optional fraction.
func plainNumber(s string) bool {
	s = strings.TrimPrefix(strings.TrimPrefix(s, "-"), "+")
	whole, frac, dot := strings.Cut(s, ".")
	digits := func(d string) bool { return d != "" && strings.Trim(d, "0123456789") == "" }
	return digits(whole) && (!dot || digits(frac))
}

func (c *csvWriter) Close() error {
	c.cw.Flush()
	return c.cw.Error()
}

type tableWriter struct{ tw *tabwriter.Writer }

func (t *tableWriter) Write(r *Record) error {
	ev, err := r.Event()
	if err != nil {
		return err
	}
	d := ev.Data
	// Every cell from the event goes through describe.Printable: an upstream
	// name with CR, LF, a tab or an escape sequence cannot forge a row or
	// drive the terminal.
	p := describe.Printable
	_, err = fmt.Fprintf(t.tw, "%d\t%s\t%s\t%s/%s\t%s\t%s\t%s\n", r.Seq, r.Stored.UTC().Format("2006-01-02 15:04:05"), p(ev.Type().Tail()),
		p(string(d.Provider)), p(d.Instance), p(describe.Account(d)), p(string(d.Severity)), p(describe.Change(ev)))
	return err
}

func (t *tableWriter) Close() error { return t.tw.Flush() }
