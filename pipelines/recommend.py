"""Top-k lists for one person: a known user (their history) or a new one (demographics),
either with items they just liked or disliked (``recommend_with_items``).

This is the serving path: it reads the exported bundle with numpy and the warehouse with
DuckDB, and never imports TensorFlow or MLflow; polars only for tables (``Recommendations.items``,
a service's whole-catalog index), so a one-off `recommend --json` does not pay for its import.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # polars is imported where a table is built, not on the one-person path
    import polars as pl

from pipelines.errors import BrokenBundle, InputError, StaleModel, UnknownUserId
from pipelines.ids import IdMap, ShownId
from pipelines.schemas import Basis, RecommendationList, RecommendedItem
from recsys.age_bands import age_band
from recsys.personalize import History, recommend_with_history, taste_dimensions
from recsys.serving import InvalidBundle, ServingBundle
from warehouse.connection import connected
from warehouse.lookups import UserRatings, items_by_id, user_ratings
from warehouse.model_versions import ModelVersion, get_version, require_champion


@dataclass(frozen=True)
class Recommendations:
    model_version: int
    basis: dict  # who the list is for: {"kind": "known_user"|"demographics"|"session", ...}
    entries: list[RecommendedItem]  # best first

    @property
    def items(self) -> "pl.DataFrame":
        """rank, item_id, title, year, genres, score, reason, because: for tables."""
        import polars as pl

        schema = {"rank": pl.Int64, "item_id": pl.Int64, "title": pl.Utf8, "year": pl.Int32, "genres": pl.List(pl.Utf8),
                  "score": pl.Float64, "reason": pl.Utf8, "because": pl.List(pl.Int64)}
        if any(isinstance(e.item_id, str) for e in self.entries):  # a catalog of string ids (pipelines.ids)
            schema.update(item_id=pl.Utf8, because=pl.List(pl.Utf8))
        return pl.DataFrame([asdict(e) for e in self.entries], schema=schema)

    def to_list(self) -> RecommendationList:
        """The shared JSON shape (pipelines.schemas), as the CLI's --json and the API give it."""
        return RecommendationList(model_version=self.model_version, basis=Basis(**self.basis), items=self.entries)


@dataclass(frozen=True)
class CatalogIndex:
    """Title, year, genres and the source's id (None: the key is the id) in the bundle's item
    order, so a list is built without a join."""

    titles: list
    years: list
    genres: list
    external_ids: list | dict | None = None  # None: a catalog of integer ids

    @classmethod
    def build(cls, bundle_item_ids: np.ndarray, items: "pl.DataFrame") -> "CatalogIndex":
        import polars as pl

        external = "external_id" in items.columns and items["external_id"].is_not_null().any()
        aligned = pl.DataFrame({"item_id": bundle_item_ids.astype(np.int64)}).join(
            items.select("item_id", "title", "year", "genres", *(["external_id"] if external else [])),
            on="item_id", how="left", maintain_order="left")
        return cls(aligned["title"].to_list(), aligned["year"].to_list(),
                   [g if g is not None else [] for g in aligned["genres"].to_list()],
                   aligned["external_id"].to_list() if external else None)

    @classmethod
    def for_rows(cls, bundle_item_ids: np.ndarray, rows: np.ndarray, items: dict) -> "CatalogIndex":
        """Title, year, genres and source id of the given bundle rows only (``items``: item id ->
        ItemInfo from warehouse.lookups), looked up by row like the full index; items the catalog
        lacks have none."""
        info = {int(r): items.get(int(bundle_item_ids[r])) for r in rows}
        external = {r: i.external_id for r, i in info.items() if i is not None and i.external_id is not None}
        return cls({r: i and i.title for r, i in info.items()}, {r: i and i.year for r, i in info.items()},
                   {r: i.genres if i else [] for r, i in info.items()}, external or None)

    def shown_id(self, bundle_item_ids: np.ndarray, row: int) -> ShownId:
        """The item's id as the source spells it (its key when the catalog's ids are integers)."""
        if self.external_ids is None:
            return int(bundle_item_ids[row])
        external = self.external_ids.get(row) if isinstance(self.external_ids, dict) else self.external_ids[row]
        return external if external is not None else int(bundle_item_ids[row])


def listed_titles(home: Path, bundle: ServingBundle, lock_timeout_s: float):
    """A catalog for ``rank`` that reads the titles of the listed items only (the catalog may
    hold a million items; a list holds ten)."""

    def catalog(rows: np.ndarray) -> CatalogIndex:
        with connected(home, read_only=True, lock_timeout_s=lock_timeout_s) as conn:
            return CatalogIndex.for_rows(bundle.item_ids, rows, items_by_id(conn, bundle.item_ids[rows].tolist()))

    return catalog


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
    bundle = load_bundle(chosen)
    vector = bundle.vector_for_demographics(age=age, gender=gender, occupation=occupation)
    basis = {
        "kind": "demographics",
        "age_band": age_band(age) if age is not None else "unknown",
        "gender": gender or "unknown",
        "occupation": _known_occupation(bundle, occupation, chosen.version),
    }
    return rank(bundle, listed_titles(home, bundle, lock_timeout_s), chosen.version, basis, vector, History(),
                k=k, known_user=False)


def recommend_for_user(
    home: Path, user_id: ShownId, *, k: int = 10, version: int | None = None, lock_timeout_s: float = 30.0
) -> Recommendations:
    """``user_id`` as the source spells it (an integer, or a string id: pipelines.ids)."""
    with connected(home, read_only=True, lock_timeout_s=lock_timeout_s) as conn:
        chosen = _version(conn, version)
        key, user_id = _user_key(conn, user_id, "--user-id")
        user = conn.sql("SELECT age, gender, occupation FROM users WHERE user_id = ?", params=[key]).fetchall()
        seen = user_ratings(conn, key)
    bundle = load_bundle(chosen)
    if bundle.has_user(key):
        vector = bundle.vector_for_user(key)
        basis = {"kind": "known_user", "user_id": user_id, "n_seen": len(seen)}
    elif user:
        # In the warehouse but newer than the model: their demographics are what we have.
        age, gender, occupation = user[0]
        vector = bundle.vector_for_demographics(age=age, gender=gender, occupation=occupation)
        basis = {"kind": "demographics", "user_id": user_id, "n_seen": len(seen),
                 "note": f"user {user_id} joined after model v{chosen.version} was trained"}
    else:
        raise UnknownUserId(
            f"user {user_id!r} is not in the warehouse or model v{chosen.version}; "
            "for a new person use --age and --gender (or --selfie)"
        )
    seen_rows, liked_rows = _warehouse_history(bundle, seen)
    return rank(bundle, listed_titles(home, bundle, lock_timeout_s), chosen.version, basis, vector,
                History(liked=liked_rows, seen=seen_rows), k=k, known_user=basis["kind"] == "known_user")


def _user_key(conn, user_id: ShownId, option: str) -> tuple[int, ShownId]:
    """(key, id as shown) of a user id as the source spells it; an id that cannot be one of the
    catalog's (a string id that is not in it, a word where ids are integers) is named in the error."""
    users = IdMap.for_values(conn, "user", [user_id])
    key = users.keys([user_id], option)[0]
    return key, users.shown(key)


def _item_keys(conn, liked, disliked) -> tuple[list[int], list[int], IdMap]:
    items = IdMap.for_values(conn, "item", [*liked, *disliked])
    return items.keys(liked, "--liked"), items.keys(disliked, "--disliked"), items


def _warehouse_history(bundle: ServingBundle, rated: UserRatings) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(seen, liked) bundle rows from a user's warehouse ratings; items the bundle lacks are left out.

    Liked means rated at or above the bundle's item-item threshold; bundles without an
    item-item part use no likes from history (their user vector already holds it).
    """
    rows = bundle.item_rows(rated.item_ids)  # binary search: no set of a million catalog ids
    inside = rows >= 0
    seen = tuple(rows[inside].tolist())
    if bundle.item_item is None:
        return seen, ()
    threshold = bundle.item_item.min_rating
    kept = inside if threshold is None else inside & (rated.ratings >= threshold)
    return seen, tuple(rows[kept].tolist())


def _known_occupation(bundle: ServingBundle, occupation: str | None, version: int) -> str:
    """The occupation as the model used it: one it was not trained on counts as unknown."""
    if not occupation:
        return "unknown"
    known = {o.casefold(): o for o in bundle.manifest["vocabularies"]["occupations"]}
    used = known.get(occupation.strip().casefold())
    return used or f"unknown ({occupation!r} is not an occupation model v{version} knows)"


def recommend_with_items(
    home: Path,
    *,
    age: float | None,
    gender: str | None,
    occupation: str | None = None,
    liked: tuple[ShownId, ...] | list[ShownId] = (),
    disliked: tuple[ShownId, ...] | list[ShownId] = (),
    user_id: ShownId | None = None,
    k: int = 10,
    version: int | None = None,
    lock_timeout_s: float = 30.0,
) -> Recommendations:
    """Top-k for a person who just liked (or disliked) some items, without retraining.

    A known ``user_id`` starts from their trained vector and everything they liked in the
    warehouse (rated at or above the model's threshold), plus ``liked``; their rated items are
    never returned. Otherwise the list starts from demographics. Each item says why it is
    there (``reason``: personal_history, demographic or liked_items) and, for liked_items,
    ``because``: the liked item ids that brought it in. Ids are the source's (pipelines.ids).
    """
    with connected(home, read_only=True, lock_timeout_s=lock_timeout_s) as conn:
        chosen = _version(conn, version)
        liked_keys, disliked_keys, items = _item_keys(conn, liked, disliked)
        rated = UserRatings(np.zeros(0, np.int64), np.zeros(0, np.float64))
        user = []
        key = None
        if user_id is not None:
            key, user_id = _user_key(conn, user_id, "--user-id")
            user = conn.sql("SELECT age, gender, occupation FROM users WHERE user_id = ?", params=[key]).fetchall()
            rated = user_ratings(conn, key)
    bundle = load_bundle(chosen)
    liked_index = _catalog_positions(bundle, liked_keys, "--liked", items)
    disliked_index = _catalog_positions(bundle, disliked_keys, "--disliked", items)
    both = set(liked_index.tolist()) & set(disliked_index.tolist())
    if both:
        shown = sorted((items.shown(int(bundle.item_ids[i])) for i in both), key=str)
        raise InputError(f"items {shown} are both liked and disliked; give each once")
    known = key is not None and bundle.has_user(key)
    if user_id is not None and not known and not user:
        raise UnknownUserId(
            f"user {user_id!r} is not in the warehouse or model v{chosen.version}; "
            "for a new person use --age and --gender (or --selfie)"
        )
    seen, history_liked = _warehouse_history(bundle, rated)
    all_liked = tuple(dict.fromkeys(history_liked + tuple(liked_index.tolist())))  # warehouse first, then new
    if known:
        vector = bundle.vector_for_user(key)
        basis = {"kind": "known_user", "user_id": user_id}
    else:
        if user:
            age, gender, occupation = user[0]
        vector = bundle.vector_for_demographics(age=age, gender=gender, occupation=occupation)
        basis = {"kind": "demographics", "age_band": age_band(age) if age is not None else "unknown",
                 "gender": gender or "unknown", "occupation": occupation or "unknown"}
        if user_id is not None:
            basis["user_id"] = user_id
    history = History(liked=all_liked, disliked=tuple(disliked_index.tolist()), seen=seen)
    basis.update(n_liked=len(all_liked), n_disliked=len(history.disliked), n_seen=len(rated))
    return rank(bundle, listed_titles(home, bundle, lock_timeout_s), chosen.version, basis, vector, history,
                k=k, known_user=known)


def _catalog_positions(bundle: ServingBundle, keys: list[int], option: str, items: IdMap) -> np.ndarray:
    rows = bundle.item_rows(keys) if keys else np.zeros(0, dtype=np.int64)
    unknown = [items.shown(k) for k, row in zip(keys, rows.tolist()) if row < 0]
    if unknown:
        raise InputError(
            f"{option}: item ids {unknown[:5]} are not in the catalog of model v{bundle.version}; "
            "use item ids from `python cli.py stats` or the catalog you ingested"
        )
    return bundle.item_index(list(dict.fromkeys(keys)))


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


def rank(
    bundle: ServingBundle,
    catalog: "CatalogIndex | Callable[[np.ndarray], CatalogIndex]",
    model_version: int,
    basis: dict,
    vector: np.ndarray,
    history: History,
    *,
    k: int,
    known_user: bool,
    blocked: np.ndarray | None = None,
) -> Recommendations:
    """The one ranking step behind every single-person list (CLI and service alike).

    ``catalog`` is the whole catalog in bundle order (a long-running service builds it once),
    or a function of the listed rows that returns the titles of those rows only.
    """
    ranked = recommend_with_history(
        bundle.item_vectors, vector, history, k=k, known_user=known_user,
        taste_dims=taste_dimensions(bundle.manifest, bundle.item_vectors.shape[1]), blocked=blocked,
        item_item=bundle.item_item,
    )
    if callable(catalog):  # the listed items and the liked items behind them
        catalog = catalog(np.unique(np.concatenate([ranked.indices, *[np.asarray(b, np.int64) for b in ranked.because]])))
    ids = bundle.item_ids
    entries = [
        RecommendedItem(rank=rank_, item_id=catalog.shown_id(ids, row), title=catalog.titles[row], year=catalog.years[row],
                        genres=catalog.genres[row], score=float(score), reason=reason,
                        because=[catalog.shown_id(ids, b) for b in because])
        for rank_, (row, score, reason, because) in enumerate(
            zip(ranked.indices.tolist(), ranked.scores.tolist(), ranked.reasons, ranked.because), start=1)
    ]
    return Recommendations(model_version, basis, entries)
