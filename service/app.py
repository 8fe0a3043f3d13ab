"""The FastAPI application: routers under /v1, JSON errors, metrics, and a background thread
that swaps in a new champion and merges events when the warehouse is free.

    uvicorn --factory service.app:create_app    (what `python cli.py serve` runs)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse

from pipelines.live import LiveRecommender
from service import errors, metrics
from service.routes import admin, catalog, events, health, recommendations
from service.settings import Settings
from warehouse.landing import Landing

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
MERGE_INTERVAL_S = 60.0
API_VERSION = "1"


def _warm_vision() -> None:
    from pipelines.selfie import warm_up

    try:
        warm_up()
    except Exception:  # noqa: BLE001 - a failed warm-up only costs the first photo its speed
        log.exception("loading the vision models at start failed; the first photo will load them")


def _merge_quietly(live: LiveRecommender, *, lock_timeout_s: float = 0.0) -> None:
    try:
        live.merge(lock_timeout_s=lock_timeout_s)
    except Exception as e:  # noqa: BLE001 - serving what there is beats stopping
        log.warning("could not merge landed events: %s", e)


def _maintain(live: LiveRecommender, settings: Settings, stop: threading.Event) -> None:
    """Every tick: reload if the warehouse changed; now and then (and at the first tick): merge
    what landed."""
    next_merge = time.monotonic()
    while not stop.wait(settings.reload_interval_s):
        try:
            if live.reload():
                metrics.MODEL_VERSION.set(live.snapshot.version.version)
            if time.monotonic() >= next_merge:
                next_merge = time.monotonic() + MERGE_INTERVAL_S
                _merge_quietly(live)
        except Exception:  # noqa: BLE001 - the loop must outlive any one failure
            log.exception("background maintenance failed; trying again")


class MetricsMiddleware:
    """Counts requests and times them per route template (pure ASGI: no per-request task)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        status = 500

        async def sending(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            metrics.REQUESTS.labels(route, scope["method"], str(status)).inc()
            metrics.LATENCY.labels(route).observe(time.perf_counter() - started)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings.from_environment()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        landing = Landing(settings.home)
        live = LiveRecommender(settings.home, landing)
        live.reload(lock_timeout_s=1.0)  # ready at once when the warehouse is free; else the thread retries
        if live.snapshot is None:
            # A warehouse older than this program cannot be read until a writer migrates it: do
            # that (and merge what landed while the service was down), then try again.
            _merge_quietly(live, lock_timeout_s=1.0)
            live.reload(lock_timeout_s=1.0)
        if live.snapshot is not None:
            metrics.MODEL_VERSION.set(live.snapshot.version.version)
        app.state.live, app.state.settings = live, settings
        app.state.vision_slots = asyncio.Semaphore(max(1, len(os.sched_getaffinity(0))))
        # The first visitor's selfie should not pay for loading the vision models.
        threading.Thread(target=_warm_vision, name="recsys-warm-vision", daemon=True).start()
        stop = threading.Event()
        worker = threading.Thread(target=_maintain, args=(live, settings, stop), name="recsys-maintain", daemon=True)
        worker.start()
        try:
            yield
        finally:
            stop.set()
            worker.join(timeout=5)
            landing.close()

    app = FastAPI(
        title="selfie-recsys",
        version=API_VERSION,
        summary="Recommendations for people it has never seen, and for those it knows; events in, lists out.",
        lifespan=lifespan,
    )
    errors.install(app)

    app.add_middleware(MetricsMiddleware)
    for module in (recommendations, events, catalog, admin, health):
        app.include_router(module.router)
    _serve_page(app)
    return app


def _serve_page(app: FastAPI) -> None:
    """The page's few files at / (index.html) and /NAME: routes of their own rather than a
    catch-all mount at /, which would answer the API's wrong-method requests with its own 405."""
    if not (STATIC / "index.html").is_file():
        return
    for path in sorted(p for p in STATIC.iterdir() if p.is_file()):
        route = "/" if path.name == "index.html" else f"/{path.name}"

        def send(path: Path = path) -> FileResponse:
            return FileResponse(path, headers={"Cache-Control": "no-cache"})

        app.add_api_route(route, send, methods=["GET"], include_in_schema=False, name=f"page:{path.name}")
