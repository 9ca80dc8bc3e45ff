// Package configtest holds what a service's tests check of its settings.
package configtest

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/accountwatch/accountwatch/pkg/config"
)

// Documented fails t for every environment key of spec that neither the
// service's README (readme) nor the workspace's shared documents (README.md,
// docs/architecture.md under root) name.
func Documented(t testing.TB, spec any, readme, root string) {
	t.Helper()
	missing, err := config.Undocumented(spec, readme, filepath.Join(root, "README.md"), filepath.Join(root, "docs", "architecture.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range missing {
		t.Errorf("%s is documented nowhere (%s, README.md, docs/architecture.md)", k, readme)
	}
}

// Help fails t for every environment key of spec that the --help text
// does not list on a line of its own with its default (or "required") and
// what it means, and for every key whose struct tags say nothing of what
// it means: --help is generated from the tags, so a key without a desc
// tag is a key nobody is told about.
func Help(t testing.TB, spec any, help string) {
	t.Helper()
	lines := strings.Split(help, "\n")
	for _, k := range config.Keys(spec) {
		if k.Desc == "" {
			t.Errorf("%s has no desc tag: --help cannot say what it means", k.Name)
			continue
		}
		def := k.Shown()
		found := false
		for _, l := range lines {
			f := strings.Fields(l)
			if slices.Contains(f, k.Name) && strings.Contains(l, "  "+def+"  ") && strings.Contains(l, k.Desc) {
				found = true
				break
			}
		}
		if !found {
			t.Errorf("--help lacks %s with its default %q and its meaning:\n%s", k.Name, def, help)
		}
	}
}
