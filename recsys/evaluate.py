"""The two offline protocols, scored the same way for the model and every baseline.

Anything with ``score(users, use_history) -> [n_users, n_items]`` (catalog order) can be
evaluated. Scores become lists through ``recsys.serving.top_k_from_scores``, the function the
serving path uses, so what is measured is what is served.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from recsys.features import user_features
from recsys.metrics import per_user_metrics, ranking_report
from recsys.serving import top_k_from_scores
from recsys.splits import Split

COLD = "cold"
WARM = "warm"


@dataclass(frozen=True)
class Protocol:
    """Who is judged, on what, and which items their lists may not contain."""

    name: str
    users: pl.DataFrame  # the judged users (with demographics), in row order
    relevant: list[np.ndarray]  # per user: catalog positions of their relevant held-out items
    exclude: np.ndarray | None  # [n_users, n_items] bool: items seen in training (warm)
    item_popularity: np.ndarray  # per item: share of training users who rated it (for novelty)
    use_history: bool  # whether the model may use the user's id (warm) or not (cold)


def _positions(items: pl.DataFrame) -> pl.DataFrame:
    return pl.DataFrame({"item_id": items["item_id"], "_pos": np.arange(items.height)})


def _per_user_positions(frame: pl.DataFrame, items: pl.DataFrame, user_ids: list[int]) -> list[np.ndarray]:
    grouped = (
        frame.join(_positions(items), on="item_id", how="inner")
        .group_by("user_id")
        .agg(pl.col("_pos"))
    )
    lookup = dict(zip(grouped["user_id"].to_list(), grouped["_pos"].to_list()))
    return [np.asarray(lookup.get(u, []), dtype=np.int64) for u in user_ids]


def build_protocol(name: str, split: Split, relevant_min_rating: float) -> Protocol:
    """The cold-start (``COLD``) or warm (``WARM``) protocol for a split from ``recsys.splits``.

    Only users with at least one relevant held-out item (rating >= ``relevant_min_rating``)
    are judged. In the warm protocol items the user rated in training are excluded.
    """
    if name not in (COLD, WARM):
        raise ValueError(f"protocol must be one of {(COLD, WARM)} (got {name!r})")
    items = split.train.items
    relevant_rows = split.test_interactions.filter(pl.col("rating") >= relevant_min_rating)
    judged = split.test_users.filter(pl.col("user_id").is_in(relevant_rows["user_id"].unique().implode()))
    user_ids = judged["user_id"].to_list()
    relevant = _per_user_positions(relevant_rows, items, user_ids)
    train = split.train.interactions
    n_items = items.height
    exclude = None
    if name == WARM:
        seen = _per_user_positions(train, items, user_ids)
        exclude = np.zeros((len(user_ids), n_items), dtype=bool)
        for row, positions in enumerate(seen):
            exclude[row, positions] = True
    counts = np.zeros(n_items)
    pairs = train.select("user_id", "item_id").unique().join(_positions(items), on="item_id")
    np.add.at(counts, pairs["_pos"].to_numpy(), 1.0)
    popularity = counts / max(1, train["user_id"].n_unique())
    return Protocol(
        name=name, users=judged, relevant=relevant, exclude=exclude,
        item_popularity=popularity, use_history=(name == WARM),
    )


@dataclass(frozen=True)
class Evaluation:
    """Averaged metrics and the per-user NDCG (for breakdowns)."""

    metrics: dict[str, float]
    per_user_ndcg: np.ndarray


def evaluate(recommender, protocol: Protocol, k: int = 10) -> Evaluation:
    """Score, filter, take the top k and measure one recommender on one protocol."""
    scores = recommender.score(protocol.users, use_history=protocol.use_history)
    expected = (protocol.users.height, len(protocol.item_popularity))
    if scores.shape != expected:
        raise ValueError(
            f"{type(recommender).__name__}.score returned shape {scores.shape}; expected {expected} "
            "(one row per user, one column per catalog item)"
        )
    ranked, _ = top_k_from_scores(scores, k, protocol.exclude)
    report = ranking_report(ranked, protocol.relevant, protocol.item_popularity, k)
    per_user = per_user_metrics(ranked, protocol.relevant, k)["ndcg"]
    return Evaluation(metrics=report, per_user_ndcg=per_user)


def per_user_frame(protocol: Protocol, evaluation: Evaluation) -> pl.DataFrame:
    """user_id and NDCG@k per judged user: what a paired comparison of two versions needs."""
    return pl.DataFrame(
        {"user_id": protocol.users["user_id"], "ndcg": evaluation.per_user_ndcg},
        schema={"user_id": pl.Int64, "ndcg": pl.Float64},
    )


def ndcg_by_group(protocol: Protocol, evaluation: Evaluation, k: int = 10) -> pl.DataFrame:
    """Mean NDCG@k and user count per age band x gender ("" = unknown)."""
    features = user_features(protocol.users)
    frame = pl.DataFrame({
        "age_band": features["age_band"].tolist(),
        "gender": features["gender"].tolist(),
        f"ndcg_at_{k}": evaluation.per_user_ndcg,
    }, schema={"age_band": pl.Utf8, "gender": pl.Utf8, f"ndcg_at_{k}": pl.Float64})
    return (
        frame.group_by("age_band", "gender")
        .agg(pl.col(f"ndcg_at_{k}").mean(), pl.len().alias("n_users"))
        .with_columns(pl.lit(protocol.name).alias("protocol"))
        .select("protocol", "age_band", "gender", f"ndcg_at_{k}", "n_users")
        .sort("age_band", "gender")
    )
