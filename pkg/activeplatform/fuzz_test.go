package activeplatform_test

import (
	"bytes"
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/accountwatch/accountwatch/pkg/activeplatform"
	"github.com/accountwatch/accountwatch/pkg/upstream"
)

// samples start from the documented example (testdata, copied from "Get
// Account Info by ID"), then the shapes the documents allow and some they
// do not.
var samples = []string{
	documented(),
	`{"id":1000123,"name":"Acme Hosting LLC","status":"active","balance":"453.2","current_debt":"0.00","financial_blocking_threshold":"500.00","subscription_credit_limit":null,"currency":"USD","owner_id":501,"manager_id":77,"first_name":"Jane","last_name":"Roe","email":"jane.roe@acme.example","phone":"+15550100","custom_attributes":[{"name":"Passport number","value":"AB1234567"},{"name":"Tier","value":"gold"},{"name":"Seats","value":25},{"name":"VIP","value":true},{"name":"Notes","value":null},{"name":"Tags","value":["a","b"]}],"created_at":"2026-11-22T10:00:00.123+03:00","updated_at":"2026-11-22T10:00:00Z"}`,
	`{"id":1000126,"status":"credit_hold","custom_attributes":{"tier":"gold"},"name":5,"owner_id":"x","updated_at":"yesterday","account_class":{"odd":1}}`,
	`{"id":1000124,"name":"Globex Cloud GmbH","status":"credit hold","balance":-120.50,"current_debt":"620.00","financial_blocking_threshold":"600.00","subscription_credit_limit":null,"currency":"EUR","owner_id":null,"manager_id":null,"custom_attributes":null,"updated_at":"2026-11-22T10:00:00Z"}`,
	`{"id":"1000125","status":"administrative_hold","balance":0,"current_debt":null,"extra_field":{"nested":[1,2]}}`,
	`{"id":1,"status":""}`,
	`{"status":"active"}`,
	`{"id":1,"status":"active","balance":"abc"}`,
	`<html>502</html>`,
}

func documented() string {
	b, err := os.ReadFile("testdata/activeplatform.GetAccountInfoByID.example.json")
	if err != nil {
		panic(err)
	}
	return string(b)
}

// FuzzDecodeAccount: any body either decodes into a complete account or fails
// with an error; never a panic, never a half-filled snapshot.
func FuzzDecodeAccount(f *testing.F) {
	for _, s := range samples {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		a, err := activeplatform.DecodeAccount(body)
		if err != nil {
			if a != nil {
				t.Fatal("error with a snapshot")
			}
			return
		}
		if a.ID == "" || strings.TrimSpace(a.Status) == "" || len(a.Evidence.ResponseSHA256) != 64 {
			t.Fatalf("half-filled snapshot %+v from %q", a, body)
		}
	})
}

// FuzzDecodeList: the same for listing pages.
func FuzzDecodeList(f *testing.F) {
	f.Add([]byte("[" + samples[0] + "," + samples[1] + "]"))
	f.Add([]byte(`{"accounts":[` + samples[2] + `]}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`[` + samples[0] + `,` + samples[0] + `]`))
	f.Add([]byte(`{"accounts":null}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		list, err := activeplatform.DecodeList(body)
		if err != nil {
			if list != nil {
				t.Fatal("error with accounts")
			}
			return
		}
		for _, a := range list {
			if a.ID == "" || strings.TrimSpace(a.Status) == "" {
				t.Fatalf("half-filled snapshot %+v", a)
			}
		}
	})
}

// FuzzDecodeMatchesReference: the single-pass decoder accepts exactly what
// encoding/json accepts and yields the same account.
func FuzzDecodeMatchesReference(f *testing.F) {
	for _, s := range samples {
		f.Add([]byte(s))
	}
	f.Add([]byte(`{"ID":7,"Status":"a\u00e9","status":"b","custom_attributes":{"k":1,"k2":null,"k3":"v\n"},"x":[{"y":"}"}]}`))
	f.Add([]byte(`{"id":1,"status":"x","name":5}`))
	f.Add([]byte(`{"id":1,"status":"x","custom_attributes":[]}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"id":1,"status":"\xff"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		ref, refErr := activeplatform.DecodeReference(body)
		got, err := activeplatform.DecodeFast(body)
		if (refErr == nil) != (err == nil) {
			t.Fatalf("reference err %v, fast err %v, body %q", refErr, err, body)
		}
		if err != nil {
			return
		}
		if !reflect.DeepEqual(ref, got) {
			t.Fatalf("differ on %q:\n%+v\n%+v", body, ref, got)
		}
	})
}

// FuzzListItems: the page splitter never panics; on a valid array it yields
// exactly encoding/json's elements; and it never accepts a page that is not
// valid JSON while every element it returns is valid (the property that makes
// skipping page-wide validation safe).
func FuzzListItems(f *testing.F) {
	f.Add([]byte("[" + samples[0] + "," + samples[1] + "]"))
	f.Add([]byte(`[ {"a":"]"} , 1, "x\"]", [1,[2]], null ]`))
	f.Add([]byte(`[1 2]`))
	f.Add([]byte(`[1,]`))
	f.Add([]byte(`[{"a":1}]]`))
	f.Add([]byte(`[{"a":1]`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		items, err := activeplatform.ListItems(body)
		if err != nil {
			return
		}
		allValid := true
		for _, it := range items {
			allValid = allValid && json.Valid(it)
		}
		trimmed := bytes.TrimSpace(body)
		if allValid && !json.Valid(trimmed) {
			t.Fatalf("accepted invalid page %q with valid items %q", body, items)
		}
		if json.Valid(trimmed) && len(trimmed) > 0 && trimmed[0] == '[' {
			var ref []json.RawMessage
			if err := json.Unmarshal(trimmed, &ref); err != nil {
				t.Fatal(err)
			}
			if len(ref) != len(items) {
				t.Fatalf("%d items, encoding/json has %d", len(items), len(ref))
			}
			for i := range ref {
				if !bytes.Equal(bytes.TrimSpace(ref[i]), items[i]) {
					t.Fatalf("item %d: %q vs %q", i, items[i], ref[i])
				}
			}
		}
	})
}

// FuzzPredictedItems: predictions never change what a page walk hands out.
// They come from another page's items (as a poller's come from its last
// scan), from any position: right, wrong or out of step.
func FuzzPredictedItems(f *testing.F) {
	page := "[" + samples[0] + "," + samples[1] + "]"
	f.Add([]byte(page), []byte(page), uint8(0))
	f.Add([]byte(page), []byte(page), uint8(1))
	f.Add([]byte("["+samples[0]+"]"), []byte(page), uint8(0))
	f.Add([]byte(`[{"a":1},{"a":2}]`), []byte(`[{"a":1},{"a":3}]`), uint8(0))
	f.Add([]byte(`[{"a":1}2,{"b":2}]`), []byte(`[{"a":1},{"b":2}]`), uint8(0))
	f.Add([]byte(`[{"a":1},{"a":1}]`), []byte(`[{"a":1}]`), uint8(0))
	f.Fuzz(func(t *testing.T, body, prev []byte, shift uint8) {
		prevItems, _, _ := activeplatform.WalkPage(prev, nil)
		k := int(shift)
		predict := func() (int, upstream.Fingerprint, bool) {
			if len(prevItems) == 0 {
				return 0, upstream.Fingerprint{}, false
			}
			it := prevItems[k%len(prevItems)]
			k++
			return len(it), upstream.FingerprintOf(it), true
		}
		items, fps, err := activeplatform.WalkPage(body, nil)
		pItems, pFps, pErr := activeplatform.WalkPage(body, predict)
		if (err == nil) != (pErr == nil) || len(items) != len(pItems) {
			t.Fatalf("%q with predictions from %q: %d items (%v), without %d (%v)", body, prev, len(pItems), pErr, len(items), err)
		}
		for i := range items {
			if !bytes.Equal(items[i], pItems[i]) || fps[i] != pFps[i] {
				t.Fatalf("item %d: %q predicted, %q not", i, pItems[i], items[i])
			}
		}
	})
}

// FuzzAttrsMatchReference: custom_attributes walked in place decode as
// encoding/json decodes them, in both documented forms, whatever the names,
// values, duplicates, spellings of "name" and "value", and nesting (inputs
// where two names differ only in surrounding space, which encoding/json's
// map order decides, aside).
func FuzzAttrsMatchReference(f *testing.F) {
	for _, s := range []string{
		`[{"name":"Tier","value":"gold"},{"name":"Seats","value":25},{"name":"x","value":null},{"value":"no name"}]`,
		`[{"NAME":"a","Value":{"k":[1, 2]}},{"name":"a","name":"b","value":"c"},1,"s",null,[{"name":"n"}]]`,
		`{"tier":"gold","seats":25,"tier":"silver","none":null," pad ":"x"}`,
		`[{"name":"esc\u00e9\n","value":"v\"q"},{"name":7,"value":true},{"name":"","value":"empty"}]`,
		` [ ] `, `{}`, `null`, `"text"`, `12`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if !json.Valid(b) {
			return // only ever called with valid JSON
		}
		var obj map[string]json.RawMessage
		if json.Unmarshal(b, &obj) == nil {
			seen := map[string]bool{}
			for k := range obj {
				if seen[strings.TrimSpace(k)] {
					return
				}
				seen[strings.TrimSpace(k)] = true
			}
		}
		ref, got := activeplatform.AttrsReference(b), activeplatform.Attrs(b)
		if !reflect.DeepEqual(ref, got) {
			t.Fatalf("differ on %q:\n%q\n%q", b, ref, got)
		}
	})
}
