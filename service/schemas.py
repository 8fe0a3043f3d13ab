"""What the API accepts: request bodies, validated by pydantic before any work is done.

What it returns is defined once, in pipelines.schemas, and shared with the CLI's --json.
"""

from __future__ import annotations

from typing import Annotated, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from warehouse.landing import EVENT_TYPES

# A user or item id as the catalog's source spells it: an integer (42; "042" and "42.0" are 42 too),
# or, for a catalog whose ids are not integers, the string id (a SKU, a UUID). See pipelines.ids.
Id = Annotated[
    Union[Annotated[int, Field(ge=-(2**63), le=2**63 - 1)], Annotated[str, Field(min_length=1, max_length=256)]],
    Field(description="A user or item id as the catalog spells it: an integer, or a string id (a SKU, a UUID)."),
]
ShownId = Union[int, str]  # an id in a response: an integer, or the catalog's string id
SessionId = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$",
                                 description="An opaque id the page keeps for an anonymous visitor.")]
Age = Annotated[float, Field(ge=0, le=120, allow_inf_nan=False, description="Years (or a MovieLens 1M age code).")]
Gender = Literal["M", "F"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _upper(value):
    return value.upper() if isinstance(value, str) else value


class RecommendationRequest(_Strict):
    """Who the list is for: a known `user_id`; or a new person by `age`/`gender`/`occupation`,
    optionally with a `session_id` whose events (likes, views) shape the list; plus items the
    person just liked, and the campaign rules the CLI has."""

    user_id: Optional[Id] = None
    session_id: Optional[SessionId] = None
    age: Optional[Age] = None
    gender: Optional[Gender] = None
    occupation: Optional[Annotated[str, Field(min_length=1, max_length=64)]] = None
    liked_items: list[Id] = Field(default_factory=list, max_length=500)
    disliked_items: list[Id] = Field(default_factory=list, max_length=500)
    k: int = Field(10, ge=1, le=100)
    exclude_items: list[Id] = Field(default_factory=list, max_length=10_000)
    items: Optional[list[Id]] = Field(None, min_length=1, max_length=100_000, description="Recommend only from these items.")
    genres: Optional[list[Annotated[str, Field(min_length=1, max_length=64)]]] = Field(
        None, min_length=1, max_length=50, description="Recommend only items of one of these genres.")

    _gender_case = field_validator("gender", mode="before")(_upper)

    @model_validator(mode="after")
    def _one_person(self):
        if self.user_id is not None and any(
            v is not None for v in (self.session_id, self.age, self.gender, self.occupation)
        ):
            raise ValueError("give user_id alone, or a new person's session_id/age/gender/occupation, not both")
        return self


class EventIn(_Strict):
    user_id: Optional[Id] = None
    session_id: Optional[SessionId] = None
    item_id: Id
    type: Literal[EVENT_TYPES]  # type: ignore[valid-type]
    value: Optional[Annotated[float, Field(allow_inf_nan=False, ge=-1e6, le=1e6)]] = Field(
        None, description="The rating, for type 'rating'.")
    timestamp: Optional[Annotated[int, Field(ge=0, le=32_503_680_000)]] = Field(
        None, description="Unix seconds when it happened; arrival time when left out.")

    @model_validator(mode="after")
    def _who_and_value(self):
        if (self.user_id is None) == (self.session_id is None):
            raise ValueError("give exactly one of user_id and session_id")
        if self.type == "rating" and self.value is None:
            raise ValueError("a 'rating' event needs a value")
        return self


class EventsRequest(_Strict):
    events: list[EventIn] = Field(min_length=1, max_length=1000)


class EventsAccepted(BaseModel):
    accepted: int
    event_ids: list[int]


class ItemOut(BaseModel):
    item_id: ShownId
    title: str
    year: Optional[int] = None
    genres: list[str]
    n_interactions: int = Field(description="How often people interacted with it (popularity).")


class ItemsPage(BaseModel):
    items: list[ItemOut]
    total: int = Field(description="How many items match, before the limit.")


class ChampionOut(BaseModel):
    model_version: int
    data_snapshot: Optional[str]
    created_at: str
    status: str
    metrics: dict[str, float]
    loaded_at: float


class FaceOut(BaseModel):
    """What the camera saw in the face that was used."""

    age: float
    age_uncertainty: float
    age_band: str
    gender: str
    gender_confidence: float
    gender_for_recommendation: Optional[str]
    detection_confidence: float
    low_quality: bool
    quality_issues: list[str]


class ErrorOut(BaseModel):
    error: str = Field(description="A short machine-readable code, e.g. invalid_request, not_found.")
    detail: str = Field(description="What was wrong, naming the field or the limit.")


class ErasureOut(BaseModel):
    subject: Literal["user", "session"]
    subject_id: str
    landing_events_deleted: int
    warehouse: Literal["erased", "pending"]
    n_events: Optional[int] = None
    n_interactions: Optional[int] = None
    n_batch_results: Optional[int] = None


class ReloadOut(BaseModel):
    reloaded: bool
    model_version: Optional[int]
    error: Optional[str] = None


class HistoryEntry(BaseModel):
    item_id: ShownId
    title: Optional[str]
    year: Optional[int] = None
    genres: list[str]
    type: str = Field(description="rating (from the warehouse), or the event type the service recorded")
    value: Optional[float] = None
    timestamp: int


class HistoryOut(BaseModel):
    user_id: ShownId
    items: list[HistoryEntry]
