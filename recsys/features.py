"""Vocabularies and raw feature arrays for the two towers (numpy only, no TensorFlow).

The towers take raw values (ids, strings) and do their own lookups, so the arrays built here
are the same shape the exported bundle's callers speak: ``user_id`` / ``item_id`` as they are
in the warehouse, demographics as strings. Missing values become ``UNKNOWN`` (the empty
string), which no vocabulary holds, so every lookup sends it to the out-of-vocabulary slot:
the same slot that a category the model never saw lands in. One fallback, learned in
training through feature dropout.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

import numpy as np
import polars as pl

from recsys.age_bands import AGE_BANDS, age_band

UNKNOWN = ""
# An id no warehouse hands out; dropped and unseen ids both map to the lookup's OOV slot.
UNKNOWN_ID = -1
USER_FEATURES = ("user_id", "age_band", "gender", "occupation")
ITEM_FEATURES = ("item_id", "genres", "year", "title")

_TOKEN = re.compile(r"[a-z0-9]+")
# MovieLens titles end in "(1995)"; the year is its own feature, so it is not a title token.
_TRAILING_YEAR = re.compile(r"\(\d{4}\)\s*$")


def title_tokens(title: str | None) -> list[str]:
    """Lower-case word tokens of a title, without its trailing "(year)"."""
    if not title:
        return []
    return _TOKEN.findall(_TRAILING_YEAR.sub("", title).lower())


@dataclass(frozen=True)
class Vocabularies:
    """Every value each lookup knows, in index order (index 0 is always the OOV slot)."""

    user_ids: tuple[int, ...]
    item_ids: tuple[int, ...]
    age_bands: tuple[str, ...]
    genders: tuple[str, ...]
    occupations: tuple[str, ...]
    genres: tuple[str, ...]
    title_tokens: tuple[str, ...]
    max_genres: int
    max_title_tokens: int
    # Release-year bucket edges; the first is 1, so a missing year (0) has a bucket of its own.
    year_boundaries: tuple[int, ...]

    def as_dict(self) -> dict[str, list]:
        return {
            "user_ids": list(self.user_ids),
            "item_ids": list(self.item_ids),
            "age_bands": list(self.age_bands),
            "genders": list(self.genders),
            "occupations": list(self.occupations),
            "genres": list(self.genres),
            "title_tokens": list(self.title_tokens),
            "max_genres": self.max_genres,
            "max_title_tokens": self.max_title_tokens,
            "year_boundaries": list(self.year_boundaries),
        }


def build_vocabularies(
    users: pl.DataFrame, items: pl.DataFrame, min_token_count: int = 2
) -> Vocabularies:
    """Vocabularies from the training users and the whole catalog.

    Item ids come from the catalog (not only rated items) so every item gets a vector at
    export; user ids come from ``users``, which for a cold-start split excludes held-out users.
    Age bands are the fixed list from ``recsys.age_bands`` so the cold-start table covers all.
    """
    genders = sorted({g for g in users["gender"].drop_nulls().to_list() if g} | {"F", "M"})
    occupations = sorted({o for o in users["occupation"].drop_nulls().to_list() if o})
    genres = sorted({g for gs in items["genres"].to_list() if gs for g in gs if g})
    counts = Counter(t for title in items["title"].to_list() for t in title_tokens(title))
    tokens = sorted(t for t, c in counts.items() if c >= min_token_count)
    max_genres = max([len(gs or []) for gs in items["genres"].to_list()] + [1])
    max_title = max([len(title_tokens(t)) for t in items["title"].to_list()] + [1])
    years = items["year"].drop_nulls().to_numpy()
    # Deciles of the catalog's years: equal-count buckets, whatever era the catalog covers.
    edges = np.unique(np.quantile(years, np.linspace(0.1, 0.9, 9)).astype(int)) if len(years) else []
    year_boundaries = (1, *(int(e) for e in edges if e > 1))
    return Vocabularies(
        user_ids=tuple(int(u) for u in users["user_id"].sort().to_list()),
        item_ids=tuple(int(i) for i in items["item_id"].sort().to_list()),
        age_bands=AGE_BANDS,
        genders=tuple(genders),
        occupations=tuple(occupations),
        genres=tuple(genres),
        title_tokens=tuple(tokens),
        max_genres=max_genres,
        max_title_tokens=max_title,
        year_boundaries=year_boundaries,
    )


def age_band_or_unknown(age: float | None) -> str:
    """``age_band`` for an age, ``UNKNOWN`` for a missing or impossible one."""
    if age is None or age != age:
        return UNKNOWN
    try:
        return age_band(age)
    except ValueError:
        return UNKNOWN


def user_features(users: pl.DataFrame) -> dict[str, np.ndarray]:
    """Raw user-tower inputs, one row per row of ``users``."""
    return {
        "user_id": users["user_id"].to_numpy().astype(np.int64),
        "age_band": np.array([age_band_or_unknown(a) for a in users["age"].to_list()], dtype=object),
        "gender": np.array([g or UNKNOWN for g in users["gender"].to_list()], dtype=object),
        "occupation": np.array([o or UNKNOWN for o in users["occupation"].to_list()], dtype=object),
    }


def item_features(items: pl.DataFrame, vocab: Vocabularies) -> dict[str, np.ndarray]:
    """Raw item-tower inputs, one row per row of ``items``.

    Genres and title tokens are padded with ``UNKNOWN`` to fixed widths so a batch is a dense
    string matrix; the padding maps to the OOV slot, which the towers mask out.
    """
    n = items.height
    genres = np.full((n, vocab.max_genres), UNKNOWN, dtype=object)
    for row, gs in enumerate(items["genres"].to_list()):
        gs = (gs or [])[: vocab.max_genres]
        genres[row, : len(gs)] = gs
    titles = np.full((n, vocab.max_title_tokens), UNKNOWN, dtype=object)
    for row, title in enumerate(items["title"].to_list()):
        tokens = title_tokens(title)[: vocab.max_title_tokens]
        titles[row, : len(tokens)] = tokens
    return {
        "item_id": items["item_id"].to_numpy().astype(np.int64),
        "genres": genres,
        "year": items["year"].fill_null(0).to_numpy().astype(np.int64),
        "title": titles,
    }


def take(features: dict[str, np.ndarray], rows: np.ndarray) -> dict[str, np.ndarray]:
    """The given rows of every feature array."""
    return {name: values[rows] for name, values in features.items()}
