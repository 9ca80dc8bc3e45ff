package checkpoint

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/accountwatch/accountwatch/pkg/eventbus"
)

// ErrKey is returned for a key file that cannot be used.
var ErrKey = errors.New("checkpoint key")

// GenerateKey writes a new Ed25519 key pair: the private key as PKCS#8 PEM
// (0600) at privPath, the public key as PKIX PEM at pubPath. It never
// overwrites a key: an existing privPath is an error wrapping os.ErrExist.
func GenerateKey(privPath, pubPath string) (ed25519.PublicKey, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, err
	}
	if err := writeNew(privPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrKey, err)
	}
	if err := WritePublicKey(pubPath, pub); err != nil {
		return nil, err
	}
	return pub, nil
}

// WritePublicKey writes pub as PKIX PEM (replacing what was there).
func WritePublicKey(path string, pub ed25519.PublicKey) error {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("%w: %v", ErrKey, err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644); err != nil {
		return fmt.Errorf("%w: %v", ErrKey, err)
	}
	return nil
}

func writeNew(path string, b []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// LoadPrivateKey reads a PKCS#8 PEM Ed25519 private key.
func LoadPrivateKey(path string) (ed25519.PrivateKey, error) {
	blk, err := readPEM(path)
	if err != nil {
		return nil, err
	}
	if blk.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("%w: %s holds a %q, want a PRIVATE KEY", ErrKey, path, blk.Type)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrKey, path, err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%w: %s is not an Ed25519 key", ErrKey, path)
	}
	return priv, nil
}

// LoadPublicKey reads a PKIX PEM Ed25519 public key (or derives it from a private key file).
func LoadPublicKey(path string) (ed25519.PublicKey, error) {
	blk, err := readPEM(path)
	if err != nil {
		return nil, err
	}
	if blk.Type == "PRIVATE KEY" {
		priv, err := LoadPrivateKey(path)
		if err != nil {
			return nil, err
		}
		return priv.Public().(ed25519.PublicKey), nil
	}
	if blk.Type != "PUBLIC KEY" {
		return nil, fmt.Errorf("%w: %s holds a %q, want a PUBLIC KEY", ErrKey, path, blk.Type)
	}
	k, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrKey, path, err)
	}
	pub, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("%w: %s is not an Ed25519 key", ErrKey, path)
	}
	return pub, nil
}

func readPEM(path string) (*pem.Block, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrKey, err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("%w: %s is not PEM", ErrKey, path)
	}
	return blk, nil
}

// In a credentials directory (eventbus.LoadCredentials) the signer's key is
// the auditor's, and its public half is public.
const (
	KeyName       = "checkpoint.key"
	PublicKeyName = "checkpoint.pub"
)

// KeyFile is the signing key's place in a credentials directory.
func KeyFile(dir string) string { return filepath.Join(dir, string(eventbus.RoleAuditor), KeyName) }

// PublicKeyFile is the public key's place in a credentials directory.
func PublicKeyFile(dir string) string { return filepath.Join(dir, eventbus.PublicDir, PublicKeyName) }

// EnsureKey generates the signing key pair of a credentials directory unless
// it has one, and returns the public key.
func EnsureKey(dir string) (ed25519.PublicKey, error) {
	pub, err := GenerateKey(KeyFile(dir), PublicKeyFile(dir))
	if errors.Is(err, os.ErrExist) {
		priv, err := LoadPrivateKey(KeyFile(dir))
		if err != nil {
			return nil, err
		}
		pub = priv.Public().(ed25519.PublicKey)
		return pub, WritePublicKey(PublicKeyFile(dir), pub)
	}
	return pub, err
}
