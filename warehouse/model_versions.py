"""The table of model versions: which MLflow run made each one, how it scored, which data it
saw, where its serving bundle lies, and which one is champion (at most one at a time).

Bundle paths are stored relative to the home (``bundles/v3``) and handed out absolute,
resolved against the home this warehouse file lies in, so a moved or copied home works.
Per-user evaluation results live in ``model_evaluations`` for paired comparisons.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import duckdb
import numpy as np

from warehouse.connection import transaction
from warehouse.errors import WarehouseError

_COLUMNS = "version, mlflow_run_id, metrics, data_snapshot, bundle_path, status, created_at, note, config, run_name"


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
    bundle_path: str | None  # absolute, resolved against the home
    status: str  # candidate | champion | retired
    created_at: datetime
    note: str | None  # why it is or is not champion
    config: dict = field(default_factory=dict)  # the TrainConfig it was trained with
    run_name: str | None = None
    # The data snapshot the warehouse holds now: a version trained on another one is stale.
    current_snapshot: str | None = None

    @property
    def stale(self) -> bool:
        return self.current_snapshot is not None and self.data_snapshot != self.current_snapshot


def home_of(conn: duckdb.DuckDBPyConnection) -> Path | None:
    """The home directory of this warehouse file (HOME/warehouse/recsys.duckdb); None in memory."""
    rows = conn.sql("SELECT path FROM duckdb_databases() WHERE database_name = current_database()").fetchall()
    if not rows or not rows[0][0] or rows[0][0] == ":memory:":
        return None
    return Path(rows[0][0]).resolve().parent.parent


def relative_to_home(conn: duckdb.DuckDBPyConnection, path: str | Path) -> str:
    """``path`` relative to the home when it lies inside it (what the table stores)."""
    home = home_of(conn)
    path = Path(path)
    if home is not None and path.is_absolute():
        try:
            return path.resolve().relative_to(home).as_posix()
        except ValueError:
            pass
    return str(path)


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
    config: dict | None = None,
    run_name: str | None = None,
    per_user: dict[str, "pl.DataFrame"] | None = None,
) -> None:
    """Insert a version (and its per-user evaluation: protocol -> user_id, ndcg) in one transaction."""
    import polars as pl  # here, not at the top: `recommend` reads versions and never needs it

    with transaction(conn):
        if champion:
            conn.execute("UPDATE model_versions SET status = 'retired' WHERE status = 'champion'")
        conn.execute(
            f"INSERT INTO model_versions ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, now()::TIMESTAMP, ?, ?, ?)",
            [version, mlflow_run_id, json.dumps(metrics), data_snapshot, relative_to_home(conn, bundle_path),
             "champion" if champion else "candidate", note, json.dumps(config or {}), run_name],
        )
        for protocol, frame in (per_user or {}).items():
            rows = frame.select(
                pl.lit(version, pl.Int32).alias("version"), pl.lit(protocol).alias("protocol"),
                pl.col("user_id").cast(pl.Int64), pl.col("ndcg").cast(pl.Float64),
            ).filter(pl.col("ndcg").is_not_nan())
            conn.register("per_user_frame", rows)
            try:
                conn.execute("INSERT INTO model_evaluations SELECT * FROM per_user_frame")
            finally:
                conn.unregister("per_user_frame")


def set_champion(conn: duckdb.DuckDBPyConnection, version: int, note: str | None = None) -> None:
    get_version(conn, version)
    with transaction(conn):
        conn.execute("UPDATE model_versions SET status = 'retired' WHERE status = 'champion'")
        conn.execute(
            "UPDATE model_versions SET status = 'champion', note = coalesce(?, note) WHERE version = ?", [note, version]
        )


def delete_version(conn: duckdb.DuckDBPyConnection, version: int) -> None:
    with transaction(conn):
        conn.execute("DELETE FROM model_evaluations WHERE version = ?", [version])
        conn.execute("DELETE FROM model_versions WHERE version = ?", [version])


def list_versions(conn: duckdb.DuckDBPyConnection) -> list[ModelVersion]:
    rows = conn.sql(f"SELECT {_COLUMNS} FROM model_versions ORDER BY version").fetchall()
    context = _context(conn)
    return [_version(row, *context) for row in rows]


def get_version(conn: duckdb.DuckDBPyConnection, version: int) -> ModelVersion:
    rows = conn.sql(f"SELECT {_COLUMNS} FROM model_versions WHERE version = ?", params=[version]).fetchall()
    if not rows:
        known = [v.version for v in list_versions(conn)]
        raise UnknownModelVersion(
            f"no model version {version}; known versions: {', '.join(map(str, known)) or 'none (run `python cli.py train`)'}"
        )
    return _version(rows[0], *_context(conn))


def champion(conn: duckdb.DuckDBPyConnection) -> ModelVersion | None:
    rows = conn.sql(f"SELECT {_COLUMNS} FROM model_versions WHERE status = 'champion'").fetchall()
    return _version(rows[0], *_context(conn)) if rows else None


def require_champion(conn: duckdb.DuckDBPyConnection) -> ModelVersion:
    best = champion(conn)
    if best is None:
        raise NoChampion("no model version is registered as champion; run `python cli.py train` first")
    return best


def per_user_ndcg(conn: duckdb.DuckDBPyConnection, version: int, protocol: str) -> dict[int, float]:
    """user_id -> NDCG@k of ``version`` on ``protocol`` (empty for versions trained before this was stored)."""
    rows = conn.sql(
        "SELECT user_id, ndcg FROM model_evaluations WHERE version = ? AND protocol = ?", params=[version, protocol]
    ).fetchall()
    return {int(u): float(v) for u, v in rows}


def paired_ndcg(conn: duckdb.DuckDBPyConnection, a: int, b: int, protocol: str) -> tuple[np.ndarray, np.ndarray]:
    """The two versions' NDCG on the users both were judged on, in the same user order."""
    first, second = per_user_ndcg(conn, a, protocol), per_user_ndcg(conn, b, protocol)
    users = sorted(first.keys() & second.keys())
    return np.array([first[u] for u in users]), np.array([second[u] for u in users])


def protocols_of(conn: duckdb.DuckDBPyConnection, version: int) -> list[str]:
    rows = conn.sql("SELECT DISTINCT protocol FROM model_evaluations WHERE version = ? ORDER BY protocol",
                    params=[version]).fetchall()
    return [r[0] for r in rows]


def versions_frame(versions: list[ModelVersion], metric_names: list[str]) -> "pl.DataFrame":
    """One row per version: status, seed, key settings, data snapshot, metrics, why (not) champion."""
    import polars as pl

    return pl.DataFrame(
        [
            {
                "version": v.version,
                "status": v.status + (" (stale)" if v.stale else ""),
                "created": v.created_at.strftime("%m-%d %H:%M"),
                "seed": v.config.get("seed"),
                "settings": _key_settings(v.config),
                "data": v.data_snapshot[:8],
                **{name.replace("_at_", "@"): v.metrics.get("model", {}).get(name) for name in metric_names},
                "why": v.note or "",
            }
            for v in versions
        ],
        schema_overrides={"seed": pl.Int64},
    )


KEY_SETTINGS = ("epochs", "batch_size", "learning_rate", "user_id_dropout", "logq_correction")


def _key_settings(config: dict) -> str:
    short = {"epochs": "ep", "batch_size": "bs", "learning_rate": "lr", "user_id_dropout": "drop", "logq_correction": "logq"}
    return " ".join(f"{short[k]}={config[k]}" for k in KEY_SETTINGS if k in config)


def _context(conn: duckdb.DuckDBPyConnection) -> tuple[Path | None, str | None]:
    rows = conn.sql("SELECT snapshot_id FROM dataset_loads ORDER BY loaded_at DESC LIMIT 1").fetchall()
    return home_of(conn), (rows[0][0] if rows else None)


def _version(row: tuple, home: Path | None, current_snapshot: str | None) -> ModelVersion:
    version, run_id, metrics, snapshot, bundle, status, created, note, config, run_name = row
    if bundle and home is not None and not Path(bundle).is_absolute():
        bundle = str(home / bundle)
    return ModelVersion(version, run_id, json.loads(metrics), snapshot, bundle, status, created, note,
                        json.loads(config) if config else {}, run_name, current_snapshot)
