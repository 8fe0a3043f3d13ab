"""The JSON shape of a recommendation list: one definition for the CLI, the API and MLflow.

Plain dataclasses, so the CLI's serving path does not pay for pydantic's import; the HTTP
service hands the same classes to FastAPI as response models (pydantic reads dataclasses),
so its OpenAPI schema documents exactly what the CLI's `--json` prints.

Ids (``item_id``, ``because``, ``basis.user_id``) are the source's: integers for a catalog whose
ids are integers (as they always were), strings for one whose ids are not (SKUs, UUIDs; see
pipelines.ids). The schema says ``integer | string``; one catalog always gives one of them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal, Optional, Union

Reason = Literal["personal_history", "demographic", "liked_items"]
Id = Union[int, str]  # the source's id: an integer, or a string id (a SKU, a UUID)


@dataclass
class RecommendedItem:
    rank: int
    item_id: Id
    title: str
    year: Optional[int]
    genres: list[str]
    score: float
    # Why the item is in the list: the person's own history, people of their age band and
    # gender, or items they liked (listed in `because`).
    reason: Reason
    because: list[Id] = field(default_factory=list)


@dataclass
class Basis:
    """Who the list is for and what it was computed from."""

    kind: Literal["known_user", "demographics", "session"]
    user_id: Optional[Id] = None
    session_id: Optional[str] = None
    age_band: Optional[str] = None
    gender: Optional[str] = None
    occupation: Optional[str] = None
    n_liked: int = 0
    n_disliked: int = 0
    n_seen: int = 0
    note: Optional[str] = None
    # From a photo: how much each age band and gender weighs in the list (a sure face: one each).
    age_band_weights: Optional[dict[str, float]] = None
    gender_weights: Optional[dict[str, float]] = None


@dataclass
class RecommendationList:
    model_version: int
    basis: Basis
    items: list[RecommendedItem]

    def to_dict(self) -> dict:
        return asdict(self)
