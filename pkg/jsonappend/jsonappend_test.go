package jsonappend

import (
	"bytes"
	"encoding/json"
	"math"
	"testing"
	"time"
)

// same fails t unless got (appended after a prefix, or refused) is what
// json.Marshal makes of v.
func same(t testing.TB, v any, appendTo func([]byte) ([]byte, error)) {
	t.Helper()
	want, werr := json.Marshal(v)
	got, gerr := appendTo([]byte("prefix"))
	if (werr != nil) != (gerr != nil) {
		t.Fatalf("%#v: json.Marshal error %v, append error %v", v, werr, gerr)
	}
	if werr == nil && !bytes.Equal(got, append([]byte("prefix"), want...)) {
		t.Fatalf("%#v: appended\n%s\njson.Marshal writes\nprefix%s", v, got, want)
	}
}

func TestTimeIsMarshal(t *testing.T) {
	at := time.Date(2026, 12, 7, 15, 4, 5, 120000000, time.UTC)
	for _, tc := range []struct {
		name string
		t    time.Time
	}{
		{"UTC with a fraction", at},
		{"no fraction", at.Truncate(time.Second)},
		{"nanoseconds", at.Add(7)},
		{"zero", time.Time{}},
		{"a zone", at.In(time.FixedZone("", 5*3600+30*60))},
		{"a negative zone", at.In(time.FixedZone("", -(9*3600 + 30*60)))},
		{"a zone with seconds", at.In(time.FixedZone("", 3600+30))},
		{"a zone of 23 hours", at.In(time.FixedZone("", 23*3600+59*60))},
		{"a zone of 24 hours", at.In(time.FixedZone("", 24*3600))},
		{"a zone of 100 hours", at.In(time.FixedZone("", -100*3600))},
		{"year 9999", time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)},
		{"year 10000", time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"year -1", time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"year 0", time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC)},
	} {
		t.Run(tc.name, func(t *testing.T) { same(t, tc.t, func(b []byte) ([]byte, error) { return Time(b, tc.t) }) })
	}
}

func TestFloatIsMarshal(t *testing.T) {
	for _, f := range []float64{0, 1, -2.5, 3.217, 1e-6, 1e-7, -2.5e-9, 1e20, 1e21, 123456789e15, math.MaxFloat64, math.SmallestNonzeroFloat64, math.NaN(), math.Inf(1), math.Inf(-1)} {
		same(t, f, func(b []byte) ([]byte, error) { return Float(b, f) })
	}
}

func TestStringAndBytesAreMarshal(t *testing.T) {
	for _, s := range []string{"", "plain", `<a href="x">&amp;</a> \ back`, "a\x00b\x01\b\f\n\r\t\x1f\x7f end",
		"ok \xff\xfe half \xe2\x82 end\xc3", "a\u2028b\u2029c é 中 😀", "abc\xe4\xb8"} {
		same(t, s, func(b []byte) ([]byte, error) { return String(b, s), nil })
		p := []byte(s)
		same(t, p, func(b []byte) ([]byte, error) { return Bytes(b, p), nil })
	}
	same(t, []byte(nil), func(b []byte) ([]byte, error) { return Bytes(b, nil), nil })
	same(t, []byte{}, func(b []byte) ([]byte, error) { return Bytes(b, []byte{}), nil })
}

func FuzzString(f *testing.F) {
	for _, s := range []string{"", "<&>", "\xff", "\u2028", "a\"b\\c\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		same(t, s, func(b []byte) ([]byte, error) { return String(b, s), nil })
	})
}

func FuzzTime(f *testing.F) {
	f.Add(int64(1796655845), int64(120000000), 0)
	f.Add(int64(-62167219200), int64(0), 86400)
	f.Add(int64(253402300800), int64(1), -3600)
	f.Fuzz(func(t *testing.T, sec, nsec int64, offset int) {
		tm := time.Unix(sec, nsec).In(time.FixedZone("", offset))
		same(t, tm, func(b []byte) ([]byte, error) { return Time(b, tm) })
	})
}
