#!/usr/bin/env bash
# Installs everything, then runs the main job end to end:
#   1. ingest MovieLens 100K: from $1 if given, else ../shared/data/ml-100k if present, else
#      downloaded once from GroupLens (MD5-checked);
#   2. train, evaluate, log to MLflow and register a model version;
#   3. recommend for the example selfie (examples/astronaut.jpg, public domain).
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
$py cli.py train
$py cli.py recommend --selfie examples/astronaut.jpg
