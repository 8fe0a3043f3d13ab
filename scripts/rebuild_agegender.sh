#!/usr/bin/env bash
# Rebuilds vision/models/agegender.onnx (and its licence notice) from the npm package
# @vladmandic/face-api@1.7.15, then checks it against a run of the original tfjs network.
# Needs npm and node (apt-get install -y nodejs npm); downloads about 25 MB into a temporary folder.
#   bash scripts/rebuild_agegender.sh [PYTHON]
set -euo pipefail
py=${1:-.venv/bin/python}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent @vladmandic/face-api@1.7.15 >/dev/null && tar xzf vladmandic-face-api-1.7.15.tgz)
$py -m vision.agegender_export "$work/vladmandic-face-api-1.7.15.tgz"
# Reference: the package's own AgeGenderNet on tfjs (CPU backend), on the images the test uses.
(cd "$work" && echo '{"private":true}' > package.json &&
  npm install --silent --no-audit --no-fund @tensorflow/tfjs@4.22.0 @tensorflow/tfjs-backend-wasm@4.22.0 >/dev/null)
$py - "$work" <<'PY'
import json, sys
from pathlib import Path
from vision.agegender_export import check_images
work = Path(sys.argv[1])
items = []
for i, image in enumerate(check_images()):
    image.astype("<f4").tofile(work / f"check{i}.f32")
    items.append({"file": f"check{i}.f32", "height": 112, "width": 112})
(work / "inputs.json").write_text(json.dumps(items))
PY
node scripts/agegender_reference.mjs "$work" "$work/inputs.json" 2>/dev/null > "$work/tfjs.json"
$py - "$work/tfjs.json" <<'PY'
import json, sys
import numpy as np, onnxruntime as ort
from vision.agegender_export import MODELS_DIR, ONNX_NAME, check_images
ref = json.load(open(sys.argv[1]))
session = ort.InferenceSession(str(MODELS_DIR / ONNX_NAME), providers=["CPUExecutionProvider"])
age, gender = session.run(["age", "gender"], {"image": check_images().astype(np.float32)})
ref_age = np.array([r["age"] for r in ref["results"]]); ref_gender = np.array([r["gender"] for r in ref["results"]])
print(f"ONNX vs tfjs {ref['tfjs']} ({ref['backend']}): max |age diff| {np.abs(age - ref_age).max():.2e} years, "
      f"max |gender prob diff| {np.abs(gender - ref_gender).max():.2e}")
print("tests/vision/test_agegender_export.py holds these tfjs outputs:", json.dumps(ref["results"]))
PY
