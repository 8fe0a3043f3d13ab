"""Listing, comparing and promoting model versions."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from pipelines.train import CHAMPION_METRIC
from warehouse.connection import connected
from warehouse.model_versions import ModelVersion, get_version, list_versions, require_champion, set_champion

SUMMARY_METRICS = [CHAMPION_METRIC, "cold.recall_at_10", "warm.ndcg_at_10", "warm.recall_at_10"]


def model_versions(home: Path, *, lock_timeout_s: float) -> list[ModelVersion]:
    with connected(home, read_only=True, lock_timeout_s=lock_timeout_s) as conn:
        return list_versions(conn)


def promote(home: Path, version: int, *, lock_timeout_s: float) -> ModelVersion:
    from pipelines import tracking

    with connected(home, lock_timeout_s=lock_timeout_s) as conn:
        set_champion(conn, version)
        promoted = get_version(conn, version)
    tracking.set_champion_alias(home, version)
    return promoted


def evaluation_table(home: Path, version: int | None, *, lock_timeout_s: float) -> tuple[ModelVersion, pl.DataFrame]:
    """A version's logged evaluation beside the baselines of the same split (rows: metrics)."""
    with connected(home, read_only=True, lock_timeout_s=lock_timeout_s) as conn:
        chosen = get_version(conn, version) if version is not None else require_champion(conn)
    model = chosen.metrics["model"]
    baselines = chosen.metrics["baselines"]
    names = [m for m in model if m.startswith(("cold.", "warm."))]
    columns = {"metric": names, f"model v{chosen.version}": [model[m] for m in names]}
    for baseline, scores in baselines.items():
        columns[baseline] = [scores.get(m) for m in names]
    return chosen, pl.DataFrame(columns, strict=False)
