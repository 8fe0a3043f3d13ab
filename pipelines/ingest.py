"""Load a dataset into the warehouse: stage and validate everything first, then write it in
one transaction. A bad file therefore never touches what the warehouse already holds.

Staging happens in TEMP tables of the writing connection, under a DuckDB memory limit with a
temp directory in the home: a large interactions file spills to disk instead of growing the
process (pipelines.staging). The warehouse's folder is checked for writing before the (possibly
long) reading starts, and a failure of the storage itself (a full disk, a read-only home) is
one line naming the path.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import duckdb

from pipelines.fileio import check_writable_dir, fault_point, sigterm_as_exception, storage_errors
from pipelines.readers import read_movielens
from pipelines.staging import open_generic, stage_generic
from warehouse.catalog import LoadSummary, replace_staged, stage_dataset
from warehouse.connection import connected, warehouse_path

# DuckDB's memory for staging and writing a load; past it, DuckDB spills to STAGING_DIR. With
# Python, polars and the users and items frames, an ingest then peaks well under 1 GiB.
STAGING_MEMORY_LIMIT = "400MB"
STAGING_DIR = "ingest.tmp"  # beside the warehouse file; emptied before each load


def ingest_movielens(
    home: Path, path: Path, *, lock_timeout_s: float, allow_partial: bool = False
) -> tuple[str, LoadSummary]:
    _check_home(home)
    with sigterm_as_exception():
        fmt, dataset = read_movielens(path, allow_partial=allow_partial)
        summary = _store(home, lambda conn: stage_dataset(conn, dataset), str(Path(path).resolve()), fmt, lock_timeout_s)
        return fmt, summary


def ingest_generic(
    home: Path, users: Path, items: Path, interactions: Path, *, lock_timeout_s: float
) -> LoadSummary:
    _check_home(home)
    with sigterm_as_exception():
        catalog = open_generic(users, items, interactions)  # before the lock: most mistakes show here
        source = ", ".join(str(Path(p).resolve()) for p in (users, items, interactions))
        return _store(home, lambda conn: stage_generic(conn, catalog), source, "generic", lock_timeout_s)


def _check_home(home: Path) -> None:
    check_writable_dir(warehouse_path(home).parent, "warehouse")


def _store(home: Path, stage: Callable[[duckdb.DuckDBPyConnection], None], source: str, fmt: str,
           lock_timeout_s: float) -> LoadSummary:
    with storage_errors(warehouse_path(home)), connected(home, lock_timeout_s=lock_timeout_s) as conn:
        _bound_memory(conn, warehouse_path(home).parent / STAGING_DIR)
        stage(conn)
        fault_point("ingest.read")
        summary = replace_staged(conn, source=source, fmt=fmt,
                                 before_commit=lambda: fault_point("ingest.before_commit"))
    fault_point("ingest.committed")
    return summary


def _bound_memory(conn: duckdb.DuckDBPyConnection, spill: Path) -> None:
    # Only the writer uses this folder and we hold the write lock: what is there was left by a
    # killed load.
    shutil.rmtree(spill, ignore_errors=True)
    conn.execute(f"SET temp_directory = '{str(spill).replace(chr(39), chr(39) * 2)}'")
    conn.execute(f"SET memory_limit = '{STAGING_MEMORY_LIMIT}'")
    # Line numbers in messages come from the staged rows' order, which must be the file's.
    conn.execute("SET preserve_insertion_order = true")
