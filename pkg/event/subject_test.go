package event_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/accountwatch/accountwatch/pkg/event"
)

func TestEscapeToken(t *testing.T) {
	cases := []struct{ in, want string }{
		{"1000123", "1000123"},
		{"acct-01_x", "acct-01_x"},
		{"a.b", "a~2Eb"},
		{"with space", "with~20space"},
		{"*", "~2A"},
		{">", "~3E"},
		{"~", "~7E"},
		{"+8613800000000", "~2B8613800000000"},
		{"ü", "~C3~BC"},
		{"\xff", "~FF"},
	}
	for _, c := range cases {
		if got := event.EscapeToken(c.in); got != c.want {
			t.Errorf("EscapeToken(%q) = %q, want %q", c.in, got, c.want)
		}
		back, err := event.UnescapeToken(c.want)
		if err != nil || back != c.in {
			t.Errorf("UnescapeToken(%q) = %q, %v", c.want, back, err)
		}
	}
	for _, bad := range []string{"a.b", "~2", "~zz", "~41", "~2e", "a b", "*"} {
		if _, err := event.UnescapeToken(bad); err == nil {
			t.Errorf("UnescapeToken(%q) accepted a non-canonical token", bad)
		}
	}
}

func TestSubjectRoundTrip(t *testing.T) {
	for _, typ := range event.Types {
		for _, acct := range []string{"1", "a.b c*>", "+86 138", "日本"} {
			s, err := event.Subject(event.ProviderAlibabaCAMS, "cams-sg", typ, acct)
			if err != nil {
				t.Fatal(err)
			}
			if n := strings.Count(s, "."); n != 5 {
				t.Fatalf("%s: %d dots, want a fixed width of 6 tokens", s, n)
			}
			p, err := event.ParseSubject(s)
			if err != nil {
				t.Fatal(err)
			}
			if p.Provider != event.ProviderAlibabaCAMS || p.Instance != "cams-sg" || p.Type != typ || p.AccountID != acct {
				t.Fatalf("%s parsed as %+v", s, p)
			}
		}
	}
	if got := event.FilterSubject(event.ProviderActivePlatform, "", event.TypeStatusChanged, ""); got != "aw.events.activeplatform.*.account-status-changed.*" {
		t.Fatal(got)
	}
	for _, bad := range []string{"aw.events.x", "other.activeplatform.a.account-status-changed.1", "aw.events.aws.a.account-status-changed.1", "aw.events.activeplatform.a.nope.1"} {
		if _, err := event.ParseSubject(bad); err == nil {
			t.Errorf("ParseSubject(%q) accepted", bad)
		}
	}
}

// FuzzEscapeToken: any id maps to one valid token that maps back, and any token
// that unescapes maps back to itself (the mapping is a bijection).
func FuzzEscapeToken(f *testing.F) {
	for _, s := range []string{"", "1000123", "a.b", "*", ">", "~", "~2E", "+86 138", "日本", "\xff\x00", "aw.events.>"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tok := event.EscapeToken(s)
		if strings.ContainsAny(tok, ". *>\t\r\n") || !utf8.ValidString(tok) {
			t.Fatalf("EscapeToken(%q) = %q is not a safe token", s, tok)
		}
		back, err := event.UnescapeToken(tok)
		if err != nil || back != s {
			t.Fatalf("round trip %q -> %q -> %q, %v", s, tok, back, err)
		}
		if orig, err := event.UnescapeToken(s); err == nil && event.EscapeToken(orig) != s {
			t.Fatalf("token %q unescaped to %q, which escapes to %q", s, orig, event.EscapeToken(orig))
		}
		if s != "" {
			subj, err := event.Subject(event.ProviderActivePlatform, "ap", event.TypeStatusChanged, s)
			if err != nil {
				t.Fatal(err)
			}
			p, err := event.ParseSubject(subj)
			if err != nil || p.AccountID != s {
				t.Fatalf("subject %q parsed to %+v, %v", subj, p, err)
			}
		}
	})
}
