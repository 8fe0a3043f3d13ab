"""Lists that use what a person has just done, computed at request time with numpy.

A trained model knows a visitor by demographics (the cold-start vector) or, for users seen in
training, by their own vector, frozen until the next `train`. What happened since (a like on
the page, a purchase an hour ago) arrives as a ``History``; ``recommend_with_history`` blends
it into the ranking without retraining and says, per item, why it is there.

The blend: the base score (the person's vector against every item) and the items' similarity
to what they liked (minus what they disliked), both standardised over the catalog, mixed with
a weight that grows with the number of likes. Similarity uses the items' taste dimensions
only, not the bias or the demographic prior columns the export appends.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

REASON_HISTORY = "personal_history"  # a known user's own (trained) taste
REASON_DEMOGRAPHIC = "demographic"  # people of the same age band and gender
REASON_LIKED = "liked_items"  # close to items this person liked
REASONS = (REASON_HISTORY, REASON_DEMOGRAPHIC, REASON_LIKED)

# Weight of the likes' similarity against the base score after n likes: n / (n + LIKE_HALF_WEIGHT_AT).
LIKE_HALF_WEIGHT_AT = 2.0
DISLIKE_WEIGHT = 0.5


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


def _standardise(scores: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    values = scores[allowed]
    if values.size < 2:
        return scores - (values.mean() if values.size else 0.0)
    spread = values.std()
    return (scores - values.mean()) / (spread if spread > 0 else 1.0)


def recommend_with_history(
    item_vectors: np.ndarray,
    base_vector: np.ndarray,
    history: History,
    *,
    k: int,
    known_user: bool,
    taste_dims: int | None = None,
    blocked: np.ndarray | None = None,
) -> PersonalList:
    """Top-k for one person: their base vector, bent toward what they liked.

    ``blocked`` is a boolean mask over items (business rules); seen, liked and disliked items
    are never returned. Fewer than k items come back when too few are allowed.
    """
    n_items = item_vectors.shape[0]
    allowed = np.ones(n_items, dtype=bool) if blocked is None else ~np.asarray(blocked, dtype=bool)
    for group in (history.seen, history.liked, history.disliked):
        if group:
            allowed[np.asarray(group, dtype=np.int64)] = False
    base = item_vectors @ np.asarray(base_vector, dtype=np.float32)
    score = base.astype(np.float32)
    like_part = np.zeros(n_items, dtype=np.float32)
    nearest_like = np.full(n_items, -1, dtype=np.int64)
    base_reason = REASON_HISTORY if known_user else REASON_DEMOGRAPHIC
    if history.liked or history.disliked:
        taste = item_vectors[:, : taste_dims or item_vectors.shape[1]]
        unit = taste / np.maximum(np.linalg.norm(taste, axis=1, keepdims=True), 1e-12)
        similarity = np.zeros(n_items, dtype=np.float32)
        if history.liked:
            liked = np.asarray(history.liked, dtype=np.int64)
            per_like = unit @ unit[liked].T  # [n_items, n_liked]
            similarity += per_like.mean(axis=1)
            nearest_like = liked[per_like.argmax(axis=1)]
        if history.disliked:
            disliked = np.asarray(history.disliked, dtype=np.int64)
            similarity -= DISLIKE_WEIGHT * (unit @ unit[disliked].T).mean(axis=1)
        n = len(history.liked) + DISLIKE_WEIGHT * len(history.disliked)
        weight = n / (n + LIKE_HALF_WEIGHT_AT)
        base_part = (1 - weight) * _standardise(base, allowed)
        like_part = weight * _standardise(similarity, allowed)
        score = (base_part + like_part).astype(np.float32)
        from_likes = like_part > base_part
    else:
        from_likes = np.zeros(n_items, dtype=bool)
    order = _best_allowed(score, allowed, k)
    reasons = [REASON_LIKED if from_likes[i] and history.liked else base_reason for i in order]
    because = [(int(nearest_like[i]),) if reason == REASON_LIKED else () for i, reason in zip(order, reasons)]
    return PersonalList(indices=order, scores=score[order], reasons=reasons, because=because)


def _best_allowed(score: np.ndarray, allowed: np.ndarray, k: int) -> np.ndarray:
    """The k best allowed items, best first, ties to the lower index.

    Only the items at or above the k-th best allowed score are sorted (a partition finds that
    score in linear time), so a request costs a pass over the catalog, not a sort of it.
    """
    n_allowed = int(allowed.sum())
    if n_allowed > k:
        masked = np.where(allowed, score, -np.inf)
        kth = np.partition(masked, len(masked) - k)[len(masked) - k]
        candidates = np.flatnonzero(allowed & (score >= kth))
    else:
        candidates = np.flatnonzero(allowed)
    return candidates[np.lexsort((candidates, -score[candidates]))][:k]
