"""Train a model version from the warehouse, evaluate it, log it to MLflow and register it.

Finishing a version is all or nothing from the user's point of view: the warehouse's write lock
is taken before anything is registered, and the MLflow registration, the bundle folder and the
warehouse record are made under it; if any step fails, the steps already made are undone (the
registry version deleted, the run marked FAILED, the bundle removed). A process killed in that
window leaves leftovers that ``models repair`` finds and removes (see ``pipelines.repair``).

The champion rule is in ``pipelines.promotion``: the new version is compared with the champion
user by user on the same evaluation split; the reason is printed, tagged and stored.
"""

from __future__ import annotations

import shutil
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import polars as pl

from pipelines.errors import InputError
from pipelines.events import merge_events
from pipelines.fileio import fault_point
from pipelines.ids import write_model_ids
from pipelines.promotion import Decision, compared_protocols, decide, paired_difference
from warehouse.catalog import current_snapshot, read_dataset
from warehouse.connection import connected
from warehouse.model_versions import champion, per_user_ndcg, record_version

CHAMPION_METRIC = "cold.ndcg_at_10"
SEEN_ITEMS = "seen_items.npz"


class DivergedModel(InputError):
    """Training produced non-finite vectors or scores: the model must not be registered."""


class DataChanged(InputError):
    """The warehouse's data changed while the model trained."""


@dataclass(frozen=True)
class TrainOutcome:
    model_version: int
    run_id: str
    run_name: str
    metrics: dict[str, float]
    baselines: dict[str, dict[str, float]]
    promoted: bool
    reason: str
    comparisons: list[dict]  # the paired differences against the champion, per protocol
    warnings: list[str]
    bundle_path: Path
    config: dict
    adjustments: list[str]  # settings changed to fit the data (e.g. implicit feedback)
    seconds: float

    @property
    def version(self) -> int:
        """The former name of ``model_version`` (callers written before the rename)."""
        return self.model_version


def adapt_to_data(config, interactions: pl.DataFrame):
    """Settings that cannot work on this data, changed and explained (the rest is left alone).

    Implicit feedback (every interaction has the same rating, e.g. purchases loaded without a
    rating column) has no rating to weight by or to call relevant: every interaction counts.
    """
    ratings = interactions["rating"]
    if ratings.n_unique() != 1:
        return config, []
    value = float(ratings[0])
    changes, notes = {}, []
    if config.rating_weight_offset is not None and value - config.rating_weight_offset <= 0:
        changes["rating_weight_offset"] = None
        notes.append(f"implicit feedback (every rating is {value:g}): rating_weight_offset off")
    if config.positive_min_rating is not None and value < config.positive_min_rating:
        changes["positive_min_rating"] = None
        notes.append("implicit feedback: positive_min_rating off")
    if value < config.relevant_min_rating:
        changes["relevant_min_rating"] = value
        notes.append(f"implicit feedback: every held-out interaction is relevant (relevant_min_rating {value:g})")
    if config.item_item.min_rating is not None and value < config.item_item.min_rating:
        changes["item_item"] = {"min_rating": None}
        notes.append("implicit feedback: every interaction counts as liked in the item-item part (item_item.min_rating off)")
    return config.with_changes(**changes), notes


def run_name_for(data_format: str, snapshot: str, config, when: datetime) -> str:
    """Dataset, settings and time, e.g. ``movielens-100k@3f2a9c1e s42 ep8 bs1024 lr0.01 2025-01-31T10:22:05``."""
    settings = f"s{config.seed} ep{config.epochs} bs{config.batch_size} lr{config.learning_rate:g}"
    if not config.logq_correction:
        settings += " nologq"
    return f"{data_format}@{snapshot[:8]} {settings} {when:%Y-%m-%dT%H:%M:%S}"


def train(home: Path, config, *, force_promote: bool, show_progress: bool, lock_timeout_s: float) -> TrainOutcome:
    started = time.perf_counter()
    # What the service landed (likes, ratings, erasures) joins the data first, so this run
    # learns from it and never from someone who asked to be forgotten.
    merge_events(home, lock_timeout_s=lock_timeout_s)
    # Read first: a missing or empty warehouse fails before seconds of TensorFlow imports.
    with connected(home, read_only=True, lock_timeout_s=lock_timeout_s) as conn:
        dataset = read_dataset(conn)
        snapshot = current_snapshot(conn)
        data_format = (conn.sql("SELECT format FROM dataset_loads WHERE snapshot_id = ?", params=[snapshot]).fetchall()
                       or [("data",)])[0][0]
    _check_writable(home)
    # A train killed mid-registration left a registry version, a bundle or a RUNNING run that
    # the warehouse does not know: sweep them first, as `models repair` would.
    from pipelines.repair import repair

    repair(home, dry_run=False, lock_timeout_s=lock_timeout_s)

    from pipelines.native_logs import quiet_native_logs

    with quiet_native_logs():  # TensorFlow's C++ log lines start at its import
        return _train(home, config, dataset, snapshot, data_format, started,
                      force_promote=force_promote, show_progress=show_progress, lock_timeout_s=lock_timeout_s)


def _train(home, config, dataset, snapshot, data_format, started, *, force_promote, show_progress, lock_timeout_s):
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
    config, adjustments = adapt_to_data(config, data.interactions)
    try:
        result = train_and_evaluate(data, config, show_progress=show_progress)
    except ValueError as e:  # the recsys package's own "got/expected" errors about data and settings
        raise InputError(f"cannot train on this data with these settings: {e}") from e
    _check_finite(result)
    figures = {"training_curve.png": training_curve(result.history),
               "fewshot_ndcg.png": fewshot_curve(result.metrics, result.baselines)}
    for protocol in sorted(set(result.ndcg_by_group["protocol"].to_list())):
        figures[f"ndcg_by_age_band_gender_{protocol}.png"] = ndcg_by_group(result.ndcg_by_group, protocol)
    tracking.open_store(home)  # create or rebase the MLflow store before taking the warehouse lock
    run_name = run_name_for(data_format, snapshot, config, datetime.now())
    warnings = _losses_to_baselines(result.metrics, result.baselines)

    bundles = Path(home) / "bundles"
    # The write lock is held from before registering until the record is committed, so that a
    # reader elsewhere cannot make the final write fail after MLflow already has the version.
    with connected(home, lock_timeout_s=lock_timeout_s) as conn:
        if current_snapshot(conn) != snapshot:
            raise DataChanged(
                f"the warehouse's data changed while training (snapshot {snapshot} -> {current_snapshot(conn)}); "
                "nothing was registered: run `train` again"
            )
        current = champion(conn)
        decision = _decide(conn, result, current, force_promote)
        incoming = bundles / f".incoming-{uuid.uuid4().hex[:8]}"
        run_id = version = None
        bundle_path = None
        try:
            expected_version = tracking.next_registry_version(home)
            export_bundle(result, incoming, version=str(expected_version))
            _stamp_snapshot(incoming, snapshot)
            _write_seen_items(data.interactions, incoming / SEEN_ITEMS)
            # The source's ids travel with the MLflow model, not in the bundle (bundles keep keys).
            with tempfile.TemporaryDirectory() as scratch:
                source_ids = Path(scratch) / "source_ids"
                wrote = write_model_ids(conn, np.load(incoming / "user_ids.npy"), np.load(incoming / "item_ids.npy"),
                                        source_ids)
                run_id, version = tracking.log_training_run(
                    home, result, incoming, run_name=run_name, data_snapshot=snapshot, figures=figures,
                    training_data=data.interactions, seen_items=incoming / SEEN_ITEMS,
                    source_ids=source_ids if wrote else None,
                    description=_description(run_name, result.metrics, decision.reason),
                )
            fault_point("train.registered")
            if version != expected_version:
                # MLflow never reuses the number of a deleted version (a killed run's orphan, swept
                # by repair), so the guess can be low; the warehouse's lock rules out a rival.
                _renumber_bundle(incoming, version)
            bundle_path = bundles / f"v{version}"
            if bundle_path.exists():  # left by a killed run that never reached the warehouse
                shutil.rmtree(bundle_path)
            incoming.rename(bundle_path)
            tags = {"promotion": decision.reason, "status": "champion" if decision.promoted else "candidate",
                    "data_snapshot": snapshot, "seed": str(config.seed)}
            if warnings:
                tags["warning"] = " ".join(warnings)
            if decision.promoted:
                tracking.set_champion_alias(home, version)
            tracking.finish_version(home, run_id, version, tags=tags,
                                    description=_description(run_name, result.metrics, decision.reason))
            record_version(
                conn,
                version=version,
                mlflow_run_id=run_id,
                metrics={"model": result.metrics, "baselines": result.baselines},
                data_snapshot=snapshot,
                bundle_path=str(bundle_path),
                champion=decision.promoted,
                note=decision.reason,
                config=asdict(config),
                run_name=run_name,
                per_user=result.per_user_ndcg,
            )
            fault_point("train.recorded")
        except BaseException as e:
            tracking.discard_version(home, version, run_id, reason=f"{type(e).__name__}: {e}")
            if decision.promoted and current is not None and version is not None:
                tracking.set_champion_alias(home, current.version)
            for leftover in (incoming, bundle_path):
                if leftover is not None and leftover.exists():
                    shutil.rmtree(leftover)
            raise

    return TrainOutcome(
        model_version=version,
        run_id=run_id,
        run_name=run_name,
        metrics=result.metrics,
        baselines=result.baselines,
        promoted=decision.promoted,
        reason=decision.reason,
        comparisons=[{**asdict(d), "verdict": d.verdict} for d in decision.differences],
        warnings=warnings,
        bundle_path=bundle_path,
        config=asdict(config),
        adjustments=adjustments,
        seconds=time.perf_counter() - started,
    )


def _renumber_bundle(bundle: Path, version: int) -> None:
    import json

    manifest_path = bundle / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["version"] = str(version)
    manifest_path.write_text(json.dumps(manifest, indent=2))


def _decide(conn, result, current, force: bool) -> Decision:
    """The champion rule on the paired per-user NDCG of the champion and the new model."""
    if current is None:
        return decide(None, [], force=force)
    changed = split_differences(current.config, asdict(result.config))
    if changed and not current.stale and not force:
        return Decision(False, f"not compared with champion v{current.version}: it was evaluated on another split "
                               f"({', '.join(changed)} differ); kept as candidate (`models promote` if intended)")
    differences = []
    if not current.stale and not changed:
        for protocol in compared_protocols(result.metrics):
            frame = result.per_user_ndcg.get(protocol)
            new = {} if frame is None else dict(zip(frame["user_id"].to_list(), frame["ndcg"].to_list()))
            old = per_user_ndcg(conn, current.version, protocol)
            users = sorted(u for u in old.keys() & new.keys() if np.isfinite(new[u]))
            differences.append(paired_difference(protocol, [old[u] for u in users], [new[u] for u in users]))
    return decide(current.version, differences, champion_stale=current.stale, force=force)


SPLIT_SETTINGS = ("holdout_share", "split_seed", "relevant_min_rating", "k")


def split_differences(a: dict, b: dict) -> list[str]:
    """The settings that define the evaluation split and differ between two configs."""
    return [f"{k} {a.get(k)} vs {b.get(k)}" for k in SPLIT_SETTINGS if a.get(k) != b.get(k)]


def _check_writable(home: Path) -> None:
    """Fail before training, not after, when the home cannot take a new bundle or store."""
    for folder in (Path(home) / "bundles", Path(home) / "mlruns"):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            probe = folder / f".write-test-{uuid.uuid4().hex[:8]}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as e:
            raise InputError(f"cannot write to {folder} ({e.strerror}); free space or fix permissions, then train again") from e


def _check_finite(result) -> None:
    """A diverged model (NaN or infinite vectors or metrics) is refused before anything is written."""
    item_vectors = result.model.item_vectors()
    bad_items = ~np.isfinite(item_vectors).all(axis=1)
    bad_metrics = [k for k, v in result.metrics.items() if not np.isfinite(v)]
    bad_loss = [row for row in result.history if not np.isfinite(row["loss"])]
    if bad_items.any() or bad_metrics or bad_loss:
        lr = result.config.learning_rate
        raise DivergedModel(
            f"training diverged: {bad_items.mean():.0%} of item vectors are not finite"
            + (f", non-finite loss in {len(bad_loss)} epoch(s)" if bad_loss else "")
            + (f", non-finite metrics {bad_metrics[:3]}" if bad_metrics else "")
            + f"; nothing was registered. Lower --learning-rate (got {lr:g}) and train again"
        )


def _stamp_snapshot(bundle: Path, snapshot: str) -> None:
    """Record in the bundle's manifest which data it was trained on (checked when it serves)."""
    import json

    manifest_path = bundle / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["data_snapshot"] = snapshot
    manifest_path.write_text(json.dumps(manifest, indent=2))


def _write_seen_items(interactions: pl.DataFrame, path: Path) -> None:
    """Each known user's rated items in the bundle's order (CSR), for the MLflow model's known
    users; with an item-item part, also the items they liked (rated at its threshold or above),
    which bend their lists as they do in the CLI and the service."""
    import json

    bundle = path.parent
    user_ids = np.load(bundle / "user_ids.npy")
    item_ids = np.load(bundle / "item_ids.npy")
    item_item = json.loads((bundle / "manifest.json").read_text()).get("item_item")

    def csr(rows: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        pairs = (
            rows.select("user_id", "item_id").unique()
            .join(pl.DataFrame({"user_id": user_ids, "_u": np.arange(len(user_ids))}), on="user_id")
            .join(pl.DataFrame({"item_id": item_ids, "_i": np.arange(len(item_ids))}), on="item_id")
            .sort("_u", "_i")
        )
        counts = np.bincount(pairs["_u"].to_numpy(), minlength=len(user_ids))
        return np.concatenate([[0], np.cumsum(counts)]).astype(np.int64), pairs["_i"].to_numpy().astype(np.int64)

    offsets, item_rows = csr(interactions)
    arrays = {"offsets": offsets, "item_rows": item_rows}
    if item_item is not None:
        threshold = item_item.get("min_rating")
        liked = interactions if threshold is None else interactions.filter(pl.col("rating") >= threshold)
        arrays["liked_offsets"], arrays["liked_item_rows"] = csr(liked)
    np.savez(path, **arrays)


def _description(run_name: str, metrics: dict[str, float], reason: str) -> str:
    shown = ", ".join(f"{k} {metrics[k]:.4f}" for k in sorted(metrics) if k.endswith("ndcg_at_10"))
    return f"{run_name}. {shown}. {reason}"


def _losses_to_baselines(metrics: dict[str, float], baselines: dict[str, dict[str, float]]) -> list[str]:
    warnings = []
    for name, scores in baselines.items():
        for key in (CHAMPION_METRIC, "warm.ndcg_at_10"):
            if key in scores and key in metrics and metrics[key] < scores[key]:
                warnings.append(f"the model loses to baseline '{name}' on {key} ({metrics[key]:.4f} < {scores[key]:.4f}).")
    return warnings
