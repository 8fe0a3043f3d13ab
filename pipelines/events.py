"""Events and erasures: landed by the service, merged into the warehouse by a writer.

See warehouse.landing for why events land in their own SQLite file, and warehouse.events for
what a merge does. `train` merges before it reads the data, so what people did up to that
moment is learnt, and what they asked to forget is gone.
"""

from __future__ import annotations

from pathlib import Path

from warehouse.connection import connected, warehouse_path
from warehouse.errors import LockedWarehouse
from warehouse.events import MergeSummary, merge_landing, merged_up_to
from warehouse.landing import Landing, landing_path


def merge_events(home: Path, *, lock_timeout_s: float = 30.0, landing: Landing | None = None) -> MergeSummary | None:
    """Merges landed events and pending erasures; None when there is no warehouse yet.

    Also brings the warehouse's schema up to date, as every writing command does.
    """
    if not warehouse_path(home).exists():
        return None
    if landing is None and landing_path(home).exists():
        landing = Landing(home)
    with connected(home, lock_timeout_s=lock_timeout_s) as conn:
        if landing is None:
            return MergeSummary(0, 0, merged_up_to(conn))
        return merge_landing(conn, landing)


def erase(home: Path, subject: str, subject_id: str, *, landing: Landing, lock_timeout_s: float = 0.5,
          user_key: int | None = None) -> dict:
    """Forgets a user or a session: at once in the landing, in the warehouse when it is free.

    Returns {"subject", "subject_id", "landing_events_deleted", "warehouse": "erased"|"pending", ...}.
    A pending erasure is applied by the next merge (the service retries, and `train` merges
    before reading), so no later training run learns from the person. A user's ``subject_id`` is
    their id as the source spells it; ``user_key`` their key when that is a string id.
    """
    deleted = landing.erase(subject, subject_id, user_key=user_key)
    outcome = {"subject": subject, "subject_id": subject_id, "landing_events_deleted": deleted}
    if not warehouse_path(home).exists():
        return {**outcome, "warehouse": "pending"}
    try:
        summary = merge_events(home, lock_timeout_s=lock_timeout_s, landing=landing)
    except LockedWarehouse:
        return {**outcome, "warehouse": "pending"}
    done = [e for e in summary.erasures if e["subject"] == subject and e["subject_id"] == str(subject_id)]
    return {**outcome, "warehouse": "erased", **({k: done[-1][k] for k in ("n_events", "n_interactions", "n_batch_results")} if done else {})}
