package deliverylog

import (
	"bytes"
	"encoding/json"
	"math"
	"reflect"
	"testing"
	"time"
)

// sameAsMarshal fails t unless appendJSON writes r as json.Marshal does,
// or both refuse it.
func sameAsMarshal(t testing.TB, r Record) {
	t.Helper()
	want, werr := json.Marshal(r)
	got, gerr := r.appendJSON([]byte("prefix"))
	if (werr != nil) != (gerr != nil) {
		t.Fatalf("json.Marshal error %v, appendJSON error %v", werr, gerr)
	}
	if werr != nil {
		return
	}
	if !bytes.HasPrefix(got, []byte("prefix")) || !bytes.Equal(got[len("prefix"):], want) {
		t.Fatalf("appendJSON wrote\n%s\njson.Marshal writes\n%s", got, want)
	}
}

func TestAppendJSONIsMarshal(t *testing.T) {
	at := time.Date(2026, 12, 6, 21, 4, 5, 123456789, time.UTC)
	later := at.Add(90 * time.Second).In(time.FixedZone("UTC+8", 8*3600))
	for _, tc := range []struct {
		name string
		r    Record
	}{
		{"zero", Record{}},
		{"an attempt", Record{Sink: "webhook", Receiver: "ep_1", EventID: "aw1-x", Attempt: 1, At: at, Outcome: Delivered,
			Destination: "https://example.com/hook", Status: 204, LatencyMS: 3.217}},
		{"a failure with a retry", Record{Sink: "webhook", Receiver: "ep_1", EventID: "aw1-x", Attempt: 2, At: at, Outcome: Failed,
			Status: 503, Error: "https://example.com answered 503", Response: `{"error":"busy"}`, Retry: &later, LatencyMS: 0.5}},
		{"a mute", Record{Sink: "slack", Receiver: "#ops", EventID: "e", At: at, Outcome: Muted, Reason: "weekend", Until: &later}},
		{"grouped, re-driven, a test, a kind, a sequence", Record{Notification: "n1", Events: 3, Redrive: true, Test: true, Kind: KindReminder, Seq: math.MaxUint64}},
		{"HTML and quotes", Record{Error: `<a href="x">&amp;</a> \ back`}},
		{"control bytes", Record{Response: "a\x00b\x01\b\f\n\r\t\x1f\x7f end"}},
		{"invalid UTF-8", Record{Response: "ok \xff\xfe half \xe2\x82 end\xc3"}},
		{"line and paragraph separators", Record{Response: "a\u2028b\u2029c é 中 😀"}},
		{"a response cut inside a rune", Record{Response: "abc\xe4\xb8"}},
		{"tiny latency", Record{LatencyMS: 1e-7}},
		{"huge latency", Record{LatencyMS: 1e21}},
		{"negative latency", Record{LatencyMS: -2.5e-9}},
		{"latency at the exponent bound", Record{LatencyMS: 1e-6}},
		{"NaN latency", Record{LatencyMS: math.NaN()}},
		{"infinite latency", Record{LatencyMS: math.Inf(1)}},
		{"a zone and no fraction", Record{At: time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("", -5*3600-30*60))}},
		{"year 10000", Record{At: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}},
		{"year -1 in a retry", Record{Retry: func() *time.Time { t := time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC); return &t }()}},
	} {
		t.Run(tc.name, func(t *testing.T) { sameAsMarshal(t, tc.r) })
	}
}

// TestAppendJSONCoversEveryField sets each field of Record on its own: a
// field added to Record and not to appendJSON fails here.
func TestAppendJSONCoversEveryField(t *testing.T) {
	at := time.Date(2026, 12, 6, 0, 0, 0, 1, time.UTC)
	rt := reflect.TypeFor[Record]()
	for i := range rt.NumField() {
		f := rt.Field(i)
		t.Run(f.Name, func(t *testing.T) {
			var r Record
			v := reflect.ValueOf(&r).Elem().Field(i)
			switch v.Kind() {
			case reflect.String:
				v.SetString("v<" + f.Name + ">")
			case reflect.Int:
				v.SetInt(-7)
			case reflect.Uint64:
				v.SetUint(7)
			case reflect.Float64:
				v.SetFloat(7.25)
			case reflect.Bool:
				v.SetBool(true)
			case reflect.Struct: // time.Time
				v.Set(reflect.ValueOf(at))
			case reflect.Pointer: // *time.Time
				v.Set(reflect.ValueOf(&at))
			default:
				t.Fatalf("field %s of kind %s: teach appendJSON and this test about it", f.Name, v.Kind())
			}
			sameAsMarshal(t, r)
		})
	}
}

func FuzzAppendJSON(f *testing.F) {
	f.Add("webhook", "ep_1", "aw1-x", "https://h/x?a=<b>&c", "answered \xff 503\u2028", uint64(3), 204, 12.5, int64(1_780_000_000_123_456_789), int32(0))
	f.Add("", "", "", "", "", uint64(0), 0, 1e-9, int64(0), int32(-3600))
	f.Fuzz(func(t *testing.T, sink, receiver, id, dest, text string, attempt uint64, status int, latency float64, unixNano int64, offset int32) {
		at := time.Unix(0, unixNano).In(time.FixedZone("", int(offset%(24*3600))))
		sameAsMarshal(t, Record{Sink: sink, Receiver: receiver, EventID: id, Attempt: attempt, At: at, Outcome: text,
			Destination: dest, Status: status, LatencyMS: latency, Error: text, Response: dest + text, Retry: &at, Reason: id})
	})
}

// BenchmarkRecordEncode: a delivery's record, encoded as the log writes it
// and as json.Marshal does (the baseline).
func BenchmarkRecordEncode(b *testing.B) {
	r := Record{Sink: "webhook", Receiver: "ep_01HXYZ", EventID: "aw1-0123456789abcdef", Attempt: 1, At: time.Now().UTC(), Outcome: Delivered,
		Destination: "https://hooks.example.com/accountwatch", Status: 204, LatencyMS: 3.217}
	b.Run("append", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]byte, 0, 512)
		for b.Loop() {
			buf, _ = r.appendJSON(buf[:0])
		}
	})
	b.Run("json.Marshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = json.Marshal(r)
		}
	})
}
