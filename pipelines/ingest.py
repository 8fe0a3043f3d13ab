"""Load a dataset into the warehouse: read and validate everything first, then write it in
one transaction. A bad file therefore never touches what the warehouse already holds."""

from __future__ import annotations

from pathlib import Path

from pipelines.readers import read_generic, read_movielens
from warehouse.catalog import LoadSummary, replace_dataset
from warehouse.connection import connected


def ingest_movielens(home: Path, path: Path, *, lock_timeout_s: float) -> tuple[str, LoadSummary]:
    fmt, dataset = read_movielens(path)
    with connected(home, lock_timeout_s=lock_timeout_s) as conn:
        return fmt, replace_dataset(conn, dataset, source=str(Path(path).resolve()), fmt=fmt)


def ingest_generic(
    home: Path, users: Path, items: Path, interactions: Path, *, lock_timeout_s: float
) -> LoadSummary:
    dataset = read_generic(users, items, interactions)
    source = ", ".join(str(Path(p).resolve()) for p in (users, items, interactions))
    with connected(home, lock_timeout_s=lock_timeout_s) as conn:
        return replace_dataset(conn, dataset, source=source, fmt="generic")
