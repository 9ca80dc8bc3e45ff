#!/usr/bin/env bash
# Regenerates the screenshots of this folder: an account going warning →
# credit hold → reminder → recovery, as Slack shows it (the Block Kit JSON
# the notifier posted to slacktest, laid out as a thread), as the email's
# HTML part shows it, and the console's account page. Each comes from a
# test of the real runtime (AW_SCREENSHOT_DIR keeps what it sent).
# Needs Debian packages chromium and fonts-noto-color-emoji.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out="$root/docs/screenshots"
command -v chromium >/dev/null || { echo "make.sh: needs Debian package chromium" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
run() { (cd "$root/services/$1" && AW_SCREENSHOT_DIR=$tmp go test -count=1 -run "^$2\$" ./internal/app/ >/dev/null) || { echo "make.sh: $1 $2 failed" >&2; exit 1; }; }
echo "running the tests that keep what they sent..."
run slack-notifier TestFinanceJourney
run email-notifier TestRemindersAndReportByEmail
run auditor TestAccountPageShowsTheForecastInBrowser
for f in "$tmp"/*.html; do
  name=$(basename "${f%.html}")
  # Tall enough for each page; the pages' background is white below.
  case $name in slack-1-*|slack-3-*) h=380 ;; slack-5-*) h=860 ;; email-5-*) h=360 ;; email-*) h=640 ;; *) h=700 ;; esac
  chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=900,$h \
    --screenshot="$out/$name.png" "file://$f" >/dev/null 2>&1
  echo "  $out/$name.png"
done
cp "$tmp/console-account.png" "$out/console-account.png"
echo "  $out/console-account.png"
