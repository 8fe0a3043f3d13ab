"""Load a dataset into the warehouse: read and validate everything first, then write it in
one transaction. A bad file therefore never touches what the warehouse already holds.

The warehouse's folder is checked for writing before the (possibly long) reading starts, and a
failure of the storage itself (a full disk, a read-only home) is one line naming the path.
"""

from __future__ import annotations

from pathlib import Path

from pipelines.fileio import check_writable_dir, fault_point, sigterm_as_exception, storage_errors
from pipelines.readers import read_generic, read_movielens
from warehouse.catalog import LoadSummary, replace_dataset
from warehouse.connection import connected, warehouse_path


def ingest_movielens(
    home: Path, path: Path, *, lock_timeout_s: float, allow_partial: bool = False
) -> tuple[str, LoadSummary]:
    _check_home(home)
    with sigterm_as_exception():
        fmt, dataset = read_movielens(path, allow_partial=allow_partial)
        return fmt, _store(home, dataset, str(Path(path).resolve()), fmt, lock_timeout_s)


def ingest_generic(
    home: Path, users: Path, items: Path, interactions: Path, *, lock_timeout_s: float
) -> LoadSummary:
    _check_home(home)
    with sigterm_as_exception():
        dataset = read_generic(users, items, interactions)
        source = ", ".join(str(Path(p).resolve()) for p in (users, items, interactions))
        return _store(home, dataset, source, "generic", lock_timeout_s)


def _check_home(home: Path) -> None:
    check_writable_dir(warehouse_path(home).parent, "warehouse")


def _store(home: Path, dataset, source: str, fmt: str, lock_timeout_s: float) -> LoadSummary:
    fault_point("ingest.read")
    with storage_errors(warehouse_path(home)), connected(home, lock_timeout_s=lock_timeout_s) as conn:
        summary = replace_dataset(conn, dataset, source=source, fmt=fmt,
                                  before_commit=lambda: fault_point("ingest.before_commit"))
    fault_point("ingest.committed")
    return summary
