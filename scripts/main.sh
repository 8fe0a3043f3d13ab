#!/usr/bin/env bash
# Installs everything, then runs the main job: ingest MovieLens 100K into the default home.
# MovieLens comes from $1 if given, else ../shared/data/ml-100k if present, else GroupLens
# (downloaded once, MD5-checked).
set -euo pipefail
source "$(dirname "$0")/install.sh"
py=.venv/bin/python
if [ $# -ge 1 ]; then
  $py cli.py ingest movielens "$1"
elif [ -d ../shared/data/ml-100k ]; then
  $py cli.py ingest movielens ../shared/data/ml-100k
else
  $py cli.py ingest movielens --download 100k
fi
$py cli.py stats --top 5
