"""Lists that use what a person has just done, computed at request time with numpy.

A trained model knows a visitor by demographics (the cold-start vector) or, for users seen in
training, by their own vector, frozen until the next `train`. What happened since (a like on
the page, a purchase an hour ago) arrives as a ``History``; ``recommend_with_history`` blends
it into the ranking without retraining and says, per item, why it is there.

The blend, one model for everyone from zero liked items to hundreds:

    score(item) = base(item) + w * (sum over liked h of W[h, item] - 0.5 * the same over disliked)

``base`` is the person's vector against every item: the two-tower score, with the demographic
prior for a new visitor, or the known user's trained vector. W and w come from the bundle's
item-item part (``recsys.item_item.ItemItemModel``): for a new visitor the cosine of co-liked
items (robust with a handful of likes); for a known user EASE's weights (fitted to whole
histories) plus the cosine averaged over their likes. The sum grows with the number of likes,
so history takes over from demographics as it accumulates. The weights were chosen
on validation users carved from the training side (see the README's results). Bundles
written before the item-item part existed fall back to the cosine of the items' taste
dimensions (the leading dimensions of the item vectors, without the bias and prior columns
the export appends), with weight ``TASTE_FALLBACK_WEIGHT``.

``recommend_many_with_history`` does the same for many people at once (batch scoring).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from recsys.item_item import ItemItemModel
from recsys.serving import top_k_from_scores

REASON_HISTORY = "personal_history"  # a known user's own (trained) taste
REASON_DEMOGRAPHIC = "demographic"  # people of the same age band and gender
REASON_LIKED = "liked_items"  # brought into the list by items this person liked
REASONS = (REASON_HISTORY, REASON_DEMOGRAPHIC, REASON_LIKED)

DISLIKE_WEIGHT = 0.5  # a dislike pushes an item's neighbours down half as hard as a like pulls
# Without an item-item table (older bundles): on ML-100K validation users the taste cosine
# helped little at any weight; 1 gained about +0.005 NDCG@10 for 1 to 3 likes.
TASTE_FALLBACK_WEIGHT = 1.0
MAX_BECAUSE = 3  # liked items named per recommended item
_CHUNK = 1024  # people scored at once in the batch function: bounds memory at CHUNK x n_items


@dataclass(frozen=True)
class History:
    """What a person did since the model was trained (item indices in the bundle's order)."""

    liked: tuple[int, ...] = ()  # oldest first
    disliked: tuple[int, ...] = ()
    seen: tuple[int, ...] = ()  # every item they interacted with: never recommended again

    @property
    def is_empty(self) -> bool:
        return not (self.liked or self.disliked or self.seen)


@dataclass(frozen=True)
class PersonalList:
    """Best first: item indices (bundle order), scores, and why each item is there."""

    indices: np.ndarray
    scores: np.ndarray
    reasons: list[str]
    because: list[tuple[int, ...]] = field(default_factory=list)  # liked indices behind each item


def taste_dimensions(manifest: dict, dim: int) -> int:
    """How many leading dimensions of the vectors carry taste (the rest: bias, prior columns)."""
    return int(manifest.get("taste_dims", dim))


def _taste_table(item_vectors: np.ndarray, taste_dims: int | None, rows: np.ndarray) -> np.ndarray:
    """[len(rows), n_items] cosine of the taste dimensions: the fallback item-item part."""
    taste = item_vectors[:, : taste_dims or item_vectors.shape[1]]
    unit = taste / np.maximum(np.linalg.norm(taste, axis=1, keepdims=True), 1e-12)
    return unit[rows] @ unit.T


def history_scores(
    n_items: int,
    liked: list[np.ndarray],
    disliked: list[np.ndarray] | None = None,
    *,
    item_item: ItemItemModel | None,
    known_user: bool,
    item_vectors: np.ndarray | None = None,
    taste_dims: int | None = None,
) -> np.ndarray:
    """[n_people, n_items]: the weighted item-item part of the blend (0 for an empty history).

    ``item_item`` None (a bundle older than the item-item part) uses the taste-vector cosine,
    which needs ``item_vectors``.
    """
    disliked = disliked if disliked is not None else [np.zeros(0, np.int64)] * len(liked)
    if len(disliked) != len(liked):
        raise ValueError(f"expected one dislike list per person (got {len(disliked)} for {len(liked)} people)")
    if item_item is not None:
        def summed(histories: list[np.ndarray]) -> np.ndarray:
            return item_item.scores(histories, known_user)
    else:
        if item_vectors is None:
            raise ValueError("without an item-item model, history_scores needs item_vectors")

        def summed(histories: list[np.ndarray]) -> np.ndarray:
            out = np.zeros((len(histories), n_items), dtype=np.float32)
            for row, items in enumerate(histories):
                if len(items):
                    out[row] = _taste_table(item_vectors, taste_dims, np.asarray(items, np.int64)).sum(axis=0)
            return TASTE_FALLBACK_WEIGHT * out

    scores = summed(liked)
    if any(len(d) for d in disliked):
        scores -= DISLIKE_WEIGHT * summed(disliked)
    return scores


def _allowed(n_items: int, history: History, blocked: np.ndarray | None) -> np.ndarray:
    allowed = np.ones(n_items, dtype=bool) if blocked is None else ~np.asarray(blocked, dtype=bool)
    for group in (history.seen, history.liked, history.disliked):
        if group:
            allowed[np.asarray(group, dtype=np.int64)] = False
    return allowed


def _best(score: np.ndarray, allowed: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k best allowed items, best first; ties to the lower index."""
    if score.dtype == np.float32 and len(score) >= 64 * k:
        # A large catalog: top_k_from_scores' block bound finds the few items that can be in the
        # list without gathering and partitioning every allowed score (a 1M-item list: ~3x faster).
        top, _ = top_k_from_scores(np.where(allowed, score, -np.inf)[None, :], k)
        return top[0][top[0] >= 0]
    candidates = np.flatnonzero(allowed)
    if len(candidates) > 4 * k:
        # Only items at or above the k-th best score can be in the list (ties included).
        kth = np.partition(score[candidates], len(candidates) - k)[len(candidates) - k]
        candidates = candidates[score[candidates] >= kth]
    return candidates[np.lexsort((candidates, -score[candidates]))][:k]


def _because(
    items: np.ndarray, liked: np.ndarray, item_item: ItemItemModel | None, known_user: bool,
    item_vectors: np.ndarray, taste_dims: int | None,
) -> list[tuple[int, ...]]:
    """Per item: the liked items that add most to its score (at most MAX_BECAUSE, best first)."""
    if item_item is not None:
        contribution = item_item.contributions(liked, items, known_user)
    else:
        contribution = _taste_table(item_vectors, taste_dims, liked)[:, items]
    out = []
    for column in contribution.T:
        order = np.argsort(-column, kind="stable")[:MAX_BECAUSE]
        out.append(tuple(int(liked[j]) for j in order if column[j] > 0))
    return out


def recommend_with_history(
    item_vectors: np.ndarray,
    base_vector: np.ndarray,
    history: History,
    *,
    k: int,
    known_user: bool,
    taste_dims: int | None = None,
    blocked: np.ndarray | None = None,
    item_item: ItemItemModel | None = None,
) -> PersonalList:
    """Top-k for one person: their base vector, bent toward what they liked.

    ``blocked`` is a boolean mask over items (business rules); seen, liked and disliked items
    are never returned. Fewer than k items come back when too few are allowed. ``item_item`` is
    the bundle's item-item part (``ServingBundle.item_item``); None uses the taste-vector fallback.
    An item is there for "liked_items" when the base score alone would not list it and a liked
    item adds to its score.
    """
    n_items = item_vectors.shape[0]
    allowed = _allowed(n_items, history, blocked)
    base = (item_vectors @ np.asarray(base_vector, dtype=np.float32)).astype(np.float32)
    base_reason = REASON_HISTORY if known_user else REASON_DEMOGRAPHIC
    if not (history.liked or history.disliked):
        order = _best(base, allowed, k)
        return PersonalList(order, base[order], [base_reason] * len(order), [()] * len(order))
    liked = np.asarray(history.liked, dtype=np.int64)
    extra = history_scores(
        n_items, [liked], [np.asarray(history.disliked, dtype=np.int64)],
        item_item=item_item, known_user=known_user, item_vectors=item_vectors, taste_dims=taste_dims,
    )[0]
    score = base + extra
    order = _best(score, allowed, k)
    # "Brought in by the likes": not in the list the base score alone gives, with the liked and
    # disliked items left where they were (else the item that merely fills a liked item's slot
    # would claim the like).
    base_allowed = _allowed(n_items, History(seen=history.seen), blocked)
    from_likes = ~np.isin(order, _best(base, base_allowed, k)) if len(liked) else np.zeros(len(order), bool)
    because = [()] * len(order)
    if from_likes.any():
        named = _because(order[from_likes], liked, item_item, known_user, item_vectors, taste_dims)
        for position, liked_behind in zip(np.flatnonzero(from_likes), named):
            because[position] = liked_behind
    reasons = [REASON_LIKED if f and b else base_reason for f, b in zip(from_likes, because)]
    because = [b if r == REASON_LIKED else () for b, r in zip(because, reasons)]
    return PersonalList(indices=order, scores=score[order], reasons=reasons, because=because)


def recommend_many_with_history(
    item_vectors: np.ndarray,
    base_vectors: np.ndarray,
    histories: list[History],
    *,
    k: int,
    known_user: np.ndarray | bool = False,
    item_item: ItemItemModel | None = None,
    taste_dims: int | None = None,
    blocked: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k for many people at once (batch scoring): the same scores as ``recommend_with_history``.

    ``base_vectors`` [n_people, dim] (cold-start or known-user vectors), one ``History`` each;
    ``known_user`` (one bool, or one per person) says whose vector is their own. Returns item indices [n_people, k] (-1 where fewer were allowed) and scores, like
    ``recsys.serving.top_k``. Reasons are left to the one-person function.
    """
    base_vectors = np.atleast_2d(np.asarray(base_vectors, dtype=np.float32))
    if len(histories) != base_vectors.shape[0]:
        raise ValueError(f"expected one History per base vector (got {len(histories)} for {base_vectors.shape[0]})")
    n_items = item_vectors.shape[0]
    known = np.broadcast_to(np.asarray(known_user, dtype=bool), (len(histories),))
    indices, scores = [], []
    for start in range(0, len(histories), _CHUNK):
        chunk = histories[start:start + _CHUNK]
        score = base_vectors[start:start + _CHUNK] @ np.asarray(item_vectors, dtype=np.float32).T
        for flag in (False, True):
            rows = np.flatnonzero(known[start:start + _CHUNK] == flag)
            if len(rows):
                score[rows] += history_scores(
                    n_items,
                    [np.asarray(chunk[r].liked, dtype=np.int64) for r in rows],
                    [np.asarray(chunk[r].disliked, dtype=np.int64) for r in rows],
                    item_item=item_item, known_user=flag, item_vectors=item_vectors, taste_dims=taste_dims,
                )
        exclude = np.zeros(score.shape, dtype=bool)
        if blocked is not None:
            exclude |= np.asarray(blocked, dtype=bool)[None, :]
        rows = [np.full(len(h.seen) + len(h.liked) + len(h.disliked), r, dtype=np.int64) for r, h in enumerate(chunk)]
        cols = [np.asarray(h.seen + h.liked + h.disliked, dtype=np.int64) for h in chunk]
        if rows:
            exclude[np.concatenate(rows), np.concatenate(cols)] = True
        i, s = top_k_from_scores(score, k, exclude)
        indices.append(i)
        scores.append(s)
    if not indices:
        return np.zeros((0, k), dtype=np.int64), np.zeros((0, k), dtype=np.float32)
    return np.concatenate(indices), np.concatenate(scores)
