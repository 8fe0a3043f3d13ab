"""Ids as a source spells them, in and out; the warehouse's BIGINT keys stay inside.

A catalog whose ids are integers uses them as keys, and shows them as integers (``042``, ``+42``
and ``42.0`` are 42, as ingest reads them). A catalog with string ids (SKUs, UUIDs) has a key per
id and its ``external_id`` (warehouse.ids): every id that comes in is looked up there, and every
id that goes out is shown as the source's string. Users and items decide separately.

Two ways to hold the mapping, both O(k) per request at a million ids: a one-off process (the
CLI, a batch chunk) reads only the ids it was given or lists, through the warehouse's unique
index (``IdMap.for_values``); the service builds one ``IdMap`` per snapshot (sorted arrays,
binary search, no per-request work beyond the ids of the request).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Union

import duckdb
import numpy as np

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # polars is imported where a table is built, not on the one-person path
    import polars as pl

from pipelines.errors import InputError, UnknownUserId
from warehouse.ids import has_external_ids, keys_of, read_external_ids


class NotAnId(InputError):
    """A value that cannot be an id of this catalog (a word where the ids are integers)."""

    def __init__(self, message: str, option: str, values: list):
        super().__init__(message)
        self.option, self.values = option, values

ShownId = Union[int, str]  # what a client sends and sees: the integer id, or the source's string id

_INTEGER = re.compile(r"^[+-]?\d+(\.0*)?$")
_INT64 = (-(2**63), 2**63 - 1)


def integer_id(value) -> int | None:
    """42 for 42, '42', '042', '+42' and '42.0' (as ingest reads ids); None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, np.integer)):
        number = int(value)
    elif isinstance(value, float):
        if not value.is_integer():
            return None
        number = int(value)
    else:
        text = str(value).strip()
        if not _INTEGER.match(text):
            return None
        number = int(text.split(".")[0])
    return number if _INT64[0] <= number <= _INT64[1] else None


@dataclass(frozen=True)
class IdMap:
    """One kind's ids (users or items): source id <-> key, by binary search over sorted arrays.

    ``external`` is False for a catalog of integer ids: then the key is the id and the arrays are
    empty. A map built ``for_values`` holds only those ids (and says nothing of others).
    """

    kind: str  # "user" or "item"
    external: bool
    _by_external: np.ndarray  # external ids, sorted
    _keys_by_external: np.ndarray  # their keys, aligned
    _by_key: np.ndarray  # keys, sorted
    _externals_by_key: np.ndarray  # their external ids, aligned

    @classmethod
    def integers(cls, kind: str) -> "IdMap":
        empty = np.array([], dtype=object)
        return cls(kind, False, empty, np.array([], np.int64), np.array([], np.int64), empty)

    @classmethod
    def from_frame(cls, kind: str, pairs: "pl.DataFrame", external: bool | None = None) -> "IdMap":
        """From columns key, external_id; by default an empty frame means a catalog of integer ids."""
        if not (pairs.height > 0 if external is None else external):
            return cls.integers(kind)
        by_external = pairs.sort("external_id")
        by_key = pairs.sort("key")
        return cls(kind, True, by_external["external_id"].to_numpy().astype(object), by_external["key"].to_numpy(),
                   by_key["key"].to_numpy(), by_key["external_id"].to_numpy().astype(object))

    @classmethod
    def read(cls, conn: duckdb.DuckDBPyConnection, kind: str) -> "IdMap":
        """The whole mapping (a long-running process's snapshot)."""
        return cls.from_frame(kind, read_external_ids(conn, kind))

    @classmethod
    def for_values(cls, conn: duckdb.DuckDBPyConnection, kind: str, values: Iterable) -> "IdMap":
        """Only the given ids, read through the warehouse's unique index (a one-off request)."""
        if not has_external_ids(conn, kind):
            return cls.integers(kind)
        found = keys_of(conn, kind, [str(v).strip() for v in values])  # plain values: no polars on this path
        externals = np.array(list(found.keys()), dtype=object)
        keys = np.array(list(found.values()), dtype=np.int64)
        by_external, by_key = np.argsort(externals.astype(str), kind="stable"), np.argsort(keys, kind="stable")
        return cls(kind, True, externals[by_external], keys[by_external], keys[by_key], externals[by_key])

    def key(self, value) -> int | None:
        """The key of an id as a client gave it; None when it is not one of this catalog's ids
        (for integer ids, whether the id exists is the caller's question)."""
        if not self.external:
            return integer_id(value)
        text = str(value).strip()
        return _find(self._by_external, self._keys_by_external, text)

    def shown(self, key: int) -> ShownId:
        """How a key is shown outside: the source's id, or the integer."""
        if not self.external:
            return int(key)
        found = _find(self._by_key, self._externals_by_key, int(key))
        return found if found is not None else int(key)

    def shown_many(self, keys: np.ndarray) -> np.ndarray:
        """``shown`` for many keys at once; a key without a source id shows as its digits (a
        string, so that one column keeps one type), as batch-score's output files do."""
        keys = np.asarray(keys, dtype=np.int64)
        if not self.external:
            return keys
        if len(self._by_key) == 0:
            return keys.astype(str).astype(object)
        pos = np.minimum(np.searchsorted(self._by_key, keys), len(self._by_key) - 1)
        hit = self._by_key[pos] == keys
        shown = keys.astype(str).astype(object)
        shown[hit] = self._externals_by_key[pos[hit]]
        return shown

    def keys(self, values: Iterable, what: str) -> list[int]:
        """Keys of the given ids, in order; any id that is not one of the catalog's is named in the error."""
        values = list(values)
        keys = [self.key(v) for v in values]
        bad = [v for v, k in zip(values, keys) if k is None]
        if bad:
            raise self.unknown(bad, what)
        return keys

    def unknown(self, values: list, what: str) -> InputError:
        noun = "user" if self.kind == "user" else "item"
        shown = ", ".join(repr(v) if isinstance(v, str) else str(v) for v in values[:10])
        if not self.external:
            return NotAnId(f"{what}: {shown} is not a {noun} id of this catalog (its {noun} ids are integers, like 42)",
                           what, values)
        message = f"{what}: {noun} id(s) {shown} are not in the catalog"
        return UnknownUserId(message) if self.kind == "user" else InputError(message)


def keyed_rules(conn: duckdb.DuckDBPyConnection, rules):
    """Campaign rules (pipelines.rules.CampaignRules) with their item ids, as the source spells
    them, replaced by keys; an id that is not the catalog's is named."""
    from dataclasses import replace

    given = [*rules.exclude_items, *(rules.only_items or ())]
    if not given:
        return rules
    items = IdMap.for_values(conn, "item", given)
    return replace(rules, exclude_items=frozenset(items.keys(sorted(rules.exclude_items, key=str), "--exclude-items")),
                   only_items=frozenset(items.keys(sorted(rules.only_items, key=str), "--items"))
                   if rules.only_items is not None else None)


def _find(sorted_values: np.ndarray, aligned: np.ndarray, value):
    if len(sorted_values) == 0:
        return None
    pos = int(np.searchsorted(sorted_values, value))
    if pos < len(sorted_values) and sorted_values[pos] == value:
        found = aligned[pos]
        return int(found) if isinstance(found, (int, np.integer)) else found
    return None


# The MLflow model (pipelines.mlflow_model) has no warehouse: it carries its own users' and items'
# source ids as an artifact, a folder of .npy files (loaded memory-mapped, no pickle). Per kind
# with string ids, two aligned arrays sorted for the direction the model needs: users by external
# id (ids in -> keys), items by key (keys out -> ids). External ids are UTF-8 bytes (numpy "S"),
# sorted bytewise, which is how the model's binary search compares them.
MODEL_ID_FILES = {"user": ("user_external.npy", "user_keys.npy"), "item": ("item_keys.npy", "item_external.npy")}


def write_model_ids(conn: duckdb.DuckDBPyConnection, user_keys: np.ndarray, item_keys: np.ndarray, folder: Path) -> bool:
    """Writes the source ids of a model's users and items (its bundle's keys) into ``folder``;
    False, writing nothing, when both kinds are integers (the keys are the ids)."""
    import polars as pl

    wrote = False
    for kind, keys in (("user", user_keys), ("item", item_keys)):
        if not has_external_ids(conn, kind):
            continue
        pairs = read_external_ids(conn, kind).join(pl.DataFrame({"key": np.asarray(keys, dtype=np.int64)}), on="key")
        external = np.array([e.encode("utf-8") for e in pairs["external_id"].to_list()], dtype="S")
        key = pairs["key"].to_numpy().astype(np.int64)
        order = np.argsort(external if kind == "user" else key, kind="stable")
        first, second = MODEL_ID_FILES[kind]
        folder.mkdir(parents=True, exist_ok=True)
        if kind == "user":
            np.save(folder / first, external[order]), np.save(folder / second, key[order])
        else:
            np.save(folder / first, key[order]), np.save(folder / second, external[order])
        wrote = True
    return wrote
