package schemas

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestNoDrift fails when the embedded copy differs from the repository's schemas/;
// run `go generate ./schemas` in pkg to refresh it.
func TestNoDrift(t *testing.T) {
	src := filepath.Join("..", "..", "schemas")
	seen := map[string]bool{}
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		name, _ := filepath.Rel(src, p)
		name = filepath.ToSlash(name)
		seen[name] = true
		a, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		b, err := Files.ReadFile("files/" + name)
		if err != nil {
			t.Errorf("%s is missing from the embedded copy (go generate ./schemas): %v", name, err)
			return nil
		}
		if !bytes.Equal(a, b) {
			t.Errorf("%s drifted from schemas/ (go generate ./schemas)", name)
		}
		return nil
	})
	if err != nil || len(seen) == 0 {
		t.Fatalf("no schemas in %s: %v", src, err)
	}
	fs.WalkDir(Files, "files", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && !seen[strings.TrimPrefix(p, "files/")] {
			t.Errorf("embedded %s no longer exists in schemas/", p)
		}
		return err
	})
}

func TestValidateRejects(t *testing.T) {
	v, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Types()) != 13 {
		t.Fatalf("want 13 event schemas, got %d: %v", len(v.Types()), v.Types())
	}
	base := `"provider":"activeplatform","instance":"ap-main","account_id":"1","observed_at":"2026-11-22T10:00:00Z","severity":"critical","evidence":{},"chain":{"seq":1,"prev":""}`
	cases := []struct {
		name, typ, data string
		ok              bool
	}{
		{"valid status", "com.accountwatch.account.status.changed", `{` + base + `,"field":"status","previous":{"value":"active"},"current":{"value":"credit_hold","raw":"credit hold"}}`, true},
		{"unknown property", "com.accountwatch.account.status.changed", `{` + base + `,"field":"status","previous":{"value":"active"},"current":{"value":"credit_hold"},"extra":1}`, false},
		{"float money", "com.accountwatch.account.debt.changed", `{` + base + `,"field":"current_debt","previous":{"value":"1"},"current":{"value":1.5},"debt":{"delta":"0.5"}}`, false},
		{"money with exponent", "com.accountwatch.account.debt.changed", `{` + base + `,"field":"current_debt","previous":{"value":"1"},"current":{"value":"1e3"},"debt":{"delta":"999"}}`, false},
		{"crossed without threshold", "com.accountwatch.account.debt.changed", `{` + base + `,"field":"current_debt","previous":{"value":"1"},"current":{"value":"2"},"debt":{"delta":"1","crossed":"above"}}`, false},
		{"bad time", "com.accountwatch.account.discovered", `{"provider":"activeplatform","instance":"ap-main","account_id":"1","observed_at":"yesterday","severity":"info","evidence":{},"chain":{"seq":1,"prev":""}}`, false},
		{"missing chain", "com.accountwatch.account.discovered", `{"provider":"activeplatform","instance":"ap-main","account_id":"1","observed_at":"2026-11-22T10:00:00Z","severity":"info","evidence":{}}`, false},
		{"unknown type", "com.accountwatch.nope", `{}`, false},
		{"not json", "com.accountwatch.account.discovered", `{`, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := v.Validate(c.typ, []byte(c.data))
			if (err == nil) != c.ok {
				t.Fatalf("ok=%v, err=%v", c.ok, err)
			}
		})
	}
}

// TestUpstreamFixtures: every documented answer the clients are tested with
// (their testdata, copied from the documents) validates against the schema
// written from the same document; the shapes the documents rule out do not.
func TestUpstreamFixtures(t *testing.T) {
	v, err := Upstream()
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, dir := range []string{"../activeplatform/testdata", "../alibaba/testdata"} {
		m, _ := filepath.Glob(filepath.Join(dir, "*.json"))
		files = append(files, m...)
	}
	if len(files) < 9 {
		t.Fatalf("%d fixtures, want the documents' examples", len(files))
	}
	for _, f := range files {
		parts := strings.SplitN(filepath.Base(f), ".", 3)
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := v.Validate(parts[0]+"."+parts[1], b); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	for _, c := range []struct{ name, schema, doc string }{
		{"custom_attributes as an object", "activeplatform.GetAccountInfoByID", `{"id":1,"status":"active","custom_attributes":{"tier":"gold"}}`},
		{"balance not a number", "activeplatform.GetAccountInfoByID", `{"id":1,"status":"active","balance":"lots"}`},
		{"undocumented status", "activeplatform.GetAccountInfoByID", `{"id":1,"status":"frozen"}`},
		{"id as a string", "activeplatform.GetAccountInfoByID", `{"id":"1","status":"active"}`},
		{"a listing is an array", "activeplatform.GetListOfAccounts", `{"accounts":[]}`},
		{"another success code", "bss.GetCustomerAccountInfo", `{"Code":"200","RequestId":"r","Data":{}}`},
		{"undocumented HostingStatus", "bss.GetCustomerAccountInfo", `{"Code":"Success","RequestId":"r","Data":{"HostingStatus":"HOSTED"}}`},
		{"Success as a string", "cams.QueryPhoneBusinessProfile", `{"Code":"OK","RequestId":"r","Success":"true","Data":{}}`},
		{"an error without a code", "alibaba.error", `{"RequestId":"r","Message":"m","Code":""}`},
	} {
		if err := v.Validate(c.schema, []byte(c.doc)); err == nil {
			t.Errorf("%s: accepted by %s", c.name, c.schema)
		}
	}
}
