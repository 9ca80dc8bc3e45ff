package main

import (
	"strings"
	"testing"

	"github.com/accountwatch/accountwatch/pkg/config/configtest"
	"github.com/accountwatch/accountwatch/pkg/ops"
	"github.com/accountwatch/accountwatch/services/auditor/internal/app"
)

// TestHelp: --help and -h list every key the service reads, with its
// default and meaning, from the tags the loader reads; any other argument
// is a usage error.
func TestHelp(t *testing.T) {
	for _, arg := range []string{"--help", "-h"} {
		var out, errs strings.Builder
		code, done := ops.Help[app.Settings](program, []string{arg}, &out, &errs)
		if code != 0 || !done || errs.Len() > 0 || !strings.HasPrefix(out.String(), program.Name+": "+program.About) {
			t.Fatalf("%s: exit %d, stderr %q, stdout %q", arg, code, errs.String(), out.String())
		}
		configtest.Help(t, &app.Settings{}, out.String())
	}
	var out, errs strings.Builder
	if code, done := ops.Help[app.Settings](program, []string{"serve"}, &out, &errs); code != 2 || !done || !strings.Contains(errs.String(), "--help") {
		t.Errorf("an argument: exit %d, %q", code, errs.String())
	}
	if _, done := ops.Help[app.Settings](program, nil, &out, &errs); done {
		t.Error("no argument does not run the service")
	}
}

// TestDocumented: every key is in the README, the workspace's or the architecture's.
func TestDocumented(t *testing.T) {
	configtest.Documented(t, &app.Settings{}, "README.md", "../..")
}
