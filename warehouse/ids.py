"""A source's own ids (SKUs, UUIDs) beside the warehouse's BIGINT keys.

The warehouse, the trainer and the bundles key users and items by BIGINT ``user_id`` /
``item_id``. When a source's ids are not all integers, ingest gives each one a key and keeps the
source's id in ``external_id`` (see the ``external_ids`` migration); when they are integers,
``external_id`` is NULL and the key is the id. These reads touch only the ids asked for (a list's
ten items, a request's user), found through the unique indexes, never the whole table.
"""

from __future__ import annotations

import duckdb

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # polars is imported where a table is built, not on the one-person path
    import polars as pl

TABLES = {"user": ("users", "user_id"), "item": ("items", "item_id")}
# Up to this many ids are looked up as an IN list (the unique index finds each); more are joined.
_IN_LIST_MAX = 1024


def has_external_ids(conn: duckdb.DuckDBPyConnection, kind: str) -> bool:
    """Whether the catalog's users (kind "user") or items ("item") carry a source's string ids."""
    table, _ = TABLES[kind]
    return bool(conn.sql(f"SELECT EXISTS (SELECT 1 FROM {table} WHERE external_id IS NOT NULL)").fetchall()[0][0])


def keys_of(conn: duckdb.DuckDBPyConnection, kind: str, external_ids: list[str]) -> dict[str, int]:
    """external id -> key for the given ids that the warehouse holds (unknown ones are left out)."""
    table, key = TABLES[kind]
    wanted = list(dict.fromkeys(str(i) for i in external_ids))
    if not wanted:
        return {}
    if len(wanted) <= _IN_LIST_MAX:
        marks = ", ".join("?" * len(wanted))
        rows = conn.execute(f"SELECT external_id, {key} FROM {table} WHERE external_id IN ({marks})", wanted).fetchall()
    else:
        import polars as pl

        frame = pl.DataFrame({"external_id": wanted}, schema={"external_id": pl.Utf8})
        conn.register("wanted_external_ids", frame)
        try:
            rows = conn.sql(f"SELECT t.external_id, t.{key} FROM {table} t JOIN wanted_external_ids USING (external_id)").fetchall()
        finally:
            conn.unregister("wanted_external_ids")
    return {external: int(k) for external, k in rows}


def external_ids_of(conn: duckdb.DuckDBPyConnection, kind: str, keys: list[int]) -> dict[int, str]:
    """key -> external id for the given keys that have one."""
    table, key = TABLES[kind]
    wanted = list(dict.fromkeys(int(k) for k in keys))
    if not wanted:
        return {}
    import polars as pl

    frame = pl.DataFrame({key: wanted}, schema={key: pl.Int64})
    conn.register("wanted_keys", frame)
    try:
        rows = conn.sql(f"SELECT t.{key}, t.external_id FROM {table} t JOIN wanted_keys USING ({key}) "
                        "WHERE t.external_id IS NOT NULL").fetchall()
    finally:
        conn.unregister("wanted_keys")
    return {int(k): external for k, external in rows}


def read_external_ids(conn: duckdb.DuckDBPyConnection, kind: str) -> "pl.DataFrame":
    """Every (key, external_id) pair of the table, for a process that holds the catalog in memory."""
    table, key = TABLES[kind]
    return conn.sql(f"SELECT {key} AS key, external_id FROM {table} WHERE external_id IS NOT NULL").pl()
