package checkpoint_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/accountwatch/accountwatch/pkg/checkpoint"
	"github.com/accountwatch/accountwatch/pkg/eventbus/bustest"
)

func key(t *testing.T) (ed25519.PrivateKey, ed25519.PublicKey) {
	t.Helper()
	dir := t.TempDir()
	pub, err := checkpoint.GenerateKey(filepath.Join(dir, "k"), filepath.Join(dir, "k.pub"))
	if err != nil {
		t.Fatal(err)
	}
	priv, err := checkpoint.LoadPrivateKey(filepath.Join(dir, "k"))
	if err != nil {
		t.Fatal(err)
	}
	return priv, pub
}

func sample(t *testing.T, priv ed25519.PrivateKey) *checkpoint.Signed {
	t.Helper()
	heads := []checkpoint.Head{{Account: "activeplatform/ap-main/1000", Seq: 3, Hash: strings.Repeat("ab", 32)}}
	s, err := checkpoint.Sign(checkpoint.Checkpoint{Stream: "AW_EVENTS", FirstSeq: 1, LastSeq: 9, Accounts: 1, Root: checkpoint.Root(heads),
		Time: time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC), StreamCreated: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)}, priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestKeysAreWrittenOnceAndPrivately(t *testing.T) {
	dir := t.TempDir()
	priv, pub := filepath.Join(dir, "auditor", "checkpoint.key"), filepath.Join(dir, "public", "checkpoint.pub")
	k, err := checkpoint.GenerateKey(priv, pub)
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(priv); st.Mode().Perm() != 0o600 {
		t.Errorf("private key mode %v", st.Mode().Perm())
	}
	if _, err := checkpoint.GenerateKey(priv, pub); !errors.Is(err, os.ErrExist) {
		t.Errorf("a second key over the first: %v", err)
	}
	for _, p := range []string{priv, pub} {
		got, err := checkpoint.LoadPublicKey(p)
		if err != nil || !got.Equal(k) {
			t.Errorf("public key from %s: %v", p, err)
		}
	}
	if _, err := checkpoint.LoadPrivateKey(pub); !errors.Is(err, checkpoint.ErrKey) {
		t.Errorf("a public key as private: %v", err)
	}
}

func TestSignedFileRoundTripAndTamper(t *testing.T) {
	priv, pub := key(t)
	s := sample(t, priv)
	b, err := s.MarshalFile(7)
	if err != nil {
		t.Fatal(err)
	}
	back, err := checkpoint.UnmarshalFile(b)
	if err != nil {
		t.Fatal(err)
	}
	if back.Checkpoint() != s.Checkpoint() || back.Hash() != s.Hash() || back.Trusted([]ed25519.PublicKey{pub}) != nil {
		t.Fatalf("round trip: %+v", back.Checkpoint())
	}
	if !strings.Contains(string(b), `"key_fingerprint": "SHA256:`) || !strings.Contains(string(b), `"last_seq": 9`) {
		t.Errorf("file is not readable by people:\n%s", b)
	}
	_, other := key(t)
	if err := back.Trusted([]ed25519.PublicKey{other}); !errors.Is(err, checkpoint.ErrSignature) {
		t.Errorf("an untrusted signer: %v", err)
	}
	cases := []struct {
		name string
		edit func([]byte) []byte
		want error
	}{
		// The spelled-out copy claims a later sequence than was signed.
		{"human copy edited", func(b []byte) []byte { return bytes.Replace(b, []byte(`"last_seq": 9`), []byte(`"last_seq": 19`), 1) }, checkpoint.ErrMalformed},
		{"payload re-signed by nobody", func(b []byte) []byte {
			f := string(b)
			i := strings.Index(f, `"signature": "`) + len(`"signature": "`)
			return []byte(f[:i] + "A" + f[i+1:])
		}, checkpoint.ErrSignature},
		{"other format", func(b []byte) []byte { return bytes.Replace(b, []byte(checkpoint.Format), []byte("x/v0"), 1) }, checkpoint.ErrMalformed},
		{"not json", func([]byte) []byte { return []byte("root: 00") }, checkpoint.ErrMalformed},
	}
	for _, c := range cases {
		if _, err := checkpoint.UnmarshalFile(c.edit(bytes.Clone(b))); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	// A payload signed by another key that names this key's id.
	forged, _ := checkpoint.Sign(s.Checkpoint(), priv)
	if _, err := checkpoint.Parse(forged.Payload, forged.Signature, other); !errors.Is(err, checkpoint.ErrSignature) {
		t.Errorf("signature under another key: %v", err)
	}
}

func TestRootDependsOnEveryHead(t *testing.T) {
	h := func() []checkpoint.Head {
		return []checkpoint.Head{{"a/x/1", 1, strings.Repeat("01", 32)}, {"a/x/2", 4, strings.Repeat("02", 32)}, {"b/y/3", 2, strings.Repeat("03", 32)}}
	}
	base := checkpoint.Root(h())
	shuffled := h()
	shuffled[0], shuffled[2] = shuffled[2], shuffled[0]
	if checkpoint.Root(shuffled) != base {
		t.Error("the root depends on the order heads are given in")
	}
	for i, mod := range []func([]checkpoint.Head) []checkpoint.Head{
		func(x []checkpoint.Head) []checkpoint.Head { x[1].Seq++; return x },
		func(x []checkpoint.Head) []checkpoint.Head { x[2].Hash = strings.Repeat("04", 32); return x },
		func(x []checkpoint.Head) []checkpoint.Head { x[0].Account = "a/x/9"; return x },
		func(x []checkpoint.Head) []checkpoint.Head { return x[:2] },
	} {
		if checkpoint.Root(mod(h())) == base {
			t.Errorf("change %d leaves the root as it was", i)
		}
	}
}

func TestPublishLatestAndOrder(t *testing.T) {
	b := bustest.New(t)
	ctx := context.Background()
	priv, _ := key(t)
	if _, err := checkpoint.Latest(ctx, b.JS, "AW_EVENTS"); !errors.Is(err, checkpoint.ErrNone) {
		t.Fatalf("no checkpoint yet: %v", err)
	}
	first := sample(t, priv)
	seq, err := checkpoint.Publish(ctx, b.JS, first, 0)
	if err != nil {
		t.Fatal(err)
	}
	cp := first.Checkpoint()
	cp.LastSeq, cp.Prev = 12, first.Hash()
	second, _ := checkpoint.Sign(cp, priv)
	if _, err := checkpoint.Publish(ctx, b.JS, second, 0); err == nil {
		t.Error("a checkpoint that does not follow the latest was stored")
	}
	seq2, err := checkpoint.Publish(ctx, b.JS, second, seq)
	if err != nil {
		t.Fatal(err)
	}
	got, err := checkpoint.Latest(ctx, b.JS, "AW_EVENTS")
	if err != nil || got.Seq != seq2 || got.Checkpoint().Prev != first.Hash() {
		t.Fatalf("latest: %+v %v", got, err)
	}
	if old, err := checkpoint.Get(ctx, b.JS, seq); err != nil || old.Hash() != first.Hash() {
		t.Errorf("by sequence: %v", err)
	}
}

// FuzzUnmarshalFile: an exported checkpoint comes from outside (a ticket, an
// email): whatever the bytes, reading them never panics, and what reads
// back verified reads back the same once written again.
func FuzzUnmarshalFile(f *testing.F) {
	dir := f.TempDir()
	if _, err := checkpoint.GenerateKey(filepath.Join(dir, "k"), filepath.Join(dir, "k.pub")); err != nil {
		f.Fatal(err)
	}
	priv, _ := checkpoint.LoadPrivateKey(filepath.Join(dir, "k"))
	s, _ := checkpoint.Sign(checkpoint.Checkpoint{Stream: "AW_EVENTS", FirstSeq: 1, LastSeq: 2, Accounts: 1, Root: strings.Repeat("0a", 32), Time: time.Unix(1e9, 0)}, priv)
	valid, _ := s.MarshalFile(3)
	f.Add(valid)
	f.Add(valid[:len(valid)/2])
	f.Add([]byte(`{"format":"accountwatch-checkpoint/v1","payload":"e30=","signature":"","public_key":""}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := checkpoint.UnmarshalFile(b)
		if err != nil {
			return
		}
		again, err := got.MarshalFile(0)
		if err != nil {
			t.Fatal(err)
		}
		back, err := checkpoint.UnmarshalFile(again)
		if err != nil || !bytes.Equal(back.Payload, got.Payload) || back.Checkpoint() != got.Checkpoint() {
			t.Fatalf("round trip: %v", err)
		}
	})
}
