"""Admin routes, behind a bearer token from RECSYS_ADMIN_TOKEN (off when it is not set)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from service.deps import AdminDep, LiveDep
from service.errors import ERROR_RESPONSES
from service.schemas import ErrorOut
from service.schemas import ErasureOut, Id, ReloadOut, SessionId

router = APIRouter(prefix="/v1", tags=["admin"], responses={
    401: {"model": ErrorOut, "description": "Missing or wrong bearer token"},
    404: {"model": ErrorOut, "description": "Admin routes are off (no RECSYS_ADMIN_TOKEN)"},
})


@router.post("/admin/reload", response_model=ReloadOut, responses=ERROR_RESPONSES)
async def reload(_: AdminDep, live: LiveDep):
    """Load the current champion now (the service also checks by itself every second)."""
    swapped = await run_in_threadpool(live.reload, force=True, lock_timeout_s=5.0)
    snapshot = live.snapshot
    return ReloadOut(reloaded=swapped, model_version=snapshot.version.version if snapshot else None,
                     error=live.last_error)


def _erasure(outcome: dict) -> JSONResponse:
    # 200 when the warehouse is already clean; 202 while it is busy (the next merge applies it).
    body = ErasureOut(**outcome).model_dump()
    return JSONResponse(body, status_code=200 if outcome["warehouse"] == "erased" else 202)


@router.delete("/users/{user_id}", response_model=ErasureOut, responses={**ERROR_RESPONSES, 202: {"model": ErasureOut}})
async def erase_user(user_id: Annotated[Id, Path()], _: AdminDep, live: LiveDep):
    """Erase a user's events, interactions and batch results (audited in the `erasures` table);
    the next `train` cannot learn from them, and this service stops serving their list."""
    return _erasure(await run_in_threadpool(live.forget, "user", user_id))


@router.delete("/sessions/{session_id}", response_model=ErasureOut, responses={**ERROR_RESPONSES, 202: {"model": ErasureOut}})
async def erase_session(session_id: Annotated[SessionId, Path()], _: AdminDep, live: LiveDep):
    """Erase an anonymous session's events."""
    return _erasure(await run_in_threadpool(live.forget, "session", session_id))
