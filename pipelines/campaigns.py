"""Stored campaigns: what the warehouse keeps of each batch-score run, and deleting it."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import polars as pl

from pipelines.errors import InputError
from pipelines.fileio import storage_errors
from warehouse.batch_results import campaigns_overview, purge_campaigns
from warehouse.connection import connected, warehouse_path

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_age(text: str) -> dt.timedelta:
    """'30d', '12h', '2w', '90m', '45s' as a duration."""
    match = re.fullmatch(r"\s*(\d+)\s*([smhdw])\s*", text or "")
    if not match:
        raise InputError(f"expected a duration like 30d, 12h or 2w (s, m, h, d, w), got {text!r}")
    return dt.timedelta(seconds=int(match[1]) * _UNITS[match[2]])


def list_campaigns(home: Path, *, lock_timeout_s: float) -> pl.DataFrame:
    with connected(home, read_only=True, lock_timeout_s=lock_timeout_s) as conn:
        return campaigns_overview(conn)


def purge(home: Path, *, older_than: dt.timedelta | None, lock_timeout_s: float) -> list[str]:
    """Deletes stored campaigns created longer ago than ``older_than`` (None: past their
    retention period); returns their names. Output files are the user's and stay."""
    with storage_errors(warehouse_path(home)), connected(home, lock_timeout_s=lock_timeout_s) as conn:
        if older_than is None:
            return purge_campaigns(conn, expired_only=True)
        return purge_campaigns(conn, older_than=older_than)
