package opstest

import (
	"strings"
	"testing"

	"github.com/accountwatch/accountwatch/pkg/config/configtest"
	"github.com/accountwatch/accountwatch/pkg/ops"
)

// Help checks a service's command line: --help and -h list every key of S
// (the settings it loads) with its default and meaning, on standard output,
// and exit 0 without running it; any other argument is a usage error; no
// argument runs the service.
func Help[S any](t *testing.T, p ops.Program) {
	t.Helper()
	for _, arg := range []string{"--help", "-h"} {
		var out, errs strings.Builder
		code, done := ops.Help[S](p, []string{arg}, &out, &errs)
		if code != 0 || !done || errs.Len() > 0 || !strings.HasPrefix(out.String(), p.Name+": "+p.About) {
			t.Fatalf("%s: exit %d, stderr %q, stdout %q", arg, code, errs.String(), out.String())
		}
		configtest.Help(t, new(S), out.String())
	}
	var out, errs strings.Builder
	if code, done := ops.Help[S](p, []string{"serve"}, &out, &errs); code != 2 || !done || !strings.Contains(errs.String(), "--help") {
		t.Errorf("an argument: exit %d, %q", code, errs.String())
	}
	if _, done := ops.Help[S](p, nil, &out, &errs); done {
		t.Error("no argument does not run the service")
	}
}
