"""Serve recommendations from an exported bundle with numpy only (no TensorFlow, no MLflow).

A bundle (written by ``recsys.export.export_bundle``) holds the item vectors, the known users'
vectors and a table of cold-start vectors, one per (age band, gender, occupation) with
"unknown" for each; the user tower's inputs are all categorical, so the table is the whole
tower for a new visitor and scoring is a matrix product.

Example::

    bundle = ServingBundle.load("bundles/v3")
    vector = bundle.vector_for_demographics(age=31, gender="F", occupation=None)
    items, scores = bundle.recommend(vector, k=10)
"""

from __future__ import annotations

import bisect
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recsys.item_item import ItemItemModel, ItemItemTable

MANIFEST = "manifest.json"
ITEM_VECTORS = "item_vectors.npy"
ITEM_IDS = "item_ids.npy"
USER_VECTORS = "user_vectors.npy"
USER_IDS = "user_ids.npy"
COLD_START_VECTORS = "cold_start_vectors.npy"
# Optional (bundles written before the item-item part lack them): per table, its weights and,
# for a sparse table, its neighbours; the manifest's "item_item" entry describes them.
ITEM_ITEM_FILES = {
    "cosine": ("item_item_cosine_weights.npy", "item_item_cosine_neighbours.npy"),
    "ease": ("item_item_ease_weights.npy", "item_item_ease_neighbours.npy"),
}
UNKNOWN = ""  # how the bundle's vocabularies spell "unknown"; see recsys.features
FORMAT_VERSION = 1


class InvalidBundle(ValueError):
    """A bundle directory is missing files or does not match its manifest."""


class UnknownUser(KeyError):
    """A user id that the bundle has no vector for."""


def top_k_from_scores(
    scores: np.ndarray, k: int, exclude: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k per row of a score matrix [n_users, n_items], best first.

    ``exclude`` is a boolean (or 0/1 int) mask, [n_items] for every row or [n_users, n_items],
    whose true entries are never returned (seen items, business rules). Rows with fewer than
    k allowed items are padded with index -1 and score -inf.
    """
    scores = np.asarray(scores, dtype=np.float32)
    if scores.ndim != 2:
        raise ValueError(f"scores must be 2-D [n_users, n_items] (got shape {scores.shape})")
    if k < 1:
        raise ValueError(f"k must be at least 1 (got {k})")
    if exclude is not None:
        exclude = np.asarray(exclude).astype(bool)
        if exclude.shape not in (scores.shape, scores.shape[1:]):
            raise ValueError(
                f"exclude must have shape {scores.shape[1:]} or {scores.shape} (got {exclude.shape})"
            )
        scores = np.where(exclude, -np.inf, scores)
    n_users, n_items = scores.shape
    kk = min(k, n_items)
    rows, cols, values = _candidates_at_or_above_kth(scores, kk)
    # Best first; ties go to the lower item index, so results never depend on sort internals.
    order = np.lexsort((cols, -values, rows))
    rows, cols, values = rows[order], cols[order], values[order]
    rank = np.arange(len(rows)) - np.searchsorted(rows, np.arange(n_users))[rows]
    keep = (rank < kk) & np.isfinite(values)
    indices = np.full((n_users, k), -1, dtype=np.int64)
    top_scores = np.full((n_users, k), -np.inf, dtype=np.float32)
    indices[rows[keep], rank[keep]] = cols[keep]
    top_scores[rows[keep], rank[keep]] = values[keep]
    return indices, top_scores


_BLOCK = 16


def _candidates_at_or_above_kth(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every (row, item, score) that can be in its row's top k, and usually few others.

    The rows are cut into blocks of _BLOCK items. The k-th largest block maximum is reached by
    k distinct items, so it is a lower bound on the row's k-th largest score: keeping the
    scores at or above it keeps the whole top k (ties included) while skipping a full sort.
    Much faster than argpartition, whose cost is the same for every item.
    """
    n_users, n_items = scores.shape
    full = (n_items // _BLOCK) * _BLOCK
    if full // _BLOCK < 2 * k:
        # Narrow rows (a small catalog, or an ANN user's few hundred candidates): the block bound
        # would keep nearly everything, and the k-th score itself is cheap to find.
        threshold = -np.partition(-scores, k - 1, axis=1)[:, k - 1]
    else:
        maxima = scores[:, :full].reshape(n_users, full // _BLOCK, _BLOCK).max(axis=2)
        if full < n_items:
            maxima = np.concatenate([maxima, scores[:, full:].max(axis=1, keepdims=True)], axis=1)
        threshold = -np.partition(-maxima, k - 1, axis=1)[:, k - 1]
    # NaN sorts last in a partition: a row with fewer than k numbers keeps all it has.
    threshold = np.where(np.isnan(threshold), -np.inf, threshold)
    rows, cols = np.nonzero(scores >= threshold[:, None])
    return rows, cols, scores[rows, cols]


def top_k(
    user_vectors: np.ndarray,
    item_vectors: np.ndarray,
    k: int,
    exclude: np.ndarray | None = None,
    chunk_size: int = 2048,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k items for every row of ``user_vectors`` [n_users, dim], in chunks of users.

    Chunking bounds memory at chunk_size x n_items scores however many users are scored.
    Returns (item indices, scores), each [n_users, k]; see ``top_k_from_scores`` for ``exclude``.
    """
    user_vectors = np.atleast_2d(np.asarray(user_vectors, dtype=np.float32))
    item_vectors = np.asarray(item_vectors, dtype=np.float32)
    if user_vectors.shape[1] != item_vectors.shape[1]:
        raise ValueError(
            f"user and item vectors must have the same dimension "
            f"(got {user_vectors.shape[1]} and {item_vectors.shape[1]})"
        )
    exclude = None if exclude is None else np.asarray(exclude).astype(bool)
    per_row = exclude is not None and exclude.ndim == 2
    if per_row and exclude.shape[0] != user_vectors.shape[0]:
        raise ValueError(
            f"exclude has {exclude.shape[0]} rows for {user_vectors.shape[0]} users; expected one per user"
        )
    indices, scores = [], []
    for start in range(0, user_vectors.shape[0], chunk_size):
        stop = start + chunk_size
        chunk_exclude = exclude[start:stop] if per_row else exclude
        i, s = top_k_from_scores(user_vectors[start:stop] @ item_vectors.T, k, chunk_exclude)
        indices.append(i)
        scores.append(s)
    if not indices:
        return np.zeros((0, k), dtype=np.int64), np.zeros((0, k), dtype=np.float32)
    return np.concatenate(indices), np.concatenate(scores)


def _load_item_item(directory: Path, manifest: dict) -> ItemItemModel | None:
    described = manifest.get("item_item")
    if described is None:
        return None
    tables: dict[str, ItemItemTable | None] = {}
    for role, (weights_name, neighbours_name) in ITEM_ITEM_FILES.items():
        entry = described["tables"].get(role)
        if entry is None:
            tables[role] = None
            continue
        names = (weights_name, neighbours_name) if entry["sparse"] else (weights_name,)
        for name in names:
            if not (directory / name).is_file():
                raise InvalidBundle(f"{directory} lacks {name}, which its manifest lists; export the model again")
        try:
            tables[role] = ItemItemTable(
                weights=np.load(directory / weights_name, allow_pickle=False),
                neighbours=np.load(directory / neighbours_name, allow_pickle=False) if entry["sparse"] else None,
            )
        except ValueError as e:
            raise InvalidBundle(f"the {role} item-item table in {directory} is malformed: {e}") from e
    if tables["cosine"] is None:
        raise InvalidBundle(f"the manifest in {directory} describes item_item without its cosine table")
    return ItemItemModel(
        cosine=tables["cosine"], ease=tables["ease"], min_rating=described.get("min_rating"),
        **{name: float(value) for name, value in described["weights"].items()},
    )


def save_item_item(directory: Path, item_item: ItemItemModel) -> dict:
    """Write the tables beside a bundle's other files; returns the manifest's "item_item" entry."""
    entry: dict = {
        "min_rating": item_item.min_rating,
        "weights": {
            "new_visitor_weight": item_item.new_visitor_weight,
            "known_user_ease_weight": item_item.known_user_ease_weight,
            "known_user_cosine_weight": item_item.known_user_cosine_weight,
        },
        "tables": {},
    }
    for role, (weights_name, neighbours_name) in ITEM_ITEM_FILES.items():
        table = getattr(item_item, role)
        if table is None:
            entry["tables"][role] = None
            continue
        np.save(directory / weights_name, table.weights.astype(np.float32))
        if table.neighbours is not None:
            np.save(directory / neighbours_name, table.neighbours.astype(np.int32))
        entry["tables"][role] = {"sparse": table.neighbours is not None}
    return entry


def _age_band(age: float | None, lower_bounds: list[float], labels: list[str]) -> str:
    # Mirrors recsys.age_bands.age_band from the bounds in the manifest, so serving needs no
    # import of the training package; the export test checks the two agree.
    if age is None or age != age or not 0 <= age <= 120:
        return UNKNOWN
    return labels[bisect.bisect_right(lower_bounds, age) - 1]


@dataclass(frozen=True)
class ServingBundle:
    """An exported model: vectors, ids and the manifest that describes them."""

    manifest: dict
    item_ids: np.ndarray
    item_vectors: np.ndarray
    user_ids: np.ndarray
    user_vectors: np.ndarray
    cold_start_vectors: np.ndarray  # [n_age_bands + 1, n_genders + 1, n_occupations + 1, dim]
    item_item: ItemItemModel | None = None  # None in bundles written before it existed

    @classmethod
    def load(cls, directory: str | Path) -> "ServingBundle":
        """Reads the manifest and maps the arrays (read-only): a request touches only the pages it uses."""
        directory = Path(directory)
        manifest_path = directory / MANIFEST
        if not manifest_path.is_file():
            raise InvalidBundle(
                f"no {MANIFEST} in {directory}: expected a directory written by recsys.export.export_bundle"
            )
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("format_version") != FORMAT_VERSION:
            raise InvalidBundle(
                f"bundle format {manifest.get('format_version')} in {directory}; this code reads "
                f"format {FORMAT_VERSION}: export the model again"
            )
        arrays = {}
        for name in (ITEM_IDS, ITEM_VECTORS, USER_IDS, USER_VECTORS, COLD_START_VECTORS):
            path = directory / name
            if not path.is_file():
                raise InvalidBundle(f"{directory} lacks {name}; the export did not finish")
            arrays[name] = _load_array(path)
        bundle = cls(
            manifest=manifest,
            item_ids=arrays[ITEM_IDS],
            item_vectors=arrays[ITEM_VECTORS],
            user_ids=arrays[USER_IDS],
            user_vectors=arrays[USER_VECTORS],
            cold_start_vectors=arrays[COLD_START_VECTORS],
            item_item=_load_item_item(directory, manifest),
        )
        bundle._check()
        object.__setattr__(bundle, "_directory", directory)
        return bundle

    def _check(self) -> None:
        dim = self.manifest["dim"]
        for name, vectors, ids in (
            ("item", self.item_vectors, self.item_ids),
            ("user", self.user_vectors, self.user_ids),
        ):
            if vectors.shape != (len(ids), dim):
                raise InvalidBundle(
                    f"{name} vectors have shape {vectors.shape}; expected ({len(ids)}, {dim}) from the ids and manifest"
                )
        vocab = self.manifest["vocabularies"]
        expected = (len(vocab["age_bands"]) + 1, len(vocab["genders"]) + 1, len(vocab["occupations"]) + 1, dim)
        if self.cold_start_vectors.shape != expected:
            raise InvalidBundle(
                f"cold-start table has shape {self.cold_start_vectors.shape}; expected {expected}"
            )
        if self.item_item is not None:
            for table in (self.item_item.cosine, self.item_item.ease):
                if table is not None and table.n_items != len(self.item_ids):
                    raise InvalidBundle(
                        f"an item-item table has {table.n_items} rows; expected one per item ({len(self.item_ids)})"
                    )

    @property
    def version(self) -> str:
        return self.manifest["version"]

    def _lookup(self, name: str) -> "_SortedIds":
        # Built on first use and kept; a frozen dataclass cannot hold a lazily-filled field.
        cache = self.__dict__.get("_lookups")
        if cache is None:
            cache = {}
            object.__setattr__(self, "_lookups", cache)
        if name not in cache:
            cache[name] = _SortedIds(getattr(self, name))
        return cache[name]

    def user_rows(self, user_ids) -> np.ndarray:
        """Rows of these user ids in the bundle (-1 where the bundle has no vector)."""
        return self._lookup("user_ids").rows(user_ids)

    def item_rows(self, item_ids) -> np.ndarray:
        """Rows of these item ids in the bundle (-1 where the bundle does not hold the item)."""
        return self._lookup("item_ids").rows(item_ids)

    def has_user(self, user_id: int) -> bool:
        return bool(self.user_rows([int(user_id)])[0] >= 0)

    def vector_for_user(self, user_id: int) -> np.ndarray:
        """The vector of a user seen in training; raises UnknownUser otherwise."""
        row = int(self.user_rows([int(user_id)])[0])
        if row < 0:
            raise UnknownUser(
                f"user {user_id} has no vector in bundle {self.version}; "
                "use vector_for_demographics for new users"
            )
        return np.asarray(self.user_vectors[row])

    def vector_for_demographics(
        self, age: float | None = None, gender: str | None = None, occupation: str | None = None
    ) -> np.ndarray:
        """The cold-start vector for an age (years or MovieLens 1M code), gender and occupation.

        A missing or unrecognised value (an occupation the model never saw, gender other than
        the vocabulary's) uses the "unknown" slot, which training taught to mean just that.
        """
        vocab = self.manifest["vocabularies"]
        band = _age_band(age, self.manifest["age_band_lower_bounds"], vocab["age_bands"])

        def slot(values: list[str], value: str | None) -> int:
            # Slot 0 is unknown; known values follow in vocabulary order. Case is ignored so
            # "f" and "Programmer" find "F" and "programmer".
            if not isinstance(value, str) or not value:
                return 0
            folded = [v.casefold() for v in values]
            try:
                return folded.index(value.strip().casefold()) + 1
            except ValueError:
                return 0

        return self.cold_start_vectors[
            slot(vocab["age_bands"], band),
            slot(vocab["genders"], gender),
            slot(vocab["occupations"], occupation),
        ]

    def vector_for_demographic_mixture(
        self,
        band_weights: dict[str, float] | np.ndarray,
        gender_weights: dict[str, float] | np.ndarray,
        occupation: str | None = None,
    ) -> np.ndarray:
        """The probability-weighted mixture of cold-start vectors, for a visitor whose age band and
        gender are uncertain (an estimate from a photo). Scores are dot products, so this vector's
        scores are the expected scores over the bands and genders.

        ``band_weights`` maps age-band labels (``"25-34"``; ``""`` for the unknown slot) to weights,
        or is an array over the table's age axis (unknown first, then the bands in order);
        ``gender_weights`` likewise (``"F"``, ``"M"``, ``""``). Weights are normalised to sum to 1.
        With all weight on one band and one gender this is ``vector_for_demographics``' vector.
        """
        vocab = self.manifest["vocabularies"]
        bands = self._mixture_axis("band_weights", band_weights, vocab["age_bands"])
        genders = self._mixture_axis("gender_weights", gender_weights, vocab["genders"])
        table = self.vector_for_demographics_table(occupation)  # [bands + 1, genders + 1, dim]
        return np.einsum("a,g,agd->d", bands, genders, table).astype(np.float32)

    def vector_for_demographics_table(self, occupation: str | None = None) -> np.ndarray:
        """The cold-start vectors of one occupation (unknown or unrecognised: the unknown slot), as
        [age bands + 1, genders + 1, dim] with the unknown slot first on each axis."""
        occupations = [v.casefold() for v in self.manifest["vocabularies"]["occupations"]]
        key = occupation.strip().casefold() if isinstance(occupation, str) else ""
        slot = occupations.index(key) + 1 if key in occupations else 0
        return self.cold_start_vectors[:, :, slot]

    @staticmethod
    def _mixture_axis(name: str, weights, labels: list[str]) -> np.ndarray:
        size = len(labels) + 1
        if isinstance(weights, dict):
            slots = {UNKNOWN: 0, **{label.casefold(): i + 1 for i, label in enumerate(labels)}}
            out = np.zeros(size)
            for label, weight in weights.items():
                slot = slots.get(label.strip().casefold() if isinstance(label, str) else None)
                if slot is None:
                    raise ValueError(f"{name}: unknown label {label!r}; expected one of "
                                     f"{[UNKNOWN] + list(labels)} ('' is the unknown slot)")
                out[slot] += weight
        else:
            out = np.asarray(weights, dtype=np.float64)
            if out.shape != (size,):
                raise ValueError(f"{name}: expected {size} weights (unknown slot first, then {labels}), "
                                 f"got shape {out.shape}")
        if not np.all(np.isfinite(out)) or np.any(out < 0) or out.sum() <= 0:
            raise ValueError(f"{name}: expected non-negative weights with a positive sum, got {out.tolist()}")
        return out / out.sum()

    @property
    def uses_ann(self) -> bool:
        """Whether the catalog is large enough for approximate retrieval (see recsys.ann)."""
        from recsys.ann import ANN_MIN_ITEMS

        return len(self.item_ids) >= ANN_MIN_ITEMS

    def ann_index(self):
        """The approximate-retrieval index of the item vectors (recsys.ann), read or built once."""
        index = self.__dict__.get("_ann")
        if index is None:
            from recsys.ann import build_index, load_or_build

            directory = self.__dict__.get("_directory")  # None: a bundle built in memory keeps its index there
            index = load_or_build(directory, self.item_vectors) if directory else build_index(self.item_vectors)
            object.__setattr__(self, "_ann", index)
        return index

    def score(self, user_vectors: np.ndarray) -> np.ndarray:
        """Scores of every item for each user vector: [n_users, n_items] (or [n_items] for one)."""
        return np.asarray(user_vectors, dtype=np.float32) @ self.item_vectors.T

    def item_index(self, item_ids) -> np.ndarray:
        """Positions of item ids in the bundle's item order (to build an exclude mask)."""
        wanted = np.asarray(list(item_ids), dtype=np.int64)
        rows = self.item_rows(wanted)
        if (rows < 0).any():
            raise KeyError(f"items not in bundle {self.version}: {wanted[rows < 0][:5].tolist()}")
        return rows

    def recommend(
        self, user_vectors: np.ndarray, k: int = 10, exclude: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k item ids and scores per user vector (a vector or a matrix of them).

        Returns ids [n_users, k] (-1 where fewer than k items were allowed) and scores.
        """
        vectors = np.atleast_2d(user_vectors)
        indices, scores = top_k(vectors, self.item_vectors, k, exclude)
        ids = np.where(indices >= 0, self.item_ids[np.maximum(indices, 0)], -1)
        return ids, scores


def prepare_bundle(directory: str | Path) -> None:
    """What a large bundle needs besides its arrays: the approximate-retrieval index, built now
    (at export) so the first campaign does not pay for it. Small catalogs need nothing."""
    bundle = ServingBundle.load(directory)
    if bundle.uses_ann:
        from recsys.ann import build_index, save_index

        save_index(build_index(bundle.item_vectors), Path(directory))


# Arrays up to this size are read into memory; larger ones are memory-mapped, so a fresh process
# (one `recommend`) reads only the pages it touches and processes serving the same bundle share
# one copy in the page cache.
MMAP_MIN_BYTES = 1 << 20


def _load_array(path: Path) -> np.ndarray:
    mode = "r" if path.stat().st_size >= MMAP_MIN_BYTES else None
    return np.load(path, allow_pickle=False, mmap_mode=mode)


class _SortedIds:
    """Id -> row lookups by binary search: no dict of every id (1M entries cost ~0.3 s and 100 MB).

    Exported ids are usually sorted already (checked in one pass); otherwise their sort order
    is computed once. Sorted ids without gaps (1..n, as many catalogs number their items) need
    no search at all: a row is the id minus the first id, which matters when a campaign looks
    up a million interactions' items at once.
    """

    def __init__(self, ids: np.ndarray):
        ids = np.asarray(ids)
        if len(ids) < 2 or bool(np.all(ids[1:] > ids[:-1])):
            self.order, self.sorted = None, ids
        else:
            self.order = np.argsort(ids, kind="stable")
            self.sorted = ids[self.order]
        self.contiguous = (self.order is None and len(ids) > 0 and np.issubdtype(ids.dtype, np.integer)
                           and int(ids[-1]) - int(ids[0]) == len(ids) - 1)

    def rows(self, wanted) -> np.ndarray:
        wanted = np.asarray(wanted, dtype=self.sorted.dtype).reshape(-1)
        if len(self.sorted) == 0:
            return np.full(len(wanted), -1, dtype=np.int64)
        if self.contiguous:
            rows = wanted.astype(np.int64) - int(self.sorted[0])
            return np.where((rows >= 0) & (rows < len(self.sorted)), rows, -1)
        pos = np.minimum(np.searchsorted(self.sorted, wanted), len(self.sorted) - 1)
        found = self.sorted[pos] == wanted
        rows = pos if self.order is None else self.order[pos]
        return np.where(found, rows, -1).astype(np.int64)
