package schemas

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestNoDrift fails when the embedded copy differs from the repository's schemas/;
// run `go generate ./schemas` in pkg to refresh it.
func TestNoDrift(t *testing.T) {
	src := filepath.Join("..", "..", "schemas")
	want, err := filepath.Glob(filepath.Join(src, "*"))
	if err != nil || len(want) == 0 {
		t.Fatalf("no schemas in %s: %v", src, err)
	}
	seen := map[string]bool{}
	for _, p := range want {
		name := filepath.Base(p)
		seen[name] = true
		a, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		b, err := Files.ReadFile("files/" + name)
		if err != nil {
			t.Errorf("%s is missing from the embedded copy (go generate ./schemas): %v", name, err)
			continue
		}
		if !bytes.Equal(a, b) {
			t.Errorf("%s drifted from schemas/ (go generate ./schemas)", name)
		}
	}
	entries, _ := Files.ReadDir("files")
	for _, e := range entries {
		if !seen[e.Name()] {
			t.Errorf("embedded %s no longer exists in schemas/", e.Name())
		}
	}
}

func TestValidateRejects(t *testing.T) {
	v, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Types()) != 10 {
		t.Fatalf("want 10 event schemas, got %d: %v", len(v.Types()), v.Types())
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
