"""What the warehouse holds: counts, ratings, who the users are, what they watch."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from recsys.age_bands import AGE_BANDS, age_band_indices
from warehouse import stats
from warehouse.catalog import counts
from warehouse.connection import connected


def warehouse_stats(home: Path, *, lock_timeout_s: float, top: int = 10) -> dict:
    with connected(home, read_only=True, lock_timeout_s=lock_timeout_s) as conn:
        result = {
            "counts": counts(conn),
            "latest_load": stats.latest_load(conn),
            "ratings": stats.rating_distribution(conn),
            "top_items": stats.top_items(conn, top),
        }
        demographics = stats.user_demographics(conn)
    result["users_by_age_band_gender"] = users_by_band(demographics)
    return result


def users_by_band(users: pl.DataFrame) -> pl.DataFrame:
    index = age_band_indices(users["age"].cast(pl.Float64).fill_null(float("nan")).to_numpy())
    # Index -1 (no usable age) lands on "unknown" at the front.
    band = pl.Series("age_band", ["unknown", *AGE_BANDS]).gather(pl.Series(index + 1))
    order = {name: i for i, name in enumerate(AGE_BANDS)}
    table = (
        users.with_columns(band, pl.col("gender").fill_null("unknown"))
        .group_by("age_band")
        .agg(
            (pl.col("gender") == "F").sum().alias("F"),
            (pl.col("gender") == "M").sum().alias("M"),
            (pl.col("gender") == "unknown").sum().alias("unknown"),
            pl.len().alias("total"),
        )
    )
    return table.sort(pl.col("age_band").replace_strict(order, default=len(order)))
