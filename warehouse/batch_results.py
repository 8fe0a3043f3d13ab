"""Campaign results: every list of a campaign, stored in one transaction with its run record.

Re-running a campaign replaces its rows, so a rerun after an interruption is safe. Each run
record carries a token that names the run's staged output files, so a run killed between its
commit and moving its files into place can be completed later (see pipelines.batch_score).

Privacy: lists made from selfies are left out unless the caller asks to keep them (a selfie
row's list is a function of the inferred age band and gender, so it would reveal them), and
every run has a retention period after which ``purge_campaigns`` deletes it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl

from warehouse.connection import transaction

DEFAULT_RETENTION_DAYS = 30


@dataclass(frozen=True)
class CampaignRun:
    campaign: str
    model_version: int
    k: int
    n_known: int
    n_cold: int
    n_rejected: int
    output_path: str
    run_token: str | None = None  # names the run's staged files (pipelines.batch_score)
    retention_days: int = DEFAULT_RETENTION_DAYS
    n_selfie: int = 0
    selfie_lists_stored: bool = False


def replace_campaign(
    conn: duckdb.DuckDBPyConnection,
    run: CampaignRun,
    results_parquet: Path,
    *,
    leave_out_user_ids: list[str] = (),
    before_commit=None,
) -> int:
    """Store the campaign's rows (read straight from a Parquet file) and its run record, minus
    the rows of ``leave_out_user_ids`` (selfie rows); expired campaigns are purged in the same
    transaction. Returns the number of rows stored. ``before_commit`` is a test hook."""
    with transaction(conn):
        purge_campaigns(conn, expired_only=True, _in_transaction=True)
        conn.execute("DELETE FROM batch_results WHERE campaign = ?", [run.campaign])
        conn.execute("DELETE FROM batch_runs WHERE campaign = ?", [run.campaign])
        leave_out = pl.DataFrame({"user_id": list(leave_out_user_ids)}, schema={"user_id": pl.Utf8})
        conn.register("leave_out_frame", leave_out)
        try:
            conn.execute(
                """INSERT INTO batch_results
                   SELECT ?, user_id, rank, item_id, score, model_version FROM read_parquet(?)
                   WHERE user_id NOT IN (SELECT user_id FROM leave_out_frame)""",
                [run.campaign, str(results_parquet)],
            )
        finally:
            conn.unregister("leave_out_frame")
        stored = conn.sql("SELECT count(*) FROM batch_results WHERE campaign = ?", params=[run.campaign]).fetchall()[0][0]
        conn.execute(
            """INSERT INTO batch_runs (campaign, model_version, k, n_known, n_cold, n_rejected, output_path,
                                       created_at, run_token, expires_at, n_selfie, selfie_lists_stored)
               VALUES (?, ?, ?, ?, ?, ?, ?, now()::TIMESTAMP, ?, now()::TIMESTAMP + to_days(?), ?, ?)""",
            [run.campaign, run.model_version, run.k, run.n_known, run.n_cold, run.n_rejected, run.output_path,
             run.run_token, run.retention_days, run.n_selfie, run.selfie_lists_stored],
        )
        if before_commit is not None:
            before_commit()
    return stored


def committed_runs(conn: duckdb.DuckDBPyConnection, tokens: list[str]) -> dict[str, int]:
    """Of ``tokens``, those whose run is stored, with the run's number of rejected rows."""
    if not tokens:
        return {}
    rows = conn.sql(
        "SELECT run_token, n_rejected FROM batch_runs WHERE list_contains(?, run_token)", params=[list(tokens)]
    ).fetchall()
    return dict(rows)


def purge_campaigns(
    conn: duckdb.DuckDBPyConnection, *, older_than: dt.timedelta | None = None, expired_only: bool = False,
    _in_transaction: bool = False,
) -> list[str]:
    """Deletes campaigns past their retention period, or (``older_than``) created longer ago
    than that; returns their names."""
    if older_than is None and not expired_only:
        raise ValueError("give older_than or expired_only")
    if older_than is not None:
        where, params = "created_at < now()::TIMESTAMP - to_microseconds(?)", [int(older_than.total_seconds() * 1e6)]
    else:
        where, params = "expires_at IS NOT NULL AND expires_at <= now()::TIMESTAMP", []
    names = [r[0] for r in conn.sql(f"SELECT campaign FROM batch_runs WHERE {where} ORDER BY campaign", params=params).fetchall()]
    if not names:
        return []

    def delete():
        conn.execute("DELETE FROM batch_results WHERE list_contains(?, campaign)", [names])
        conn.execute("DELETE FROM batch_runs WHERE list_contains(?, campaign)", [names])

    if _in_transaction:
        delete()
    else:
        with transaction(conn):
            delete()
    return names


def campaign_results(conn: duckdb.DuckDBPyConnection, campaign: str) -> pl.DataFrame:
    return conn.sql(
        "SELECT user_id, rank, item_id, score, model_version FROM batch_results WHERE campaign = ? ORDER BY user_id, rank",
        params=[campaign],
    ).pl()


def campaign_runs(conn: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    return conn.sql("SELECT * FROM batch_runs ORDER BY created_at").pl()


def campaigns_overview(conn: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """One row per stored campaign: what it holds and when it expires."""
    return conn.sql(
        """SELECT r.campaign, r.model_version, r.k, r.n_known, r.n_cold, r.n_selfie, r.selfie_lists_stored,
                  (SELECT count(*) FROM batch_results b WHERE b.campaign = r.campaign) AS rows_stored,
                  r.created_at, r.expires_at, r.output_path
           FROM batch_runs r ORDER BY r.created_at"""
    ).pl()
