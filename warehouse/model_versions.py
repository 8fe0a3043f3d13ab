"""The table of model versions: which MLflow run made each one, how it scored, which data it
saw, where its serving bundle lies, and which one is champion (at most one at a time)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

import duckdb
import polars as pl

from warehouse.connection import transaction
from warehouse.errors import WarehouseError


class UnknownModelVersion(WarehouseError):
    pass


class NoChampion(WarehouseError):
    pass


@dataclass(frozen=True)
class ModelVersion:
    version: int
    mlflow_run_id: str
    metrics: dict  # {"model": {...}, "baselines": {name: {...}}}
    data_snapshot: str
    bundle_path: str | None
    status: str  # candidate | champion | retired
    created_at: datetime
    note: str | None


def record_version(
    conn: duckdb.DuckDBPyConnection,
    *,
    version: int,
    mlflow_run_id: str,
    metrics: dict,
    data_snapshot: str,
    bundle_path: str,
    champion: bool,
    note: str,
) -> None:
    with transaction(conn):
        if champion:
            conn.execute("UPDATE model_versions SET status = 'retired' WHERE status = 'champion'")
        conn.execute(
            "INSERT INTO model_versions VALUES (?, ?, ?, ?, ?, ?, now()::TIMESTAMP, ?)",
            [version, mlflow_run_id, json.dumps(metrics), data_snapshot, bundle_path,
             "champion" if champion else "candidate", note],
        )


def set_champion(conn: duckdb.DuckDBPyConnection, version: int) -> None:
    get_version(conn, version)
    with transaction(conn):
        conn.execute("UPDATE model_versions SET status = 'retired' WHERE status = 'champion'")
        conn.execute("UPDATE model_versions SET status = 'champion' WHERE version = ?", [version])


def list_versions(conn: duckdb.DuckDBPyConnection) -> list[ModelVersion]:
    rows = conn.sql("SELECT * FROM model_versions ORDER BY version").fetchall()
    return [_version(row) for row in rows]


def get_version(conn: duckdb.DuckDBPyConnection, version: int) -> ModelVersion:
    rows = conn.sql("SELECT * FROM model_versions WHERE version = ?", params=[version]).fetchall()
    if not rows:
        known = [v.version for v in list_versions(conn)]
        raise UnknownModelVersion(
            f"no model version {version}; known versions: {', '.join(map(str, known)) or 'none (run `python cli.py train`)'}"
        )
    return _version(rows[0])


def champion(conn: duckdb.DuckDBPyConnection) -> ModelVersion | None:
    rows = conn.sql("SELECT * FROM model_versions WHERE status = 'champion'").fetchall()
    return _version(rows[0]) if rows else None


def require_champion(conn: duckdb.DuckDBPyConnection) -> ModelVersion:
    best = champion(conn)
    if best is None:
        raise NoChampion("no model version is registered as champion; run `python cli.py train` first")
    return best


def versions_frame(versions: list[ModelVersion], metric_names: list[str]) -> pl.DataFrame:
    return pl.DataFrame(
        [
            {
                "version": v.version,
                "status": v.status,
                "created": v.created_at.strftime("%m-%d %H:%M"),
                **{name.replace("_at_", "@"): v.metrics.get("model", {}).get(name) for name in metric_names},
                "run": v.mlflow_run_id[:8],
            }
            for v in versions
        ]
    )


def _version(row: tuple) -> ModelVersion:
    version, run_id, metrics, snapshot, bundle, status, created, note = row
    return ModelVersion(version, run_id, json.loads(metrics), snapshot, bundle, status, created, note)
