"""Everything MLflow: where the store lives, what a training run logs, the registry, repairs.

The store is ``MLFLOW_TRACKING_URI`` when that is set (a team server), else a SQLite database
under ``HOME/mlruns`` with artifacts beside it, which MLflow 3.x accepts for tracking, the
model registry and aliases (``mlflow ui --backend-store-uri sqlite:///HOME/mlruns/mlflow.db``).

MLflow records artifact locations as absolute URIs. So that a home can be moved or copied, the
store is rebased when it is opened from another place: every recorded location under the old
``mlruns/artifacts`` is rewritten to the new one. Creating the store is serialised with a file
lock, so two first runs in a new home do not both create MLflow's schema.

Only pipelines import this module, and only the commands that train, promote or repair:
importing MLflow costs seconds.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import sqlite3
import sys
import tempfile
import warnings
from dataclasses import asdict
from pathlib import Path

from pipelines.ids import MODEL_ID_FILES

EXPERIMENT = "recsys"
REGISTERED_MODEL = "selfie-recsys"
CHAMPION_ALIAS = "champion"
_MODEL_CODE = Path(__file__).with_name("mlflow_model.py")
_SERVING_CODE = Path(__file__).resolve().parents[1] / "recsys" / "serving.py"
_READY: set[str] = set()  # stores opened (created, rebased) by this process


_OURS: set[str] = set()  # URIs this module set: mlflow.set_tracking_uri copies them into the environment


def _team_uri() -> str | None:
    """``MLFLOW_TRACKING_URI`` when the user set it (not when MLflow copied one of ours there)."""
    value = os.environ.get("MLFLOW_TRACKING_URI")
    return value if value and value not in _OURS else None


def tracking_uri(home: Path) -> str:
    """``MLFLOW_TRACKING_URI`` if set, else the home's SQLite store."""
    return _team_uri() or f"sqlite:///{_store_file(home)}"


def uses_home_store() -> bool:
    return _team_uri() is None


def _store_file(home: Path) -> Path:
    return (Path(home) / "mlruns" / "mlflow.db").resolve()


def _artifact_root(home: Path) -> str:
    return (Path(home) / "mlruns" / "artifacts").resolve().as_uri()


def _mlflow(home: Path):
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    import mlflow

    logging.getLogger("mlflow").setLevel(max(logging.WARNING, logging.getLogger().level))
    logging.getLogger("alembic").setLevel(logging.WARNING)
    uri = tracking_uri(home)
    if uses_home_store():
        _OURS.add(uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    if uri not in _READY:
        _open_store(mlflow, home)
        _READY.add(uri)
    return mlflow


@contextlib.contextmanager
def _store_lock(home: Path):
    """An exclusive lock on HOME/mlruns/.store.lock (released when the process dies)."""
    folder = Path(home) / "mlruns"
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".store.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _open_store(mlflow, home: Path) -> None:
    """Create the store and the experiment once (serialised), and rebase a moved home."""
    if not uses_home_store():
        with _quiet():
            _experiment_id(mlflow, home)
        return
    with _store_lock(home), _quiet():
        if _store_file(home).exists():
            _rebase(home)
        _experiment_id(mlflow, home)


@contextlib.contextmanager
def _quiet():
    # MLflow prints store-creation and registration notes on stdout; keep stdout for our output.
    with contextlib.redirect_stdout(sys.stderr):
        yield


def _rebase(home: Path) -> None:
    """Rewrite artifact URIs recorded under another home's mlruns/artifacts to this home's."""
    new_root = _artifact_root(home)
    with contextlib.closing(sqlite3.connect(_store_file(home))) as db:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "experiments" not in tables:
            return
        row = db.execute("SELECT artifact_location FROM experiments WHERE name = ?", [EXPERIMENT]).fetchone()
        if row is None or row[0] == new_root or not str(row[0]).endswith("/mlruns/artifacts"):
            return
        old_root = row[0]
        with db:
            for table in tables:
                columns = [c[1] for c in db.execute(f'PRAGMA table_info("{table}")') if "CHAR" in c[2].upper() or "TEXT" in c[2].upper()]
                for column in columns:
                    db.execute(
                        f'UPDATE "{table}" SET "{column}" = ? || substr("{column}", ?) WHERE "{column}" LIKE ? ESCAPE \'\\\'',
                        [new_root, len(old_root) + 1, _like_prefix(old_root)],
                    )
        logging.getLogger(__name__).info("MLflow store rebased from %s to %s", old_root, new_root)


def _like_prefix(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _experiment_id(mlflow, home: Path) -> str:
    experiment = mlflow.get_experiment_by_name(EXPERIMENT)
    if experiment is not None:
        return experiment.experiment_id
    if not uses_home_store():
        return mlflow.create_experiment(EXPERIMENT)
    return mlflow.create_experiment(EXPERIMENT, artifact_location=_artifact_root(home))


def open_store(home: Path) -> None:
    """Make sure the store exists (and is rebased): called before a lock is taken."""
    _mlflow(home)


def flatten(config: dict, prefix: str = "") -> dict[str, str]:
    flat = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = str(value)
    return flat


def log_training_run(
    home: Path,
    result,
    bundle_dir: Path,
    *,
    run_name: str,
    data_snapshot: str,
    figures: dict,
    training_data,
    seen_items: Path,
    description: str,
    source_ids: Path | None = None,
) -> tuple[str, int]:
    """Log one training run whole and register its model; returns (run id, registry version).

    ``training_data`` (a polars frame of the interactions) is logged with ``mlflow.log_input``;
    ``seen_items`` (each known user's rated items) ships with the MLflow model so that known
    users' lists leave out what they have seen, as the CLI does. ``source_ids`` (a folder from
    ``pipelines.ids.write_model_ids``, for a catalog with string ids) lets the model take and give
    the source's ids (SKUs, UUIDs) instead of keys.
    """
    mlflow = _mlflow(home)
    config = result.config
    with mlflow.start_run(experiment_id=_experiment_id(mlflow, home), run_name=run_name, description=description) as run:
        mlflow.log_params(flatten(asdict(config)))
        mlflow.log_text(config.to_toml(), "config.toml")
        mlflow.set_tags({"data_snapshot": data_snapshot, "model_trained_on": result.model_trained_on,
                         "seed": str(config.seed), "process_id": str(os.getpid())})
        for row in result.history:
            mlflow.log_metric(f"loss.{row['stage']}", row["loss"], step=row["epoch"])
            if "val_ndcg" in row:
                mlflow.log_metric(f"val_ndcg_at_{config.k}.{row['stage']}", row["val_ndcg"], step=row["epoch"])
        mlflow.log_metrics(_metric_names(result.metrics))
        for name, metrics in result.baselines.items():
            mlflow.log_metrics(_metric_names(metrics, prefix=f"baseline.{name}."))
        mlflow.log_metrics({f"data.{k}": float(v) for k, v in result.data_summary.items()})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pandas/MLflow dataset-schema notes
            dataset = mlflow.data.from_pandas(training_data.to_pandas(), name=f"interactions@{data_snapshot}")
            mlflow.log_input(dataset, context="training", tags={"data_snapshot": data_snapshot})
        for filename, figure in figures.items():
            mlflow.log_figure(figure, filename)
        mlflow.log_table(result.ndcg_by_group.to_pandas(), "ndcg_by_age_band_gender.json")
        with _quiet(), warnings.catch_warnings(), tempfile.TemporaryDirectory() as code:
            warnings.filterwarnings("ignore", message=".*(input example|Hint:).*")
            artifacts = {"bundle": str(bundle_dir), "seen_items": str(seen_items)}
            if source_ids is not None:
                artifacts["source_ids"] = str(source_ids)
            string_items = source_ids is not None and (source_ids / MODEL_ID_FILES["item"][0]).exists()
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=str(_MODEL_CODE),
                artifacts=artifacts,
                code_paths=[_serving_package(Path(code))],
                pip_requirements=["numpy", "pandas"],
                signature=signature(string_items=string_items),
                input_example=input_example(),
                registered_model_name=REGISTERED_MODEL,
            )
    return run.info.run_id, int(info.registered_model_version)


def _serving_package(folder: Path) -> str:
    """A copy of what the MLflow model imports: ``recsys/serving.py`` (numpy only), as a package.

    Shipping this one file rather than the whole ``recsys`` package keeps the model portable
    without TensorFlow: it loads wherever numpy and pandas are installed.
    """
    package = folder / "recsys"
    package.mkdir()
    (package / "__init__.py").write_text('"""The serving part of selfie-recsys, shipped with the MLflow model."""\n')
    shutil.copy(_SERVING_CODE, package / "serving.py")
    return str(package)


def input_example():
    import pandas as pd

    return pd.DataFrame({"user_id": [None, 42.0], "age": [34.0, None], "gender": ["F", None],
                         "occupation": ["writer", None]})


def signature(string_items: bool = False):
    """user_id takes anything (an integer id, or a catalog's string id); item_ids are integers,
    or strings for a catalog whose items have string ids (SKUs)."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, DataType, ParamSchema, ParamSpec, Schema
    from mlflow.types.schema import AnyType, Array

    inputs = Schema([
        # Numbers of any kind: MLflow's enforcement refuses int64 for double and float for long,
        # but an id or an age may come either way (and NaN when missing); the model checks them.
        ColSpec(AnyType(), "user_id", required=False),
        ColSpec(AnyType(), "age", required=False),
        ColSpec(DataType.string, "gender", required=False),
        ColSpec(DataType.string, "occupation", required=False),
    ])
    outputs = Schema([
        ColSpec(Array(DataType.string if string_items else DataType.long), "item_ids"),
        ColSpec(Array(DataType.double), "scores"),
        ColSpec(DataType.string, "basis"),
    ])
    return ModelSignature(inputs=inputs, outputs=outputs, params=ParamSchema([ParamSpec("k", "long", 10)]))


def _metric_names(metrics: dict[str, float], prefix: str = "") -> dict[str, float]:
    # MLflow metric names allow letters, digits and _-./ and spaces; "@" in e.g. ndcg@10 is not.
    return {f"{prefix}{name}".replace("@", "_at_"): float(value) for name, value in metrics.items()}


def finish_version(home: Path, run_id: str, version: int, *, tags: dict[str, str], description: str) -> None:
    """Tag the run and the registry version, and describe the version."""
    mlflow = _mlflow(home)
    client = mlflow.MlflowClient()
    for key, value in tags.items():
        client.set_tag(run_id, key, value)
        client.set_model_version_tag(REGISTERED_MODEL, str(version), key, value)
    client.update_model_version(REGISTERED_MODEL, str(version), description=description)


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
    return max(registry_versions(home), default=0) + 1


def registry_versions(home: Path) -> list[int]:
    mlflow = _mlflow(home)
    client = mlflow.MlflowClient()
    return sorted(int(v.version) for v in client.search_model_versions(f"name = '{REGISTERED_MODEL}'"))


def discard_version(home: Path, version: int | None, run_id: str | None, reason: str) -> None:
    """Undo a registration whose warehouse record failed: delete the version, mark the run failed."""
    mlflow = _mlflow(home)
    from mlflow.exceptions import MlflowException

    client = mlflow.MlflowClient()
    if version is not None:
        with contextlib.suppress(MlflowException):  # already gone: nothing to undo
            client.delete_model_version(REGISTERED_MODEL, str(version))
    if run_id is not None:
        with contextlib.suppress(MlflowException):
            client.set_tag(run_id, "discarded", reason)
            client.set_terminated(run_id, status="FAILED")


def stuck_runs(home: Path) -> list[str]:
    """Runs of the experiment still RUNNING (their process died: see ``pipelines.repair``)."""
    mlflow = _mlflow(home)
    experiment = mlflow.get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        return []
    runs = mlflow.MlflowClient().search_runs([experiment.experiment_id], filter_string="attributes.status = 'RUNNING'")
    return [r.info.run_id for r in runs]


def mark_failed(home: Path, run_id: str, reason: str) -> None:
    client = _mlflow(home).MlflowClient()
    client.set_tag(run_id, "repaired", reason)
    client.set_terminated(run_id, status="FAILED")


def champion_alias(home: Path) -> int | None:
    mlflow = _mlflow(home)
    from mlflow.exceptions import MlflowException

    try:
        return int(mlflow.MlflowClient().get_model_version_by_alias(REGISTERED_MODEL, CHAMPION_ALIAS).version)
    except MlflowException:  # no registered model or no alias yet
        return None
