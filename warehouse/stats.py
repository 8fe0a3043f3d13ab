"""Descriptive queries over the loaded dataset, for `stats`."""

from __future__ import annotations

import duckdb
import polars as pl


def rating_distribution(conn: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    return conn.sql(
        """SELECT rating, count(*) AS n, round(100.0 * count(*) / sum(count(*)) OVER (), 1) AS percent
           FROM interactions GROUP BY rating ORDER BY rating"""
    ).pl()


def top_items(conn: duckdb.DuckDBPyConnection, limit: int = 10) -> pl.DataFrame:
    return conn.sql(
        """SELECT i.item_id, i.title, count(*) AS n_ratings, round(avg(r.rating), 2) AS mean_rating
           FROM interactions r JOIN items i USING (item_id)
           GROUP BY i.item_id, i.title ORDER BY n_ratings DESC, i.item_id LIMIT ?""",
        params=[limit],
    ).pl()


def user_demographics(conn: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Users' raw age and gender; banding them is the recommender's job."""
    return conn.sql("SELECT user_id, age, gender FROM users").pl()


def latest_load(conn: duckdb.DuckDBPyConnection) -> dict | None:
    frame = conn.sql("SELECT * FROM dataset_loads ORDER BY loaded_at DESC LIMIT 1").pl()
    return frame.row(0, named=True) if frame.height else None
