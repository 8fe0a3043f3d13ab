#!/usr/bin/env bash
# Installs everything (if needed) and runs the whole test suite.
set -euo pipefail
source "$(dirname "$0")/install.sh"
exec .venv/bin/python -m pytest "$@"
