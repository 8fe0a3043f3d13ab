"""The wide part's memory: log p(item | age band x gender), counted from training ratings.

A new visitor's vector is a function of a few categorical inputs, so its ideal is the item
distribution of the liked items in the visitor's group. The deep towers generalise across
groups; this table memorises each group's counts (rating-weighted, shrunk toward the parent
distribution) and is blended into the cold-start scores as one coordinate per group: the user
side holds the group's one-hot, the item side each group's log-probability. A dot product, so
the exported bundle keeps its format (only ``dim`` grows).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from recsys.data import RecsysData
from recsys.features import Vocabularies, user_features


def group_index(age_index: np.ndarray, gender_index: np.ndarray, n_genders: int) -> np.ndarray:
    """The crossed age band x gender index, as the user tower computes it (0 = unknown on each axis)."""
    return age_index * (n_genders + 1) + gender_index


def _demographic_indices(users: pl.DataFrame, vocab: Vocabularies) -> tuple[np.ndarray, np.ndarray]:
    """Per user: age band and gender positions in ``vocab``, plus 1 (0 = unknown)."""
    features = user_features(users)
    age_of = {a: i + 1 for i, a in enumerate(vocab.age_bands)}
    gender_of = {g: i + 1 for i, g in enumerate(vocab.genders)}
    return (
        np.array([age_of.get(a, 0) for a in features["age_band"].tolist()], dtype=np.int64),
        np.array([gender_of.get(g, 0) for g in features["gender"].tolist()], dtype=np.int64),
    )


def user_groups(users: pl.DataFrame, vocab: Vocabularies) -> np.ndarray:
    """Per user: the row of ``demographic_log_prior``'s table that holds their group."""
    age_index, gender_index = _demographic_indices(users, vocab)
    return group_index(age_index, gender_index, len(vocab.genders))


def demographic_log_prior(
    train: RecsysData,
    vocab: Vocabularies,
    rating_weight_offset: float | None = 2.0,
    shrinkage: float = 10.0,
    neighbour_weight: float = 0.0,
    user_weight_exponent: float = 0.0,
) -> np.ndarray:
    """[(n_age_bands + 1) * (n_genders + 1), n_items] log-probabilities, items in ``train.items`` order.

    Row ``group_index(a, g)``; index 0 on an axis is "unknown". Each example weighs
    ``max(0, rating - rating_weight_offset)`` (1 when the offset is None). A group's counts are
    shrunk toward its gender's distribution with ``shrinkage`` pseudo-examples (the gender's
    toward the global one), so a small group does not rank on three people's tastes.
    ``neighbour_weight`` adds that share of the adjacent age bands' counts (same gender).
    ``user_weight_exponent`` divides each user's weights by (their rating count) ** exponent: the
    lists are judged per user, so a group's taste should be its members', not its few
    prolific raters'.
    """
    n_ages, n_genders, n_items = len(vocab.age_bands), len(vocab.genders), train.items.height
    age_index, gender_index = _demographic_indices(train.users, vocab)
    users = pl.DataFrame({"user_id": train.users["user_id"], "_a": age_index, "_g": gender_index})
    positions = pl.DataFrame({"item_id": train.items["item_id"], "_i": np.arange(n_items)})
    rows = train.interactions.join(users, on="user_id").join(positions, on="item_id")
    weight = np.ones(rows.height)
    if rating_weight_offset is not None:
        weight = np.maximum(rows["rating"].to_numpy().astype(np.float64) - rating_weight_offset, 0.0)
    if user_weight_exponent:
        per_user = rows.group_by("user_id").len()
        n = rows.select("user_id").join(per_user, on="user_id", how="left")["len"].to_numpy()
        weight = weight / n.astype(np.float64) ** user_weight_exponent
    counts = np.zeros((n_ages + 1, n_genders + 1, n_items))
    np.add.at(counts, (rows["_a"].to_numpy(), rows["_g"].to_numpy(), rows["_i"].to_numpy()), weight)
    if neighbour_weight:
        known = counts[1:].copy()
        counts[2:] += neighbour_weight * known[:-1]
        counts[1:-1] += neighbour_weight * known[1:]

    def shrunk(c: np.ndarray, parent: np.ndarray) -> np.ndarray:
        return (c + shrinkage * parent) / (c.sum(-1, keepdims=True) + shrinkage)

    total = counts.sum((0, 1))
    uniform = np.full(n_items, 1.0 / n_items)
    # Every item keeps a little mass, so the log is finite for items nobody rated.
    global_ = shrunk(total, uniform)
    by_gender = shrunk(counts.sum(0), global_)  # [n_genders + 1, n_items]; row 0: unknown gender
    by_gender[0] = global_
    prior = shrunk(counts, by_gender[None])
    prior[0] = by_gender  # unknown age band: the gender's distribution
    prior[1:, 0] = shrunk(counts[1:].sum(1), global_)  # unknown gender: the age band's
    return np.log(prior).reshape((n_ages + 1) * (n_genders + 1), n_items).astype(np.float32)
