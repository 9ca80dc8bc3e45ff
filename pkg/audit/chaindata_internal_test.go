package audit

import (
	"encoding/json"
	"testing"

	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/event/eventtest"
)

// realData is an event's data as the poller publishes it.
func realData(t testing.TB) []byte {
	m := eventtest.Meta("4711", map[string]string{"team": "emea", "tier": "gold"})
	m.Chain = event.Chain{Seq: 7, Prev: "3f0c5e0d9c1a8b7e6f5d4c3b2a1908f7e6d5c4b3a29180f7e6d5c4b3a2918071"}
	e := eventtest.Status(t, m, "active", "credit_hold")
	return e.Cloud.Data()
}

// TestDecodeChainScansRealEvents: the events the poller writes take the
// fast path (the point of it), and read what encoding/json reads.
func TestDecodeChainScansRealEvents(t *testing.T) {
	for name, data := range map[string][]byte{
		"status":  realData(t),
		"debt":    eventtest.Debt(t, eventtest.Meta("9", nil), "10.50", "2000", "1000", "above").Cloud.Data(),
		"hosting": eventtest.Hosting(t, "1234567890", "Normal", "Suspended").Cloud.Data(),
	} {
		t.Run(name, func(t *testing.T) {
			f, ok := scanChain(data)
			if !ok {
				t.Fatalf("the scanner left a real event to encoding/json: %s", data)
			}
			same(t, data, f)
		})
	}
}

// same fails unless f is what json.Unmarshal into chainData reads.
func same(t *testing.T, data []byte, f chainFields) {
	t.Helper()
	var d chainData
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("the scanner accepted what encoding/json refuses (%v): %q", err, data)
	}
	if string(f.provider) != d.Provider || string(f.instance) != d.Instance || string(f.account) != d.AccountID ||
		!f.observedAt.Equal(d.ObservedAt) || f.observedAt.Location().String() != d.ObservedAt.Location().String() ||
		f.seq != d.Chain.Seq || string(f.prev) != d.Chain.Prev {
		t.Fatalf("the scanner read %+v, encoding/json %+v, of %q", f, d, data)
	}
}

// TestDecodeChainUnusual: what the scanner leaves to encoding/json is read
// as encoding/json reads it, or refused as it refuses it.
func TestDecodeChainUnusual(t *testing.T) {
	cases := []struct {
		name, data string
		ok         bool
	}{
		{"plain", `{"provider":"p","instance":"i","account_id":"a","observed_at":"2026-11-23T09:00:00Z","chain":{"seq":2,"prev":"x"}}`, true},
		{"a member in another case", `{"Provider":"p","chain":{"SEQ":3}}`, true},
		{"a repeated chain merges", `{"chain":{"seq":3},"chain":{"prev":"y"}}`, true},
		{"an escaped account", `{"account_id":"a\u00e9b","chain":{"seq":1,"prev":""}}`, true},
		{"null members", `{"provider":null,"chain":null}`, true},
		{"a fraction for seq", `{"chain":{"seq":1.5}}`, false},
		{"a negative seq", `{"chain":{"seq":-1}}`, false},
		{"seq past 64 bits", `{"chain":{"seq":18446744073709551616}}`, false},
		{"a time that is not RFC 3339", `{"observed_at":"yesterday"}`, false},
		{"a string for provider", `{"provider":5}`, false},
		{"trailing bytes", `{"provider":"p"} x`, false},
		{"a control character", "{\"labels\":{\"a\":\"b\x01\"}}", false},
		{"a bad escape", `{"labels":{"a":"\q"}}`, false},
		{"not an object", `[1,2]`, false},
		{"null", `null`, true},
		{"empty", ``, false},
		{"unclosed", `{"provider":"p"`, false},
		{"leading zero", `{"x":01}`, false},
		{"nested skip", `{"x":[{"y":[true,false,null,-0.5e+3,"\u0041\n"]}],"chain":{"seq":9,"prev":"z"}}`, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, ok := decodeChain([]byte(c.data))
			if ok != c.ok {
				t.Fatalf("decoded %v, want %v", ok, c.ok)
			}
			if ok {
				same(t, []byte(c.data), f)
			}
		})
	}
}

// FuzzDecodeChain holds the scanner to encoding/json: whatever it reads
// in place, encoding/json accepts and reads the same; decodeChain accepts
// exactly what encoding/json accepts.
func FuzzDecodeChain(f *testing.F) {
	f.Add(realData(f))
	f.Add([]byte(`{"provider":"p","chain":{"seq":2,"prev":"x"},"labels":{"a":["b",1,true]}}`))
	f.Add([]byte(`{"chain":{"seq":3},"chain":{"prev":"y"}}`))
	f.Add([]byte(`{"observed_at":"2026-11-23T09:00:00.123+02:00"}`))
	f.Add([]byte(` {"x":-0.5E-3 , "y" : "\u00e9\"" } `))
	f.Fuzz(func(t *testing.T, data []byte) {
		var d chainData
		err := json.Unmarshal(data, &d)
		if fast, ok := scanChain(data); ok {
			same(t, data, fast)
		}
		got, ok := decodeChain(data)
		if ok != (err == nil) {
			t.Fatalf("decodeChain %v, encoding/json %v, of %q", ok, err, data)
		}
		if ok {
			same(t, data, got)
		}
	})
}
