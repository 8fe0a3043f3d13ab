"""Top-k lists for one person: a known user (their history) or a new one (demographics),
either with items they just liked or disliked (``recommend_with_items``).

This is the serving path: it reads the exported bundle with numpy and the warehouse with
DuckDB, and never imports TensorFlow or MLflow.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from pipelines.errors import BrokenBundle, InputError, UnknownUserId
from recsys.age_bands import age_band
from recsys.personalize import History, recommend_with_history, taste_dimensions
from recsys.serving import InvalidBundle, ServingBundle
from warehouse.catalog import read_items
from warehouse.connection import connected
from warehouse.model_versions import ModelVersion, get_version, require_champion


@dataclass(frozen=True)
class Recommendations:
    model_version: int
    basis: dict  # who the list is for: {"kind": "known_user"|"demographics", ...}
    items: pl.DataFrame  # rank, item_id, title, genres, score (+ reason, because: see recommend_with_items)


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
    if bundle.item_item is not None:
        # Bundles with an item-item part bend the list toward everything the user liked (a
        # user newer than the model: their likes since, through the new-visitor table).
        result = recommend_with_items(
            home, age=None, gender=None, liked=(), user_id=user_id, k=k, version=chosen.version,
            lock_timeout_s=lock_timeout_s,
        )
        return Recommendations(result.model_version, basis, result.items.select("rank", "item_id", "title", "genres", "score"))
    exclude = np.zeros(len(bundle.item_ids), dtype=bool)
    known_seen = seen.filter(pl.col("item_id").is_in(bundle.item_ids.tolist()))["item_id"].to_list()
    exclude[bundle.item_index(known_seen)] = True
    return _result(bundle, chosen, basis, vector, items, k, exclude)


def recommend_with_items(
    home: Path,
    *,
    age: float | None,
    gender: str | None,
    occupation: str | None = None,
    liked: tuple[int, ...] | list[int] = (),
    disliked: tuple[int, ...] | list[int] = (),
    user_id: int | None = None,
    k: int = 10,
    version: int | None = None,
    lock_timeout_s: float = 30.0,
) -> Recommendations:
    """Top-k for a person who just liked (or disliked) some items, without retraining.

    A known ``user_id`` starts from their trained vector and everything they liked in the
    warehouse (rated at or above the model's threshold), plus ``liked``; their rated items are
    never returned. Otherwise the list starts from demographics. Each item says why it is
    there (``reason``: personal_history, demographic or liked_items) and, for liked_items,
    ``because``: the liked item ids that brought it in.
    """
    with connected(home, read_only=True, lock_timeout_s=lock_timeout_s) as conn:
        chosen = _version(conn, version)
        items = read_items(conn)
        rated = pl.DataFrame(schema={"item_id": pl.Int64, "rating": pl.Float64})
        user = []
        if user_id is not None:
            user = conn.sql("SELECT age, gender, occupation FROM users WHERE user_id = ?", params=[user_id]).fetchall()
            rated = conn.sql(
                "SELECT item_id, max(rating) AS rating FROM interactions WHERE user_id = ? GROUP BY item_id",
                params=[user_id],
            ).pl()
    bundle = load_bundle(chosen)
    liked_index = _catalog_positions(bundle, liked, "--liked")
    disliked_index = _catalog_positions(bundle, disliked, "--disliked")
    both = set(liked_index.tolist()) & set(disliked_index.tolist())
    if both:
        raise InputError(f"items {sorted(int(bundle.item_ids[i]) for i in both)} are both liked and disliked; give each once")
    known = user_id is not None and bundle.has_user(user_id)
    if user_id is not None and not known and not user:
        raise UnknownUserId(
            f"user {user_id} is not in the warehouse or model v{chosen.version}; "
            "for a new person use --age and --gender (or --selfie)"
        )
    rated = rated.filter(pl.col("item_id").is_in(bundle.item_ids.tolist()))
    seen = bundle.item_index(rated["item_id"].to_list())
    history_liked: list[int] = []
    if bundle.item_item is not None and user_id is not None:
        threshold = bundle.item_item.min_rating
        kept = rated if threshold is None else rated.filter(pl.col("rating") >= threshold)
        history_liked = bundle.item_index(kept["item_id"].to_list()).tolist()
    all_liked = tuple(dict.fromkeys(history_liked + liked_index.tolist()))  # warehouse first, then new
    if known:
        vector = bundle.vector_for_user(user_id)
        basis = {"kind": "known_user", "user_id": user_id, "n_seen": rated.height}
    else:
        if user:
            age, gender, occupation = user[0]
        vector = bundle.vector_for_demographics(age=age, gender=gender, occupation=occupation)
        basis = {"kind": "demographics", "age_band": age_band(age) if age is not None else "unknown",
                 "gender": gender or "unknown", "occupation": occupation or "unknown"}
        if user_id is not None:
            basis.update(user_id=user_id, n_seen=rated.height)
    basis.update(liked=[int(i) for i in liked], disliked=[int(i) for i in disliked])
    chosen_list = recommend_with_history(
        bundle.item_vectors, vector,
        History(liked=all_liked, disliked=tuple(disliked_index.tolist()), seen=tuple(seen.tolist())),
        k=k, known_user=known, taste_dims=taste_dimensions(bundle.manifest, bundle.item_vectors.shape[1]),
        item_item=bundle.item_item,
    )
    ids = bundle.item_ids[chosen_list.indices]
    ranked = pl.DataFrame({
        "rank": np.arange(1, len(ids) + 1),
        "item_id": ids.astype(np.int64),
        "score": chosen_list.scores.astype(np.float64),
        "reason": chosen_list.reasons,
        "because": [[int(bundle.item_ids[i]) for i in b] for b in chosen_list.because],
    }, schema_overrides={"because": pl.List(pl.Int64)})
    table = ranked.join(items.select("item_id", "title", "genres"), on="item_id", how="left", maintain_order="left")
    return Recommendations(
        chosen.version, basis, table.select("rank", "item_id", "title", "genres", "score", "reason", "because")
    )


def _catalog_positions(bundle: ServingBundle, item_ids, option: str) -> np.ndarray:
    unknown = [int(i) for i in item_ids if not np.isin(int(i), bundle.item_ids)]
    if unknown:
        raise InputError(
            f"{option}: item ids {unknown[:5]} are not in the catalog of model v{bundle.version}; "
            "use item ids from `python cli.py stats` or the catalog you ingested"
        )
    return bundle.item_index(list(dict.fromkeys(int(i) for i in item_ids)))


def require_model(home: Path, version: int | None, *, lock_timeout_s: float) -> ModelVersion:
    """The model version a request would use; raises the usual clear errors if there is none."""
    with connected(home, read_only=True, lock_timeout_s=lock_timeout_s) as conn:
        return _version(conn, version)


def load_bundle(version: ModelVersion) -> ServingBundle:
    if not version.bundle_path:
        raise BrokenBundle(f"model v{version.version} has no serving bundle recorded; retrain it")
    try:
        return ServingBundle.load(version.bundle_path)
    except (InvalidBundle, OSError, ValueError) as e:
        raise BrokenBundle(f"the serving bundle of model v{version.version} at {version.bundle_path} is unusable ({e}); retrain or promote another version") from e


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
