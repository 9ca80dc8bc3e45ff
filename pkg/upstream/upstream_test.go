package upstream

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestMoney(t *testing.T) {
	cases := []struct {
		in, want, raw string
		null, bad     bool
	}{
		{in: `"453.2"`, want: "453.2", raw: "453.2"},
		{in: `453.2`, want: "453.2", raw: "453.2"},
		{in: `453.20`, want: "453.2", raw: "453.20"},
		{in: `" -120.50 "`, want: "-120.5", raw: "-120.50"},
		{in: `0.1`, want: "0.1", raw: "0.1"},
		{in: `12345678901234567890.12`, want: "12345678901234567890.12", raw: "12345678901234567890.12"},
		{in: `null`, null: true},
		{in: `""`, null: true},
		{in: `"abc"`, bad: true},
		{in: `true`, bad: true},
		{in: `{}`, bad: true},
		{in: `1e400`, bad: true},
	}
	for _, c := range cases {
		d, raw, err := Money(json.RawMessage(c.in))
		switch {
		case c.bad:
			if err == nil {
				t.Errorf("%s: want an error, got %v", c.in, d)
			}
		case c.null:
			if err != nil || d != nil {
				t.Errorf("%s: want nil, got %v %v", c.in, d, err)
			}
		default:
			if err != nil || d.String() != c.want || raw != c.raw {
				t.Errorf("%s: got %v %q %v, want %s %q", c.in, d, raw, err, c.want, c.raw)
			}
		}
	}
}

func TestID(t *testing.T) {
	for in, want := range map[string]string{`1051360339779133`: "1051360339779133", `"1051360339779133"`: "1051360339779133", `null`: ""} {
		if got, err := ID(json.RawMessage(in)); err != nil || got != want {
			t.Errorf("%s: %q %v", in, got, err)
		}
	}
	for _, bad := range []string{`1.5`, `-3`, `[]`, `{}`} {
		if _, err := ID(json.RawMessage(bad)); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

func TestRetry(t *testing.T) {
	r := Retry{Attempts: 4, Base: time.Millisecond, Max: 4 * time.Millisecond, MaxRetryAfter: 50 * time.Millisecond}
	cases := []struct {
		name  string
		errs  []error
		calls int
		ok    bool
	}{
		{"transient then ok", []error{&Error{Kind: ErrTransient}, nil}, 2, true},
		{"throttled with retry-after", []error{&Error{Kind: ErrThrottled, RetryAfter: time.Millisecond}, nil}, 2, true},
		{"throttled too long gives up", []error{&Error{Kind: ErrThrottled, RetryAfter: time.Hour}, nil}, 1, false},
		{"unauthorised not retried", []error{&Error{Kind: ErrUnauthorized}, nil}, 1, false},
		{"malformed not retried", []error{&Error{Kind: ErrMalformed}, nil}, 1, false},
		{"attempts run out", []error{&Error{Kind: ErrTransient}, &Error{Kind: ErrTransient}, &Error{Kind: ErrTransient}, &Error{Kind: ErrTransient}, nil}, 4, false},
	}
	for _, c := range cases {
		calls := 0
		err := r.Do(context.Background(), func(context.Context) error { calls++; return c.errs[calls-1] })
		if calls != c.calls || (err == nil) != c.ok {
			t.Errorf("%s: %d calls, err %v", c.name, calls, err)
		}
	}
}

func TestErrorMessage(t *testing.T) {
	e := &Error{Kind: ErrThrottled, Op: "GetCustomerAccountInfo", HTTPStatus: 400, Code: "Throttling.User", RequestID: "R1", Msg: "flow control"}
	if !errors.Is(e, ErrThrottled) || !strings.Contains(e.Error(), "GetCustomerAccountInfo: throttled (HTTP 400) Throttling.User: flow control [request R1]") {
		t.Fatal(e.Error())
	}
	if CodeOf(e) != "Throttling.User" {
		t.Fatal("code")
	}
}

func TestNumberLiteralMatchesJSON(t *testing.T) {
	for _, s := range []string{"0", "-0", "12", "1.5", "1.", ".5", "01", "1e5", "1E+5", "1e", "1e-", "-", "", "1.5e-3", "--1", "1a"} {
		want := false
		var n json.Number
		if json.Unmarshal([]byte(s), &n) == nil {
			want = true
		}
		if got := numberLiteral([]byte(s)); got != want {
			t.Errorf("numberLiteral(%q) = %v, encoding/json says %v", s, got, want)
		}
	}
}

func TestJSONAnswer(t *testing.T) {
	for _, c := range []struct {
		ct, body string
		ok       bool
	}{
		{"application/json", "{}", true},
		{"application/json; charset=utf-8", "[]", true},
		{"text/json", "{}", true},
		{"application/vnd.api+json", "{}", true},
		{"", ` {"id":1}`, true},
		{"text/plain", "[1]", true},
		{"text/html", "{}", false},
		{"", "<html>502</html>", false},
		{"application/octet-stream", "", false},
	} {
		if got := JSONAnswer(c.ct, []byte(c.body)); got != c.ok {
			t.Errorf("%q %q: %v", c.ct, c.body, got)
		}
	}
}
