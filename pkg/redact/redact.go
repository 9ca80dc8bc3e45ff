// Package redact keeps secrets out of errors and logs: tokens in URLs and query
// strings, passwords in connection URLs, and values under secret-looking keys.
package redact

import (
	"regexp"
	"strings"
)

// Mask replaces a secret.
const Mask = "REDACTED"

var (
	queryRE = regexp.MustCompile(`(?i)((?:api_token|access_token|token|password|passwd|secret|accesskeysecret|access_key_secret|signature|client_secret|apikey|api_key)=)[^&\s"'<>]*`)
	userRE  = regexp.MustCompile(`(://)[^/@\s"',]*@`)
	bearer  = regexp.MustCompile(`(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+`)
)

// String removes secrets from free text: query parameters named like secrets,
// user:password@ in URLs, and bearer tokens.
func String(s string) string {
	if s == "" {
		return s
	}
	s = queryRE.ReplaceAllString(s, "${1}"+Mask)
	s = userRE.ReplaceAllString(s, "${1}***@")
	return bearer.ReplaceAllString(s, "${1}"+Mask)
}

// SecretKey reports whether a key (a log attribute, a header, a config field)
// names a secret.
func SecretKey(k string) bool {
	k = strings.ToLower(k)
	for _, w := range []string{"token", "password", "passwd", "secret", "authorization", "api_key", "apikey", "signature", "cookie", "credential"} {
		if strings.Contains(k, w) {
			return true
		}
	}
	return false
}

// Error wraps err so that its message is redacted while errors.Is/As still see
// the original chain.
func Error(err error) error {
	if err == nil {
		return nil
	}
	return &redacted{err: err, msg: String(err.Error())}
}

type redacted struct {
	err error
	msg string
}

func (r *redacted) Error() string { return r.msg }
func (r *redacted) Unwrap() error { return r.err }
