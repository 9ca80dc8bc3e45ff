package app_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// browser starts headless Chromium (Debian's chromium: a test skips without
// it, and fails under CI=true) and returns a context for its steps, bounded
// to 90 s, with actions that screenshot to testdata/artifacts and read text.
// Call it after starting the console: cleanups run last first, and a browser
// still open holds connections the console's shutdown would wait for.
func browser(t *testing.T) (context.Context, func(name string) chromedp.Action[chromedp.Void], func(sel string, dst *string) chromedp.Action[chromedp.Void]) {
	t.Helper()
	chromium, err := exec.LookPath("chromium")
	switch {
	case err != nil && os.Getenv("CI") == "true":
		t.Fatalf("Debian package chromium is missing (.ci/run installs it): %v", err)
	case err != nil:
		t.Skipf("needs Debian package chromium (apt-get install chromium): %v", err)
	}
	artifacts := filepath.Join("..", "..", "testdata", "artifacts")
	os.MkdirAll(artifacts, 0o755)
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium), chromedp.NoSandbox, chromedp.WindowSize(1360, 900), chromedp.Flag("disable-dev-shm-usage", true))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(cancel)
	// The first call starts the browser on a context without a deadline (a
	// deadline would stop the browser); the steps then run under one.
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("browser: %v", err)
	}
	tctx, tcancel := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(tcancel)
	shot := func(name string) chromedp.Action[chromedp.Void] {
		return func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
			b, err := chromedp.FullScreenshot(100)(ctx, tg) // 100: PNG
			if err != nil {
				return chromedp.Void{}, err
			}
			return chromedp.Void{}, os.WriteFile(filepath.Join(artifacts, name+".png"), b, 0o644)
		}
	}
	text := func(sel string, dst *string) chromedp.Action[chromedp.Void] {
		return func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
			v, err := chromedp.Text(sel)(ctx, tg)
			*dst = v
			return chromedp.Void{}, err
		}
	}
	return tctx, shot, text
}
