"""POST /v1/events: acknowledged means durable."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from service.deps import LiveDep, SettingsDep
from service.errors import ERROR_RESPONSES
from service.metrics import EVENTS
from service.schemas import EventsAccepted, EventsRequest
from warehouse.landing import Event

router = APIRouter(prefix="/v1", tags=["events"])


@router.post("/events", response_model=EventsAccepted, status_code=201, responses=ERROR_RESPONSES)
async def record_events(body: EventsRequest, live: LiveDep, settings: SettingsDep):
    """Record what people did. A 201 means every event of the batch is on disk (fsync'd) and
    counts for that user's or session's next list; a 4xx means none was recorded."""
    events = [Event(item_id=e.item_id, type=e.type, user_id=e.user_id, session_id=e.session_id,
                    value=e.value, timestamp=e.timestamp) for e in body.events]
    ids = await run_in_threadpool(live.record, events)
    for e in events:
        EVENTS.labels(e.type).inc()
    return EventsAccepted(accepted=len(ids), event_ids=ids)
