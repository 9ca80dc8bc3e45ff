package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/accountwatch/accountwatch/pkg/eventbus/bustest"
	"github.com/accountwatch/accountwatch/pkg/sim/simtest"
)

func TestCLI(t *testing.T) {
	b := bustest.Start(t, bustest.Config(t, "127.0.0.1:0"))
	_, simURL := simtest.Start(t, simtest.Seed())
	t.Setenv("NATS_URL", b.ClientURL())
	t.Setenv("AW_BSS_ENDPOINT", strings.TrimPrefix(simURL, "http://"))
	t.Setenv("AW_BSS_PROTOCOL", "http")
	t.Setenv("AW_BSS_ACCESS_KEY_ID", simtest.AccessKeyID)
	t.Setenv("AW_BSS_ACCESS_KEY_SECRET", simtest.AccessSecret)
	cases := []struct {
		name string
		args string
		code int
		out  string
	}{
		{"help", "help", 0, "awctl watch add"},
		{"add", "watch add --connection ap-main --provider activeplatform --account 1000123 --label team=emea --label tier=gold", 0, "watching ap-main/1000123"},
		{"add missing flag", "watch add --connection ap-main --account 1", 2, "required"},
		{"add bad provider", "watch add --connection ap-main --provider aws --account 1", 2, "unknown provider"},
		{"add bad label", "watch add --connection ap-main --provider activeplatform --account 1 --label nolabel", 2, "key=value"},
		{"list", "watch list", 0, "tier=gold"},
		{"list json", "watch list --output json", 0, `"account_id":"1000123"`},
		{"remove", "watch remove --connection ap-main --provider activeplatform --account 1000123", 0, "no longer watching"},
		{"remove again", "watch remove --connection ap-main --provider activeplatform --account 1000123", 1, "not on the watch list"},
		{"onboard", "onboard --connection bss --email fresh@partner.example --label manager=bob", 0, "created account"},
		{"onboard used email", "onboard --connection bss --email fresh@partner.example", 3, "already exists"},
		{"onboard bad domain", "onboard --connection bss --email x@elsewhere.example", 1, "InvalidParameter.LoginEmail"},
		{"list after onboard", "watch list --connection bss", 0, "onboarding"},
		{"unknown", "frobnicate", 2, "unknown command"},
	}
	for _, c := range cases {
		var out, errb bytes.Buffer
		code := run(context.Background(), strings.Fields(c.args), &out, &errb)
		all := out.String() + errb.String()
		if code != c.code || !strings.Contains(all, c.out) {
			t.Errorf("%s: exit %d, want %d; output %q lacks %q", c.name, code, c.code, all, c.out)
		}
		if strings.Contains(all, simtest.AccessSecret) {
			t.Errorf("%s: secret in output", c.name)
		}
	}
}
