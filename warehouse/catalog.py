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


def snapshot_id(dataset: Dataset) -> str:
    """A content hash: equal data gives an equal id, whatever file it came from."""
    digest = hashlib.sha256()
    for frame, key in (
        (dataset.users, ["user_id"]),
        (dataset.items, ["item_id"]),
        (dataset.interactions, ["user_id", "item_id", "timestamp", "rating"]),
    ):
        # CSV text rather than polars' row hashes, which are not stable across polars versions.
        text_frame = frame.sort(key).with_columns(pl.col(pl.List(pl.Utf8)).list.join("|"))
        digest.update(text_frame.write_csv().encode())
    return digest.hexdigest()[:16]


def replace_dataset(
    conn: duckdb.DuckDBPyConnection, dataset: Dataset, *, source: str, fmt: str, before_commit=None
) -> LoadSummary:
    """Replace the home's dataset in one transaction; ``before_commit`` (for fault-injection
    tests) runs inside it, after every row is written."""
    dataset = conform(dataset)
    snap = snapshot_id(dataset)
    current = current_snapshot(conn)
    summary = LoadSummary(
        snapshot_id=snap,
        n_users=dataset.users.height,
        n_items=dataset.items.height,
        n_interactions=dataset.interactions.height,
        unchanged=current == snap,
    )
    if summary.unchanged:
        return summary
    with transaction(conn):
        conn.execute("DELETE FROM interactions")
        conn.execute("DELETE FROM users")
        conn.execute("DELETE FROM items")
        conn.register("users_frame", dataset.users)
        conn.register("items_frame", dataset.items)
        conn.register("interactions_frame", dataset.interactions)
        try:
            conn.execute("INSERT INTO users BY NAME SELECT * FROM users_frame")
            conn.execute("INSERT INTO items BY NAME SELECT * FROM items_frame")
            conn.execute("INSERT INTO interactions BY NAME SELECT * FROM interactions_frame")
        finally:
            for name in ("users_frame", "items_frame", "interactions_frame"):
                conn.unregister(name)
        conn.execute(
            """INSERT OR REPLACE INTO dataset_loads
               VALUES (?, ?, ?, ?, ?, ?, now()::TIMESTAMP)""",
            [snap, source, fmt, summary.n_users, summary.n_items, summary.n_interactions],
        )
        if before_commit is not None:
            before_commit()
    return summary


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
