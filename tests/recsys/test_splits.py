import polars as pl
import pytest

from recsys.splits import cold_start_split, warm_split


def test_cold_start_users_never_reach_training(taste_data):
    split = cold_start_split(taste_data, 0.2, random_state=7)
    test_users = set(split.test_users["user_id"].to_list())
    assert len(test_users) == round(0.2 * taste_data.users.height)
    assert test_users.isdisjoint(split.train.users["user_id"].to_list())
    assert test_users.isdisjoint(split.train.interactions["user_id"].to_list())
    assert set(split.test_interactions["user_id"].to_list()) == test_users
    assert split.train.interactions.height + split.test_interactions.height == taste_data.interactions.height


def test_cold_start_split_is_seeded(taste_data):
    a = cold_start_split(taste_data, 0.2, random_state=1).test_users["user_id"].to_list()
    b = cold_start_split(taste_data, 0.2, random_state=1).test_users["user_id"].to_list()
    c = cold_start_split(taste_data, 0.2, random_state=2).test_users["user_id"].to_list()
    assert a == b and a != c


def test_warm_holdout_is_each_users_latest_fifth(taste_data):
    before = taste_data.interactions.clone()
    split = warm_split(taste_data, 0.2)
    assert taste_data.interactions.equals(before)  # the input is not mutated
    train = split.train.interactions.group_by("user_id").agg(
        pl.col("timestamp").max().alias("last_train"), pl.len().alias("n_train")
    )
    test = split.test_interactions.group_by("user_id").agg(
        pl.col("timestamp").min().alias("first_test"), pl.len().alias("n_test")
    )
    joined = train.join(test, on="user_id")
    assert joined.height == taste_data.users.height
    assert (joined["last_train"] < joined["first_test"]).all()
    # 12 ratings each: floor(0.2 * 12) = 2 held out.
    assert joined["n_test"].to_list() == [2] * joined.height


def test_shares_outside_zero_one_are_refused(taste_data):
    with pytest.raises(ValueError, match="between 0 and 1"):
        warm_split(taste_data, 1.0)
    with pytest.raises(ValueError, match="between 0 and 1"):
        cold_start_split(taste_data, 0.0, random_state=0)
