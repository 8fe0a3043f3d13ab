"""Train the recommender on MovieLens 100K with the default config and print how it compares.

Example:

    .venv/bin/python benchmarks/bench_recsys.py --data /work/shared/data/ml-100k

Prints the model against the baselines on both protocols (cold start, warm), with and
without the logQ correction, the training wall time and the peak memory.

One split is noisy (about 190 judged users in the cold-start protocol): ``--seeds 42,1,2,3,4``
repeats the evaluation for each seed (a new cold-start split, ``split_seed=seed``, and a new
initialisation each time) and prints NDCG@10 per seed with the mean and sd, for the model and the baselines, on
the cold, few-shot (given n = 1, 3, 5, 10 liked items) and warm protocols.
"""

from __future__ import annotations

import argparse
import dataclasses
import resource
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from recsys.data import RecsysData  # noqa: E402

DEFAULT_DATA = Path("/work/shared/data/ml-100k")


def load_movielens_100k(directory: Path) -> RecsysData:
    """Parse ml-100k's u.data, u.user and u.item into the recommender's data contract.

    Stand-in until the warehouse's readers land; ``pipelines.readers`` will replace it.
    """
    directory = Path(directory)
    interactions = pl.read_csv(
        directory / "u.data",
        separator="\t",
        has_header=False,
        new_columns=["user_id", "item_id", "rating", "timestamp"],
        schema_overrides={"user_id": pl.Int64, "item_id": pl.Int64, "rating": pl.Float32, "timestamp": pl.Int64},
    )
    users = pl.read_csv(
        directory / "u.user",
        separator="|",
        has_header=False,
        new_columns=["user_id", "age", "gender", "occupation", "zip"],
        schema_overrides={"user_id": pl.Int64, "age": pl.Int32, "gender": pl.Utf8, "occupation": pl.Utf8, "zip": pl.Utf8},
    )
    genre_names = [
        line.split("|")[0]
        for line in (directory / "u.genre").read_text(encoding="latin-1").splitlines()
        if line.strip()
    ]
    rows = []
    for line in (directory / "u.item").read_text(encoding="latin-1").splitlines():
        if not line.strip():
            continue
        parts = line.split("|")
        date = parts[2]
        flags = parts[5:5 + len(genre_names)]
        rows.append({
            "item_id": int(parts[0]),
            "title": parts[1],
            "year": int(date[-4:]) if len(date) >= 4 else None,
            "genres": [g for g, f in zip(genre_names, flags) if f == "1"],
        })
    items = pl.DataFrame(
        rows, schema={"item_id": pl.Int64, "title": pl.Utf8, "year": pl.Int32, "genres": pl.List(pl.Utf8)}
    )
    return RecsysData(users=users, items=items, interactions=interactions)


def _row(name: str, metrics: dict[str, float], protocol: str) -> str:
    cells = [metrics.get(f"{protocol}.{m}_at_10") for m in ("ndcg", "recall", "hit_rate", "map", "coverage", "novelty")]
    return f"{name:<34}" + "".join(f"{c:>10.4f}" if c is not None else f"{'-':>10}" for c in cells)


class _WidePriorAlone:
    """The cold-start prior without the network: each visitor's group log-popularity."""

    def __init__(self, train: RecsysData, cfg) -> None:
        from recsys.features import build_vocabularies
        from recsys.prior import demographic_log_prior

        self.vocab = build_vocabularies(train.users, train.items)
        self.log_prior = demographic_log_prior(
            train, self.vocab, rating_weight_offset=cfg.rating_weight_offset, shrinkage=cfg.prior_shrinkage,
            neighbour_weight=cfg.prior_neighbour_weight, user_weight_exponent=cfg.prior_user_weight_exponent,
        )

    def score(self, users: pl.DataFrame, use_history: bool = False) -> np.ndarray:
        from recsys.prior import user_groups

        return self.log_prior[user_groups(users, self.vocab)]


def _wide_prior_alone(data: RecsysData, cfg) -> dict[str, float]:
    from recsys.evaluate import COLD, build_protocol, evaluate
    from recsys.splits import cold_start_split

    split = cold_start_split(data, cfg.holdout_share, random_state=cfg.split_seed)
    protocol = build_protocol(COLD, split, cfg.relevant_min_rating)
    metrics = evaluate(_WidePriorAlone(split.train, cfg), protocol, cfg.k).metrics
    return {f"cold.{name}": value for name, value in metrics.items()}


def _across_seeds(data: RecsysData, seeds: list[int]) -> None:
    """Cold, few-shot (per n) and warm NDCG@10 for the model and every baseline: per seed, mean, sd."""
    from recsys.config import TrainConfig
    from recsys.evaluate import FEWSHOT_SIZES, fewshot_name
    from recsys.train import train_and_evaluate

    protocols = ["cold", *(fewshot_name(n) for n in FEWSHOT_SIZES), "warm"]
    table: dict[str, dict[str, list[float]]] = {}
    for seed in seeds:
        result = train_and_evaluate(
            data, TrainConfig(seed=seed, split_seed=seed, refit_on_all_data=False), show_progress=False
        )
        for name, metrics in {"two-tower": result.metrics, **result.baselines}.items():
            for protocol in protocols:
                value = metrics.get(f"{protocol}.ndcg_at_10")
                if value is not None:
                    table.setdefault(protocol, {}).setdefault(name, []).append(value)
        print(f"seed {seed} done", file=sys.stderr, flush=True)
    for protocol in protocols:
        rows = table.get(protocol, {})
        print(f"\n== {protocol}: NDCG@10 by seed ==")
        print(f"{'':<26}" + "".join(f"{s:>8}" for s in seeds) + f"{'mean':>8}{'sd':>8}")
        for name, values in rows.items():
            cells = "".join(f"{v:>8.4f}" for v in values)
            print(f"{name:<26}{cells}{np.mean(values):>8.4f}{np.std(values, ddof=1) if len(values) > 1 else 0.0:>8.4f}")
        best = max((np.mean(v), name) for name, v in rows.items() if name != "two-tower") if len(rows) > 1 else None
        if best and "two-tower" in rows:
            print(f"{'two-tower - best baseline':<26}{'':>{8 * len(seeds)}}{np.mean(rows['two-tower']) - best[0]:>+8.4f}  ({best[1]})")


def main() -> None:
    from recsys.config import TrainConfig
    from recsys.train import train_and_evaluate

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the ml-100k directory")
    parser.add_argument("--no-compare", action="store_true", help="skip the run without logQ correction")
    parser.add_argument("--seeds", help="comma-separated seeds: NDCG@10 per seed and the mean, instead")
    args = parser.parse_args()
    data = load_movielens_100k(args.data)
    if args.seeds:
        _across_seeds(data, [int(s) for s in args.seeds.split(",")])
        return
    cfg = TrainConfig()
    start = time.perf_counter()
    result = train_and_evaluate(data, cfg, show_progress=False)
    wall = time.perf_counter() - start
    runs = {"two-tower (logQ)": result.metrics}
    if not args.no_compare:
        no_logq = train_and_evaluate(
            data, dataclasses.replace(cfg, logq_correction=False, refit_on_all_data=False), show_progress=False
        )
        runs["two-tower (no logQ)"] = no_logq.metrics
        network_alone = train_and_evaluate(
            data, dataclasses.replace(cfg, cold_start_prior_weight=0.0, refit_on_all_data=False), show_progress=False
        )
        runs["two-tower, network alone"] = network_alone.metrics
    runs["wide prior alone (no network)"] = _wide_prior_alone(data, cfg)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    header = f"{'':<34}" + "".join(f"{h:>10}" for h in ("NDCG@10", "Recall@10", "HR@10", "MAP@10", "Cov@10", "Novelty"))
    for protocol in ("cold", "warm"):
        print(f"\n== {protocol} ==")
        print(header)
        for name, metrics in runs.items():
            print(_row(name, metrics, protocol))
        for name, metrics in result.baselines.items():
            if any(k.startswith(protocol + ".") for k in metrics):
                print(_row(name, metrics, protocol))
    print("\nNDCG@10 by age band x gender:")
    print(result.ndcg_by_group)
    m = result.metrics
    print(
        f"\ntrain_and_evaluate wall time (default config, refit on all data: {cfg.refit_on_all_data}): "
        f"{wall:.1f}s (cold {m['seconds.cold']:.1f}s, warm {m['seconds.warm']:.1f}s, "
        f"refit {m.get('seconds.refit', 0.0):.1f}s)"
    )
    print(f"peak memory (max RSS of this process): {peak_mb:.0f} MiB")


if __name__ == "__main__":
    main()
