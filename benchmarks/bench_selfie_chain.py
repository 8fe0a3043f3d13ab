"""The whole chain, photo to list: cold-start NDCG@10 from selfies as a share of NDCG@10 from the
people's true age and gender.

1. Ingest MovieLens 100K into a temporary home; take the product's own cold-start split
   (recsys.splits.cold_start_split, TrainConfig's seed and share) and train the two-tower model on
   its training side only (so the held-out users are unseen, as in `train`'s cold-start figure);
   export it and register it as the home's champion.
2. Give each judged held-out user a development face of the same gender and the nearest age (ties
   rotate over the equally near faces).
3. Score two audiences with batch-score, the product's campaign path: one with the users' true age
   and gender, one with the `selfie` column (the photo; vision estimates age and gender and, by
   default, the mixture over bands and genders). NDCG@10 of each against the users' held-out
   ratings >= 4; the ratio is the headline.
4. Variants scored straight from the bundle on the same faces: the old age/gender model, hard band
   and gender (the rule before the mixture), other mixture policies.

The dev faces are UTKFace photos, partly in face-api.js's training data.

Usage:

    .venv/bin/python benchmarks/bench_selfie_chain.py [--ml100k /work/shared/data/ml-100k] [--faces ...]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np  # noqa: E402
import polars as pl  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from pipelines.batch_score import batch_score  # noqa: E402
from pipelines.demographic_mixture import MixturePolicy  # noqa: E402
from pipelines.rules import CampaignRules  # noqa: E402
from pipelines.selfie import demographic_weights  # noqa: E402
from recsys.metrics import per_user_metrics  # noqa: E402
from recsys.serving import ServingBundle  # noqa: E402
from vision.devset import DEFAULT_FACES_DIR, load_devset  # noqa: E402
from vision.image import detection_copy, load_rgb  # noqa: E402
from vision.profile import ProfilerConfig, SelfieProfiler  # noqa: E402


def train_cold_split_bundle(home: Path, ml100k: Path):
    """(protocol, bundle path) for a model trained on the cold-start split's training side."""
    from bench_recsys import load_movielens_100k  # the benchmark's own reader of the raw files
    from recsys.config import TrainConfig
    from recsys.evaluate import COLD, build_protocol, evaluate
    from recsys.export import export_bundle
    from recsys.splits import cold_start_split
    from recsys.train import fit_two_tower
    from warehouse.connection import connected
    from warehouse.model_versions import record_version

    subprocess.run([sys.executable, "cli.py", "ingest", "movielens", str(ml100k), "--home", str(home)],
                   cwd=REPO, check=True, capture_output=True)
    cfg = TrainConfig()
    data = load_movielens_100k(ml100k)
    split = cold_start_split(data, cfg.holdout_share, random_state=cfg.seed)
    protocol = build_protocol(COLD, split, cfg.relevant_min_rating)
    recommender, _ = fit_two_tower(split.train, cfg, False, stage=COLD)
    metrics = evaluate(recommender, protocol, cfg.k).metrics
    print(f"model on the cold split's training side: cold NDCG@10 {metrics['ndcg_at_10']:.4f} "
          f"(recsys.evaluate, true demographics incl. occupation)")
    bundle = export_bundle(SimpleNamespace(model=recommender, model_trained_on="cold_split_train",
                                           metrics={f"cold.{k}": v for k, v in metrics.items()}),
                           home / "bundles" / "v1", "1")
    with connected(home) as conn:
        record_version(conn, version=1, mlflow_run_id="bench", metrics={"model": {}, "baselines": {}},
                       data_snapshot="bench", bundle_path=str(bundle), champion=True, note="bench_selfie_chain")
    return protocol, data.items["item_id"].to_numpy()


def assign_faces(users: pl.DataFrame, photos) -> list:
    """Per user: a dev photo of the same gender and nearest age; ties rotate over the nearest ones."""
    used: dict[str, int] = {}
    chosen = []
    for age, gender in zip(users["age"].to_list(), users["gender"].to_list()):
        pool = [p for p in photos if p.gender == gender]
        best = min(abs(p.age - age) for p in pool)
        nearest = [p for p in pool if abs(p.age - age) == best]
        key = f"{gender}{best}{age}"
        chosen.append(nearest[used.get(key, 0) % len(nearest)])
        used[key] = used.get(key, 0) + 1
    return chosen


def ndcg_from_lists(lists: dict[str, list[int]], user_keys: list[str], protocol, item_order: np.ndarray) -> float:
    position = {int(item): i for i, item in enumerate(item_order)}
    ranked = np.array([[position[i] for i in lists[key]] for key in user_keys], dtype=np.int64)
    return float(np.mean(per_user_metrics(ranked, protocol.relevant, 10)["ndcg"]))


def run_batch(home: Path, audience: pl.DataFrame, out: Path, profiler=None) -> dict[str, list[int]]:
    audience_path = out.with_suffix(".csv")
    audience.write_csv(audience_path)
    summary = batch_score(home, audience_path, out, k=10, campaign=out.stem, version=None, rules=CampaignRules(),
                          show_progress=False, selfie_profiler=profiler)
    if summary.n_rejected:
        print(f"  {summary.n_rejected} rows rejected: {summary.reject_reasons}")
    frame = pl.read_parquet(out).sort("user_id", "rank")
    return {u: g["item_id"].to_list() for (u,), g in frame.group_by("user_id", maintain_order=True)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ml100k", type=Path, default=Path("/work/shared/data/ml-100k"))
    parser.add_argument("--faces", type=Path, default=DEFAULT_FACES_DIR)
    args = parser.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="selfie-chain-") as tmp:
        home = Path(tmp) / "home"
        protocol, item_order = train_cold_split_bundle(home, args.ml100k)
        users = protocol.users
        keys = [f"cold-{u}" for u in users["user_id"].to_list()]

        # Profile each dev face once with each model (one detection, both networks).
        new, old = SelfieProfiler(), SelfieProfiler(ProfilerConfig(age_gender_model="cydral"))
        old.detector = new.detector
        photos = {}
        for photo in load_devset(args.faces):
            rgb = load_rgb(photo.path)
            faces = new.detector.detect_copy(detection_copy(rgb))
            if faces:
                face = max(faces, key=lambda f: f.box.area)
                photos[photo.path] = (photo, new._profile_face(rgb, face), old._profile_face(rgb, face))
        assigned = assign_faces(users, [p for p, _, _ in photos.values()])
        print(f"{len(keys)} judged cold-start users; {len(photos)} detected dev faces, "
              f"{len({p.path for p in assigned})} of them used")

        truth = run_batch(home, pl.DataFrame({"user_id": keys, "age": users["age"], "gender": users["gender"]}),
                          Path(tmp) / "truth.parquet")

        def cached_mixture(path: Path):  # batch-score's selfie column, with each photo profiled once
            face = photos[path][1]
            bands, genders = demographic_weights(face)
            return face.age.years, face.gender_for_recommendation, json.dumps([sorted(bands.items()), sorted(genders.items())])

        selfie = run_batch(home, pl.DataFrame({"user_id": keys, "selfie": [str(p.path) for p in assigned]}),
                           Path(tmp) / "selfie.parquet", profiler=cached_mixture)
        base = ndcg_from_lists(truth, keys, protocol, item_order)
        from_photos = ndcg_from_lists(selfie, keys, protocol, item_order)
        print(f"\ncold-start NDCG@10 from true age and gender (batch-score):  {base:.4f}")
        print(f"cold-start NDCG@10 from the photos (batch-score selfie column, shipped): {from_photos:.4f}")
        print(f"selfie-to-truth ratio: {from_photos / base:.1%}\n")

        bundle = ServingBundle.load(home / "bundles" / "v1")

        def ndcg_of(vector_of) -> float:
            vectors = np.stack([vector_of(photos[p.path]) for p in assigned])
            ids, _ = bundle.recommend(vectors, k=10)
            return ndcg_from_lists({k: list(row) for k, row in zip(keys, ids)}, keys, protocol, item_order)

        def hard(face):
            return bundle.vector_for_demographics(age=face.age.years, gender=face.gender_for_recommendation)

        def mixture(face, policy):
            bands, genders = demographic_weights(face, policy)
            return bundle.vector_for_demographic_mixture(bands, genders)

        variants = {
            "new model, mixture (shipped)": lambda r: mixture(r[1], MixturePolicy()),
            "new model, hard band and gender": lambda r: hard(r[1]),
            "new model, mixture, unsure gender -> unknown": lambda r: mixture(r[1], MixturePolicy(unsure_gender="unknown")),
            "new model, mixture, no band floor": lambda r: mixture(r[1], MixturePolicy(min_band_weight=0.0)),
            "new model, mixture, band floor 0.3": lambda r: mixture(r[1], MixturePolicy(min_band_weight=0.3)),
            "old model, hard band and gender (before)": lambda r: hard(r[2]),
            "old model, mixture": lambda r: mixture(r[2], MixturePolicy()),
        }
        print(f"{'variant (scored from the bundle)':<48}{'NDCG@10':>9}{'ratio':>8}")
        for name, vector_of in variants.items():
            value = ndcg_of(vector_of)
            print(f"{name:<48}{value:>9.4f}{value / base:>8.1%}")
    print(f"\n{time.perf_counter() - started:.0f} s in all")


if __name__ == "__main__":
    main()
