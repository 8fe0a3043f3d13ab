"""Approximate top-k over a large catalog: a FAISS inverted-file index (IVF-Flat, inner product).

Exact scoring costs one dot product per item per user (about 100 known users/s at 1M items on
this machine); the index clusters the item vectors and scans only the ``nprobe`` clusters
nearest to each user (at least 32, and at least 1/64 of them), so a user costs a few thousand
dot products at 200k items and about 16,000 at 1M. Chosen by measurement
(``benchmarks/bench_ann.py``): on the benchmark's vectors IVF-Flat reached recall@10 0.98-0.9997
at 2,000-2,500 queries/s, while usearch's HNSW with the inner-product metric (our vectors are
not normalised: they carry a popularity bias column) stayed under 0.2.

The index only chooses candidates: callers re-score them exactly with numpy, so the scores and
the order among candidates are the exact path's. Small catalogs never use it (exact is fast and
is the reference). The index is built once per bundle and saved beside it (``items.faiss``).
FAISS is imported only here, and only when an index is built or read.
"""

from __future__ import annotations

import logging
import math
import os
import uuid
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

INDEX_FILE = "items.faiss"
ANN_MIN_ITEMS = 100_000  # below this, exact top-k is fast enough and stays the only path
DEFAULT_NPROBE = 32  # clusters scanned per query, at least: recall@10 ~0.997 at 200k items (bench_ann.py)
# ... and at least this share of the clusters. A fixed 32 of 4,000 clusters (1M items) kept recall@10
# at 0.956 against exact on bench_scale's C1M (seen items removed); 63 (1/64) keeps it at 0.98.
SCAN_SHARE = 1 / 64
TRAIN_POINTS_PER_LIST = 40  # k-means sample per cluster (FAISS warns below 39)


class ItemIndex:
    """Item rows nearest (by inner product) to each query vector, approximately."""

    def __init__(self, index, nprobe: int | None = None):
        self._index = index
        self._index.nprobe = nprobe or default_nprobe(index.nlist)

    @property
    def nprobe(self) -> int:
        return int(self._index.nprobe)

    @property
    def n_items(self) -> int:
        return int(self._index.ntotal)

    def search(self, queries: np.ndarray, n: int) -> np.ndarray:
        """[n_queries, n] candidate item rows, best first by the index's estimate; -1 pads."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        _, rows = self._index.search(queries, n)
        return rows.astype(np.int64)


def default_nprobe(n_lists: int) -> int:
    """Clusters scanned per query: DEFAULT_NPROBE, or SCAN_SHARE of a large index's clusters."""
    return int(min(n_lists, max(DEFAULT_NPROBE, math.ceil(n_lists * SCAN_SHARE))))


def n_lists(n_items: int) -> int:
    # About 4 sqrt(n) clusters (4,000 at 1M items): a few hundred items per cluster, and never
    # fewer than TRAIN_POINTS_PER_LIST items per cluster to train on.
    return int(max(1, min(16_384, 4 * math.sqrt(n_items), n_items // TRAIN_POINTS_PER_LIST)))


def build_index(item_vectors: np.ndarray, *, seed: int = 0) -> ItemIndex:
    import faiss

    vectors = np.ascontiguousarray(item_vectors, dtype=np.float32)
    n, dim = vectors.shape
    lists = n_lists(n)
    quantizer = faiss.IndexFlatIP(dim)
    index = faiss.IndexIVFFlat(quantizer, dim, lists, faiss.METRIC_INNER_PRODUCT)
    rng = np.random.default_rng(seed)
    sample = vectors[np.sort(rng.choice(n, size=min(n, TRAIN_POINTS_PER_LIST * lists), replace=False))]
    index.cp.seed = seed
    index.train(sample)
    index.add(vectors)
    return ItemIndex(index)


def save_index(index: ItemIndex, directory: Path) -> Path:
    """Writes ``items.faiss`` beside the bundle atomically (a temporary name, then a rename)."""
    import faiss

    path = Path(directory) / INDEX_FILE
    temporary = path.with_name(f".{INDEX_FILE}.{uuid.uuid4().hex[:8]}")
    try:
        faiss.write_index(index._index, str(temporary))
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path


def load_or_build(directory: Path, item_vectors: np.ndarray) -> ItemIndex:
    """The bundle's index: read from beside it, or built now and saved there for the next run.

    A bundle folder that cannot be written keeps the index in memory for this run only.
    """
    import faiss

    path = Path(directory) / INDEX_FILE
    if path.is_file():
        index = faiss.read_index(str(path))
        if index.ntotal == len(item_vectors) and index.d == item_vectors.shape[1]:
            return ItemIndex(index)
        log.warning("%s does not match the bundle's %d items; rebuilding it", path, len(item_vectors))
    log.info("building the approximate-retrieval index for %d items (once per bundle)", len(item_vectors))
    built = build_index(item_vectors)
    try:
        save_index(built, directory)
    except OSError as e:
        log.warning("could not save the index beside the bundle (%s); it is rebuilt on the next run", e)
    return built
