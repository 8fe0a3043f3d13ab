"""Which approximate nearest-neighbour library serves a 1M-item catalog: build time, queries/s, recall@10.

    nice -n 5 .venv/bin/python benchmarks/bench_ann.py [--items 1000000] [--queries 2000] [--libs usearch,faiss-ivf,hnswlib]

Vectors are bench_scale.py's synthetic ones (items clustered by topic plus a popularity bias
column, users near a topic), scored by inner product as the bundle is. Recall@10 is measured
against exact top-10 by numpy on the same queries; each library fetches ``--fetch`` candidates
(what batch scoring asks for so seen items can be dropped). One process, libraries in turn.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_scale import Size, synthetic_vectors  # noqa: E402


def exact_top(items: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    from recsys.serving import top_k

    return top_k(queries, items, k, chunk_size=64)[0]


def recall(found: np.ndarray, truth: np.ndarray, k: int = 10) -> float:
    return float(np.mean([len(set(f[:k]) & set(t[:k])) / k for f, t in zip(found, truth)]))


def run_usearch(items, queries, fetch, params):
    from usearch.index import Index

    started = time.perf_counter()
    index = Index(ndim=items.shape[1], metric="ip", dtype=params.get("dtype", "f32"),
                  connectivity=params.get("M", 16), expansion_add=params.get("efc", 128))
    index.add(np.arange(len(items)), items, threads=2)
    build = time.perf_counter() - started
    results = []
    for ef in params.get("ef", (64, 128, 256)):
        index.expansion_search = ef
        started = time.perf_counter()
        found = index.search(queries, fetch, threads=2).keys
        results.append((f"ef={ef}", time.perf_counter() - started, found))
    return build, results


def run_faiss_ivf(items, queries, fetch, params):
    import faiss

    nlist = params.get("nlist", 4096)
    started = time.perf_counter()
    quantizer = faiss.IndexFlatIP(items.shape[1])
    index = faiss.IndexIVFFlat(quantizer, items.shape[1], nlist, faiss.METRIC_INNER_PRODUCT)
    sample = items[np.random.default_rng(0).choice(len(items), size=min(len(items), 40 * nlist), replace=False)]
    index.train(sample)
    index.add(items)
    build = time.perf_counter() - started
    results = []
    for nprobe in params.get("nprobe", (16, 32, 64)):
        index.nprobe = nprobe
        started = time.perf_counter()
        _, found = index.search(queries, fetch)
        results.append((f"nprobe={nprobe}", time.perf_counter() - started, found))
    return build, results


def run_hnswlib(items, queries, fetch, params):
    import hnswlib

    started = time.perf_counter()
    index = hnswlib.Index(space="ip", dim=items.shape[1])
    index.init_index(max_elements=len(items), M=params.get("M", 16), ef_construction=params.get("efc", 128))
    index.set_num_threads(2)
    index.add_items(items)
    build = time.perf_counter() - started
    results = []
    for ef in params.get("ef", (64, 128, 256)):
        index.set_ef(max(ef, fetch))
        started = time.perf_counter()
        found, _ = index.knn_query(queries, k=fetch)
        results.append((f"ef={max(ef, fetch)}", time.perf_counter() - started, found))
    return build, results


LIBS = {"usearch": run_usearch, "faiss-ivf": run_faiss_ivf, "hnswlib": run_hnswlib}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=2_000)
    parser.add_argument("--fetch", type=int, default=60, help="candidates per query (k plus room for seen items)")
    parser.add_argument("--libs", default="usearch,faiss-ivf,hnswlib")
    args = parser.parse_args()
    size = Size("bench", max(args.queries, 10_000), args.items, 0)
    _, items, _, users, _ = synthetic_vectors(size)
    queries = users[np.random.default_rng(1).choice(len(users), args.queries, replace=False)]
    started = time.perf_counter()
    truth = exact_top(items, queries, 10)
    exact_s = time.perf_counter() - started
    print(f"{args.items:,} items x {items.shape[1]} dims, {args.queries:,} queries, fetch {args.fetch}")
    print(f"  exact (numpy)                {args.queries / exact_s:10,.0f} queries/s")
    for name in args.libs.split(","):
        try:
            build, results = LIBS[name](items, queries, args.fetch, {})
        except ImportError as e:
            print(f"  {name}: not installed ({e})")
            continue
        for label, seconds, found in results:
            print(f"  {name:<10} {label:<12} build {build:6.1f} s  {args.queries / seconds:10,.0f} queries/s  "
                  f"recall@10 {recall(found, truth):.4f}", flush=True)
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MiB (all libraries together)")


if __name__ == "__main__":
    main()
