package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type Inner struct {
	Token string `envconfig:"NATS_TOKEN" secret:"true"`
	Port  int    `envconfig:"NATS_PORT" default:"4222"`
}

type spec struct {
	Inner
	Interval time.Duration `envconfig:"POLL_INTERVAL" default:"1m"`
	Name     string        `envconfig:"NAME" required:"true"`
}

func (s *spec) Validate() error {
	if s.Interval < time.Second {
		return errors.New("AW_POLL_INTERVAL: below 1s")
	}
	return nil
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "tok")
	os.WriteFile(secret, []byte("s3cret\n"), 0o600)
	cases := []struct {
		name    string
		env     map[string]string
		wantErr string
		check   func(*spec) bool
	}{
		{"defaults", map[string]string{"AW_NAME": "x"}, "", func(s *spec) bool { return s.Port == 4222 && s.Interval == time.Minute }},
		{"unprefixed fallback", map[string]string{"AW_NAME": "x", "NATS_PORT": "5222"}, "", func(s *spec) bool { return s.Port == 5222 }},
		{"secret from file", map[string]string{"AW_NAME": "x", "AW_NATS_TOKEN_FILE": secret}, "", func(s *spec) bool { return s.Token == "s3cret" }},
		{"bad number names key", map[string]string{"AW_NAME": "x", "AW_NATS_PORT": "many"}, "AW_NATS_PORT", nil},
		{"bad duration names key", map[string]string{"AW_NAME": "x", "AW_POLL_INTERVAL": "soon"}, "AW_POLL_INTERVAL", nil},
		{"required", map[string]string{}, "NAME", nil},
		{"validate", map[string]string{"AW_NAME": "x", "AW_POLL_INTERVAL": "1ms"}, "AW_POLL_INTERVAL: below 1s", nil},
		{"secret twice", map[string]string{"AW_NAME": "x", "AW_NATS_TOKEN": "a", "AW_NATS_TOKEN_FILE": secret}, "AW_NATS_TOKEN and AW_NATS_TOKEN_FILE", nil},
		{"missing secret file", map[string]string{"AW_NAME": "x", "AW_NATS_TOKEN_FILE": filepath.Join(dir, "nope")}, "AW_NATS_TOKEN_FILE", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, k := range []string{"AW_NAME", "NAME", "AW_NATS_PORT", "NATS_PORT", "AW_NATS_TOKEN", "AW_NATS_TOKEN_FILE", "AW_POLL_INTERVAL"} {
				t.Setenv(k, "")
				os.Unsetenv(k)
			}
			for k, v := range c.env {
				t.Setenv(k, v)
			}
			var s spec
			err := Load(&s)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) || !errors.Is(err, ErrInvalid) {
					t.Fatalf("want error naming %q, got %v", c.wantErr, err)
				}
				if strings.Contains(err.Error(), "s3cret") {
					t.Fatal("secret in error")
				}
				return
			}
			if err != nil || !c.check(&s) {
				t.Fatalf("%+v %v", s, err)
			}
		})
	}
}

type watchFile struct {
	Accounts []struct {
		ID     string            `yaml:"id"`
		Labels map[string]string `yaml:"labels"`
	} `yaml:"accounts"`
}

func TestLoadYAMLStrict(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, []byte("accounts:\n  - id: \"1\"\n    labels: {team: emea}\n"), 0o600)
	var w watchFile
	if err := LoadYAML(good, &w); err != nil || w.Accounts[0].Labels["team"] != "emea" {
		t.Fatalf("%+v %v", w, err)
	}
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("accounts:\n  - id: \"1\"\n    lables: {team: emea}\n"), 0o600)
	err := LoadYAML(bad, &watchFile{})
	if err == nil || !strings.Contains(err.Error(), "line 3") || !strings.Contains(err.Error(), "lables") || !strings.Contains(err.Error(), "bad.yaml") {
		t.Fatalf("want the typo and its line, got %v", err)
	}
	if err := LoadYAML(filepath.Join(dir, "missing.yaml"), &w); !errors.Is(err, ErrInvalid) {
		t.Fatal(err)
	}
}

func TestExpandEnv(t *testing.T) {
	t.Setenv("AW_TEST_HOST", "sim:8480")
	os.Unsetenv("AW_TEST_UNSET")
	for in, want := range map[string]string{
		"url: http://${AW_TEST_HOST}":             "url: http://sim:8480",
		"url: http://${AW_TEST_UNSET:-127.0.0.1}": "url: http://127.0.0.1",
		"url: ${AW_TEST_UNSET}":                   "url: ",
		"password: pa$$word":                      "password: pa$$word",
	} {
		if got := string(ExpandEnv([]byte(in))); got != want {
			t.Errorf("%q -> %q, want %q", in, got, want)
		}
	}
}

func TestParseTime(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		in   string
		want time.Time
		ok   bool
	}{
		{"", time.Time{}, true},
		{"2h", now.Add(-2 * time.Hour), true},
		{"2026-11-20T08:00:00Z", time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC), true},
		{"yesterday", time.Time{}, false},
	}
	for _, c := range cases {
		got, err := ParseTime(c.in, now)
		if (err == nil) != c.ok || !got.Equal(c.want) || !c.ok && !errors.Is(err, ErrTime) {
			t.Errorf("%q: %v %v", c.in, got, err)
		}
	}
}

type ScheduleSpec struct {
	Inner
	MaxDeliver int    `envconfig:"SINK_MAX_DELIVER" default:"10"`
	Schedule   string `envconfig:"SINK_RETRY_SCHEDULE" excludes:"SINK_MAX_DELIVER"`
	Webhook    string `envconfig:"WEBHOOK_RETRY_SCHEDULE" default:"5s,5m" excludes:"SINK_RETRY_SCHEDULE"`
}

func TestExcludes(t *testing.T) {
	cases := []struct {
		name    string
		env     map[string]string
		wantErr []string
	}{
		{"neither", nil, nil},
		{"the default alone", map[string]string{"AW_WEBHOOK_RETRY_SCHEDULE": "1s"}, nil},
		{"max deliver alone", map[string]string{"AW_SINK_MAX_DELIVER": "3"}, nil},
		{"both set", map[string]string{"AW_SINK_RETRY_SCHEDULE": "1s", "AW_SINK_MAX_DELIVER": "3"}, []string{"AW_SINK_MAX_DELIVER is set, but AW_SINK_RETRY_SCHEDULE decides it", "it is set"}},
		{"unprefixed counts", map[string]string{"AW_SINK_RETRY_SCHEDULE": "1s", "SINK_MAX_DELIVER": "3"}, []string{"AW_SINK_MAX_DELIVER", "AW_SINK_RETRY_SCHEDULE"}},
		{"against a default", map[string]string{"AW_SINK_RETRY_SCHEDULE": "1s"}, []string{"AW_SINK_RETRY_SCHEDULE is set, but AW_WEBHOOK_RETRY_SCHEDULE decides it", `its default "5s,5m"`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, k := range []string{"SINK_MAX_DELIVER", "SINK_RETRY_SCHEDULE", "WEBHOOK_RETRY_SCHEDULE"} {
				for _, n := range []string{k, "AW_" + k} {
					t.Setenv(n, "")
					os.Unsetenv(n)
				}
			}
			for k, v := range c.env {
				t.Setenv(k, v)
			}
			var s ScheduleSpec
			err := Load(&s)
			if len(c.wantErr) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("err %v, want ErrInvalid", err)
			}
			for _, w := range c.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("err %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestDefaultsAndKeys(t *testing.T) {
	type all struct {
		ScheduleSpec
		On    bool          `envconfig:"ON" default:"true"`
		Ratio float64       `envconfig:"RATIO" default:"0.5"`
		Wait  time.Duration `envconfig:"WAIT" default:"90s"`
		Count uint16        `envconfig:"COUNT" default:"7"`
		Every Duration      `envconfig:"EVERY" default:"2m"`
		None  string        `envconfig:"NONE"`
	}
	t.Setenv("AW_NATS_PORT", "1") // the environment is not read
	var s all
	if err := Defaults(&s); err != nil {
		t.Fatal(err)
	}
	if s.Port != 4222 || s.MaxDeliver != 10 || s.Webhook != "5s,5m" || !s.On || s.Ratio != 0.5 || s.Wait != 90*time.Second || s.Count != 7 || s.Every.Duration != 2*time.Minute || s.None != "" {
		t.Errorf("defaults: %+v", s)
	}
	var bad struct {
		N int `envconfig:"N" default:"many"`
	}
	if err := Defaults(&bad); err == nil || !strings.Contains(err.Error(), "AW_N") {
		t.Errorf("a bad default: %v", err)
	}
	var names []string
	for _, k := range Keys(&s) {
		names = append(names, k.Name)
	}
	if got := strings.Join(names, " "); got != "AW_NATS_TOKEN AW_NATS_PORT AW_SINK_MAX_DELIVER AW_SINK_RETRY_SCHEDULE AW_WEBHOOK_RETRY_SCHEDULE AW_ON AW_RATIO AW_WAIT AW_COUNT AW_EVERY AW_NONE" {
		t.Errorf("keys: %s", got)
	}
}

func TestUndocumented(t *testing.T) {
	doc := filepath.Join(t.TempDir(), "README.md")
	os.WriteFile(doc, []byte("| `AW_NATS_TOKEN` (`_FILE`) | |\n| `AW_SINK_MAX_DELIVER_X` | |\n`AW_SINK_RETRY_SCHEDULE`, `AW_WEBHOOK_RETRY_SCHEDULE`"), 0o600)
	var s ScheduleSpec
	got, err := Undocumented(&s, doc)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, " ") != "AW_NATS_PORT AW_SINK_MAX_DELIVER" {
		t.Errorf("undocumented: %v", got)
	}
	if _, err := Undocumented(&s, filepath.Join(t.TempDir(), "missing.md")); err == nil {
		t.Error("a missing file is no error")
	}
}
