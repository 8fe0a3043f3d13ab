"""The few rows one request reads: a list's titles and one user's ratings, as plain Python and
numpy values.

`recommend` in a fresh process must answer in a fraction of a second; polars and pyarrow (which
DuckDB's ``.pl()`` goes through) cost about 0.2 s to import, more than the query itself. The
warehouse's other modules hand out polars frames, so these reads live apart from them.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import numpy as np


@dataclass(frozen=True)
class ItemInfo:
    title: str
    year: int | None
    genres: list[str]
    external_id: str | None = None  # the source's id, when the catalog's ids are strings


@dataclass(frozen=True)
class UserRatings:
    """Every item one user interacted with (ascending ids), with their highest rating (nan: none)."""

    item_ids: np.ndarray  # int64
    ratings: np.ndarray  # float64

    def __len__(self) -> int:
        return len(self.item_ids)


def items_by_id(conn: duckdb.DuckDBPyConnection, item_ids: list[int]) -> dict[int, ItemInfo]:
    """Title, year, genres and source id of these items (the ids the catalog lacks are left out)."""
    rows = conn.execute("SELECT item_id, title, year, genres, external_id FROM items WHERE item_id = ANY(?)",
                        [[int(i) for i in item_ids]]).fetchall()
    return {item_id: ItemInfo(title, year, list(genres or []), external)
            for item_id, title, year, genres, external in rows}


def user_ratings(conn: duckdb.DuckDBPyConnection, user_id: int) -> UserRatings:
    rows = conn.execute(
        "SELECT item_id, max(rating) FROM interactions WHERE user_id = ? GROUP BY item_id ORDER BY item_id", [user_id]
    ).fetchall()
    return UserRatings(np.array([r[0] for r in rows], dtype=np.int64),
                       np.array([np.nan if r[1] is None else r[1] for r in rows], dtype=np.float64))
