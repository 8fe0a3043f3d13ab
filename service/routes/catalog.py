"""The catalog and the model: GET /v1/items, /v1/items/{id}, /v1/models/champion."""

from __future__ import annotations

from typing import Annotated, Optional

from fastapi import APIRouter, Path, Query

from service.deps import LiveDep
from service.errors import ERROR_RESPONSES
from service.schemas import ChampionOut, HistoryOut, Id, ItemOut, ItemsPage

router = APIRouter(prefix="/v1", tags=["catalog"])


@router.get("/items", response_model=ItemsPage, responses=ERROR_RESPONSES)
def search_items(
    live: LiveDep,
    search: Annotated[Optional[str], Query(max_length=200, description="Part of the title, any case.")] = None,
    genre: Annotated[Optional[str], Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 20,
):
    """Items for an onboarding picker, most popular first."""
    items, total = live.search_items(search=search, genre=genre, limit=limit)
    return ItemsPage(items=[ItemOut(**i) for i in items], total=total)


@router.get("/items/{item_id}", response_model=ItemOut, responses=ERROR_RESPONSES)
def get_item(item_id: Annotated[Id, Path()], live: LiveDep):
    return ItemOut(**live.item(item_id))


@router.get("/models/champion", response_model=ChampionOut, responses=ERROR_RESPONSES)
def champion(live: LiveDep):
    """The model version this worker serves."""
    snapshot = live.require_snapshot()
    version = snapshot.version
    model = version.metrics.get("model", {})
    return ChampionOut(
        model_version=version.version, data_snapshot=version.data_snapshot, created_at=version.created_at.isoformat(),
        status=version.status, metrics={k: float(v) for k, v in model.items() if isinstance(v, (int, float))},
        loaded_at=snapshot.loaded_at,
    )


@router.get("/users/{user_id}/history", response_model=HistoryOut, responses=ERROR_RESPONSES)
def user_history(user_id: Annotated[Id, Path()], live: LiveDep,
                 limit: Annotated[int, Query(ge=1, le=50)] = 10):
    """A known user's latest interactions, newest first (for a returning customer's page)."""
    shown, items = live.history(user_id, limit)
    return HistoryOut(user_id=shown, items=items)
