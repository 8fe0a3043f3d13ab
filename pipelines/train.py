"""Train a model version from the warehouse, evaluate it, log it to MLflow and register it.

A new version becomes champion only if it beats the current champion on the cold-start
metric (or when promotion is forced); the reason is printed, logged to MLflow and recorded.
"""

from __future__ import annotations

import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from pipelines.errors import InputError
from warehouse.catalog import current_snapshot, read_dataset
from warehouse.connection import connected
from warehouse.model_versions import champion, record_version

CHAMPION_METRIC = "cold.ndcg_at_10"


@dataclass(frozen=True)
class TrainOutcome:
    version: int
    run_id: str
    metrics: dict[str, float]
    baselines: dict[str, dict[str, float]]
    promoted: bool
    reason: str
    warnings: list[str]
    bundle_path: Path
    seconds: float


def train(home: Path, config, *, force_promote: bool, show_progress: bool, lock_timeout_s: float) -> TrainOutcome:
    started = time.perf_counter()
    # Read first: a missing or empty warehouse fails before seconds of TensorFlow imports.
    with connected(home, read_only=True, lock_timeout_s=lock_timeout_s) as conn:
        dataset = read_dataset(conn)
        snapshot = current_snapshot(conn)

    from recsys.data import RecsysData
    from recsys.export import export_bundle
    from recsys.plots import fewshot_curve, ndcg_by_group, training_curve
    from recsys.train import train_and_evaluate
    from pipelines import tracking

    data = RecsysData(
        users=dataset.users.drop("age_is_band"),
        items=dataset.items.drop("extra"),
        interactions=dataset.interactions,
    )
    if data.users.height < 5 or data.items.height < 2:
        raise InputError(
            f"too little data to train and evaluate ({data.users.height} users, {data.items.height} items); "
            "ingest a real dataset first"
        )
    result = train_and_evaluate(data, config, show_progress=show_progress)

    bundles = Path(home) / "bundles"
    incoming = bundles / f".incoming-{uuid.uuid4().hex[:8]}"
    try:
        expected_version = tracking.next_registry_version(home)
        export_bundle(result, incoming, version=str(expected_version))
        figures = {
            "training_curve.png": training_curve(result.history),
            "ndcg_by_age_band_gender.png": ndcg_by_group(result.ndcg_by_group),
            "fewshot_ndcg.png": fewshot_curve(result.metrics, result.baselines),
        }
        run_id, version = tracking.log_training_run(home, result, incoming, data_snapshot=snapshot, figures=figures)
        if version != expected_version:
            raise RuntimeError(f"the registry gave version {version}, expected {expected_version}; another process trained at the same time")
        bundle_path = bundles / f"v{version}"
        incoming.rename(bundle_path)
    finally:
        if incoming.exists():
            shutil.rmtree(incoming)

    warnings = _losses_to_baselines(result.metrics, result.baselines)
    with connected(home, lock_timeout_s=lock_timeout_s) as conn:
        current = champion(conn)
        promoted, reason = _decide(result.metrics, current, force_promote)
        record_version(
            conn,
            version=version,
            mlflow_run_id=run_id,
            metrics={"model": result.metrics, "baselines": result.baselines},
            data_snapshot=snapshot,
            bundle_path=str(bundle_path.resolve()),
            champion=promoted,
            note=reason,
        )
    if promoted:
        tracking.set_champion_alias(home, version)
    tracking.tag_run(home, run_id, {"promotion": reason, **({"warning": " ".join(warnings)} if warnings else {})})
    return TrainOutcome(
        version=version,
        run_id=run_id,
        metrics=result.metrics,
        baselines=result.baselines,
        promoted=promoted,
        reason=reason,
        warnings=warnings,
        bundle_path=bundle_path,
        seconds=time.perf_counter() - started,
    )


def _decide(metrics: dict[str, float], current, force: bool) -> tuple[bool, str]:
    new = metrics[CHAMPION_METRIC]
    if current is None:
        return True, f"first version: champion by default ({CHAMPION_METRIC} {new:.4f})"
    old = current.metrics["model"][CHAMPION_METRIC]
    if force:
        return True, f"promotion forced ({CHAMPION_METRIC} {new:.4f} vs champion v{current.version} {old:.4f})"
    if new > old:
        return True, f"beats champion v{current.version} on {CHAMPION_METRIC}: {new:.4f} > {old:.4f}"
    return False, f"does not beat champion v{current.version} on {CHAMPION_METRIC}: {new:.4f} <= {old:.4f}; kept as candidate"


def _losses_to_baselines(metrics: dict[str, float], baselines: dict[str, dict[str, float]]) -> list[str]:
    warnings = []
    for name, scores in baselines.items():
        for key in (CHAMPION_METRIC, "warm.ndcg_at_10"):
            if key in scores and key in metrics and metrics[key] < scores[key]:
                warnings.append(f"the model loses to baseline '{name}' on {key} ({metrics[key]:.4f} < {scores[key]:.4f}).")
    return warnings
