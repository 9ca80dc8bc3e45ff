package redact

import (
	"errors"
	"io/fs"
	"strings"
	"testing"
)

func TestString(t *testing.T) {
	cases := []struct{ in, want string }{
		{`Get "https://ap.example/api/vendor/v1/accounts/1.json?api_token=abc123&x=1": timeout`, `Get "https://ap.example/api/vendor/v1/accounts/1.json?api_token=REDACTED&x=1": timeout`},
		{"nats://alice:pw@host:4222", "nats://***@host:4222"},
		{"Authorization: Bearer eyJhbGciOi.x-y", "Authorization: Bearer REDACTED"},
		{"Signature=ab%2Fcd&AccessKeyId=k", "Signature=REDACTED&AccessKeyId=k"},
		{"plain text", "plain text"},
		{`post: invalid_auth for xoxb-1111-2222-abcDEF`, `post: invalid_auth for xoxb-REDACTED`},
		{"Post https://hooks.slack.com/services/T000/B000/XXXX: 404", "Post https://hooks.slack.com/services/REDACTED: 404"},
		{"secret whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw= rotated", "secret whsec_REDACTED rotated"},
	}
	for _, c := range cases {
		if got := String(c.in); got != c.want {
			t.Errorf("String(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestErrorKeepsChain(t *testing.T) {
	err := Error(errors.Join(fs.ErrNotExist, errors.New("url?api_token=zzz")))
	if !errors.Is(err, fs.ErrNotExist) || strings.Contains(err.Error(), "zzz") {
		t.Fatalf("%v", err)
	}
	if Error(nil) != nil {
		t.Fatal("nil must stay nil")
	}
}

func TestSecretKey(t *testing.T) {
	for k, want := range map[string]bool{"api_token": true, "SMTP_PASSWORD": true, "Authorization": true, "account_id": false, "webhook-signature": true} {
		if SecretKey(k) != want {
			t.Errorf("%s: %v", k, !want)
		}
	}
}

// FuzzSuspect: the fast path never lets through text the patterns would change.
func FuzzSuspect(f *testing.F) {
	for _, s := range []string{"", "https://hooks.example/in/abc", "BeArEr x.y", "xoxb-1-2", "xapp-1-a", "whsec_abc=",
		"https://hooks.slack.com/services/T/B/x", "a=b", "u:p@h", "bearer", "Bearer\tabc", "b", "B b bearer"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := String(s), scrub(s); got != want {
			t.Fatalf("String(%q) = %q, want %q", s, got, want)
		}
	})
}

func TestStringLeavesPlainText(t *testing.T) {
	for _, s := range []string{"https://hooks.example/in/abc", "dial tcp 10.0.0.1:443: connection refused", "beard bear"} {
		var out string
		if n := testing.AllocsPerRun(50, func() { out = String(s) }); n != 0 || out != s {
			t.Errorf("String(%q) = %q with %v allocations, want it unchanged without any", s, out, n)
		}
	}
}
