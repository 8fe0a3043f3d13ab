"""Business rules of a campaign, turned into item masks over the model's catalog."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl

from pipelines.errors import InputError


@dataclass(frozen=True)
class CampaignRules:
    # Item ids: keys once pipelines.ids.keyed_rules has read the ids as the source spells them.
    exclude_items: frozenset = field(default_factory=frozenset)  # never recommend these
    only_items: frozenset | None = None  # recommend only from these (None: whole catalog)
    genres: frozenset[str] | None = None  # recommend only items with one of these genres
    max_per_item: int | None = None  # an item appears in at most this many lists


def blocked_items(rules: CampaignRules, bundle_item_ids: np.ndarray, items: pl.DataFrame) -> np.ndarray:
    """Boolean mask over the bundle's items: True where the rules forbid the item."""
    ids = pl.Series("item_id", bundle_item_ids)
    blocked = ids.is_in(list(rules.exclude_items)).to_numpy()
    if rules.only_items is not None:
        unknown = rules.only_items - set(items["item_id"].to_list())
        if unknown:
            raise InputError(f"--items names items not in the catalog: {sorted(unknown)[:10]}")
        blocked |= ~ids.is_in(list(rules.only_items)).to_numpy()
    if rules.genres is not None:
        known = set(items["genres"].explode().drop_nulls().to_list())
        unknown = {g for g in rules.genres if g not in known}
        if unknown:
            raise InputError(f"unknown genre(s) {sorted(unknown)}; the catalog has: {', '.join(sorted(known))}")
        matching = items.filter(pl.col("genres").list.eval(pl.element().is_in(list(rules.genres))).list.any())
        blocked |= ~ids.is_in(matching["item_id"].implode()).to_numpy()
    if blocked.all():
        raise InputError("the campaign rules leave no item to recommend")
    return blocked


def apply_item_cap(candidates: np.ndarray, scores: np.ndarray, k: int, remaining: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Greedy, in audience order: each row keeps its best k candidates whose item still has room.

    ``remaining`` (per item index) is decremented in place, so caps hold across chunks. Rows
    whose candidates run out get shorter lists (padded with -1).
    """
    out_idx = np.full((candidates.shape[0], k), -1, dtype=np.int64)
    out_scores = np.full((candidates.shape[0], k), -np.inf, dtype=np.float32)
    for row in range(candidates.shape[0]):
        filled = 0
        for item, score in zip(candidates[row], scores[row]):
            if item < 0:
                break
            if remaining[item] > 0:
                remaining[item] -= 1
                out_idx[row, filled], out_scores[row, filled] = item, score
                filled += 1
                if filled == k:
                    break
    return out_idx, out_scores
