"""Users, items and interactions: written together in one transaction, read back as polars.

A load replaces the dataset of this home whole. Loading the same files twice leaves the same
rows (and the same snapshot id), so re-ingesting is idempotent; a load that fails part-way
leaves the previous data untouched.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import duckdb
import polars as pl

from warehouse.connection import transaction
from warehouse.errors import EmptyWarehouse

USER_COLUMNS = {
    "user_id": pl.Int64,
    "age": pl.Int32,
    "age_is_band": pl.Boolean,
    "gender": pl.Utf8,
    "occupation": pl.Utf8,
    "zip": pl.Utf8,
}
ITEM_COLUMNS = {
    "item_id": pl.Int64,
    "title": pl.Utf8,
    "year": pl.Int32,
    "genres": pl.List(pl.Utf8),
    "extra": pl.Utf8,
}
INTERACTION_COLUMNS = {
    "user_id": pl.Int64,
    "item_id": pl.Int64,
    "rating": pl.Float32,
    "timestamp": pl.Int64,
}


@dataclass(frozen=True)
class Dataset:
    """The three frames of one dataset, with exactly the warehouse's columns and types."""

    users: pl.DataFrame
    items: pl.DataFrame
    interactions: pl.DataFrame


@dataclass(frozen=True)
class LoadSummary:
    snapshot_id: str
    n_users: int
    n_items: int
    n_interactions: int
    unchanged: bool  # the warehouse already held exactly this data


def conform(dataset: Dataset) -> Dataset:
    """The frames in the warehouse's column order and types (missing optional columns as nulls)."""

    def shape(frame: pl.DataFrame, columns: dict) -> pl.DataFrame:
        return frame.select(
            [
                (pl.col(name) if name in frame.columns else pl.lit(None)).cast(dtype).alias(name)
                for name, dtype in columns.items()
            ]
        )

    return Dataset(
        users=shape(dataset.users, USER_COLUMNS).with_columns(pl.col("age_is_band").fill_null(False)),
        items=shape(dataset.items, ITEM_COLUMNS),
        interactions=shape(dataset.interactions, INTERACTION_COLUMNS),
    )


# The staging tables a load is prepared in (TEMP: they live in this connection only, and spill to
# its temp_directory rather than grow). A reader fills them, with exactly the warehouse's columns
# and types, and ``replace_staged`` writes them; ``stage_dataset`` fills them from polars frames.
STAGED = {"users": "staged_users", "items": "staged_items", "interactions": "staged_interactions"}
STORED_COLUMNS = {
    "users": [*USER_COLUMNS, "external_id"],
    "items": [*ITEM_COLUMNS, "external_id"],
    "interactions": list(INTERACTION_COLUMNS),
}
_NULL = "'\\N'"
# Each row's canonical text, as stable as the values: integers and text as they are, NULL as \N,
# lists joined by '|', ratings as integers when whole (fast) else with 9 significant digits
# (enough to tell any two REALs apart), so the text never depends on DuckDB's float printing.
_RATING_TEXT = ("CASE WHEN rating = trunc(rating) AND abs(rating) < 1e15 THEN CAST(CAST(rating AS BIGINT) AS VARCHAR) "
                "ELSE printf('%.9g', rating) END")


def _canonical(table: str) -> str:
    parts = []
    for column in STORED_COLUMNS[table]:
        if column == "rating":
            text = _RATING_TEXT
        elif column == "genres":
            text = "array_to_string(genres, '|')"
        else:
            text = f"CAST({column} AS VARCHAR)"
        parts.append(f"coalesce({text}, {_NULL})")
    return " || chr(31) || ".join(parts)


def content_hash(conn: duckdb.DuckDBPyConnection, tables: dict[str, str]) -> tuple[str, dict[str, int]]:
    """An order-independent hash of users, items and interactions (``tables`` names the relation
    holding each), computed inside DuckDB without copying the data, and the row counts.

    Per table: the row count and the sum, modulo 2^64, of the first 64 bits of each row's MD5
    (of its canonical text). A sum is order-free but counts duplicates, so equal data from
    differently ordered files hash equal and different data almost never do; MD5 (not DuckDB's
    ``hash()``) keeps the id stable across DuckDB versions.
    """
    digest = hashlib.sha256()
    n = {}
    for table in ("users", "items", "interactions"):
        count, total = conn.sql(
            f"SELECT count(*), coalesce(sum(CAST('0x' || md5({_canonical(table)})[1:16] AS UBIGINT)) "
            f"% 18446744073709551616, 0) FROM {tables[table]}"
        ).fetchall()[0]
        n[table] = count
        digest.update(f"{table}:{count}:{int(total)};".encode())
    return digest.hexdigest()[:16], n


def stage_dataset(conn: duckdb.DuckDBPyConnection, dataset: Dataset) -> None:
    """The dataset's frames (MovieLens, tests) as the staging tables; ids are the source's own."""
    dataset = conform(dataset)
    for table, frame in (("users", dataset.users), ("items", dataset.items), ("interactions", dataset.interactions)):
        name = f"{table}_frame"
        conn.register(name, frame)
        try:
            columns = ", ".join(c if c in frame.columns else f"CAST(NULL AS VARCHAR) AS {c}" for c in STORED_COLUMNS[table])
            conn.execute(f"CREATE OR REPLACE TEMP TABLE {STAGED[table]} AS SELECT {columns} FROM {name}")
        finally:
            conn.unregister(name)


def drop_staged(conn: duckdb.DuckDBPyConnection) -> None:
    """Drops the staging relations (a reader may stage a table as a view over others)."""
    for name in STAGED.values():
        views = conn.execute("SELECT count(*) FROM duckdb_views() WHERE temporary AND view_name = ?", [name]).fetchall()
        conn.execute(f"DROP {'VIEW' if views[0][0] else 'TABLE'} IF EXISTS temp.{name}")


def replace_dataset(
    conn: duckdb.DuckDBPyConnection, dataset: Dataset, *, source: str, fmt: str, before_commit=None
) -> LoadSummary:
    """Replace the home's dataset with these frames, in one transaction (see ``replace_staged``)."""
    stage_dataset(conn, dataset)
    return replace_staged(conn, source=source, fmt=fmt, before_commit=before_commit)


def replace_staged(conn: duckdb.DuckDBPyConnection, *, source: str, fmt: str, before_commit=None) -> LoadSummary:
    """Replace the home's dataset with the staging tables in one transaction, then drop them;
    ``before_commit`` (for fault-injection tests) runs inside it, after every row is written."""
    try:
        snap, n = content_hash(conn, STAGED)
        current = current_snapshot(conn)
        unchanged = current == snap or (current is not None and _same_as_stored(conn, current, n, snap))
        summary = LoadSummary(
            snapshot_id=current if unchanged else snap,
            n_users=n["users"],
            n_items=n["items"],
            n_interactions=n["interactions"],
            unchanged=unchanged,
        )
        if unchanged:
            return summary
        with transaction(conn):
            conn.execute("DELETE FROM interactions")
            conn.execute("DELETE FROM users")
            conn.execute("DELETE FROM items")
            for table in ("users", "items", "interactions"):
                columns = ", ".join(STORED_COLUMNS[table])
                conn.execute(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {STAGED[table]}")
            conn.execute(
                """INSERT OR REPLACE INTO dataset_loads
                   VALUES (?, ?, ?, ?, ?, ?, now()::TIMESTAMP)""",
                [snap, source, fmt, summary.n_users, summary.n_items, summary.n_interactions],
            )
            if before_commit is not None:
                before_commit()
        return summary
    finally:
        drop_staged(conn)


def _same_as_stored(conn: duckdb.DuckDBPyConnection, current: str, n: dict[str, int], snap: str) -> bool:
    """Whether the warehouse already holds exactly the staged data under an id computed another
    way (before this hash, snapshot ids hashed a CSV copy): same counts, then the same hash of
    the stored tables. Keeps an upgrade's first re-ingest from marking every model stale."""
    recorded = conn.execute(
        "SELECT n_users, n_items, n_interactions FROM dataset_loads WHERE snapshot_id = ?", [current]
    ).fetchall()
    if not recorded or recorded[0] != (n["users"], n["items"], n["interactions"]):
        return False
    return content_hash(conn, {t: t for t in STAGED})[0] == snap


def current_snapshot(conn: duckdb.DuckDBPyConnection) -> str | None:
    rows = conn.sql("SELECT snapshot_id FROM dataset_loads ORDER BY loaded_at DESC LIMIT 1").fetchall()
    return rows[0][0] if rows else None


def read_dataset(conn: duckdb.DuckDBPyConnection) -> Dataset:
    dataset = Dataset(
        users=read_users(conn),
        items=read_items(conn),
        interactions=conn.sql("SELECT * FROM interactions").pl(),
    )
    if dataset.interactions.height == 0:
        raise EmptyWarehouse(
            "the warehouse holds no interactions; load data first, e.g. `python cli.py ingest movielens PATH`"
        )
    return conform(dataset)


def read_users(conn: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    return conn.sql("SELECT * FROM users ORDER BY user_id").pl()


def read_items(conn: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    return conn.sql("SELECT * FROM items ORDER BY item_id").pl()


def counts(conn: duckdb.DuckDBPyConnection) -> dict[str, int]:
    return {
        table: conn.sql(f"SELECT count(*) FROM {table}").fetchall()[0][0]
        for table in ("users", "items", "interactions")
    }
