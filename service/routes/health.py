"""Liveness, readiness and metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from service import metrics
from service.deps import LiveDep

router = APIRouter(tags=["operations"])


@router.get("/healthz")
def healthz():
    """The process answers."""
    return {"status": "ok"}


@router.get("/readyz")
def readyz(live: LiveDep):
    """A model is loaded and lists can be served (503 until then)."""
    snapshot = live.snapshot
    if snapshot is None:
        return JSONResponse({"error": "not_ready", "detail": live.last_error or "loading"}, status_code=503)
    return {"status": "ready", "model_version": snapshot.version.version}


@router.get("/metrics", response_class=Response)
def prometheus_metrics():
    """Prometheus text format."""
    body, content_type = metrics.render()
    return Response(body, media_type=content_type)
