"""Per-request latency of lists built from a person's likes (``recsys.personalize``).

Example:

    .venv/bin/python benchmarks/bench_personalize.py --bundle HOME/bundles/v1
    .venv/bin/python benchmarks/bench_personalize.py            # no bundle: ML-100K-shaped stand-in

Times ``recommend_with_history`` for one person at a time (p50 / p99 over many requests), as
wall-clock and as this thread's CPU time (on a shared, loaded machine the wall-clock tail is
mostly waiting for a core; CPU time is the work itself):
a new visitor with 0, 1, 3 and 10 likes, and known users with their whole liked history
(ML-100K's users: median about 50 liked items, up to several hundred). Then the batch function
for many people at once. Without ``--bundle`` the item-item part is fitted on ML-100K's ratings
(the real co-occurrence, so the sparse table has its real shape) and the vectors are random of
the trained model's size (32 taste dimensions, a bias and the prior columns).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

DEFAULT_DATA = Path("/work/shared/data/ml-100k")


def _stand_in(data_dir: Path):
    from bench_recsys import load_movielens_100k

    from recsys.item_item import ItemItemConfig, fit_item_item, liked_matrix

    data = load_movielens_100k(data_dir)
    item_item = fit_item_item(data, ItemItemConfig())
    liked, _ = liked_matrix(data, item_item.min_rating)
    histories = [liked.indices[liked.indptr[r]:liked.indptr[r + 1]] for r in range(liked.shape[0])]
    rng = np.random.default_rng(0)
    dim = 32 + 1 + 40
    items = rng.normal(size=(data.items.height, dim)).astype(np.float32)
    return items, rng.normal(size=dim).astype(np.float32), item_item, histories, 32


def _from_bundle(directory: Path, data_dir: Path):
    from recsys.personalize import taste_dimensions
    from recsys.serving import ServingBundle

    bundle = ServingBundle.load(directory)
    rng = np.random.default_rng(0)
    # Known users' histories: random draws of ML-100K-like lengths (the bundle holds no ratings).
    lengths = np.clip(rng.lognormal(np.log(40), 0.8, size=900).astype(int), 5, 600)
    histories = [rng.choice(len(bundle.item_ids), size=min(n, len(bundle.item_ids)), replace=False) for n in lengths]
    return (bundle.item_vectors, bundle.vector_for_demographics(30, "F", None), bundle.item_item, histories,
            taste_dimensions(bundle.manifest, bundle.item_vectors.shape[1]))


def _percentiles(seconds: list[tuple[float, float]]) -> str:
    wall, cpu = (np.array(column) * 1000 for column in zip(*seconds))
    return (f"wall p50 {np.percentile(wall, 50):5.2f} p99 {np.percentile(wall, 99):6.2f} ms | "
            f"cpu p50 {np.percentile(cpu, 50):5.2f} p99 {np.percentile(cpu, 99):5.2f} ms")


class _Timer:
    def __enter__(self):
        self.wall, self.cpu = time.perf_counter(), time.thread_time()
        return self

    def __exit__(self, *exc):
        self.seconds = (time.perf_counter() - self.wall, time.thread_time() - self.cpu)


def main() -> None:
    from recsys.personalize import History, recommend_many_with_history, recommend_with_history

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", type=Path, help="a serving bundle directory (default: an ML-100K-shaped stand-in)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the ml-100k directory (stand-in only)")
    parser.add_argument("--requests", type=int, default=2000, help="requests per case")
    args = parser.parse_args()
    items, visitor, item_item, histories, taste_dims = (
        _from_bundle(args.bundle, args.data) if args.bundle else _stand_in(args.data)
    )
    print(f"catalog {items.shape[0]} items x {items.shape[1]} dims; item-item part: "
          f"{'none (taste fallback)' if item_item is None else 'cosine + ' + ('EASE' if item_item.ease is not None else 'no EASE')}")
    rng = np.random.default_rng(1)
    n_items = items.shape[0]
    for n_likes in (0, 1, 3, 10):
        times = []
        for _ in range(args.requests):
            liked = tuple(rng.choice(n_items, size=n_likes, replace=False).tolist())
            with _Timer() as timer:
                recommend_with_history(items, visitor, History(liked=liked), k=10, known_user=False,
                                       taste_dims=taste_dims, item_item=item_item)
            times.append(timer.seconds)
        print(f"new visitor, {n_likes:>2} likes:        {_percentiles(times)}")
    times, sizes = [], []
    for _ in range(args.requests):
        history = histories[rng.integers(len(histories))]
        sizes.append(len(history))
        with _Timer() as timer:
            recommend_with_history(items, visitor, History(liked=tuple(history.tolist()), seen=tuple(history.tolist())),
                                   k=10, known_user=True, taste_dims=taste_dims, item_item=item_item)
        times.append(timer.seconds)
    print(f"known user, all liked:   {_percentiles(times)}  (median {int(np.median(sizes))}, max {max(sizes)} liked)")
    people = [History(liked=tuple(h.tolist()), seen=tuple(h.tolist())) for h in histories]
    vectors = np.tile(visitor, (len(people), 1))
    for known in (False, True):
        start = time.perf_counter()
        recommend_many_with_history(items, vectors, people, k=10, known_user=known, item_item=item_item, taste_dims=taste_dims)
        seconds = time.perf_counter() - start
        print(f"batch, {len(people)} people ({'known users' if known else 'as new visitors'}): "
              f"{seconds:.2f} s, {len(people) / seconds:,.0f} people/s")


if __name__ == "__main__":
    main()
