import polars as pl
import pytest

from recsys.data import InvalidRecsysData, RecsysData


def test_wrong_types_and_missing_columns_are_named(taste_data):
    with pytest.raises(InvalidRecsysData, match="rating"):
        RecsysData(
            users=taste_data.users,
            items=taste_data.items,
            interactions=taste_data.interactions.with_columns(pl.col("rating").cast(pl.Int64)),
        )
    with pytest.raises(InvalidRecsysData, match="missing columns"):
        RecsysData(users=taste_data.users.drop("gender"), items=taste_data.items, interactions=taste_data.interactions)


def test_interactions_must_name_known_users_and_items(taste_data):
    stray = taste_data.interactions.head(1).with_columns(pl.lit(999_999, dtype=pl.Int64).alias("item_id"))
    with pytest.raises(InvalidRecsysData, match="999999"):
        RecsysData(users=taste_data.users, items=taste_data.items, interactions=pl.concat([taste_data.interactions, stray]))


def test_summary_counts(taste_data):
    summary = taste_data.summary()
    assert summary["n_users"] == 120 and summary["n_items"] == 40 and summary["n_interactions"] == 120 * 12
