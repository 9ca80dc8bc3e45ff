// Package checkpoint anchors the audit log outside itself. A checkpoint
// commits to the event stream as it stood at one sequence: the Merkle root
// (RFC 6962) over every account's chain head, the stream's first and last
// sequence and its creation time, signed with an Ed25519 key that only the
// signer (the auditor) holds. Checkpoints are kept in their own stream and
// exported as small files to anywhere outside NATS; whoever later rewrites
// the log, the stream and every chain after it included, cannot produce the
// root a kept checkpoint names, nor sign a new one.
package checkpoint

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Format names the export file format.
const Format = "accountwatch-checkpoint/v1"

// Errors callers branch on.
var (
	// ErrSignature: the signature does not verify, or the key is not trusted.
	ErrSignature = errors.New("checkpoint signature")
	// ErrMalformed: the bytes are not a checkpoint.
	ErrMalformed = errors.New("malformed checkpoint")
)

// Head is an account's chain head: its last link's sequence and hash.
type Head struct {
	Account string `json:"account"` // provider/instance/account
	Seq     uint64 `json:"seq"`
	Hash    string `json:"hash"`
}

// Root is the Merkle tree hash of RFC 6962 over the heads ordered by
// account: leaves SHA-256(0x00 ‖ account ‖ LF ‖ seq ‖ LF ‖ hash), nodes
// SHA-256(0x01 ‖ left ‖ right). It sorts heads in place.
func Root(heads []Head) string {
	slices.SortFunc(heads, func(a, b Head) int { return strings.Compare(a.Account, b.Account) })
	leaves := make([][32]byte, len(heads))
	var buf []byte
	for i, h := range heads {
		buf = append(append(append(append(append(buf[:0], 0), h.Account...), '\n'), strconv.FormatUint(h.Seq, 10)...), '\n')
		leaves[i] = sha256.Sum256(append(buf, h.Hash...))
	}
	r := mth(leaves)
	return hex.EncodeToString(r[:])
}

// mth is RFC 6962's MTH: the left subtree holds the largest power of two
// smaller than n.
func mth(leaves [][32]byte) [32]byte {
	switch len(leaves) {
	case 0:
		return sha256.Sum256(nil)
	case 1:
		return leaves[0]
	}
	k := 1
	for k*2 < len(leaves) {
		k *= 2
	}
	l, r := mth(leaves[:k]), mth(leaves[k:])
	var node [65]byte
	node[0] = 1
	copy(node[1:], l[:])
	copy(node[33:], r[:])
	return sha256.Sum256(node[:])
}

// Checkpoint is what a signer commits to.
type Checkpoint struct {
	Version int    `json:"v"`
	Stream  string `json:"stream"`
	// StreamCreated is the stream's creation time: a stream deleted and
	// recreated has another.
	StreamCreated time.Time `json:"stream_created"`
	FirstSeq      uint64    `json:"first_seq"`
	LastSeq       uint64    `json:"last_seq"`
	// Accounts is the number of chain heads under Root.
	Accounts int    `json:"accounts"`
	Root     string `json:"root"`
	// Problems is what the signer's own verification of the stream up to
	// LastSeq found: a checkpoint of a broken log says so.
	Problems int       `json:"problems"`
	Time     time.Time `json:"time"`
	// Prev is the hash of the previous checkpoint's payload (empty for the first).
	Prev string `json:"prev,omitempty"`
	// KeyID is the signer's key fingerprint.
	KeyID string `json:"key_id"`
}

// Signed is a checkpoint with its signature: Payload is the exact signed JSON.
type Signed struct {
	Payload   []byte
	Signature []byte
	PublicKey ed25519.PublicKey
	cp        Checkpoint
}

// Fingerprint names a public key: "SHA256:" and the unpadded base64 of its
// SHA-256, as ssh-keygen -l prints keys.
func Fingerprint(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return "SHA256:" + base64.RawStdEncoding.EncodeToString(sum[:])
}

// Sign signs cp with key, setting its version and key id.
func Sign(cp Checkpoint, key ed25519.PrivateKey) (*Signed, error) {
	pub, ok := key.Public().(ed25519.PublicKey)
	if !ok || len(key) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("%w: not an Ed25519 private key", ErrSignature)
	}
	cp.Version, cp.KeyID = 1, Fingerprint(pub)
	cp.Time, cp.StreamCreated = cp.Time.UTC(), cp.StreamCreated.UTC()
	payload, err := json.Marshal(cp)
	if err != nil {
		return nil, err
	}
	return &Signed{Payload: payload, Signature: ed25519.Sign(key, payload), PublicKey: pub, cp: cp}, nil
}

// Parse reads a signed checkpoint from its parts, verifying the signature
// against the key it names (Verify then checks that key is trusted).
func Parse(payload, signature []byte, pub ed25519.PublicKey) (*Signed, error) {
	if len(pub) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w: public key of %d bytes", ErrMalformed, len(pub))
	}
	s := &Signed{Payload: payload, Signature: signature, PublicKey: pub}
	if !ed25519.Verify(pub, payload, signature) {
		return nil, fmt.Errorf("%w: does not verify with key %s", ErrSignature, Fingerprint(pub))
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s.cp); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if s.cp.Version != 1 {
		return nil, fmt.Errorf("%w: version %d", ErrMalformed, s.cp.Version)
	}
	if s.cp.KeyID != Fingerprint(pub) {
		return nil, fmt.Errorf("%w: signed by %s, which is not the key id %s it names", ErrSignature, Fingerprint(pub), s.cp.KeyID)
	}
	if len(s.cp.Root) != 64 || s.cp.LastSeq < s.cp.FirstSeq && s.cp.LastSeq != 0 {
		return nil, fmt.Errorf("%w: root %q, sequences %d to %d", ErrMalformed, s.cp.Root, s.cp.FirstSeq, s.cp.LastSeq)
	}
	return s, nil
}

// Checkpoint is the signed content.
func (s *Signed) Checkpoint() Checkpoint { return s.cp }

// Hash is SHA-256 of the payload: what the next checkpoint names as Prev.
func (s *Signed) Hash() string {
	sum := sha256.Sum256(s.Payload)
	return hex.EncodeToString(sum[:])
}

// Trusted checks that the signer is one of keys (any signer when keys is empty).
func (s *Signed) Trusted(keys []ed25519.PublicKey) error {
	if len(keys) == 0 {
		return nil
	}
	for _, k := range keys {
		if k.Equal(s.PublicKey) {
			return nil
		}
	}
	return fmt.Errorf("%w: signed by %s, which is not a trusted key", ErrSignature, Fingerprint(s.PublicKey))
}

// File is the export format: the checkpoint spelled out for people, and the
// exact signed payload, signature and public key for verification (the
// spelled-out copy must say what the payload says).
type File struct {
	Format         string     `json:"format"`
	Checkpoint     Checkpoint `json:"checkpoint"`
	Payload        string     `json:"payload"`
	Signature      string     `json:"signature"`
	PublicKey      string     `json:"public_key"`
	KeyFingerprint string     `json:"key_fingerprint"`
	// Seq is the checkpoint's sequence in AW_CHECKPOINTS.
	Seq uint64 `json:"seq,omitempty"`
}

// MarshalFile writes s in the export format.
func (s *Signed) MarshalFile(seq uint64) ([]byte, error) {
	b, err := json.MarshalIndent(File{
		Format: Format, Checkpoint: s.cp, Seq: seq,
		Payload:        base64.StdEncoding.EncodeToString(s.Payload),
		Signature:      base64.StdEncoding.EncodeToString(s.Signature),
		PublicKey:      base64.StdEncoding.EncodeToString(s.PublicKey),
		KeyFingerprint: Fingerprint(s.PublicKey),
	}, "", "  ")
	return append(b, '\n'), err
}

// UnmarshalFile reads an exported checkpoint and verifies its signature.
func UnmarshalFile(b []byte) (*Signed, error) {
	var f File
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if f.Format != Format {
		return nil, fmt.Errorf("%w: format %q, want %q", ErrMalformed, f.Format, Format)
	}
	var parts [3][]byte
	for i, v := range []string{f.Payload, f.Signature, f.PublicKey} {
		p, err := base64.StdEncoding.DecodeString(v)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		parts[i] = p
	}
	s, err := Parse(parts[0], parts[1], ed25519.PublicKey(parts[2]))
	if err != nil {
		return nil, err
	}
	human, _ := json.Marshal(f.Checkpoint)
	signed, _ := json.Marshal(s.cp)
	if !bytes.Equal(human, signed) {
		return nil, fmt.Errorf("%w: the spelled-out checkpoint differs from the signed payload", ErrMalformed)
	}
	return s, nil
}

// ReadFile reads an exported checkpoint file.
func ReadFile(path string) (*Signed, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	s, err := UnmarshalFile(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}
