"""Training cost per example against the size of the embedding tables.

    nice -n 5 .venv/bin/python benchmarks/bench_train.py                         # 10k+5k ... 2M+1M ids
    nice -n 5 .venv/bin/python benchmarks/bench_train.py --optimizer adam        # tf_keras's dense-update Adam, for comparison
    nice -n 5 .venv/bin/python benchmarks/bench_train.py --sizes 10000x5000,2000000x1000000 --examples 400000

For each "USERSxITEMS" size it builds synthetic data with the same number of interactions
(power-law items, uniform users), trains ``--epochs`` epochs with the default config through
``recsys.train.fit_two_tower`` and reports the fastest epoch's seconds per example after the
first (which also traces the graph; the fastest, because the machine is shared), the ratio to
the first size, and the process's peak memory. The
issue's target: per-example time at 2M users + 1M items within 1.5x of that at 10k + 5k.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import polars as pl

from recsys.config import TrainConfig
from recsys.data import INTERACTIONS_SCHEMA, ITEMS_SCHEMA, USERS_SCHEMA, RecsysData

GENRES = ["Grocery", "Home", "Garden", "Toys", "Books", "Beauty", "Sports", "Electronics"]


def synthetic(n_users: int, n_items: int, n_examples: int, seed: int = 0) -> RecsysData:
    rng = np.random.default_rng(seed)
    users = pl.DataFrame({
        "user_id": np.arange(1, n_users + 1),
        "age": rng.integers(16, 80, n_users).astype(np.int32),
        "gender": rng.choice(np.array(["M", "F"]), n_users),
        "occupation": rng.choice(np.array(["student", "retired", "employed"]), n_users),
        "zip": np.full(n_users, None),
    }, schema=USERS_SCHEMA)
    items = pl.DataFrame({
        "item_id": np.arange(1, n_items + 1),
        "title": [f"Product {i % 5000}" for i in range(n_items)],
        "year": rng.integers(2000, 2025, n_items).astype(np.int32),
        "genres": [[GENRES[i % len(GENRES)]] for i in range(n_items)],
    }, schema=ITEMS_SCHEMA)
    interactions = pl.DataFrame({
        "user_id": rng.integers(1, n_users + 1, n_examples),
        "item_id": np.floor(n_items * rng.random(n_examples) ** 3).astype(np.int64) + 1,
        "rating": rng.integers(1, 6, n_examples).astype(np.float32),
        "timestamp": rng.integers(0, 10**9, n_examples),
    }, schema=INTERACTIONS_SCHEMA)
    return RecsysData(users=users, items=items, interactions=interactions)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000x5000,100000x50000,500000x200000,2000000x1000000")
    parser.add_argument("--examples", type=int, default=300_000, help="interactions per size (the same for all)")
    parser.add_argument("--epochs", type=int, default=3, help="the fastest epoch after the first counts (less noise)")
    parser.add_argument("--optimizer", choices=("lazy", "adam"), default="lazy",
                        help="lazy: what train uses; adam: tf_keras's Adam (dense moment updates), for comparison")
    args = parser.parse_args()

    from recsys import train as recsys_train

    if args.optimizer == "adam":
        import tensorflow as tf

        recsys_train.LazyAdam = tf.keras.optimizers.Adam
    cfg = TrainConfig(epochs=args.epochs)
    print(f"{'users':>10} {'items':>10} {'examples':>9} {'s/epoch':>8} {'us/example':>10} {'ratio':>6} {'peak RSS':>9}")
    first = None
    for size in args.sizes.split(","):
        n_users, n_items = (int(x) for x in size.lower().split("x"))
        data = synthetic(n_users, n_items, args.examples)
        started = time.perf_counter()
        _, history = recsys_train.fit_two_tower(data, cfg)
        seconds = min(row["seconds"] for row in history[1:] or history)
        per_example = seconds / args.examples * 1e6
        first = first or per_example
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"{n_users:>10,} {n_items:>10,} {args.examples:>9,} {seconds:>8.2f} {per_example:>10.2f} "
              f"{per_example / first:>6.2f} {peak:>7.0f} MiB   (fit with item-item part: {time.perf_counter() - started:.0f} s)",
              flush=True)


if __name__ == "__main__":
    main()
