package checkpoint

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"testing"

	"golang.org/x/mod/sumdb/tlog"
)

// The RFC 6962 tree is checked against an independent implementation, Go's
// checksum-database transparency log (golang.org/x/mod/sumdb/tlog), and the
// Certificate Transparency test vector for its eight leaves.
func TestMTHMatchesTlog(t *testing.T) {
	for n := 0; n <= 70; n++ {
		stored := map[int64]tlog.Hash{}
		leaves := make([][32]byte, n)
		for i := range n {
			data := []byte(fmt.Sprintf("record %d", i))
			hashes, err := tlog.StoredHashes(int64(i), data, hashMap(stored))
			if err != nil {
				t.Fatal(err)
			}
			for j, h := range hashes {
				stored[tlog.StoredHashIndex(0, int64(i))+int64(j)] = h
			}
			leaves[i] = sha256.Sum256(append([]byte{0}, data...))
		}
		got := mth(leaves)
		if n == 0 {
			if got != sha256.Sum256(nil) {
				t.Errorf("empty tree: %x", got)
			}
			continue
		}
		want, err := tlog.TreeHash(int64(n), hashMap(stored))
		if err != nil {
			t.Fatal(err)
		}
		if got != [32]byte(want) {
			t.Errorf("%d leaves: %x, tlog says %x", n, got, want)
		}
	}
}

type hashMap map[int64]tlog.Hash

func (m hashMap) ReadHashes(idx []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(idx))
	for i, x := range idx {
		h, ok := m[x]
		if !ok {
			return nil, fmt.Errorf("no hash %d", x)
		}
		out[i] = h
	}
	return out, nil
}

func TestMTHCertificateTransparencyVector(t *testing.T) {
	inputs := []string{"", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"}
	leaves := make([][32]byte, len(inputs))
	for i, in := range inputs {
		b, _ := hex.DecodeString(in)
		leaves[i] = sha256.Sum256(append([]byte{0}, b...))
	}
	root := mth(leaves)
	if got := hex.EncodeToString(root[:]); got != "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328" {
		t.Errorf("root of the eight CT test leaves: %s", got)
	}
}
