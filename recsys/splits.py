"""The two evaluation protocols' splits. Both return new frames and never touch their input.

- cold start: a random share of users is held out entirely, the way a new visitor arrives with
  demographics and no history;
- warm: every user's latest share of ratings (by time) is held out, the way a known user comes
  back tomorrow.

Both are fixed by the data alone (the cold-start draw is seeded from the data's content unless a
seed is given), never by the training seed: two versions trained on the same data are judged on
the same users, so their scores can be compared user by user.
"""

from __future__ import annotations

import hashlib
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


def data_seed(data: RecsysData) -> int:
    """A seed that depends only on the interactions' content: the same data, the same split."""
    frame = data.interactions.select("user_id", "item_id", "timestamp").sort("user_id", "item_id", "timestamp")
    digest = hashlib.sha256()
    for column in frame.columns:
        digest.update(np.ascontiguousarray(frame[column].to_numpy(), dtype=np.int64).tobytes())
    return int.from_bytes(digest.digest()[:8], "little")


def cold_start_split(data: RecsysData, holdout_share: float, random_state: int | None = None) -> Split:
    """Hold out ``holdout_share`` of the users who have interactions, with all their rows.

    Held-out users are removed from ``train.users`` too, so they cannot reach the id
    vocabulary: the model meets them the way it meets a new visitor. ``random_state=None``
    draws them with ``data_seed(data)``, so the split is fixed per dataset.
    """
    _check_share(holdout_share)
    if random_state is None:
        random_state = data_seed(data)
    active = np.sort(data.interactions["user_id"].unique().to_numpy())
    n_test = int(round(holdout_share * len(active)))
    if n_test < 1 or n_test >= len(active):
        raise ValueError(
            f"cannot hold out {holdout_share:.0%} of {len(active)} users: expected at least one "
            "user on each side; use more users or another share"
        )
    rng = np.random.default_rng(random_state)
    test_ids = pl.Series("user_id", rng.choice(active, size=n_test, replace=False), dtype=pl.Int64)
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
