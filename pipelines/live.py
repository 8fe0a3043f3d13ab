"""Recommendations for a long-running process: the champion and the catalog held in memory,
what people do read from the event landing, a new champion swapped in without a restart.

The HTTP service builds one ``LiveRecommender`` per worker process. Requests never open the
DuckDB file (another process may hold its write lock for minutes); only a reload does,
briefly and read-only, and a reload that meets a lock keeps the snapshot it has and tries
again on the next tick. The snapshot is immutable and replaced by one reference
assignment, so a request sees one model version from start to end.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Optional

import numpy as np
import polars as pl

from pipelines.errors import InputError, StaleModel, UnknownUserId
from pipelines.events import erase, merge_events
from pipelines.ids import IdMap, ShownId
from pipelines.recommend import CatalogIndex, Recommendations, load_bundle, rank
from pipelines.rules import CampaignRules, blocked_items
from recsys.age_bands import age_band
from recsys.personalize import History
from recsys.serving import ServingBundle
from warehouse.catalog import current_snapshot, read_items
from warehouse.connection import connected, warehouse_path
from warehouse.errors import LockedWarehouse, WarehouseError
from warehouse.events import merged_up_to
from warehouse.landing import Event, Landing, StoredEvent
from warehouse.model_versions import ModelVersion, require_champion

log = logging.getLogger(__name__)

# A rating counts as a like at or above this share of the dataset's top rating (4 of 5 on
# MovieLens), as a dislike at or below the other.
LIKE_SHARE, DISLIKE_SHARE = 0.8, 0.4
RECENT_PER_USER = 50  # interactions per user kept for the history route


class UnknownItem(InputError):
    pass


class ItemNotFound(UnknownItem):
    """An item asked for by id (a path, not a field of a request body)."""


class ErasedUser(InputError):
    pass


@dataclass(frozen=True)
class ListRequest:
    """Everything a single list can be asked for (the API's body, the CLI's options). Ids are the
    source's (integers, or a catalog's string ids: pipelines.ids)."""

    user_id: Optional[ShownId] = None
    session_id: Optional[str] = None
    age: Optional[float] = None
    gender: Optional[str] = None
    occupation: Optional[str] = None
    liked_items: tuple[ShownId, ...] = ()
    disliked_items: tuple[ShownId, ...] = ()
    k: int = 10
    exclude_items: tuple[ShownId, ...] = ()
    only_items: Optional[tuple[ShownId, ...]] = None
    genres: Optional[tuple[str, ...]] = None
    # From a photo: (age band weights, gender weights), see pipelines.selfie.demographic_weights;
    # used instead of age and gender.
    mixture: Optional[tuple[dict, dict]] = None


@dataclass(frozen=True)
class Snapshot:
    """One consistent view: a model version, its bundle, the catalog and users' histories."""

    version: ModelVersion
    bundle: ServingBundle
    items: pl.DataFrame
    catalog: CatalogIndex  # titles, years, genres in the bundle's order
    item_index: dict[int, int]  # item id -> row in the bundle
    users: dict[int, tuple]  # user id -> (age, gender, occupation)
    item_ids: IdMap  # the source's item ids <-> keys (sorted arrays; empty for integer ids)
    user_ids: IdMap  # the same for users
    seen: dict[int, np.ndarray]  # user id -> bundle rows of items in their warehouse history
    liked: dict[int, np.ndarray]  # user id -> rows they rated at the bundle's item-item "liked" level
    popularity: pl.DataFrame  # item_id, n_interactions: the catalog's order for pickers
    recent: dict[int, list[tuple]]  # user id -> newest interactions first: (item_id, rating, timestamp)
    top_rating: float
    merged_up_to: int  # landing events up to this id are in ``seen`` already
    data_snapshot: Optional[str]
    loaded_at: float = field(default_factory=time.time)


def load_snapshot(home: Path, *, lock_timeout_s: float) -> Snapshot:
    with connected(home, read_only=True, lock_timeout_s=lock_timeout_s) as conn:
        version = require_champion(conn)
        items = read_items(conn)
        users = conn.sql("SELECT user_id, age, gender, occupation FROM users").fetchall()
        history = conn.sql("SELECT user_id, item_id, rating FROM interactions").pl()
        recent = conn.sql(
            f"""SELECT user_id, item_id, rating, timestamp FROM interactions
                QUALIFY row_number() OVER (PARTITION BY user_id ORDER BY timestamp DESC, item_id) <= {RECENT_PER_USER}
                ORDER BY user_id, timestamp DESC, item_id""").fetchall()
        top = conn.sql("SELECT coalesce(max(rating), 1) FROM interactions").fetchall()[0][0]
        watermark = merged_up_to(conn)
        data_snapshot = current_snapshot(conn)
        item_ids, user_ids = IdMap.read(conn, "item"), IdMap.read(conn, "user")
    bundle = load_bundle(version)
    item_index = {int(i): row for row, i in enumerate(bundle.item_ids)}
    rows = history.with_columns(
        pl.col("item_id").replace_strict(item_index, default=-1, return_dtype=pl.Int64).alias("row")
    ).filter(pl.col("row") >= 0)
    seen = _rows_by_user(rows)
    item_item = bundle.item_item
    liked = {}
    if item_item is not None:  # the item-item part bends a known user's list toward all they liked
        threshold = item_item.min_rating
        liked = _rows_by_user(rows if threshold is None else rows.filter(pl.col("rating") >= threshold))
    counts = history.group_by("item_id").len("n_interactions")
    popularity = (items.join(counts, on="item_id", how="left")
                  .with_columns(pl.col("n_interactions").fill_null(0).cast(pl.Int64))
                  .sort(["n_interactions", "item_id"], descending=[True, False]))
    return Snapshot(
        recent=_group_recent(recent),
        version=version, bundle=bundle, items=items, catalog=CatalogIndex.build(bundle.item_ids, items),
        item_index=item_index, popularity=popularity, item_ids=item_ids, user_ids=user_ids,
        users={int(u): (a, g, o) for u, a, g, o in users}, seen=seen, liked=liked, top_rating=float(top),
        merged_up_to=int(watermark), data_snapshot=data_snapshot,
    )


def _rows_by_user(rows: pl.DataFrame) -> dict[int, np.ndarray]:
    """user id -> their distinct bundle rows, sorted (one sort and a split: no per-user frames)."""
    if rows.height == 0:
        return {}
    pairs = rows.select("user_id", "row").unique().sort("user_id", "row")
    users, items = pairs["user_id"].to_numpy(), pairs["row"].to_numpy()
    bounds = np.flatnonzero(np.diff(users)) + 1
    starts = np.concatenate([[0], bounds])
    return {int(u): part for u, part in zip(users[starts], np.split(items, bounds))}


def _group_recent(rows: list[tuple]) -> dict[int, list[tuple]]:
    grouped: dict[int, list[tuple]] = {}
    for user_id, item_id, rating, timestamp in rows:
        grouped.setdefault(int(user_id), []).append((int(item_id), float(rating), int(timestamp)))
    return grouped


def _warehouse_stamp(home: Path) -> tuple:
    stamp = []
    for path in (warehouse_path(home), Path(str(warehouse_path(home)) + ".wal")):
        try:
            st = os.stat(path)
            stamp.append((st.st_mtime_ns, st.st_size))
        except FileNotFoundError:
            stamp.append(None)
    return tuple(stamp)


class LiveRecommender:
    """Lists from the in-memory snapshot plus what landed since; events in, durably."""

    def __init__(self, home: Path, landing: Landing):
        self.home = Path(home)
        self.landing = landing
        self.snapshot: Optional[Snapshot] = None
        self.last_error: Optional[str] = None
        self._stamp: Optional[tuple] = None
        self._warehouse_lock = threading.Lock()  # one DuckDB open at a time in this process
        self._erased: set[str] = landing.erased_users()  # users' ids as shown (the source's)

    # ------------------------------------------------------------------ reload

    def reload(self, *, force: bool = False, lock_timeout_s: float = 0.0) -> bool:
        """Loads a new snapshot if the warehouse changed (or when forced); True if swapped.

        A locked or not-yet-ready warehouse leaves the current snapshot serving.
        """
        with self._warehouse_lock:
            stamp = _warehouse_stamp(self.home)
            if not force and stamp == self._stamp and self.snapshot is not None:
                return False
            try:
                new = load_snapshot(self.home, lock_timeout_s=lock_timeout_s)
            except LockedWarehouse as e:
                self.last_error = str(e)
                return False
            except StaleModel as e:
                # The data was replaced under the champion: serving its old ids against the new
                # catalog would be wrong, so stop until a model of the new data is promoted.
                self.snapshot, self.last_error, self._stamp = None, str(e), stamp
                log.warning("not serving: %s", e)
                return True
            except (WarehouseError, InputError, Exception) as e:  # noqa: BLE001 - a reload must not kill the service
                self.last_error = f"{type(e).__name__}: {e}"
                log.warning("reload failed: %s", self.last_error)
                self._stamp = stamp
                return False
            self._stamp = stamp
            self._erased = self.landing.erased_users() | self._erased
            old = self.snapshot
            changed = old is None or (old.version.version, old.data_snapshot, old.merged_up_to) != (
                new.version.version, new.data_snapshot, new.merged_up_to)
            if changed or force:
                self.snapshot = new  # one reference assignment: requests see old or new, never a mix
                self.last_error = None
                log.info("serving model v%s (data %s)", new.version.version, new.data_snapshot)
            return changed

    def require_snapshot(self) -> Snapshot:
        snapshot = self.snapshot
        if snapshot is None:
            raise NotReady(self.last_error or "the service is still loading the model")
        return snapshot

    # ------------------------------------------------------------------ events

    def keyed_events(self, events: list[Event]) -> list[Event]:
        """The events with the source's ids replaced by keys (what lands and what the warehouse merges)."""
        snapshot = self.require_snapshot()
        keyed = []
        for number, e in enumerate(events):
            item = snapshot.item_ids.key(e.item_id)
            if item is None:
                raise UnknownItem(f"events[{number}].item_id: item {e.item_id!r} is not in the catalog")
            user = None
            if e.user_id is not None:
                user = snapshot.user_ids.key(e.user_id)
                if user is None:
                    raise UnknownUserId(f"events[{number}].user_id: user {e.user_id!r} is not in the warehouse; "
                                        "send anonymous visitors' events with a session_id")
            keyed.append(replace(e, item_id=item, user_id=user))
        return keyed

    def validate_events(self, events: list[Event]) -> None:
        """Events keyed already (see keyed_events)."""
        snapshot = self.require_snapshot()
        for number, e in enumerate(events):
            if e.item_id not in snapshot.item_index:
                raise UnknownItem(f"events[{number}].item_id: item {e.item_id} is not in the catalog")
            if e.user_id is not None and e.user_id not in snapshot.users:
                raise UnknownUserId(
                    f"events[{number}].user_id: user {e.user_id} is not in the warehouse; "
                    "send anonymous visitors' events with a session_id")
            if e.user_id is not None and self._is_erased(snapshot, e.user_id):
                raise ErasedUser(f"events[{number}].user_id: user {snapshot.user_ids.shown(e.user_id)!r} was erased")

    def record(self, events: list[Event]) -> list[int]:
        """Lands the events (ids as the source spells them) by key; returns their landing ids."""
        events = self.keyed_events(events)
        self.validate_events(events)
        return self.landing.append(events)

    def _is_erased(self, snapshot: Snapshot, key: int) -> bool:
        return str(snapshot.user_ids.shown(key)) in self._erased

    def merge(self, *, lock_timeout_s: float = 0.0):
        """Merges landed events and erasures into the warehouse if it is free; None if not."""
        with self._warehouse_lock:
            try:
                return merge_events(self.home, lock_timeout_s=lock_timeout_s, landing=self.landing)
            except LockedWarehouse:
                return None

    def forget(self, subject: str, subject_id: ShownId, *, lock_timeout_s: float = 0.5) -> dict:
        """Erases a user (by the source's id) or a session (see pipelines.events.erase)."""
        key = None
        if subject == "user":
            snapshot = self.snapshot
            users = snapshot.user_ids if snapshot is not None else IdMap.integers("user")
            key = users.key(subject_id)
            if key is None and not users.external:
                raise users.unknown([subject_id], "user_id")
            # Erasures are recorded by the id as shown (the source's), so they survive a re-keying ingest.
            subject_id = str(users.shown(key)) if key is not None else str(subject_id).strip()
            self._erased.add(subject_id)
        with self._warehouse_lock:
            return erase(self.home, subject, str(subject_id), landing=self.landing, lock_timeout_s=lock_timeout_s,
                         user_key=key)

    # ------------------------------------------------------------------ catalog

    def item(self, item_id: ShownId) -> dict:
        snapshot = self.require_snapshot()
        key = snapshot.item_ids.key(item_id)
        found = snapshot.popularity.filter(pl.col("item_id") == key) if key is not None else snapshot.popularity.clear()
        if found.height == 0:
            raise ItemNotFound(f"item {item_id!r} is not in the catalog")
        return _item_record(found.row(0, named=True))

    def search_items(self, *, search: str | None, genre: str | None, limit: int) -> tuple[list[dict], int]:
        """Items whose title contains ``search`` (any case) and that have ``genre``, most popular first."""
        frame = self.require_snapshot().popularity
        if search:
            frame = frame.filter(pl.col("title").str.to_lowercase().str.contains(search.lower(), literal=True))
        if genre:
            frame = frame.filter(pl.col("genres").list.contains(genre))
        return [_item_record(row) for row in frame.head(limit).iter_rows(named=True)], frame.height

    def history(self, user_id: ShownId, limit: int) -> tuple[ShownId, list[dict]]:
        """A known user's id as shown and latest interactions, newest first: what landed since,
        then the warehouse's."""
        snapshot = self.require_snapshot()
        key = snapshot.user_ids.key(user_id)
        if key is None and not snapshot.user_ids.external:
            raise snapshot.user_ids.unknown([user_id], "user_id")
        shown = snapshot.user_ids.shown(key) if key is not None else user_id
        if str(shown) in self._erased:
            raise ErasedUser(f"user {shown!r} was erased")
        if key not in snapshot.users:
            raise UnknownUserId(f"user {shown!r} is not in the warehouse")
        user_id = key
        rows = [(e.item_id, e.type, e.value, e.timestamp) for e in reversed(self.landing.events_of(user_id=user_id))]
        rows += [(item, "rating", rating, ts) for item, rating, ts in snapshot.recent.get(user_id, [])]
        out = []
        for item_id, kind, value, timestamp in rows[:limit]:
            row = snapshot.item_index.get(item_id)
            meta = (snapshot.catalog.titles[row], snapshot.catalog.years[row], snapshot.catalog.genres[row]) if row is not None else (None, None, [])
            out.append({"item_id": snapshot.catalog.shown_id(snapshot.bundle.item_ids, row) if row is not None
                        else snapshot.item_ids.shown(item_id), "title": meta[0], "year": meta[1], "genres": meta[2],
                        "type": kind, "value": value, "timestamp": timestamp})
        return shown, out

    # ------------------------------------------------------------------ lists

    def recommend(self, request: ListRequest) -> Recommendations:
        snapshot = self.require_snapshot()
        bundle = snapshot.bundle
        shown_user = request.user_id
        if shown_user is not None and str(shown_user).strip() in self._erased:
            raise ErasedUser(f"user {shown_user!r} was erased")
        request = self._keyed(snapshot, request)
        for name, ids in (("liked_items", request.liked_items), ("disliked_items", request.disliked_items),
                          ("exclude_items", request.exclude_items)):
            unknown = [i for i in ids if i not in snapshot.item_index]
            if unknown:
                raise UnknownItem(f"{name}: items not in the catalog: {[snapshot.item_ids.shown(i) for i in unknown[:10]]}")
        landed: list[StoredEvent] = []
        if request.user_id is not None:
            shown_user = snapshot.user_ids.shown(request.user_id)
            if str(shown_user) in self._erased:
                raise ErasedUser(f"user {shown_user!r} was erased")
            landed = self.landing.events_of(user_id=request.user_id, after_id=0)
        elif request.session_id is not None:
            landed = self.landing.events_of(session_id=request.session_id)
        liked, disliked, seen = self._history(snapshot, request, landed)
        basis: dict
        known = False
        if request.user_id is not None:
            user = snapshot.users.get(request.user_id)
            if bundle.has_user(request.user_id):
                vector, known = bundle.vector_for_user(request.user_id), True
                basis = {"kind": "known_user", "user_id": shown_user}
            elif user is not None:
                age, gender, occupation = user
                vector = bundle.vector_for_demographics(age=age, gender=gender, occupation=occupation)
                basis = {"kind": "demographics", "user_id": shown_user,
                         "note": f"user {shown_user} joined after model v{snapshot.version.version} was trained"}
            else:
                raise UnknownUserId(f"user {shown_user!r} is not in the warehouse or model "
                                    f"v{snapshot.version.version}; for a new person send age and gender")
        elif request.mixture is not None:
            bands, genders = request.mixture
            vector = bundle.vector_for_demographic_mixture(bands, genders, request.occupation)
            basis = {"kind": "session" if request.session_id is not None else "demographics",
                     "session_id": request.session_id, "age_band": max(bands, key=bands.get),
                     "gender": request.gender or "unknown", "occupation": request.occupation or "unknown",
                     "age_band_weights": bands, "gender_weights": {g or "unknown": w for g, w in genders.items()}}
        else:
            vector = bundle.vector_for_demographics(age=request.age, gender=request.gender, occupation=request.occupation)
            basis = {"kind": "session" if request.session_id is not None else "demographics",
                     "session_id": request.session_id,
                     "age_band": age_band(request.age) if request.age is not None else "unknown",
                     "gender": request.gender or "unknown", "occupation": request.occupation or "unknown"}
        basis.update(n_liked=len(liked), n_disliked=len(disliked), n_seen=len(seen))
        rules = CampaignRules(
            exclude_items=frozenset(request.exclude_items),
            only_items=frozenset(request.only_items) if request.only_items is not None else None,
            genres=frozenset(request.genres) if request.genres is not None else None,
        )
        blocked = None
        if rules.exclude_items or rules.only_items is not None or rules.genres is not None:
            blocked = blocked_items(rules, bundle.item_ids, snapshot.items)
        history = History(liked=tuple(liked), disliked=tuple(disliked), seen=tuple(seen))
        return rank(bundle, snapshot.catalog, snapshot.version.version, basis, vector, history,
                    k=request.k, known_user=known, blocked=blocked)

    @staticmethod
    def _keyed(snapshot: Snapshot, request: ListRequest) -> ListRequest:
        """The request with the source's ids replaced by keys; an id the catalog lacks is named."""
        items, users = snapshot.item_ids, snapshot.user_ids

        def item_keys(values, name):
            keys = [items.key(v) for v in values]
            unknown = [v for v, k in zip(values, keys) if k is None]
            if unknown:
                raise UnknownItem(f"{name}: items not in the catalog: {unknown[:10]}") if items.external \
                    else items.unknown(unknown, name)
            return tuple(keys)

        user = None
        if request.user_id is not None:
            user = users.key(request.user_id)
            if user is None:
                if not users.external:
                    raise users.unknown([request.user_id], "user_id")
                raise UnknownUserId(f"user {request.user_id!r} is not in the warehouse or model "
                                    f"v{snapshot.version.version}; for a new person send age and gender")
        return replace(
            request, user_id=user, liked_items=item_keys(request.liked_items, "liked_items"),
            disliked_items=item_keys(request.disliked_items, "disliked_items"),
            exclude_items=item_keys(request.exclude_items, "exclude_items"),
            only_items=item_keys(request.only_items, "items") if request.only_items is not None else None)

    def _history(self, snapshot: Snapshot, request: ListRequest, landed: list[StoredEvent]):
        index = snapshot.item_index
        liked: dict[int, None] = {}
        if request.user_id is not None and request.user_id in snapshot.liked:
            liked.update(dict.fromkeys(snapshot.liked[request.user_id].tolist()))
        liked.update(dict.fromkeys(index[i] for i in request.liked_items))
        disliked = dict.fromkeys(index[i] for i in request.disliked_items)
        seen: dict[int, None] = {}
        if request.user_id is not None and request.user_id in snapshot.seen:
            seen.update(dict.fromkeys(snapshot.seen[request.user_id].tolist()))
        for e in landed:
            row = index.get(e.item_id)
            if row is None:
                continue
            seen[row] = None
            if e.type == "like" or (e.type == "rating" and e.value is not None and e.value >= LIKE_SHARE * snapshot.top_rating):
                liked[row] = None
                disliked.pop(row, None)
            elif e.type == "dislike" or (e.type == "rating" and e.value is not None and e.value <= DISLIKE_SHARE * snapshot.top_rating):
                disliked[row] = None
                liked.pop(row, None)
        return list(liked), list(disliked), [r for r in seen if r not in liked and r not in disliked]


def _item_record(row: dict) -> dict:
    record = {k: row[k] for k in ("item_id", "title", "year", "genres", "n_interactions")}
    if row.get("external_id") is not None:  # the source's id (pipelines.ids)
        record["item_id"] = row["external_id"]
    return record


class NotReady(WarehouseError):
    """The service has no model to serve yet (no champion, or the warehouse is not readable)."""
