"""The evaluation split does not depend on the training seed (issue 13, defect 1)."""

import numpy as np
import polars as pl

from recsys.data import RecsysData
from recsys.splits import cold_start_split, stable_unit


def test_stable_unit_is_a_fixed_uniform_hash():
    ids = np.arange(1, 20001)
    unit = stable_unit(ids)
    assert np.array_equal(unit, stable_unit(ids)) and ((unit >= 0) & (unit < 1)).all()
    assert abs((unit < 0.2).mean() - 0.2) < 0.01  # about the share asked for


def test_default_cold_split_keeps_each_users_side_when_users_are_added(taste_data):
    first = set(cold_start_split(taste_data, 0.2).test_users["user_id"].to_list())
    assert first == set(cold_start_split(taste_data, 0.2).test_users["user_id"].to_list())
    assert 0.1 < len(first) / taste_data.users.height < 0.3
    # A newcomer with one interaction joins: nobody already there changes side.
    newcomer = taste_data.users.head(1).with_columns(pl.lit(10_000, pl.Int64).alias("user_id"))
    more = RecsysData(
        users=pl.concat([taste_data.users, newcomer]), items=taste_data.items,
        interactions=pl.concat([taste_data.interactions,
                                taste_data.interactions.head(1).with_columns(pl.lit(10_000, pl.Int64).alias("user_id"))]),
    )
    after = set(cold_start_split(more, 0.2).test_users["user_id"].to_list())
    assert after - {10_000} == first
