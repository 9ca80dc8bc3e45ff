package upstream_test

import (
	"bytes"
	"testing"

	"github.com/accountwatch/accountwatch/pkg/upstream"
)

// TestFingerprint: the same bytes (in another buffer) give the same
// fingerprint; any one-byte change gives another, in both halves.
func TestFingerprint(t *testing.T) {
	item := []byte(`{"id":5000001,"status":"active","balance":"12.50","custom_attributes":[{"name":"tier","value":"gold"}]}`)
	fp := upstream.FingerprintOf(item)
	if again := upstream.FingerprintOf(bytes.Clone(item)); again != fp {
		t.Fatal("equal bytes, different fingerprints")
	}
	for i := range item {
		changed := bytes.Clone(item)
		changed[i] ^= 1
		if got := upstream.FingerprintOf(changed); got[0] == fp[0] || got[1] == fp[1] {
			t.Fatalf("byte %d changed, fingerprint half unchanged", i)
		}
	}
	if upstream.FingerprintOf(item[:len(item)-1]) == fp {
		t.Error("a shorter item has the same fingerprint")
	}
}
