package main

import (
	"testing"

	"github.com/accountwatch/accountwatch/pkg/config/configtest"
	"github.com/accountwatch/accountwatch/pkg/ops/opstest"
	"github.com/accountwatch/accountwatch/services/slack-notifier/internal/app"
)

// TestHelp: --help and -h list every key the service reads, with its
// default and meaning, from the tags the loader reads; any other argument
// is a usage error.
func TestHelp(t *testing.T) { opstest.Help[app.Settings](t, program) }

// TestDocumented: every key is in the README, the workspace's or the architecture's.
func TestDocumented(t *testing.T) {
	configtest.Documented(t, &app.Settings{}, "README.md", "../..")
}
