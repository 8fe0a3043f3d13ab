"""The offline protocols, scored the same way for the model and every baseline.

- cold: held-out users, demographics only;
- warm: every user's later ratings, their earlier ones known;
- few-shot (given n): held-out users reveal their first n liked items (rated >= the relevance
  threshold, earliest by timestamp: on MovieLens, the picks made at sign-up); relevant = their
  other liked items; the revealed items are never in their lists.

Anything with ``score(users, use_history) -> [n_users, n_items]`` (catalog order) can be
evaluated on cold and warm; few-shot also needs ``score_given(users, revealed)``, where
``revealed`` holds each user's revealed catalog positions, oldest first. Scores become lists
through ``recsys.serving.top_k_from_scores``, the function the serving path uses, so what is
measured is what is served.
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
FEWSHOT = "fewshot"
FEWSHOT_SIZES = (1, 3, 5, 10)  # n: liked items a held-out user reveals


def fewshot_name(n: int) -> str:
    """The protocol's name and metric prefix: ``fewshot.n3`` -> keys like ``fewshot.n3.ndcg_at_10``."""
    return f"{FEWSHOT}.n{n}"


@dataclass(frozen=True)
class Protocol:
    """Who is judged, on what, and which items their lists may not contain."""

    name: str
    users: pl.DataFrame  # the judged users (with demographics), in row order
    relevant: list[np.ndarray]  # per user: catalog positions of their relevant held-out items
    # Per user: catalog positions their list may not contain (seen in training, revealed); None:
    # nothing excluded. Positions, not a [n_users, n_items] mask, so memory follows the data.
    excluded: list[np.ndarray] | None
    item_popularity: np.ndarray  # per item: share of training users who rated it (for novelty)
    use_history: bool  # whether the model may use the user's id (warm) or not (cold, few-shot)
    # Few-shot only: per user, the catalog positions of the revealed liked items, oldest first.
    revealed: list[np.ndarray] | None = None

    @property
    def n_items(self) -> int:
        return len(self.item_popularity)

    def exclude_rows(self, start: int, stop: int) -> np.ndarray | None:
        """[stop - start, n_items] bool: the excluded items of users ``start`` to ``stop``."""
        if self.excluded is None:
            return None
        mask = np.zeros((stop - start, self.n_items), dtype=bool)
        for row, positions in enumerate(self.excluded[start:stop]):
            mask[row, positions] = True
        return mask

    def subset(self, rows: np.ndarray) -> "Protocol":
        """The same protocol judged on some of its users (``rows``, in this protocol's order)."""
        rows = np.asarray(rows, dtype=np.int64)

        def pick(values):
            return None if values is None else [values[r] for r in rows]

        return Protocol(
            name=self.name, users=self.users[rows], relevant=pick(self.relevant), excluded=pick(self.excluded),
            item_popularity=self.item_popularity, use_history=self.use_history, revealed=pick(self.revealed),
        )

    def sample(self, max_users: int) -> "Protocol":
        """At most ``max_users`` judged users, evenly spread over the protocol's order (fixed, so
        every epoch's curve is measured on the same users)."""
        if self.users.height <= max_users:
            return self
        return self.subset(np.linspace(0, self.users.height - 1, max_users).round().astype(np.int64))


def _positions(items: pl.DataFrame) -> pl.DataFrame:
    return pl.DataFrame({"item_id": items["item_id"], "_pos": np.arange(items.height)})


def _per_user_positions(frame: pl.DataFrame, items: pl.DataFrame, user_ids: list[int]) -> list[np.ndarray]:
    """Per user of ``user_ids``: the catalog positions of their rows in ``frame`` (in row order)."""
    if not user_ids:
        return []
    wanted = pl.DataFrame({"user_id": user_ids, "_row": np.arange(len(user_ids))}, schema={"user_id": pl.Int64, "_row": pl.Int64})
    rows = (
        frame.select("user_id", "item_id").with_row_index("_order")
        .join(_positions(items), on="item_id", how="inner")
        .join(wanted, on="user_id", how="inner")
        .sort("_row", "_order")
    )
    counts = np.bincount(rows["_row"].to_numpy(), minlength=len(user_ids))
    return np.split(rows["_pos"].to_numpy().astype(np.int64), np.cumsum(counts)[:-1])


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
    excluded = _per_user_positions(split.train.interactions, items, user_ids) if name == WARM else None
    return Protocol(
        name=name, users=judged, relevant=relevant, excluded=excluded,
        item_popularity=_item_popularity(split), use_history=(name == WARM),
    )


def build_fewshot_protocol(split: Split, n: int, relevant_min_rating: float) -> Protocol:
    """Given-n on a cold-start split: each held-out user reveals their first ``n`` liked items.

    Liked = rated >= ``relevant_min_rating``; first = earliest by timestamp (ties by item id).
    Only users with more than ``n`` liked items are judged (something must stay relevant).
    The revealed items are excluded from the lists; the user's other ratings stay unknown.
    """
    if n < 1:
        raise ValueError(f"n (revealed items per user) must be at least 1 (got {n})")
    items = split.train.items
    liked = (
        split.test_interactions.filter(pl.col("rating") >= relevant_min_rating)
        .join(_positions(items), on="item_id", how="inner")
        .sort(["user_id", "timestamp", "item_id"])
        .with_columns(_order=pl.int_range(pl.len()).over("user_id"), _n=pl.len().over("user_id"))
        .filter(pl.col("_n") > n)
    )
    judged = split.test_users.filter(pl.col("user_id").is_in(liked["user_id"].unique().implode()))
    user_ids = judged["user_id"].to_list()
    by_user = liked.group_by("user_id").agg(pl.col("_pos").sort_by("_order"))
    lookup = dict(zip(by_user["user_id"].to_list(), by_user["_pos"].to_list()))
    revealed, relevant = [], []
    for user in user_ids:
        positions = lookup[user]
        revealed.append(np.asarray(positions[:n], dtype=np.int64))
        relevant.append(np.asarray(positions[n:], dtype=np.int64))
    return Protocol(
        name=fewshot_name(n), users=judged, relevant=relevant, excluded=revealed,
        item_popularity=_item_popularity(split), use_history=False, revealed=revealed,
    )


def _item_popularity(split: Split) -> np.ndarray:
    """Per item: share of training users who rated it (for novelty)."""
    train, items = split.train.interactions, split.train.items
    pairs = train.select("user_id", "item_id").unique().join(_positions(items), on="item_id")
    counts = np.bincount(pairs["_pos"].to_numpy(), minlength=items.height).astype(np.float64)
    return counts / max(1, train["user_id"].n_unique())


@dataclass(frozen=True)
class Evaluation:
    """Averaged metrics and the per-user NDCG (for breakdowns)."""

    metrics: dict[str, float]
    per_user_ndcg: np.ndarray


# Scores computed at once while evaluating (users x items): about 128 MB of float32 whatever the
# catalog's size, so judging 100,000 users against 200,000 items never holds 80 GB.
EVALUATION_CELLS = 32_000_000


def evaluate(recommender, protocol: Protocol, k: int = 10) -> Evaluation:
    """Score, filter, take the top k and measure one recommender on one protocol, a block of
    users at a time (``EVALUATION_CELLS``)."""
    n_users = protocol.users.height
    step = max(1, EVALUATION_CELLS // max(1, protocol.n_items))
    ranked = [np.zeros((0, k), dtype=np.int64)]
    for start in range(0, n_users, step):
        stop = min(n_users, start + step)
        users = protocol.users[start:stop]
        if protocol.revealed is not None:
            scores = recommender.score_given(users, protocol.revealed[start:stop])
        else:
            scores = recommender.score(users, use_history=protocol.use_history)
        expected = (stop - start, protocol.n_items)
        if scores.shape != expected:
            raise ValueError(
                f"{type(recommender).__name__}.score returned shape {scores.shape}; expected {expected} "
                "(one row per user, one column per catalog item)"
            )
        ranked.append(top_k_from_scores(scores, k, protocol.exclude_rows(start, stop))[0])
    ranked = np.concatenate(ranked)
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


def fewshot_table(metrics: dict[str, float], baselines: dict[str, dict[str, float]], k: int = 10) -> pl.DataFrame:
    """One row per recommender and n (0 = cold start): NDCG@k and Recall@k, model first."""
    rows = []
    for name, scores in {"model": metrics, **baselines}.items():
        for n in (0, *FEWSHOT_SIZES):
            prefix = COLD if n == 0 else fewshot_name(n)
            if f"{prefix}.ndcg_at_{k}" in scores and (n > 0 or f"{fewshot_name(FEWSHOT_SIZES[0])}.ndcg_at_{k}" in scores):
                rows.append({"recommender": name, "n": n, f"ndcg_at_{k}": scores[f"{prefix}.ndcg_at_{k}"],
                             f"recall_at_{k}": scores.get(f"{prefix}.recall_at_{k}")})
    schema = {"recommender": pl.Utf8, "n": pl.Int64, f"ndcg_at_{k}": pl.Float64, f"recall_at_{k}": pl.Float64}
    return pl.DataFrame(rows, schema=schema)
