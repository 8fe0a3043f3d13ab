"""The service's settings, read once from the environment that `python cli.py serve` sets."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

# An upload larger than this is refused before it is parsed (phone selfies are 2-6 MB).
MAX_UPLOAD_BYTES = 12 * 1024 * 1024
# Events per request: larger batches are split by the client.
MAX_EVENTS_PER_REQUEST = 1000


@dataclass(frozen=True)
class Settings:
    home: Path
    admin_token: Optional[str] = None  # admin routes are off without one
    reload_interval_s: float = 1.0  # how often the warehouse is checked for a new champion
    max_upload_bytes: int = MAX_UPLOAD_BYTES
    max_events_per_request: int = MAX_EVENTS_PER_REQUEST

    @classmethod
    def from_environment(cls) -> "Settings":
        home = os.environ.get("RECSYS_HOME")
        if not home:
            raise RuntimeError("RECSYS_HOME is not set: start the service with `python cli.py serve`")
        return cls(
            home=Path(home),
            admin_token=os.environ.get("RECSYS_ADMIN_TOKEN") or None,
            reload_interval_s=float(os.environ.get("RECSYS_RELOAD_INTERVAL_S", "1.0")),
        )
