"""Prometheus metrics: requests and latency per route, events accepted, model version served.

With several uvicorn workers each process counts for itself; `python cli.py serve --workers N`
points PROMETHEUS_MULTIPROC_DIR at a fresh directory so /metrics adds them up.
"""

from __future__ import annotations

import os

from prometheus_client import (CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram,
                               generate_latest, multiprocess)

REQUESTS = Counter("recsys_http_requests_total", "HTTP requests by route, method and status.",
                   ["route", "method", "status"])
LATENCY = Histogram("recsys_http_request_duration_seconds", "Time to answer, by route.", ["route"],
                    buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0))
EVENTS = Counter("recsys_events_accepted_total", "Events acknowledged (durably landed), by type.", ["type"])
MODEL_VERSION = Gauge("recsys_model_version_served", "The champion version this worker serves.",
                      multiprocess_mode="max")


def render() -> tuple[bytes, str]:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST
