package event

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// ErrInvalid is returned for any value that breaks the event contract.
var ErrInvalid = errors.New("invalid event")

// SubjectRoot is the prefix of every event subject; the stream captures SubjectRoot + ">".
const SubjectRoot = "aw.events."

const hexDigits = "0123456789ABCDEF"

// safeTokenByte reports whether b may stand for itself in an escaped token.
func safeTokenByte(b byte) bool {
	return b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '-' || b == '_'
}

// EscapeToken turns any account id (dots, spaces, '*', '>', unicode, even invalid
// UTF-8) into one NATS subject token. Bytes outside [A-Za-z0-9_-] become "~XX"
// (upper-case hex), so the mapping is injective and reversible by UnescapeToken.
// The empty string has no token and is rejected by the callers that build subjects.
func EscapeToken(s string) string {
	n := 0
	for i := 0; i < len(s); i++ {
		if !safeTokenByte(s[i]) {
			n++
		}
	}
	if n == 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 2*n)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if safeTokenByte(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('~')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&0xF])
	}
	return b.String()
}

// UnescapeToken reverses EscapeToken. It accepts only canonical tokens (what
// EscapeToken produces), so every id has exactly one token.
func UnescapeToken(tok string) (string, error) {
	if !strings.Contains(tok, "~") {
		for i := 0; i < len(tok); i++ {
			if !safeTokenByte(tok[i]) {
				return "", fmt.Errorf("%w: token %q: byte %q must be escaped", ErrInvalid, tok, tok[i])
			}
		}
		return tok, nil
	}
	out := make([]byte, 0, len(tok))
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		switch {
		case safeTokenByte(c):
			out = append(out, c)
		case c == '~':
			if i+2 >= len(tok) {
				return "", fmt.Errorf("%w: token %q: truncated escape at %d", ErrInvalid, tok, i)
			}
			hi, lo := strings.IndexByte(hexDigits, tok[i+1]), strings.IndexByte(hexDigits, tok[i+2])
			if hi < 0 || lo < 0 {
				return "", fmt.Errorf("%w: token %q: bad escape at %d", ErrInvalid, tok, i)
			}
			v := byte(hi<<4 | lo)
			if safeTokenByte(v) {
				return "", fmt.Errorf("%w: token %q: needless escape at %d", ErrInvalid, tok, i)
			}
			out = append(out, v)
			i += 2
		default:
			return "", fmt.Errorf("%w: token %q: byte %q must be escaped", ErrInvalid, tok, c)
		}
	}
	return string(out), nil
}

var instanceRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// ValidateInstance checks an upstream connection name: it becomes a subject token
// and part of the source URN, so it is restricted to [a-z0-9_-], 63 bytes at most.
func ValidateInstance(name string) error {
	if !instanceRE.MatchString(name) {
		return fmt.Errorf("%w: instance name %q (want lower-case letters, digits, '-' or '_', starting with a letter or digit, at most 63)", ErrInvalid, name)
	}
	return nil
}

// Subject is the NATS subject of an event:
// aw.events.<provider>.<instance>.<type-token>.<account-token>.
func Subject(p Provider, instance string, t Type, accountID string) (string, error) {
	if !p.Valid() {
		return "", fmt.Errorf("%w: unknown provider %q", ErrInvalid, p)
	}
	if err := ValidateInstance(instance); err != nil {
		return "", err
	}
	if !t.Valid() {
		return "", fmt.Errorf("%w: unknown type %q", ErrInvalid, t)
	}
	if accountID == "" {
		return "", fmt.Errorf("%w: empty account id", ErrInvalid)
	}
	return SubjectRoot + string(p) + "." + instance + "." + t.Token() + "." + EscapeToken(accountID), nil
}

// SubjectParts is a parsed event subject.
type SubjectParts struct {
	Provider  Provider
	Instance  string
	Type      Type
	AccountID string
}

// ParseSubject splits and unescapes an event subject built by Subject.
func ParseSubject(subject string) (SubjectParts, error) {
	rest, ok := strings.CutPrefix(subject, SubjectRoot)
	if !ok {
		return SubjectParts{}, fmt.Errorf("%w: subject %q lacks prefix %q", ErrInvalid, subject, SubjectRoot)
	}
	parts := strings.Split(rest, ".")
	if len(parts) != 4 {
		return SubjectParts{}, fmt.Errorf("%w: subject %q: want 4 tokens after %q, got %d", ErrInvalid, subject, SubjectRoot, len(parts))
	}
	t, err := TypeFromToken(parts[2])
	if err != nil {
		return SubjectParts{}, err
	}
	acct, err := UnescapeToken(parts[3])
	if err != nil {
		return SubjectParts{}, err
	}
	sp := SubjectParts{Provider: Provider(parts[0]), Instance: parts[1], Type: t, AccountID: acct}
	if !sp.Provider.Valid() {
		return SubjectParts{}, fmt.Errorf("%w: subject %q: unknown provider %q", ErrInvalid, subject, parts[0])
	}
	return sp, ValidateInstance(sp.Instance)
}

// FilterSubject builds a consumer filter; empty arguments become '*'.
func FilterSubject(p Provider, instance string, t Type, accountID string) string {
	tok := func(s string) string {
		if s == "" {
			return "*"
		}
		return s
	}
	tt, at := "", ""
	if t != "" {
		tt = t.Token()
	}
	if accountID != "" {
		at = EscapeToken(accountID)
	}
	return SubjectRoot + tok(string(p)) + "." + tok(instance) + "." + tok(tt) + "." + tok(at)
}
