"""Synthetic data with a known answer for the recommender tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from recsys.data import RecsysData

ML100K = Path("/work/shared/data/ml-100k")


def make_taste_data(n_users: int = 120, n_items: int = 40, per_user: int = 12, seed: int = 0) -> RecsysData:
    """A 'checkerboard' where gender decides taste: women rate genre A films, men genre B.

    Even item ids are "Drama" (genre A), odd ones "Action" (genre B). Each user rates
    ``per_user`` films, 90% from their side of the board, with ratings 4-5 on their side and
    1-2 on the other, at increasing timestamps.
    """
    rng = np.random.default_rng(seed)
    user_ids = np.arange(1, n_users + 1)
    genders = np.where(user_ids % 2 == 0, "F", "M")
    users = pl.DataFrame(
        {
            "user_id": user_ids,
            "age": rng.choice([22, 30, 40], size=n_users),
            "gender": genders,
            "occupation": rng.choice(["student", "engineer", "artist"], size=n_users),
            "zip": ["00000"] * n_users,
        },
        schema={"user_id": pl.Int64, "age": pl.Int32, "gender": pl.Utf8, "occupation": pl.Utf8, "zip": pl.Utf8},
    )
    item_ids = np.arange(1, n_items + 1)
    items = pl.DataFrame(
        {
            "item_id": item_ids,
            "title": [f"{'Love' if i % 2 == 0 else 'Fight'} Story {i} (199{i % 10})" for i in item_ids],
            "year": [1990 + i % 10 for i in item_ids],
            "genres": [["Drama"] if i % 2 == 0 else ["Action"] for i in item_ids],
        },
        schema={"item_id": pl.Int64, "title": pl.Utf8, "year": pl.Int32, "genres": pl.List(pl.Utf8)},
    )
    liked = {"F": item_ids[item_ids % 2 == 0], "M": item_ids[item_ids % 2 == 1]}
    other = {"F": liked["M"], "M": liked["F"]}
    rows = []
    for user, gender in zip(user_ids, genders):
        n_liked = int(round(per_user * 0.9))
        chosen = list(rng.choice(liked[gender], size=n_liked, replace=False))
        chosen += list(rng.choice(other[gender], size=per_user - n_liked, replace=False))
        for t, item in enumerate(rng.permutation(chosen)):
            rating = rng.choice([4.0, 5.0]) if item in liked[gender] else rng.choice([1.0, 2.0])
            rows.append((int(user), int(item), float(rating), 1_000_000 + 1000 * int(user) + t))
    interactions = pl.DataFrame(
        rows, schema={"user_id": pl.Int64, "item_id": pl.Int64, "rating": pl.Float32, "timestamp": pl.Int64},
        orient="row",
    )
    return RecsysData(users=users, items=items, interactions=interactions)


@pytest.fixture(scope="session")
def taste_data() -> RecsysData:
    return make_taste_data()
