"""Listing, comparing and promoting model versions."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import polars as pl

from pipelines.errors import BrokenBundle, InputError
from pipelines.promotion import Difference, compared_protocols, paired_difference
from pipelines.recommend import load_bundle
from pipelines.train import CHAMPION_METRIC, split_differences
from warehouse.connection import connected
from warehouse.model_versions import (
    ModelVersion,
    champion,
    get_version,
    list_versions,
    paired_ndcg,
    require_champion,
    set_champion,
)

SUMMARY_METRICS = [CHAMPION_METRIC, "warm.ndcg_at_10"]


def model_versions(home: Path, *, lock_timeout_s: float) -> list[ModelVersion]:
    with connected(home, read_only=True, lock_timeout_s=lock_timeout_s) as conn:
        return list_versions(conn)


@dataclass(frozen=True)
class Promotion:
    model_version: int
    previous_champion: int | None
    reason: str
    warnings: list[str]


def promote(home: Path, version: int, *, reason: str | None = None, lock_timeout_s: float) -> Promotion:
    """Make ``version`` champion after checking it can serve; warn when it loses to a baseline or the champion."""
    with connected(home, read_only=True, lock_timeout_s=lock_timeout_s) as conn:
        chosen = get_version(conn, version)
        current = champion(conn)
        warnings = _promotion_warnings(conn, chosen, current)
    bundle = load_bundle(chosen)  # refuses a missing, broken or stale bundle before anything changes
    if not all(np.isfinite(a).all() for a in (bundle.item_vectors, bundle.user_vectors, bundle.cold_start_vectors)):
        raise BrokenBundle(f"model v{version}'s bundle holds non-finite vectors (a diverged model); it cannot be champion")
    note = f"promoted by hand: {reason}" if reason else "promoted by hand (no reason given)"
    from pipelines import tracking

    tracking.open_store(home)
    with connected(home, lock_timeout_s=lock_timeout_s) as conn:
        tracking.set_champion_alias(home, version)
        try:
            set_champion(conn, version, note=note)
        except BaseException:
            if current is not None:
                tracking.set_champion_alias(home, current.version)
            raise
    tracking.tag_run(home, chosen.mlflow_run_id, {"promotion": note, **({"promotion_warning": " ".join(warnings)} if warnings else {})})
    return Promotion(version, current.version if current else None, note, warnings)


def _promotion_warnings(conn, chosen: ModelVersion, current: ModelVersion | None) -> list[str]:
    warnings = []
    model = chosen.metrics.get("model", {})
    for name, scores in chosen.metrics.get("baselines", {}).items():
        for key in (CHAMPION_METRIC, "warm.ndcg_at_10"):
            if key in scores and key in model and model[key] < scores[key]:
                warnings.append(f"v{chosen.version} loses to baseline '{name}' on {key} ({model[key]:.4f} < {scores[key]:.4f})")
    if current is not None and current.version != chosen.version and not current.stale:
        for protocol in compared_protocols(model):
            old, new = paired_ndcg(conn, current.version, chosen.version, protocol)
            difference = paired_difference(protocol, old, new)
            if difference.verdict == "worse":
                warnings.append(f"v{chosen.version} loses to champion v{current.version} beyond noise: {difference.describe()}")
    return warnings


@dataclass(frozen=True)
class Comparison:
    a: int
    b: int
    data_snapshot: str
    differences: list[Difference]  # B minus A, per protocol, on the same users
    metrics: pl.DataFrame  # every logged metric of both: metric, A, B, B - A
    settings: pl.DataFrame  # the settings that differ: setting, A, B


def compare(home: Path, a: int, b: int, *, lock_timeout_s: float) -> Comparison:
    """Two versions on the same split: per-protocol differences with bootstrap intervals, and what differs."""
    with connected(home, read_only=True, lock_timeout_s=lock_timeout_s) as conn:
        first, second = get_version(conn, a), get_version(conn, b)
        if first.data_snapshot != second.data_snapshot:
            raise InputError(
                f"v{a} and v{b} were trained on different data snapshots ({first.data_snapshot} and "
                f"{second.data_snapshot}); they were judged on different users and cannot be compared fairly"
            )
        changed = split_differences(first.config, second.config)
        if changed:
            raise InputError(f"v{a} and v{b} were evaluated on different splits ({', '.join(changed)}); "
                             "retrain one of them with the other's evaluation settings to compare")
        protocols = sorted(set(compared_protocols(first.metrics.get("model", {})))
                           | set(compared_protocols(second.metrics.get("model", {}))), key=lambda p: (p != "cold", p))
        differences = [paired_difference(p, *paired_ndcg(conn, a, b, p)) for p in protocols]
    if not any(d.n_users for d in differences):
        raise InputError(f"v{a} and v{b} have no per-user evaluation in common (versions trained before this "
                         "was stored); retrain them to compare")
    ma, mb = first.metrics.get("model", {}), second.metrics.get("model", {})
    names = [m for m in sorted(ma.keys() | mb.keys()) if not m.startswith("seconds.")]
    metrics = pl.DataFrame({
        "metric": names, f"v{a}": [ma.get(m) for m in names], f"v{b}": [mb.get(m) for m in names],
        "difference": [mb[m] - ma[m] if m in ma and m in mb else None for m in names],
    }, strict=False)
    fa, fb = _flat(first.config), _flat(second.config)
    differing = [k for k in sorted(fa.keys() | fb.keys()) if fa.get(k) != fb.get(k)]
    settings = pl.DataFrame({"setting": differing, f"v{a}": [str(fa.get(k)) for k in differing],
                             f"v{b}": [str(fb.get(k)) for k in differing]}, schema={"setting": pl.Utf8, f"v{a}": pl.Utf8, f"v{b}": pl.Utf8})
    return Comparison(a, b, first.data_snapshot, differences, metrics, settings)


def differences_frame(differences: list[Difference]) -> pl.DataFrame:
    return pl.DataFrame(
        [{"protocol": d.protocol, "users": d.n_users, "A": d.mean_a, "B": d.mean_b, "B - A": d.diff,
          "95% CI low": d.low, "95% CI high": d.high, "verdict": d.verdict} for d in differences],
    )


def comparison_json(comparison: Comparison) -> dict:
    return {
        "a": comparison.a, "b": comparison.b, "data_snapshot": comparison.data_snapshot,
        "differences": [{**asdict(d), "verdict": d.verdict} for d in comparison.differences],
        "metrics": comparison.metrics.to_dicts(), "settings": comparison.settings.to_dicts(),
    }


def _flat(config: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in config.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = tuple(value) if isinstance(value, list) else value
    return out


def evaluation_table(home: Path, version: int | None, *, lock_timeout_s: float) -> tuple[ModelVersion, pl.DataFrame]:
    """A version's logged evaluation beside the baselines of the same split (rows: metrics)."""
    with connected(home, read_only=True, lock_timeout_s=lock_timeout_s) as conn:
        chosen = get_version(conn, version) if version is not None else require_champion(conn)
    return chosen, comparison_table(chosen.metrics["model"], chosen.metrics["baselines"], f"model v{chosen.version}")


def comparison_table(metrics: dict[str, float], baselines: dict[str, dict[str, float]], model_name: str) -> pl.DataFrame:
    """Rows: the evaluation metrics; columns: the model, then each baseline of the same split."""
    names = [m for m in metrics if not m.startswith(("seconds.", "data."))]
    columns = {"metric": names, model_name: [metrics[m] for m in names]}
    for baseline, scores in baselines.items():
        columns[baseline] = [scores.get(m) for m in names]
    return pl.DataFrame(columns, strict=False)
