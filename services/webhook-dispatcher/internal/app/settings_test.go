package app_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/accountwatch/accountwatch/pkg/config"
	"github.com/accountwatch/accountwatch/pkg/config/configtest"
	"github.com/accountwatch/accountwatch/services/webhook-dispatcher/internal/app"
)

func TestEverySettingDocumented(t *testing.T) {
	configtest.Documented(t, &app.Settings{}, "../../README.md", "../../../..")
}

// TestConflictingSettings: a key the dispatcher's own setting replaces is a
// start-up error naming both, never silently overridden.
func TestConflictingSettings(t *testing.T) {
	cases := []struct {
		name string
		env  map[string]string
		want []string
	}{
		{"defaults", nil, nil},
		{"attempts", map[string]string{"AW_SINK_MAX_DELIVER": "3"}, []string{"AW_SINK_MAX_DELIVER", "AW_WEBHOOK_RETRY_SCHEDULE"}},
		{"backoff", map[string]string{"AW_SINK_BACKOFF_MAX": "1m"}, []string{"AW_SINK_BACKOFF_MAX", "AW_WEBHOOK_RETRY_SCHEDULE"}},
		{"two schedules", map[string]string{"AW_SINK_RETRY_SCHEDULE": "1s", "AW_WEBHOOK_RETRY_SCHEDULE": "2s"}, []string{"AW_SINK_RETRY_SCHEDULE", "AW_WEBHOOK_RETRY_SCHEDULE"}},
		{"send timeout", map[string]string{"AW_SINK_SEND_TIMEOUT": "5s"}, []string{"AW_SINK_SEND_TIMEOUT", "AW_WEBHOOK_TIMEOUT"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("AW_WEBHOOK_ADMIN_TOKEN", "a-token-of-sixteen-or-more")
			for k, v := range c.env {
				t.Setenv(k, v)
			}
			var s app.Settings
			err := config.Load(&s)
			if len(c.want) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				if s.RetrySchedule != s.Schedule || s.SendTimeout != s.Timeout || s.Schedule != "5s,5m,30m,2h,5h,10h,14h,24h,24h" {
					t.Errorf("the dispatcher runs schedule %q, send timeout %s", s.RetrySchedule, s.SendTimeout)
				}
				return
			}
			if !errors.Is(err, config.ErrInvalid) {
				t.Fatalf("err %v, want config.ErrInvalid", err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%q does not name %s", err, w)
				}
			}
		})
	}
	var s app.Settings // set in code, as tests and tools do
	config.Defaults(&s)
	s.AdminToken, s.RetrySchedule = "a-token-of-sixteen-or-more", "1s"
	if err := s.Validate(); err == nil || !strings.Contains(err.Error(), "AW_WEBHOOK_RETRY_SCHEDULE") {
		t.Errorf("a second schedule set in code: %v", err)
	}
}
