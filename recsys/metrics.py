"""Top-k ranking metrics in plain numpy (no TensorFlow), so evaluation and tests stay cheap.

Conventions, chosen to match the usual offline-evaluation literature:

- A ranked list is a row of item indices, best first; ``-1`` pads a list that holds fewer
  than k items (a user for whom everything was filtered out). An empty list scores 0.0.
- Relevance is binary. ``relevant[u]`` holds the item indices that count as hits for user u.
- Recall@k divides by all of the user's relevant items (so a user with 30 relevant items
  cannot reach 1.0 at k=10); NDCG@k and MAP@k divide by the best achievable value at k,
  so a perfect ranking scores 1.0 on both.
- Users without any relevant item are left out of the averages: no list can be judged for
  them, and counting them as 0 would punish the model for the split.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

METRIC_NAMES = ("recall", "ndcg", "hit_rate", "map")


def _check_lists(ranked: np.ndarray, k: int) -> np.ndarray:
    ranked = np.asarray(ranked)
    if ranked.ndim != 2:
        raise ValueError(
            f"ranked lists must be a 2-D array [n_users, k] of item indices (got shape {ranked.shape})"
        )
    if k < 1:
        raise ValueError(f"k must be at least 1 (got {k})")
    return ranked[:, :k]


def hits_matrix(ranked: np.ndarray, relevant: Sequence[np.ndarray], k: int) -> np.ndarray:
    """Boolean [n_users, k]: whether the item at each rank is relevant for that user."""
    ranked = _check_lists(ranked, k)
    if len(relevant) != ranked.shape[0]:
        raise ValueError(
            f"expected one set of relevant items per ranked list "
            f"(got {len(relevant)} sets for {ranked.shape[0]} lists)"
        )
    hits = np.zeros(ranked.shape, dtype=bool)
    for u, rel in enumerate(relevant):
        if len(rel):
            hits[u] = np.isin(ranked[u], rel) & (ranked[u] >= 0)
    return hits


def per_user_metrics(
    ranked: np.ndarray, relevant: Sequence[np.ndarray], k: int = 10
) -> dict[str, np.ndarray]:
    """Recall, NDCG, hit rate and MAP at k for every user (NaN where a user has nothing relevant)."""
    ranked = _check_lists(ranked, k)
    hits = hits_matrix(ranked, relevant, k)
    n_rel = np.array([len(np.unique(r)) for r in relevant], dtype=np.float64)
    width = hits.shape[1]
    discounts = 1.0 / np.log2(np.arange(2, width + 2))
    ideal_counts = np.minimum(n_rel, k).astype(int)
    # Ideal DCG: all min(|relevant|, k) hits at the top.
    ideal_dcg = np.concatenate([[0.0], np.cumsum(1.0 / np.log2(np.arange(2, k + 2)))])[ideal_counts]
    dcg = (hits * discounts).sum(axis=1)
    precision_at_i = np.cumsum(hits, axis=1) / np.arange(1, width + 1)
    ap = (precision_at_i * hits).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = {
            "recall": hits.sum(axis=1) / n_rel,
            "ndcg": dcg / ideal_dcg,
            "hit_rate": hits.any(axis=1).astype(np.float64),
            "map": ap / np.minimum(n_rel, k),
        }
    no_relevant = n_rel == 0
    for values in out.values():
        values[no_relevant] = np.nan
    return out


def catalog_coverage(ranked: np.ndarray, n_items: int) -> float:
    """Share of the catalog that appears in at least one list."""
    if n_items < 1:
        raise ValueError(f"the catalog must hold at least one item (got n_items={n_items})")
    shown = np.unique(ranked[ranked >= 0])
    return float(len(shown) / n_items)


def novelty(ranked: np.ndarray, item_popularity: np.ndarray) -> float:
    """Mean self-information -log2(p(item)) of the recommended items.

    ``item_popularity`` is each item's share of training users (0..1); an item nobody saw in
    training is treated as seen by one user in ``1 / max(1, n)`` so that it stays finite.
    """
    shown = ranked[ranked >= 0]
    if shown.size == 0:
        return 0.0
    pop = np.asarray(item_popularity, dtype=np.float64)
    floor = pop[pop > 0].min() if np.any(pop > 0) else 1.0
    return float(np.mean(-np.log2(np.maximum(pop[shown], floor))))


def ranking_report(
    ranked: np.ndarray,
    relevant: Sequence[np.ndarray],
    item_popularity: np.ndarray,
    k: int = 10,
) -> dict[str, float]:
    """Averages over users with something relevant, plus catalog coverage and novelty.

    Keys are ``recall_at_10``, ``ndcg_at_10``, ``hit_rate_at_10``, ``map_at_10``,
    ``coverage_at_10``, ``novelty_at_10`` and ``n_users`` (users judged).
    """
    per_user = per_user_metrics(ranked, relevant, k)
    judged = ~np.isnan(per_user["ndcg"])
    report = {
        f"{name}_at_{k}": float(np.mean(values[judged])) if judged.any() else 0.0
        for name, values in per_user.items()
    }
    report[f"coverage_at_{k}"] = catalog_coverage(ranked[:, :k], len(item_popularity))
    report[f"novelty_at_{k}"] = novelty(ranked[:, :k], item_popularity)
    report["n_users"] = float(judged.sum())
    return report
