// Package configtest holds what a service's tests check of its settings.
package configtest

import (
	"path/filepath"
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
