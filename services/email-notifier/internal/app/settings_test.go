package app_test

import (
	"testing"

	"github.com/accountwatch/accountwatch/pkg/config/configtest"
	"github.com/accountwatch/accountwatch/services/email-notifier/internal/app"
)

func TestEverySettingDocumented(t *testing.T) {
	configtest.Documented(t, &app.Settings{}, "../../README.md", "../../../..")
}
