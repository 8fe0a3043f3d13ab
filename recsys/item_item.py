"""The wide part's item-item memory: which items go with which, counted in closed form.

Two closed forms over the binary users x liked-items matrix X (liked = rated >= ``min_rating``):

- cosine: X^T X divided by the items' norms (item-kNN). Robust with a handful of items, so it
  serves people the two-tower model does not know: a new visitor's first likes.
- EASE (Steck 2019, "Embarrassingly Shallow Autoencoders for Sparse Data"):
  B = argmin ||X - XB||^2 + l2 ||B||^2 with diag(B) = 0; with P = (X^T X + l2 I)^-1 the answer
  is B = -P / diag(P) (column-wise), diagonal zeroed. Fitted to whole histories, so it serves
  known users (their trained vector plus everything they liked, old and new).

A person's item-item score is x W for their liked items x, with no refit. A table keeps each
item's strongest ``width`` neighbours (a fixed-width sparse table, so memory grows with the
catalog, not its square) or, with width None, every item (EASE's negative weights matter).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ItemItemConfig:
    """The item-item part of the model (``TrainConfig.item_item``). Weights were chosen on
    validation users carved from the training side; see the README's results."""

    # Items count as liked together when both are rated at least this (the relevance threshold:
    # co-liked predicts liked better than co-rated: EASE on liked items 0.180 NDCG@10 warm,
    # on all rated items 0.163).
    min_rating: float | None = 4.0
    # New visitors: cosine neighbours kept per item, and the weight of their summed similarity
    # against the two-tower score (which, for them, carries the demographic prior).
    new_visitor_width: int = 100
    new_visitor_weight: float = 6.0
    # Known users: EASE's l2, neighbours kept per item (None: all, a dense table), and weight.
    known_user_l2: float = 200.0
    known_user_width: int | None = None
    known_user_weight: float = 16.0
    # EASE inverts an n_items x n_items matrix: above this many items (4 GB and minutes at
    # 20,000) known users' histories go through the new visitors' cosine table instead.
    known_user_max_items: int = 20_000

    def __post_init__(self) -> None:
        widths_ok = self.new_visitor_width >= 1 and (self.known_user_width is None or self.known_user_width >= 1)
        if not widths_ok or self.new_visitor_weight < 0 or self.known_user_weight < 0 or self.known_user_l2 <= 0:
            raise ValueError(
                "expected widths >= 1 (or None for the known-user table), weights >= 0 and known_user_l2 > 0 "
                f"(got {self.new_visitor_width}, {self.known_user_width}, {self.new_visitor_weight}, "
                f"{self.known_user_weight}, {self.known_user_l2})"
            )


def liked_matrix(train, min_rating: float | None):
    """Binary users x items CSR matrix of ``train`` (a ``RecsysData``; rows in ``train.users``
    order, columns in ``train.items`` order) and the user id -> row lookup.

    ``min_rating``: keep only interactions rated at least this (None: every interaction).
    """
    import polars as pl
    from scipy.sparse import csr_matrix

    interactions = train.interactions
    if min_rating is not None:
        interactions = interactions.filter(pl.col("rating") >= min_rating)
    user_row = {u: i for i, u in enumerate(train.users["user_id"].to_list())}
    rows = np.array([user_row[u] for u in interactions["user_id"].to_list()], dtype=np.int64)
    positions = pl.DataFrame({"item_id": train.items["item_id"], "_pos": np.arange(train.items.height)})
    cols = pl.DataFrame({"item_id": interactions["item_id"]}).join(
        positions, on="item_id", how="left", maintain_order="left"
    )["_pos"].to_numpy()
    matrix = csr_matrix(
        (np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(train.users.height, train.items.height)
    )
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    return matrix, user_row


def _gram(matrix) -> np.ndarray:
    gram = matrix.T @ matrix
    return np.asarray(gram.toarray() if hasattr(gram, "toarray") else gram, dtype=np.float64)


def cosine_weights(matrix) -> np.ndarray:
    """Dense [n_items, n_items] cosine similarity of the items' columns; 0 on the diagonal and
    for items nobody liked."""
    gram = _gram(matrix)
    norms = np.sqrt(np.diag(gram))
    with np.errstate(divide="ignore", invalid="ignore"):
        similarity = gram / np.outer(norms, norms)
    similarity[~np.isfinite(similarity)] = 0.0
    np.fill_diagonal(similarity, 0.0)
    return similarity.astype(np.float32)


def ease_weights(matrix, l2: float) -> np.ndarray:
    """Dense [n_items, n_items] EASE weights for a users x items matrix (scipy sparse or numpy)."""
    if l2 <= 0:
        raise ValueError(f"l2 must be positive (got {l2})")
    gram = _gram(matrix)
    gram[np.diag_indices_from(gram)] += l2
    inverse = np.linalg.inv(gram)
    weights = -inverse / np.diag(inverse)[None, :]
    np.fill_diagonal(weights, 0.0)
    return weights.astype(np.float32)


@dataclass(frozen=True)
class ItemItemTable:
    """Per item (row, catalog order): its neighbours' weights, and the weight of the summed rows
    against the two-tower score.

    Sparse: ``neighbours`` [n_items, width] holds the columns of ``weights`` [n_items, width]
    (padding entries weigh 0). Dense: ``neighbours`` is None and ``weights`` is [n_items, n_items].
    """

    weights: np.ndarray
    neighbours: np.ndarray | None = None
    blend_weight: float = 1.0

    def __post_init__(self) -> None:
        dense = self.neighbours is None
        if self.weights.ndim != 2 or (dense and self.weights.shape[0] != self.weights.shape[1]) or (
            not dense and self.neighbours.shape != self.weights.shape
        ):
            raise ValueError(
                "expected weights [n_items, n_items] (dense) or neighbours and weights of one shape "
                f"[n_items, width] (got weights {self.weights.shape}, neighbours "
                f"{None if dense else self.neighbours.shape})"
            )

    @classmethod
    def from_dense(cls, weights: np.ndarray, width: int | None, blend_weight: float = 1.0) -> "ItemItemTable":
        """Keep each row's ``width`` largest weights, or all of them (a dense table) for None."""
        n_items = weights.shape[0]
        if width is None or width >= n_items:
            return cls(weights=weights.astype(np.float32), blend_weight=blend_weight)
        top = np.argpartition(-weights, width - 1, axis=1)[:, :width]
        values = np.take_along_axis(weights, top, axis=1)
        return cls(weights=values.astype(np.float32), neighbours=top.astype(np.int32), blend_weight=blend_weight)

    @property
    def n_items(self) -> int:
        return self.weights.shape[0]

    def scores(self, items: np.ndarray) -> np.ndarray:
        """[n_items]: the summed rows of ``items`` (unweighted by ``blend_weight``)."""
        items = np.asarray(items, dtype=np.int64)
        if self.neighbours is None:
            return self.weights[items].sum(axis=0, dtype=np.float32)
        return np.bincount(
            self.neighbours[items].ravel(), weights=self.weights[items].ravel(), minlength=self.n_items
        ).astype(np.float32)

    def batch_scores(self, histories: list[np.ndarray]) -> np.ndarray:
        """[n_people, n_items]: ``scores`` for many people at once, vectorised."""
        out = np.zeros((len(histories), self.n_items), dtype=np.float32)
        lengths = np.array([len(h) for h in histories], dtype=np.int64)
        if lengths.sum() == 0:
            return out
        items = np.concatenate([np.asarray(h, dtype=np.int64) for h in histories])
        people = np.repeat(np.arange(len(histories)), lengths)
        if self.neighbours is None:
            # The people's item counts times the table: one BLAS product.
            counts = np.zeros((len(histories), self.n_items), dtype=np.float32)
            np.add.at(counts, (people, items), 1.0)
            return counts @ self.weights
        width = self.neighbours.shape[1]
        np.add.at(out, (np.repeat(people, width), self.neighbours[items].ravel()), self.weights[items].ravel())
        return out

    def contributions(self, liked: np.ndarray, items: np.ndarray) -> np.ndarray:
        """[len(liked), len(items)]: what each liked item adds to each of ``items``."""
        liked = np.asarray(liked, dtype=np.int64)
        items = np.asarray(items, dtype=np.int64)
        if self.neighbours is None:
            return self.weights[np.ix_(liked, items)]
        # Only the table entries that point at the listed items: no dense [n_liked, n_items].
        neighbours = self.neighbours[liked]
        rows, cols = np.nonzero(np.isin(neighbours, items))
        sorter = np.argsort(items)
        columns = sorter[np.searchsorted(items, neighbours[rows, cols], sorter=sorter)]
        out = np.zeros((len(liked), len(items)), dtype=np.float32)
        np.add.at(out, (rows, columns), self.weights[liked][rows, cols])
        return out


@dataclass(frozen=True)
class ItemItemModel:
    """The item-item part of a bundle: one table for people the two-tower model does not know,
    one (optional) for users it does; ``min_rating`` says which interactions count as liked."""

    new_visitor: ItemItemTable
    known_user: ItemItemTable | None  # None (a catalog too large for EASE): known users use new_visitor
    min_rating: float | None

    def table_for(self, known_user: bool) -> ItemItemTable:
        return self.known_user if known_user and self.known_user is not None else self.new_visitor


def fit_item_item(train, cfg: ItemItemConfig) -> ItemItemModel:
    """The model's item-item part from ``train`` (a ``RecsysData``)."""
    matrix, _ = liked_matrix(train, cfg.min_rating)
    new_visitor = ItemItemTable.from_dense(cosine_weights(matrix), cfg.new_visitor_width, cfg.new_visitor_weight)
    known_user = None
    if matrix.shape[1] <= cfg.known_user_max_items:
        known_user = ItemItemTable.from_dense(
            ease_weights(matrix, cfg.known_user_l2), cfg.known_user_width, cfg.known_user_weight
        )
    return ItemItemModel(new_visitor=new_visitor, known_user=known_user, min_rating=cfg.min_rating)
