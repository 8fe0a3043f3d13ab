"""Campaign results: every list of a campaign, stored in one transaction with its run record.

Re-running a campaign replaces its rows, so a rerun after an interruption is safe.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl

from warehouse.connection import transaction


@dataclass(frozen=True)
class CampaignRun:
    campaign: str
    model_version: int
    k: int
    n_known: int
    n_cold: int
    n_rejected: int
    output_path: str


def replace_campaign(conn: duckdb.DuckDBPyConnection, run: CampaignRun, results_parquet: Path, finalize) -> None:
    """Store the campaign's rows (read straight from a Parquet file) and its run record.

    ``finalize`` runs inside the transaction (it moves the output file into place), so the file
    and the warehouse either both change or neither does.
    """
    with transaction(conn):
        conn.execute("DELETE FROM batch_results WHERE campaign = ?", [run.campaign])
        conn.execute("DELETE FROM batch_runs WHERE campaign = ?", [run.campaign])
        conn.execute(
            """INSERT INTO batch_results
               SELECT ?, user_id, rank, item_id, score, model_version FROM read_parquet(?)""",
            [run.campaign, str(results_parquet)],
        )
        conn.execute(
            "INSERT INTO batch_runs VALUES (?, ?, ?, ?, ?, ?, ?, now()::TIMESTAMP)",
            [run.campaign, run.model_version, run.k, run.n_known, run.n_cold, run.n_rejected, run.output_path],
        )
        finalize()


def campaign_results(conn: duckdb.DuckDBPyConnection, campaign: str) -> pl.DataFrame:
    return conn.sql(
        "SELECT user_id, rank, item_id, score, model_version FROM batch_results WHERE campaign = ? ORDER BY user_id, rank",
        params=[campaign],
    ).pl()


def campaign_runs(conn: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    return conn.sql("SELECT * FROM batch_runs ORDER BY created_at").pl()
