"""Opening the warehouse file, waiting politely for other processes, and transactions.

DuckDB lets one process write at a time and refuses even read-only opens while another
process holds the file, so every open retries for a bounded time and then names the
process that holds the lock.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb

from warehouse.errors import LockedWarehouse, MissingWarehouse
from warehouse.schema import check_schema, migrate

log = logging.getLogger(__name__)

WAREHOUSE_FILE = "recsys.duckdb"
DEFAULT_LOCK_TIMEOUT_S = 30.0
_HOLDER = re.compile(r"Conflicting lock is held in (?P<program>.+?) \(PID (?P<pid>\d+)\)")


def warehouse_path(home: Path) -> Path:
    return Path(home) / "warehouse" / WAREHOUSE_FILE


def open_warehouse(
    home: Path,
    *,
    read_only: bool = False,
    lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S,
) -> duckdb.DuckDBPyConnection:
    """Open the warehouse under ``home``; a writer creates and migrates it, a reader never does."""
    path = warehouse_path(home)
    if read_only and not path.exists():
        raise MissingWarehouse(
            f"no warehouse at {path}; load data first, e.g. `python cli.py ingest movielens PATH`"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = _connect_with_retry(path, read_only=read_only, lock_timeout_s=lock_timeout_s)
    try:
        if read_only:
            check_schema(conn, path)
        else:
            migrate(conn)
    except BaseException:
        conn.close()
        raise
    return conn


def _connect_with_retry(path: Path, *, read_only: bool, lock_timeout_s: float) -> duckdb.DuckDBPyConnection:
    deadline = time.monotonic() + lock_timeout_s
    delay = 0.05
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except duckdb.IOException as e:
            holder = _HOLDER.search(str(e))
            if holder is None:
                raise
            if time.monotonic() >= deadline:
                raise LockedWarehouse(
                    f"the warehouse {path} is locked by {holder['program']} (PID {holder['pid']}); "
                    f"waited {lock_timeout_s:.0f} s. Wait for that process to finish, or raise "
                    "--lock-timeout."
                ) from e
            log.info("warehouse is locked by PID %s, retrying", holder["pid"])
            time.sleep(delay)
            delay = min(delay * 2, 1.0)


@contextlib.contextmanager
def transaction(conn: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """All or nothing: on any exception the warehouse is left exactly as it was."""
    conn.execute("BEGIN TRANSACTION")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


@contextlib.contextmanager
def connected(home: Path, **kwargs) -> Iterator[duckdb.DuckDBPyConnection]:
    conn = open_warehouse(home, **kwargs)
    try:
        yield conn
    finally:
        conn.close()
