"""Top-k lists for one person: a known user (their history) or a new one (demographics).

This is the serving path: it reads the exported bundle with numpy and the warehouse with
DuckDB, and never imports TensorFlow or MLflow.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from pipelines.errors import BrokenBundle, StaleModel, UnknownUserId
from recsys.age_bands import age_band
from recsys.serving import InvalidBundle, ServingBundle
from warehouse.catalog import read_items
from warehouse.connection import connected
from warehouse.model_versions import ModelVersion, get_version, require_champion


@dataclass(frozen=True)
class Recommendations:
    model_version: int
    basis: dict  # who the list is for: {"kind": "known_user"|"demographics", ...}
    items: pl.DataFrame  # rank, item_id, title, genres, score


def recommend_for_demographics(
    home: Path,
    *,
    age: float | None,
    gender: str | None,
    occupation: str | None = None,
    k: int = 10,
    version: int | None = None,
    lock_timeout_s: float = 30.0,
) -> Recommendations:
    with connected(home, read_only=True, lock_timeout_s=lock_timeout_s) as conn:
        chosen = _version(conn, version)
        items = read_items(conn)
    bundle = load_bundle(chosen)
    vector = bundle.vector_for_demographics(age=age, gender=gender, occupation=occupation)
    basis = {
        "kind": "demographics",
        "age_band": age_band(age) if age is not None else "unknown",
        "gender": gender or "unknown",
        "occupation": occupation or "unknown",
    }
    return _result(bundle, chosen, basis, vector, items, k, exclude=None)


def recommend_for_user(
    home: Path, user_id: int, *, k: int = 10, version: int | None = None, lock_timeout_s: float = 30.0
) -> Recommendations:
    with connected(home, read_only=True, lock_timeout_s=lock_timeout_s) as conn:
        chosen = _version(conn, version)
        items = read_items(conn)
        user = conn.sql("SELECT age, gender, occupation FROM users WHERE user_id = ?", params=[user_id]).fetchall()
        seen = conn.sql("SELECT DISTINCT item_id FROM interactions WHERE user_id = ?", params=[user_id]).pl()
    bundle = load_bundle(chosen)
    if bundle.has_user(user_id):
        vector = bundle.vector_for_user(user_id)
        basis = {"kind": "known_user", "user_id": user_id, "n_seen": seen.height}
    elif user:
        # In the warehouse but newer than the model: their demographics are what we have.
        age, gender, occupation = user[0]
        vector = bundle.vector_for_demographics(age=age, gender=gender, occupation=occupation)
        basis = {"kind": "demographics", "user_id": user_id, "n_seen": seen.height,
                 "note": f"user {user_id} joined after model v{chosen.version} was trained"}
    else:
        raise UnknownUserId(
            f"user {user_id} is not in the warehouse or model v{chosen.version}; "
            "for a new person use --age and --gender (or --selfie)"
        )
    exclude = np.zeros(len(bundle.item_ids), dtype=bool)
    known_seen = seen.filter(pl.col("item_id").is_in(bundle.item_ids.tolist()))["item_id"].to_list()
    exclude[bundle.item_index(known_seen)] = True
    return _result(bundle, chosen, basis, vector, items, k, exclude)


def require_model(home: Path, version: int | None, *, lock_timeout_s: float) -> ModelVersion:
    """The model version a request would use; raises the usual clear errors if there is none."""
    with connected(home, read_only=True, lock_timeout_s=lock_timeout_s) as conn:
        return _version(conn, version)


def load_bundle(version: ModelVersion) -> ServingBundle:
    if not version.bundle_path:
        raise BrokenBundle(f"model v{version.version} has no serving bundle recorded; retrain it")
    try:
        bundle = ServingBundle.load(version.bundle_path)
    except (InvalidBundle, OSError, ValueError) as e:
        raise BrokenBundle(f"the serving bundle of model v{version.version} at {version.bundle_path} is unusable ({e}); retrain or promote another version") from e
    check_snapshot(version, bundle.manifest.get("data_snapshot"))
    return bundle


def check_snapshot(version: ModelVersion, trained_on: str | None) -> None:
    """Refuse a model trained on other data than the warehouse holds now: its item and user ids
    would be joined to another catalog's. (Hand-made bundles without a snapshot are not checked.)"""
    if trained_on is not None and version.current_snapshot is not None and trained_on != version.current_snapshot:
        raise StaleModel(
            f"model v{version.version} was trained on data snapshot {trained_on}, but the warehouse now holds "
            f"{version.current_snapshot}; its ids belong to the old catalog. Run `train` on the new data "
            "(it becomes champion), or load the old data again"
        )


def _version(conn, version: int | None) -> ModelVersion:
    return get_version(conn, version) if version is not None else require_champion(conn)


def _result(bundle, chosen, basis, vector, items: pl.DataFrame, k: int, exclude) -> Recommendations:
    ids, scores = bundle.recommend(vector, k=k, exclude=exclude)
    keep = ids[0] >= 0
    ranked = pl.DataFrame(
        {"rank": np.arange(1, keep.sum() + 1), "item_id": ids[0][keep], "score": scores[0][keep].astype(np.float64)}
    )
    table = ranked.join(items.select("item_id", "title", "genres"), on="item_id", how="left", maintain_order="left")
    return Recommendations(chosen.version, basis, table.select("rank", "item_id", "title", "genres", "score"))
