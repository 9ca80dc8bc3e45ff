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
	// Slack tokens (xoxb-, xoxp-, xapp-…) and incoming-webhook paths are secrets
	// wherever they appear; so is a Standard Webhooks secret (whsec_…).
	slackToken = regexp.MustCompile(`\b(xox[abeoprs]|xapp)-[A-Za-z0-9-]+`)
	slackHook  = regexp.MustCompile(`(hooks\.slack\.com/services/)[A-Za-z0-9/_-]+`)
	whsec      = regexp.MustCompile(`\bwhsec_[A-Za-z0-9+/=]+`)
)

// String removes secrets from free text: query parameters named like secrets,
// user:password@ in URLs, bearer tokens, Slack tokens and webhook URLs, and
// webhook signing secrets.
func String(s string) string {
	if !suspect(s) {
		return s
	}
	return scrub(s)
}

// suspect reports whether s holds anything a pattern of scrub could match:
// most text (an endpoint URL on every delivery, a plain error) holds none, and
// skipping six regular expressions for it keeps redaction off the hot path.
func suspect(s string) bool {
	if strings.ContainsAny(s, "=@") || strings.Contains(s, "xox") || strings.Contains(s, "xapp-") ||
		strings.Contains(s, "whsec_") || strings.Contains(s, "hooks.slack.com/services/") {
		return true
	}
	// "bearer" in any case, without allocating a lowered copy.
	for i := strings.IndexAny(s, "bB"); i >= 0 && i+6 <= len(s); {
		if strings.EqualFold(s[i:i+6], "bearer") {
			return true
		}
		j := strings.IndexAny(s[i+1:], "bB")
		if j < 0 {
			break
		}
		i += 1 + j
	}
	return false
}

func scrub(s string) string {
	s = queryRE.ReplaceAllString(s, "${1}"+Mask)
	s = userRE.ReplaceAllString(s, "${1}***@")
	s = bearer.ReplaceAllString(s, "${1}"+Mask)
	s = slackToken.ReplaceAllString(s, "${1}-"+Mask)
	s = slackHook.ReplaceAllString(s, "${1}"+Mask)
	return whsec.ReplaceAllString(s, "whsec_"+Mask)
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
