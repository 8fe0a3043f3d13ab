#!/usr/bin/env bash
# Installs everything (if needed) and runs the whole test suite.
set -euo pipefail
source "$(dirname "$0")/install.sh"
# The page's browser tests drive Debian's Chromium through Playwright (Playwright's own browser
# download is not used). Installed once, quietly, when missing and we may (root with apt-get);
# without it those tests are skipped with a note saying how to get it.
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } >/dev/null 2>&1 \
    || echo "note: could not install chromium; the browser tests will be skipped" >&2
fi
exec .venv/bin/python -m pytest "$@"
