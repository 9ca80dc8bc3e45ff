package state

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/accountwatch/accountwatch/pkg/detect"
	"github.com/accountwatch/accountwatch/pkg/event"
)

// sameAsMarshal fails t unless appendEntry writes e as json.Marshal does,
// or both refuse it.
func sameAsMarshal(t testing.TB, e *Entry) {
	t.Helper()
	want, werr := json.Marshal(e)
	got, gerr := appendEntry([]byte("prefix"), e)
	if (werr != nil) != (gerr != nil) {
		t.Fatalf("json.Marshal error %v, appendEntry error %v", werr, gerr)
	}
	if werr == nil && !bytes.Equal(got, append([]byte("prefix"), want...)) {
		t.Fatalf("appendEntry wrote\n%s\njson.Marshal writes\nprefix%s", got, want)
	}
}

// fullEntry has every field of an entry set, each map with two keys out of
// order, so that a field left out, misnamed or unsorted shows.
func fullEntry() *Entry {
	at := time.Date(2026, 12, 7, 15, 4, 5, 120000000, time.UTC)
	return &Entry{
		Record: detect.Record{Version: 1, Provider: event.ProviderActivePlatform, Instance: "ap-main", AccountID: "1000123", Name: "Acme <Ltd> & Co",
			Baseline: true,
			Enums:    map[string]event.Value{"status": {Value: "credit_hold", Raw: "credit hold"}, "hosting": {Value: "normal"}},
			Debt: &detect.DebtState{Value: "512.4", Raw: "512.40", Above: true, Step: "50", Current: "512.40", Threshold: "500", ThresholdSource: "account",
				Currency: "EUR", History: []detect.Sample{{At: at, Value: "500"}, {At: at.Add(time.Hour), Value: "512.4"}},
				Forecast: &detect.ForecastState{ETA: at.Add(48 * time.Hour), RatePerDay: "12.4", At: at}},
			Profile:   map[string]event.Value{"Websites": {Value: "a, b", Items: []string{"a", "b"}}, "Description": {Value: "x"}},
			Attrs:     map[string]string{"tier": "gold", "Region": "eu"},
			ChangedAt: at, Chain: event.Chain{Seq: 7, Prev: "ab12"}, Failures: 2, FailingSince: at.Add(-time.Minute), Degraded: true,
			LastError: "503 \"busy\"", Removed: true,
			Balance:  &detect.BalanceState{Value: "-3", Current: "-3.00", Below: true, Floor: "0", Currency: "USD"},
			BadSince: at.In(time.FixedZone("", 3600)), Labels: map[string]string{"team": "emea", "cost": "1"}},
		Pending: []Pending{
			{Subject: "aw.events.activeplatform.ap-main.account-status-changed.1000123", Header: nats.Header{"Nats-Msg-Id": {"aw1-x"}, "Ce-Type": {"a", "b"}, "Empty": {}, "Nil": nil},
				Data: []byte(`{"from":"active"}`)},
			{Subject: "s", Header: nil, Data: nil},
			{Subject: "t", Header: nats.Header{}, Data: []byte{}},
		},
		Listing: strings.Repeat("f", 64),
		Rev:     42,
	}
}

func TestAppendEntryIsMarshal(t *testing.T) {
	at := time.Date(2026, 12, 7, 15, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		name string
		e    func() *Entry
	}{
		{"zero", func() *Entry { return &Entry{} }},
		{"every field", fullEntry},
		{"a baseline", func() *Entry {
			return &Entry{Record: detect.Record{Version: 1, Provider: event.ProviderAlibabaBSS, Instance: "bss", AccountID: "1234567890123456", Baseline: true,
				Enums: map[string]event.Value{"hosting_status": {Value: "normal", Raw: "NORMAL"}}, Chain: event.Chain{}}, Listing: "00ff"}
		}},
		{"empty maps and lists", func() *Entry {
			return &Entry{Record: detect.Record{Enums: map[string]event.Value{}, Attrs: map[string]string{}, Labels: map[string]string{},
				Profile: map[string]event.Value{"p": {Items: []string{}}}, Debt: &detect.DebtState{History: []detect.Sample{}}}, Pending: []Pending{}}
		}},
		{"control bytes, invalid UTF-8 and separators in keys and values", func() *Entry {
			return &Entry{Record: detect.Record{Name: "a\x00\u2028\xff", Attrs: map[string]string{"k\xfe": "v\n", "<k>": "&"},
				Enums: map[string]event.Value{"\u2029": {Value: "\t"}}}}
		}},
		{"year 10000", func() *Entry {
			return &Entry{Record: detect.Record{ChangedAt: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}}
		}},
		{"year -1 in the history", func() *Entry {
			return &Entry{Record: detect.Record{Debt: &detect.DebtState{History: []detect.Sample{{At: time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC)}}}}}
		}},
		{"a zone of a day in the forecast", func() *Entry {
			return &Entry{Record: detect.Record{Debt: &detect.DebtState{Forecast: &detect.ForecastState{ETA: at, At: at.In(time.FixedZone("", 24*3600))}}}}
		}},
		{"a zero forecast", func() *Entry {
			return &Entry{Record: detect.Record{Debt: &detect.DebtState{Forecast: &detect.ForecastState{}}}}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) { sameAsMarshal(t, tc.e()) })
	}
}

// TestAppendEntryCoversEveryField: a field added to an entry or to any type
// it holds, and not to appendEntry, fails here. Every field is first set
// (fill: a new one too), then each in turn is set back to its zero value:
// the bytes must follow json.Marshal's each time, so every field is both
// written and omitted as encoding/json does it.
func TestAppendEntryCoversEveryField(t *testing.T) {
	e := &Entry{}
	fill(reflect.ValueOf(e).Elem(), "x")
	sameAsMarshal(t, e)
	n := 0
	// walk zeroes each field of v in turn; put stores v back where it is
	// not addressable in place (a map's value).
	var walk func(path string, v reflect.Value, put func())
	walk = func(path string, v reflect.Value, put func()) {
		switch v.Kind() {
		case reflect.Pointer:
			walk(path, v.Elem(), put)
		case reflect.Struct:
			if v.Type() == reflect.TypeFor[time.Time]() {
				return
			}
			for i := range v.NumField() {
				f, name := v.Field(i), path+"."+v.Type().Field(i).Name
				if !f.CanSet() {
					t.Fatalf("%s is unexported: encoding/json skips it, so must appendEntry", name)
				}
				old := reflect.New(f.Type()).Elem()
				old.Set(f)
				f.SetZero()
				put()
				n++
				t.Run(name, func(t *testing.T) { sameAsMarshal(t, e) })
				f.Set(old)
				put()
				walk(name, f, put)
			}
		case reflect.Slice:
			if v.Type().Elem().Kind() != reflect.Uint8 {
				for i := range v.Len() {
					walk(path+"[]", v.Index(i), put)
				}
			}
		case reflect.Map:
			for _, k := range v.MapKeys() {
				el := reflect.New(v.Type().Elem()).Elem()
				el.Set(v.MapIndex(k))
				walk(path+"[]", el, func() { v.SetMapIndex(k, el); put() })
			}
		}
	}
	walk("Entry", reflect.ValueOf(e).Elem(), func() {})
	if n < 45 {
		t.Fatalf("walked %d fields, fewer than an entry's types have", n)
	}
}

// fill sets every field of v to a value that is not its zero: a string
// naming its path, numbers 1, true, a time, one element in each slice and
// map.
func fill(v reflect.Value, path string) {
	switch v.Kind() {
	case reflect.String:
		v.SetString(path)
	case reflect.Int, reflect.Int64, reflect.Int32:
		v.SetInt(1)
	case reflect.Uint, reflect.Uint64, reflect.Uint32:
		v.SetUint(1)
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem(), path)
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[time.Time]() {
			v.Set(reflect.ValueOf(time.Date(2026, 12, 7, 15, 4, 5, 6, time.UTC)))
			return
		}
		for i := range v.NumField() {
			fill(v.Field(i), path+"."+v.Type().Field(i).Name)
		}
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 1, 1))
		fill(v.Index(0), path+"[0]")
	case reflect.Map:
		v.Set(reflect.MakeMap(v.Type()))
		k, el := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
		fill(k, path+"[k]")
		fill(el, path+"[v]")
		v.SetMapIndex(k, el)
	}
}

func FuzzAppendEntry(f *testing.F) {
	f.Add("ap-main", "1000123", "credit hold", "tier", "gold", "aw1-x", []byte(`{"a":1}`), int64(1796655845), 0)
	f.Add("\xff", "<&>", "\u2028", "", "\x00", "", []byte(nil), int64(-62167219300), 86400)
	f.Fuzz(func(t *testing.T, inst, id, raw, key, val, msgID string, data []byte, sec int64, offset int) {
		at := time.Unix(sec, 0).In(time.FixedZone("", offset))
		e := fullEntry()
		e.Record.Instance, e.Record.AccountID = inst, id
		e.Record.Enums[key] = event.Value{Value: val, Raw: raw, Items: []string{raw, val}}
		e.Record.Attrs[val] = key
		e.Record.ChangedAt, e.Record.Debt.History[0].At = at, at
		e.Pending[0].Header[key] = []string{msgID}
		e.Pending[0].Data = data
		sameAsMarshal(t, e)
	})
}

// BenchmarkEntryEncode: a baseline (a first scan writes one for each account)
// and an entry with every field and an outbox of two events.
func BenchmarkEntryEncode(b *testing.B) {
	baseline := &Entry{Record: detect.Record{Version: 1, Provider: event.ProviderActivePlatform, Instance: "ap", AccountID: "5000123", Name: "Account 5000123",
		Baseline: true, Enums: map[string]event.Value{"status": {Value: "active"}}, Debt: &detect.DebtState{Value: "0", Raw: "0.00", Current: "0.00"},
		Attrs: map[string]string{"Tier": "gold"}}, Listing: strings.Repeat("f", 64)}
	for _, tc := range []struct {
		name string
		e    *Entry
	}{{"baseline", baseline}, {"every field", fullEntry()}} {
		b.Run(tc.name+"/appendEntry", func(b *testing.B) {
			b.ReportAllocs()
			for range b.N {
				if _, err := appendEntry(make([]byte, 0, entrySize), tc.e); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(tc.name+"/json.Marshal", func(b *testing.B) {
			b.ReportAllocs()
			for range b.N {
				if _, err := json.Marshal(tc.e); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
