package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	pkgconfig "github.com/accountwatch/accountwatch/pkg/config"
	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/services/poller/internal/config"
	_ "github.com/accountwatch/accountwatch/services/poller/internal/provider" // the providers' settings
)

func write(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "poller.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const good = `connections:
  - {name: ap-main, provider: activeplatform, url: "http://127.0.0.1:8480", api_token_env: AW_TEST_AP_TOKEN}
  - {name: bss, provider: alibaba-bss, endpoint: "127.0.0.1:8480", access_key_id: k, access_key_secret_file: %s}
  - {name: cams, provider: alibaba-cams, endpoint: "127.0.0.1:8480", access_key_id: k, access_key_secret: s, spaces: ["1"]}
watch:
  - {connection: ap-main, account: "1", labels: {tier: gold}}
  - {connection: cams, account: "861", space: "1"}
policy: {debt_step: "100", debt_threshold: "1000", degraded_after: 5}
pii_allow: [custom_attributes.tier]
`

func TestLoad(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "bss")
	os.WriteFile(secret, []byte("bss-secret\n"), 0o600)
	t.Setenv("AW_TEST_AP_TOKEN", "tok")
	f, err := config.Load(write(t, strings.Replace(good, "%s", secret, 1)))
	if err != nil {
		t.Fatal(err)
	}
	ap, bss := f.Connection("ap-main"), f.Connection("bss")
	if ap.APIToken != "tok" || bss.AccessKeySecret != "bss-secret" || ap.Interval.Duration.String() != "1m0s" || ap.FullScanEvery != 10 || ap.PerPage != 500 {
		t.Fatalf("%+v %+v", ap, bss)
	}
	p, _ := f.DetectPolicy()
	if p.DebtStep.String() != "100" || p.DebtThreshold.String() != "1000" || p.DegradedAfter != 5 {
		t.Fatalf("%+v", p)
	}
	if !f.AllowList().Allowed(event.AttributeKey("Tier")) || f.AllowList().Allowed(event.AttributeKey("passport_number")) {
		t.Fatal("allow-list")
	}
}

func TestErrorsNameTheKey(t *testing.T) {
	t.Setenv("AW_TEST_AP_TOKEN", "tok")
	cases := map[string]struct{ body, want string }{
		"unknown key":     {"connections:\n  - {name: a, provider: activeplatform, url: x, api_token: t, intreval: 5s}\n", "intreval"},
		"bad name":        {"connections:\n  - {name: AP Main, provider: activeplatform, url: x, api_token: t}\n", "connections[0] (AP Main).name"},
		"duplicate":       {"connections:\n  - {name: a, provider: activeplatform, url: x, api_token: t}\n  - {name: a, provider: activeplatform, url: x, api_token: t}\n", "connections[1] (a).name: duplicate"},
		"provider":        {"connections:\n  - {name: a, provider: aws}\n", "connections[0] (a).provider"},
		"no token":        {"connections:\n  - {name: a, provider: activeplatform, url: x}\n", "api_token"},
		"unset env":       {"connections:\n  - {name: a, provider: activeplatform, url: x, api_token_env: AW_TEST_UNSET_TOKEN}\n", "AW_TEST_UNSET_TOKEN is not set"},
		"bad interval":    {"connections:\n  - {name: a, provider: activeplatform, url: x, api_token: t, interval: 10ms}\n", "interval: 10ms is below 100ms"},
		"interval format": {"connections:\n  - {name: a, provider: activeplatform, url: x, api_token: t, interval: soon}\n", "soon"},
		"jitter":          {"connections:\n  - {name: a, provider: activeplatform, url: x, api_token: t, jitter: 0.9}\n", "jitter"},
		"cams spaces":     {"connections:\n  - {name: c, provider: alibaba-cams, endpoint: e, access_key_id: k, access_key_secret: s}\n", "spaces"},
		"watch conn":      {"connections: []\nwatch:\n  - {connection: nope, account: \"1\"}\n", "watch[0].connection"},
		"cams watch":      {"connections:\n  - {name: c, provider: alibaba-cams, endpoint: e, access_key_id: k, access_key_secret: s, spaces: [\"1\"]}\nwatch:\n  - {connection: c, account: \"1\"}\n", "watch[0].space"},
		"policy":          {"policy: {debt_step: \"-5\"}\n", "policy.debt_step"},
		"hysteresis":      {"policy: {debt_hysteresis: \"1.5\"}\n", "policy.debt_hysteresis"},
	}
	for name, c := range cases {
		_, err := config.Load(write(t, c.body))
		if err == nil || !strings.Contains(err.Error(), c.want) || !errors.Is(err, pkgconfig.ErrInvalid) {
			t.Errorf("%s: want an error naming %q, got %v", name, c.want, err)
		}
		if err != nil && strings.Contains(err.Error(), "bss-secret") {
			t.Errorf("%s: secret in error", name)
		}
	}
}
