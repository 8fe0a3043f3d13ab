"""The three frames the recommender trains on, checked once at the border.

The warehouse hands these over as polars frames; everything inside ``recsys`` can then rely on
the column names and types below instead of re-checking them.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

ITEMS_SCHEMA = {"item_id": pl.Int64, "title": pl.Utf8, "year": pl.Int32, "genres": pl.List(pl.Utf8)}
USERS_SCHEMA = {
    "user_id": pl.Int64,
    "age": pl.Int32,
    "gender": pl.Utf8,
    "occupation": pl.Utf8,
    "zip": pl.Utf8,
}
INTERACTIONS_SCHEMA = {
    "user_id": pl.Int64,
    "item_id": pl.Int64,
    "rating": pl.Float32,
    "timestamp": pl.Int64,
}


class InvalidRecsysData(ValueError):
    """A frame handed to the recommender does not follow the data contract."""


def _check_frame(name: str, frame: pl.DataFrame, schema: dict[str, pl.DataType]) -> None:
    if not isinstance(frame, pl.DataFrame):
        raise InvalidRecsysData(f"{name} must be a polars DataFrame (got {type(frame).__name__})")
    missing = [c for c in schema if c not in frame.columns]
    if missing:
        raise InvalidRecsysData(
            f"{name} is missing columns {missing}: expected {list(schema)} (got {frame.columns})"
        )
    wrong = {
        c: f"expected {dtype}, got {frame.schema[c]}"
        for c, dtype in schema.items()
        if frame.schema[c] != dtype
    }
    if wrong:
        raise InvalidRecsysData(f"{name} has columns of the wrong type: {wrong}; cast them first")


@dataclass(frozen=True)
class RecsysData:
    """Users, items and the interactions between them (see the module docstring for columns)."""

    users: pl.DataFrame
    items: pl.DataFrame
    interactions: pl.DataFrame

    def __post_init__(self) -> None:
        _check_frame("users", self.users, USERS_SCHEMA)
        _check_frame("items", self.items, ITEMS_SCHEMA)
        _check_frame("interactions", self.interactions, INTERACTIONS_SCHEMA)
        for name, frame, key in (("users", self.users, "user_id"), ("items", self.items, "item_id")):
            if frame[key].null_count() or frame[key].n_unique() != frame.height:
                raise InvalidRecsysData(f"{name}.{key} must be unique and never null")
        for key, frame in (("user_id", self.users), ("item_id", self.items)):
            unknown = self.interactions.filter(~pl.col(key).is_in(frame[key].implode()))
            if unknown.height:
                raise InvalidRecsysData(
                    f"{unknown.height} interactions name a {key} that is not in the "
                    f"{'users' if key == 'user_id' else 'items'} frame "
                    f"(first: {unknown[key][0]}); load those rows first or drop the interactions"
                )

    def summary(self) -> dict[str, float]:
        """Sizes worth logging next to a trained model."""
        n_users = self.interactions["user_id"].n_unique()
        n_items = self.interactions["item_id"].n_unique()
        n = self.interactions.height
        return {
            "n_users": float(self.users.height),
            "n_items": float(self.items.height),
            "n_interactions": float(n),
            "n_active_users": float(n_users),
            "n_active_items": float(n_items),
            "density": float(n / max(1, n_users * n_items)),
            "mean_rating": float(self.interactions["rating"].mean() or 0.0),
        }
