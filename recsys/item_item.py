"""The wide part's item-item memory: which items go with which, counted in closed form.

Two closed forms over the binary users x liked-items matrix X (liked = rated >= ``min_rating``):

- cosine: X^T X divided by the items' norms (item-kNN). Robust with a handful of items, so it
  serves people the two-tower model does not know: a new visitor's first likes (and, averaged,
  known users too).
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
    """The item-item part of the model (``TrainConfig.item_item``). Widths and weights were
    chosen on validation users carved from the training side; see the README's results."""

    # Items count as liked together when both are rated at least this (the relevance threshold:
    # co-liked predicts liked better than co-rated: EASE on liked items 0.180 NDCG@10 warm,
    # on all rated items 0.163).
    min_rating: float | None = 4.0
    # Cosine neighbours kept per item (50 to 200 scored alike on validation).
    cosine_width: int = 100
    # New visitors: weight of the summed cosine of their likes against the two-tower score
    # (which, for them, carries the demographic prior); best of 2-24 at 1, 3, 5 and 10 likes.
    new_visitor_weight: float = 8.0
    # Known users: weight of EASE's summed rows and of the mean cosine of their liked items.
    # The sum suits EASE (fitted to whole histories); the mean keeps the cosine part at one
    # scale from ten liked items to hundreds.
    known_user_ease_weight: float = 8.0
    known_user_cosine_weight: float = 8.0
    ease_l2: float = 200.0
    # EASE neighbours kept per item; None keeps all (a dense table: its negative weights matter).
    ease_width: int | None = None
    # EASE inverts an n_items x n_items matrix: above this many items (n^3: about 15 s at
    # 10,000 items on 2 cores, several minutes at 20,000) known users get the cosine part alone.
    ease_max_items: int = 10_000

    def __post_init__(self) -> None:
        weights = (self.new_visitor_weight, self.known_user_ease_weight, self.known_user_cosine_weight)
        if self.cosine_width < 1 or (self.ease_width is not None and self.ease_width < 1) or min(weights) < 0 or self.ease_l2 <= 0:
            raise ValueError(
                "expected cosine_width >= 1, ease_width >= 1 or None, weights >= 0 and ease_l2 > 0 (got "
                f"{self.cosine_width}, {self.ease_width}, {weights}, {self.ease_l2})"
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
    user_ids = train.users["user_id"].to_numpy()
    user_row = dict(zip(user_ids.tolist(), range(len(user_ids))))
    by_id = np.argsort(user_ids, kind="stable")
    rows = by_id[np.searchsorted(user_ids[by_id], interactions["user_id"].to_numpy())].astype(np.int64)
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


# Cells of the item-item Gram matrix computed at once by ``cosine_table``: bounds its memory
# (about 16 bytes a cell) whatever the catalog's size.
_GRAM_BLOCK_CELLS = 32_000_000


def cosine_table(matrix, width: int) -> "ItemItemTable":
    """Each item's ``width`` nearest items by cosine, without the dense [n_items, n_items]
    matrix: the sparse Gram matrix is computed a block of rows at a time and only each row's
    ``width`` largest entries are kept. Equal to ``ItemItemTable.from_dense(cosine_weights(m),
    width)`` up to the order of ties; rows with fewer neighbours are padded with weight 0."""
    from scipy.sparse import csr_matrix

    users_items = csr_matrix(matrix, dtype=np.float32)
    n_items = users_items.shape[1]
    items_users = users_items.T.tocsr()
    norms = np.sqrt(np.asarray(users_items.multiply(users_items).sum(axis=0)).ravel())
    neighbours = np.zeros((n_items, width), dtype=np.int32)
    weights = np.zeros((n_items, width), dtype=np.float32)
    # An item's Gram row has at most the summed history lengths of its users in it: blocks of
    # rows are cut so that bound stays under the budget (one row at least).
    fill = items_users @ np.diff(users_items.indptr).astype(np.float64)
    start = 0
    cumulative = np.concatenate([[0.0], np.cumsum(np.minimum(fill, n_items))])
    while start < n_items:
        stop = int(np.searchsorted(cumulative, cumulative[start] + _GRAM_BLOCK_CELLS, side="right")) - 1
        stop = min(n_items, max(stop, start + 1))
        block = (items_users[start:stop] @ users_items).tocoo()
        keep = block.row + start != block.col
        rows, cols, values = block.row[keep], block.col[keep], block.data[keep]
        with np.errstate(divide="ignore", invalid="ignore"):
            values = values / (norms[rows + start] * norms[cols])
        order = np.lexsort((-values, rows))
        rows, cols, values = rows[order], cols[order], values[order]
        first = np.searchsorted(rows, np.arange(stop - start))
        rank = np.arange(len(rows)) - first[rows]
        kept = rank < width
        neighbours[rows[kept] + start, rank[kept]] = cols[kept]
        weights[rows[kept] + start, rank[kept]] = values[kept]
        start = stop
    return ItemItemTable(weights=weights, neighbours=neighbours)


def ease_weights(matrix, l2: float) -> np.ndarray:
    """Dense [n_items, n_items] EASE weights for a users x items matrix (scipy sparse or numpy)."""
    if l2 <= 0:
        raise ValueError(f"l2 must be positive (got {l2})")
    from scipy.linalg import lapack

    gram = _gram(matrix).astype(np.float32)
    gram[np.diag_indices_from(gram)] += l2
    # X^T X + l2 I is symmetric positive definite: Cholesky and its inverse in float32 cost a
    # third of a general float64 inverse (5,000 items: about 2 s instead of 8).
    factor, info = lapack.spotrf(gram, lower=1, overwrite_a=1)
    if info == 0:
        inverse, info = lapack.spotri(factor, lower=1, overwrite_c=1)
    if info != 0:
        raise np.linalg.LinAlgError(f"EASE: the item Gram matrix could not be inverted (LAPACK info {info})")
    inverse = np.tril(inverse) + np.tril(inverse, -1).T
    weights = -inverse / np.diag(inverse)[None, :]
    np.fill_diagonal(weights, 0.0)
    return weights.astype(np.float32)


@dataclass(frozen=True)
class ItemItemTable:
    """Per item (row, catalog order): its neighbours' weights.

    Sparse: ``neighbours`` [n_items, width] holds the columns of ``weights`` [n_items, width]
    (padding entries weigh 0). Dense: ``neighbours`` is None and ``weights`` is [n_items, n_items].
    """

    weights: np.ndarray
    neighbours: np.ndarray | None = None

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
    def from_dense(cls, weights: np.ndarray, width: int | None) -> "ItemItemTable":
        """Keep each row's ``width`` largest weights, or all of them (a dense table) for None."""
        n_items = weights.shape[0]
        if width is None or width >= n_items:
            return cls(weights=weights.astype(np.float32))
        top = np.argpartition(-weights, width - 1, axis=1)[:, :width]
        values = np.take_along_axis(weights, top, axis=1)
        return cls(weights=values.astype(np.float32), neighbours=top.astype(np.int32))

    @property
    def n_items(self) -> int:
        return self.weights.shape[0]

    def scores(self, items: np.ndarray) -> np.ndarray:
        """[n_items]: the summed rows of ``items``."""
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
            if len(histories) >= 32:
                # Many people: their item counts times the table, one BLAS product that reads
                # the table once for all of them.
                counts = np.zeros((len(histories), self.n_items), dtype=np.float32)
                np.add.at(counts, (people, items), 1.0)
                return counts @ self.weights
            # A few people: their rows alone (a request reads a few rows, not the whole table).
            for row, history in enumerate(histories):
                if len(history):
                    out[row] = self.weights[np.asarray(history, dtype=np.int64)].sum(axis=0)
            return out
        # The (person, neighbour) cells summed as a sparse matrix: work follows the histories'
        # size, not the [n_people, n_items] output (a bincount over every cell cost 5x more).
        from scipy.sparse import csr_matrix

        width = self.neighbours.shape[1]
        summed = csr_matrix(
            (self.weights[items].ravel(), (np.repeat(people, width), self.neighbours[items].ravel())), shape=out.shape
        ).tocoo()
        out[summed.row, summed.col] = summed.data
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
    """The item-item part of a bundle and how it joins the two-tower score.

    For a new visitor with liked items L: ``new_visitor_weight`` x sum over L of cosine rows.
    For a known user: ``known_user_ease_weight`` x sum over L of EASE rows plus
    ``known_user_cosine_weight`` x the mean of the cosine rows (no EASE table: the cosine part
    alone). ``min_rating`` says which interactions count as liked.
    """

    cosine: ItemItemTable
    ease: ItemItemTable | None
    min_rating: float | None
    new_visitor_weight: float
    known_user_ease_weight: float
    known_user_cosine_weight: float

    @property
    def n_items(self) -> int:
        return self.cosine.n_items

    def scores(self, histories: list[np.ndarray], known_user: bool) -> np.ndarray:
        """[n_people, n_items]: each person's item-item score from their liked items."""
        if not known_user:
            return self.new_visitor_weight * self.cosine.batch_scores(histories)
        lengths = np.array([max(1, len(h)) for h in histories], dtype=np.float32)[:, None]
        out = (self.known_user_cosine_weight / lengths) * self.cosine.batch_scores(histories)
        if self.ease is not None:
            out += self.known_user_ease_weight * self.ease.batch_scores(histories)
        return out

    def contributions(self, liked: np.ndarray, items: np.ndarray, known_user: bool) -> np.ndarray:
        """[len(liked), len(items)]: what each liked item adds to each of ``items``'s score."""
        if not known_user:
            return self.new_visitor_weight * self.cosine.contributions(liked, items)
        out = (self.known_user_cosine_weight / max(1, len(liked))) * self.cosine.contributions(liked, items)
        if self.ease is not None:
            out += self.known_user_ease_weight * self.ease.contributions(liked, items)
        return out


def fit_item_item(train, cfg: ItemItemConfig) -> ItemItemModel:
    """The model's item-item part from ``train`` (a ``RecsysData``)."""
    matrix, _ = liked_matrix(train, cfg.min_rating)
    ease = None
    if matrix.shape[1] <= cfg.ease_max_items:
        ease = ItemItemTable.from_dense(ease_weights(matrix, cfg.ease_l2), cfg.ease_width)
    return ItemItemModel(
        cosine=cosine_table(matrix, min(cfg.cosine_width, max(1, matrix.shape[1] - 1))),
        ease=ease,
        min_rating=cfg.min_rating,
        new_visitor_weight=cfg.new_visitor_weight,
        known_user_ease_weight=cfg.known_user_ease_weight,
        known_user_cosine_weight=cfg.known_user_cosine_weight,
    )
