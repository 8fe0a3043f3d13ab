"""Everything MLflow: where the store lives, what a training run logs, the registry.

The store is a SQLite database under ``HOME/mlruns`` with artifacts beside it, which MLflow
3.x accepts for tracking, the model registry and aliases. See it with
``mlflow ui --backend-store-uri sqlite:///HOME/mlruns/mlflow.db``. Only pipelines import this
module, and only the commands that train or promote: importing MLflow costs seconds.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings
from dataclasses import asdict
from pathlib import Path

EXPERIMENT = "recsys"
REGISTERED_MODEL = "selfie-recsys"
CHAMPION_ALIAS = "champion"
_MODEL_CODE = Path(__file__).with_name("mlflow_model.py")


def tracking_uri(home: Path) -> str:
    return f"sqlite:///{(Path(home) / 'mlruns' / 'mlflow.db').resolve()}"


def _mlflow(home: Path):
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    import mlflow

    logging.getLogger("mlflow").setLevel(max(logging.WARNING, logging.getLogger().level))
    logging.getLogger("alembic").setLevel(logging.WARNING)
    (Path(home) / "mlruns").mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(tracking_uri(home))
    mlflow.set_registry_uri(tracking_uri(home))
    return mlflow


def _experiment_id(mlflow, home: Path) -> str:
    experiment = mlflow.get_experiment_by_name(EXPERIMENT)
    if experiment is not None:
        return experiment.experiment_id
    artifacts = (Path(home) / "mlruns" / "artifacts").resolve()
    return mlflow.create_experiment(EXPERIMENT, artifact_location=artifacts.as_uri())


def flatten(config: dict, prefix: str = "") -> dict[str, str]:
    flat = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = str(value)
    return flat


def log_training_run(home: Path, result, bundle_dir: Path, *, data_snapshot: str, figures: dict) -> tuple[str, int]:
    """Log one training run whole and register its model; returns (run id, registry version)."""
    mlflow = _mlflow(home)
    with mlflow.start_run(experiment_id=_experiment_id(mlflow, home)) as run:
        mlflow.log_params(flatten(asdict(result.config)))
        mlflow.set_tags({"data_snapshot": data_snapshot, "model_trained_on": result.model_trained_on})
        for row in result.history:
            mlflow.log_metric(f"loss.{row['stage']}", row["loss"], step=row["epoch"])
        mlflow.log_metrics(_metric_names(result.metrics))
        for name, metrics in result.baselines.items():
            mlflow.log_metrics(_metric_names(metrics, prefix=f"baseline.{name}."))
        mlflow.log_metrics({f"data.{k}": float(v) for k, v in result.data_summary.items()})
        for filename, figure in figures.items():
            mlflow.log_figure(figure, filename)
        mlflow.log_table(result.ndcg_by_group.to_pandas(), "ndcg_by_age_band_gender.json")
        # MLflow prints registration notes on stdout; keep stdout for our own (JSON) output.
        with contextlib.redirect_stdout(sys.stderr), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*An input example was not provided")  # MLflow colours it
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=str(_MODEL_CODE),
                artifacts={"bundle": str(bundle_dir)},
                pip_requirements=["numpy", "pandas"],
                signature=_signature(),
                registered_model_name=REGISTERED_MODEL,
            )
    return run.info.run_id, int(info.registered_model_version)


def _signature():
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema

    inputs = Schema([ColSpec("double", "age", required=False), ColSpec("string", "gender", required=False),
                     ColSpec("string", "occupation", required=False)])
    outputs = Schema([ColSpec("string", "item_ids"), ColSpec("string", "scores")])
    return ModelSignature(inputs=inputs, outputs=outputs, params=ParamSchema([ParamSpec("k", "long", 10)]))


def _metric_names(metrics: dict[str, float], prefix: str = "") -> dict[str, float]:
    # MLflow metric names allow letters, digits and _-./ and spaces; "@" in e.g. ndcg@10 is not.
    return {f"{prefix}{name}".replace("@", "_at_"): float(value) for name, value in metrics.items()}


def tag_run(home: Path, run_id: str, tags: dict[str, str]) -> None:
    mlflow = _mlflow(home)
    client = mlflow.MlflowClient()
    for key, value in tags.items():
        client.set_tag(run_id, key, value)


def set_champion_alias(home: Path, version: int) -> None:
    mlflow = _mlflow(home)
    mlflow.MlflowClient().set_registered_model_alias(REGISTERED_MODEL, CHAMPION_ALIAS, str(version))


def next_registry_version(home: Path) -> int:
    """The version number the registry will give the next model (one writer at a time)."""
    mlflow = _mlflow(home)
    client = mlflow.MlflowClient()
    versions = client.search_model_versions(f"name = '{REGISTERED_MODEL}'")
    return max((int(v.version) for v in versions), default=0) + 1
