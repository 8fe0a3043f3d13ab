"""The two evaluation protocols' splits. Both return new frames and never touch their input.

- cold start: a random share of users is held out entirely, the way a new visitor arrives with
  demographics and no history;
- warm: every user's latest share of ratings (by time) is held out, the way a known user comes
  back tomorrow.

Both are fixed by the data alone (unless a seed is given, a user's side in the cold-start split
is a hash of their id), never by the training seed: two versions trained on the same data are
judged on the same users, so their scores can be compared user by user.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from recsys.data import RecsysData


@dataclass(frozen=True)
class Split:
    """Training data and the held-out interactions (plus, for cold start, the held-out users)."""

    train: RecsysData
    test_interactions: pl.DataFrame
    test_users: pl.DataFrame


def _check_share(share: float) -> None:
    if not 0.0 < share < 1.0:
        raise ValueError(f"holdout share must be between 0 and 1, exclusive (got {share})")


def stable_unit(user_ids: np.ndarray) -> np.ndarray:
    """A number in [0, 1) per user id, the same for the same id in any dataset (splitmix64 hash)."""
    z = np.asarray(user_ids).astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) / float(2**53)


def cold_start_split(data: RecsysData, holdout_share: float, random_state: int | None = None) -> Split:
    """Hold out ``holdout_share`` of the users who have interactions, with all their rows.

    Held-out users are removed from ``train.users`` too, so they cannot reach the id
    vocabulary: the model meets them the way it meets a new visitor.

    ``random_state=None`` (what training uses unless ``split_seed`` is set): a user is held out
    when ``stable_unit(user_id) < holdout_share``, so each user's side depends on their id
    alone - never on the training seed, and not on users or interactions added later (events
    merged from the service). A seed draws exactly ``round(share * n)`` users at random instead.
    """
    _check_share(holdout_share)
    active = np.sort(data.interactions["user_id"].unique().to_numpy())
    if random_state is None:
        unit = stable_unit(active)
        n_test = int(np.clip((unit < holdout_share).sum(), 1, len(active) - 1)) if len(active) >= 2 else 0
        chosen = active[np.argsort(unit, kind="stable")[:n_test]]
    else:
        n_test = int(round(holdout_share * len(active)))
        chosen = None
    if n_test < 1 or n_test >= len(active):
        raise ValueError(
            f"cannot hold out {holdout_share:.0%} of {len(active)} users: expected at least one "
            "user on each side; use more users or another share"
        )
    if chosen is None:
        chosen = np.random.default_rng(random_state).choice(active, size=n_test, replace=False)
    test_ids = pl.Series("user_id", chosen, dtype=pl.Int64)
    is_test = pl.col("user_id").is_in(test_ids.implode())
    train = RecsysData(
        users=data.users.filter(~is_test),
        items=data.items,
        interactions=data.interactions.filter(~is_test),
    )
    return Split(
        train=train,
        test_interactions=data.interactions.filter(is_test),
        test_users=data.users.filter(is_test),
    )


def warm_split(data: RecsysData, holdout_share: float) -> Split:
    """Hold out each user's latest ``holdout_share`` of interactions by timestamp.

    A user with n interactions loses floor(share * n) of them, at least one when n >= 2, so
    every user keeps some history. Ties in time are broken by item id, to be deterministic.
    """
    _check_share(holdout_share)
    ranked = data.interactions.sort(["user_id", "timestamp", "item_id"]).with_columns(
        _pos=pl.int_range(pl.len()).over("user_id"),
        _n=pl.len().over("user_id"),
    )
    n_test = pl.max_horizontal(
        (pl.col("_n") * holdout_share).floor().cast(pl.Int64),
        pl.when(pl.col("_n") >= 2).then(1).otherwise(0),
    )
    is_test = pl.col("_pos") >= pl.col("_n") - n_test
    columns = data.interactions.columns
    test = ranked.filter(is_test).select(columns)
    train = RecsysData(
        users=data.users,
        items=data.items,
        interactions=ranked.filter(~is_test).select(columns),
    )
    test_users = data.users.filter(pl.col("user_id").is_in(test["user_id"].unique().implode()))
    return Split(train=train, test_interactions=test, test_users=test_users)
