"""Baselines every model must beat, on the same splits: global popularity, popularity within
age band x gender, and (warm protocol) implicit's ALS.

Each baseline follows one small interface, like implicit's: ``fit(train)`` then
``score(users, use_history)`` -> [n_users, n_items] in catalog order (``items.item_id`` order).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from recsys.data import RecsysData
from recsys.features import user_features


def _item_positions(items: pl.DataFrame, item_ids: pl.Series) -> np.ndarray:
    lookup = pl.DataFrame({"item_id": items["item_id"], "_pos": np.arange(items.height)})
    return pl.DataFrame({"item_id": item_ids}).join(lookup, on="item_id", how="left")["_pos"].to_numpy()


class Popularity:
    """Every user gets the items rated most often in training."""

    name = "popularity"

    def fit(self, train: RecsysData) -> "Popularity":
        positions = _item_positions(train.items, train.interactions["item_id"])
        self.counts_ = np.bincount(positions, minlength=train.items.height).astype(np.float32)
        return self

    def score(self, users: pl.DataFrame, use_history: bool = True) -> np.ndarray:
        return np.tile(self.counts_, (users.height, 1))


class DemographicPopularity:
    """Popularity within the user's age band x gender, shrunk toward global popularity.

    ``shrinkage`` is a pseudo-count of global popularity added to each group, so a group with
    a handful of users does not rank on three people's tastes; unknown groups get global.
    """

    name = "demographic_popularity"

    def __init__(self, shrinkage: float = 10.0) -> None:
        self.shrinkage = shrinkage

    @staticmethod
    def _groups(users: pl.DataFrame) -> list[tuple[str, str]]:
        features = user_features(users)
        return list(zip(features["age_band"].tolist(), features["gender"].tolist()))

    def fit(self, train: RecsysData) -> "DemographicPopularity":
        n_items = train.items.height
        positions = _item_positions(train.items, train.interactions["item_id"])
        group_of_user = dict(zip(train.users["user_id"].to_list(), self._groups(train.users)))
        groups = [group_of_user[u] for u in train.interactions["user_id"].to_list()]
        self.global_ = np.bincount(positions, minlength=n_items).astype(np.float64)
        self.global_ /= max(self.global_.sum(), 1.0)
        self.tables_: dict[tuple[str, str], np.ndarray] = {}
        for group in set(groups):
            mask = np.fromiter((g == group for g in groups), dtype=bool, count=len(groups))
            counts = np.bincount(positions[mask], minlength=n_items).astype(np.float64)
            self.tables_[group] = (counts + self.shrinkage * self.global_) / (counts.sum() + self.shrinkage)
        return self

    def score(self, users: pl.DataFrame, use_history: bool = True) -> np.ndarray:
        return np.stack([self.tables_.get(g, self.global_) for g in self._groups(users)]).astype(np.float32)


class ImplicitALS:
    """implicit's ALS on the binary user x item matrix (warm users only: it needs history)."""

    name = "als"

    def __init__(
        self, factors: int = 64, regularization: float = 0.05, iterations: int = 15,
        alpha: float = 1.0, random_state: int = 0,
    ) -> None:
        self.params = dict(
            factors=factors, regularization=regularization, iterations=iterations, alpha=alpha,
            random_state=random_state,
        )

    def fit(self, train: RecsysData, show_progress: bool = False) -> "ImplicitALS":
        from implicit.als import AlternatingLeastSquares
        from scipy.sparse import csr_matrix
        from threadpoolctl import threadpool_limits

        self.user_row_ = {u: i for i, u in enumerate(train.users["user_id"].to_list())}
        rows = np.array([self.user_row_[u] for u in train.interactions["user_id"].to_list()])
        cols = _item_positions(train.items, train.interactions["item_id"])
        matrix = csr_matrix(
            (np.ones(len(rows), dtype=np.float32), (rows, cols)),
            shape=(train.users.height, train.items.height),
        )
        matrix.sum_duplicates()
        matrix.data[:] = 1.0
        # num_threads=1: the evaluation machines are small and shared; ALS on 100K is quick.
        # implicit warns (rightly, and at construction) that a threaded BLAS under its own loop thrashes.
        with threadpool_limits(1, "blas"):
            self.model_ = AlternatingLeastSquares(**self.params, num_threads=1)
            self.model_.fit(matrix, show_progress=show_progress)
        return self

    def score(self, users: pl.DataFrame, use_history: bool = True) -> np.ndarray:
        unknown = [u for u in users["user_id"].to_list() if u not in self.user_row_]
        if unknown or not use_history:
            raise ValueError(
                "ALS only scores users it was trained on (warm protocol); "
                f"got {len(unknown) or users.height} users without history"
            )
        rows = [self.user_row_[u] for u in users["user_id"].to_list()]
        return np.asarray(self.model_.user_factors[rows] @ self.model_.item_factors.T, dtype=np.float32)
