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
    return chosen, comparison_table(chosen.metrics["model"], chosen.metrics["baselines"], f"model v{chosen.version}")


def comparison_table(metrics: dict[str, float], baselines: dict[str, dict[str, float]], model_name: str) -> pl.DataFrame:
    """Rows: the evaluation metrics; columns: the model, then each baseline of the same split."""
    names = [m for m in metrics if m.startswith(("cold.", "warm."))
             or (m.startswith("fewshot.") and m.endswith((".ndcg_at_10", ".recall_at_10")))]
    columns = {"metric": names, model_name: [metrics[m] for m in names]}
    for baseline, scores in baselines.items():
        columns[baseline] = [scores.get(m) for m in names]
    return pl.DataFrame(columns, strict=False)
