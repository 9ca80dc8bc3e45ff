package deadletter_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/accountwatch/accountwatch/pkg/deadletter"
)

// sinks is a roster in memory: sink → ad-hoc kind and receivers.
type sinks map[string]struct {
	adhoc     deadletter.Address
	receivers []string
}

func (s sinks) Sinks(context.Context) ([]string, error) {
	var out []string
	for k := range s {
		out = append(out, k)
	}
	slices.Sort(out)
	return out, nil
}

func (s sinks) Adhoc(_ context.Context, sink string) (deadletter.Address, bool, error) {
	e, ok := s[sink]
	return e.adhoc, ok, nil
}

func (s sinks) Receiver(_ context.Context, sink, receiver string) (bool, error) {
	return slices.Contains(s[sink].receivers, receiver), nil
}

func TestCheckTarget(t *testing.T) {
	r := sinks{
		"slack":   {deadletter.AddressSlackChannel, []string{"ops", "finance"}},
		"email":   {deadletter.AddressEmail, []string{"default"}},
		"webhook": {"", []string{"ep_0123456789abcdef"}},
	}
	cases := []struct {
		name, sink, receiver, to, want string // want "" valid
	}{
		{"receiver", "slack", "ops", "", ""},
		{"webhook endpoint", "webhook", "ep_0123456789abcdef", "", ""},
		{"slack channel", "slack", "", "#billing-alerts", ""},
		{"slack channel id", "slack", "", "C0123ABCDE", ""},
		{"slack adhoc named", "slack", "adhoc", "#ops", ""},
		{"email", "email", "", "cfo@acme.example", ""},
		{"no sink", "", "ops", "", "sink: required"},
		{"unknown sink", "pager", "ops", "", `sink: "pager" is not a sink that has started (known: email, slack, webhook)`},
		{"unknown receiver", "slack", "nobody", "", `receiver: sink slack has no receiver "nobody"`},
		{"no receiver", "slack", "", "", "receiver: required"},
		{"adhoc without to", "email", "adhoc", "", "to: required"},
		{"both", "slack", "ops", "#x", "not both"},
		{"webhook to", "webhook", "", "http://127.0.0.1/", "to: sink webhook takes no ad-hoc destination"},
		{"email CRLF", "email", "", "cfo@acme.example\r\nBcc: all@acme.example", "control character"},
		{"email LF", "email", "", "a@b.example\nx", "control character"},
		{"email display name", "email", "", "CFO <cfo@acme.example>", "not an email address"},
		{"email list", "email", "", "a@acme.example, b@acme.example", "not an email address"},
		{"email no at", "email", "", "cfo", "not an email address"},
		{"email long", "email", "", strings.Repeat("a", 250) + "@b.example", "longer than"},
		{"slack bad", "slack", "", "#Bad Channel", "not a Slack channel"},
		{"slack escape", "slack", "", "#ops\x1b[2J", "control character"},
	}
	for _, c := range cases {
		err := deadletter.CheckTarget(context.Background(), r, c.sink, c.receiver, c.to)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.want != "" && (!errors.Is(err, deadletter.ErrInvalidTarget) || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
}
