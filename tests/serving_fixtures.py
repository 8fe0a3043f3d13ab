"""A home with a hand-made serving bundle whose right answers can be worked out on paper.

Vectors are 2-D: axis 0 means "action", axis 1 means "romance".
items 10, 11 are action (10 stronger), 12, 13 romance (12 stronger), 14 is weakly both.
Cold start: men -> action, women -> romance, unknown gender -> both equally.
Known users: 1 likes action and has seen item 10; 2 likes romance and has seen nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl

from recsys.age_bands import AGE_BAND_LOWER_BOUNDS, AGE_BANDS
from warehouse.catalog import Dataset, replace_dataset
from warehouse.connection import connected
from warehouse.model_versions import record_version

ITEM_IDS = np.array([10, 11, 12, 13, 14])
ITEM_VECTORS = np.array([[1.0, 0.0], [0.9, 0.0], [0.0, 1.0], [0.0, 0.8], [0.3, 0.3]], dtype=np.float32)
GENRES = {10: ["Action"], 11: ["Action"], 12: ["Romance"], 13: ["Romance"], 14: ["Action", "Romance"]}
GENDERS = ["F", "M"]
OCCUPATIONS = ["writer"]


def write_bundle(directory: Path, version: int) -> Path:
    directory.mkdir(parents=True)
    cold = np.zeros((len(AGE_BANDS) + 1, len(GENDERS) + 1, len(OCCUPATIONS) + 1, 2), dtype=np.float32)
    cold[:, 0] = [0.5, 0.5]  # gender unknown
    cold[:, 1] = [0.0, 1.0]  # F
    cold[:, 2] = [1.0, 0.0]  # M
    manifest = {
        "format_version": 1,
        "version": str(version),
        "dim": 2,
        "vocabularies": {"age_bands": list(AGE_BANDS), "genders": GENDERS, "occupations": OCCUPATIONS},
        "age_band_lower_bounds": list(AGE_BAND_LOWER_BOUNDS),
    }
    (directory / "manifest.json").write_text(json.dumps(manifest))
    np.save(directory / "item_ids.npy", ITEM_IDS)
    np.save(directory / "item_vectors.npy", ITEM_VECTORS)
    np.save(directory / "user_ids.npy", np.array([1, 2]))
    np.save(directory / "user_vectors.npy", np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32))
    np.save(directory / "cold_start_vectors.npy", cold)
    return directory


def make_home(home: Path, *, extra_users: int = 0) -> Path:
    """Warehouse with users 1, 2 (in the bundle) and 3 (joined after training: F, 30)."""
    users = pl.DataFrame({"user_id": [1, 2, 3], "age": [40, 25, 30], "gender": ["M", "F", "F"]})
    items = pl.DataFrame({"item_id": ITEM_IDS.tolist(), "title": [f"Item {i}" for i in ITEM_IDS],
                          "genres": [GENRES[int(i)] for i in ITEM_IDS]})
    interactions = pl.DataFrame({"user_id": [1, 3], "item_id": [10, 12], "rating": [5.0, 4.0], "timestamp": [1, 2]})
    bundle = write_bundle(home / "bundles" / "v1", 1)
    with connected(home) as conn:
        replace_dataset(conn, Dataset(users, items, interactions), source="fixture", fmt="test")
        record_version(conn, version=1, mlflow_run_id="run-1", metrics={"model": {"cold.ndcg_at_10": 0.5}, "baselines": {}},
                       data_snapshot="s", bundle_path=str(bundle), champion=True, note="fixture")
    return home


HEAVY_MODULES = ("tensorflow", "tf_keras", "keras", "mtcnn", "mlflow")


def heavy_modules_after(cli_args: list[str], modules: tuple[str, ...] = HEAVY_MODULES) -> list[str]:
    """Runs one CLI command in a fresh interpreter; returns which of ``modules`` it imported."""
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[1]
    code = (
        "import json, sys; from click.testing import CliRunner; from cli import cli\n"
        f"r = CliRunner().invoke(cli, {cli_args!r})\n"
        "assert r.exit_code == 0, r.output\n"
        f"print(json.dumps(sorted(m for m in {modules!r} if m in sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=repo, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])
