package describe_test

import (
	"strings"
	"testing"

	"github.com/accountwatch/accountwatch/pkg/describe"
)

func TestPrintable(t *testing.T) {
	for in, want := range map[string]string{
		"Acme Hosting LLC":           "Acme Hosting LLC",
		"Ünïcödé ✓ 中文":               "Ünïcödé ✓ 中文",
		"a\tb":                       `a\tb`,
		"Acme\r\n42\tforged\trow":    `Acme\r\n42\tforged\trow`,
		"\x1b[2J\x1b[31mred":         `\x1b[2J\x1b[31mred`,
		"bell\a del\x7f nul\x00":     `bell\a del\x7f nul\x00`,
		"c1 \u009b31m":               `c1 \u009b31m`,
		"evil\u202egnp.exe":          `evil\u202egnp.exe`,
		"iso\u2066late\u2069":        `iso\u2066late\u2069`,
		"line\u2028sep":              `line\u2028sep`,
		"bad \xff\xfe utf8":          `bad \xff\xfe utf8`,
		"replacement \uFFFD is text": "replacement \uFFFD is text",
	} {
		got := describe.Printable(in)
		if got != want {
			t.Errorf("Printable(%q) = %q, want %q", in, got, want)
		}
		if strings.ContainsAny(got, "\x1b\r\n\t\x00\u202e\u009b") {
			t.Errorf("Printable(%q) still holds a control character", in)
		}
	}
}

func BenchmarkPrintableClean(b *testing.B) {
	s := "Acme Hosting LLC (1000123) · credit hold"
	for range b.N {
		_ = describe.Printable(s)
	}
}
