"""Merging the service's landed events into the warehouse, and applying erasures.

Runs inside whichever command holds the warehouse's write lock (`train`, `events merge`, or
the service itself when the lock is free), in one transaction with the merge watermark: a
crash before COMMIT merges nothing, after it everything, and a rerun never merges twice.

What an event becomes: every event is kept in ``events``; a `rating` (its value) and a `like`
(the top of the dataset's rating scale) by a known user also become ``interactions``, so the
next `train` learns from them. Views, clicks and dislikes are signals for the live lists and
for analysis, not training positives. Session events stay anonymous: they are kept in
``events`` but never become interactions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

import duckdb
import polars as pl

from warehouse.connection import transaction
from warehouse.ids import has_external_ids
from warehouse.landing import Landing

_CHUNK = 200_000


@dataclass(frozen=True)
class MergeSummary:
    n_events: int
    n_interactions: int
    merged_up_to: int
    erasures: list[dict] = field(default_factory=list)


def merged_up_to(conn: duckdb.DuckDBPyConnection) -> int:
    return conn.sql("SELECT coalesce(max(merged_up_to), 0) FROM event_merges").fetchall()[0][0]


def merge_landing(conn: duckdb.DuckDBPyConnection, landing: Landing, *, keep_landed_s: float = 86_400.0) -> MergeSummary:
    """Applies pending erasures, then copies new landed events into the warehouse."""
    erasures = landing.pending_erasures()
    start = merged_up_to(conn)
    new = landing.events_after(start, limit=_CHUNK)
    n_events = n_interactions = 0
    applied: list[dict] = []
    up_to = start
    with transaction(conn):
        for _, subject, subject_id, requested_at in erasures:
            applied.append(_erase(conn, subject, subject_id, requested_at))
        while new:
            frame = pl.DataFrame(
                [e.__dict__ for e in new],
                schema={"event_id": pl.Int64, "user_id": pl.Int64, "session_id": pl.Utf8, "item_id": pl.Int64,
                        "type": pl.Utf8, "value": pl.Float32, "timestamp": pl.Int64, "received_at": pl.Float64},
            ).with_columns(pl.from_epoch(pl.col("received_at"), time_unit="s").alias("received_at"))
            conn.register("landed", frame)
            try:
                conn.execute("INSERT INTO events BY NAME SELECT * FROM landed")
                n_interactions += conn.execute(
                    """INSERT INTO interactions
                       SELECT l.user_id, l.item_id,
                              CASE WHEN l.type = 'rating' THEN l.value
                                   ELSE (SELECT coalesce(max(rating), 1) FROM interactions) END,
                              l.timestamp
                       FROM landed l
                       WHERE l.user_id IS NOT NULL AND l.type IN ('rating', 'like')
                         AND (l.type <> 'rating' OR l.value IS NOT NULL)
                         AND l.user_id IN (SELECT user_id FROM users)
                         AND l.item_id IN (SELECT item_id FROM items)"""
                ).fetchall()[0][0]
            finally:
                conn.unregister("landed")
            n_events += len(new)
            up_to = new[-1].event_id
            new = landing.events_after(up_to, limit=_CHUNK)
        if up_to != start or applied:
            conn.execute("INSERT INTO event_merges VALUES (?, ?, ?, now()::TIMESTAMP)", [up_to, n_events, n_interactions])
    # The warehouse has committed: the landing may now forget what it handed over.
    landing.forget_erasures([e[0] for e in erasures])
    landing.compact(up_to, older_than_s=keep_landed_s)
    return MergeSummary(n_events, n_interactions, up_to, applied)


def _erase(conn: duckdb.DuckDBPyConnection, subject: str, subject_id: str, requested_at: float) -> dict:
    if subject == "user":
        # subject_id is the user's id as the source spells it: a string id (users.external_id) or the key.
        found = conn.execute("SELECT user_id FROM users WHERE external_id = ?", [subject_id]).fetchall()
        user_id = found[0][0] if found else (
            int(subject_id) if subject_id.lstrip("+-").isdigit() and not has_external_ids(conn, "user") else None)
        n_events = n_interactions = 0
        if user_id is not None:
            n_events = _delete(conn, "DELETE FROM events WHERE user_id = ?", user_id)
            n_interactions = _delete(conn, "DELETE FROM interactions WHERE user_id = ?", user_id)
            _delete(conn, "DELETE FROM users WHERE user_id = ?", user_id)
        # batch_results keep the audience's id: the source's string id, or the integer.
        n_batch = _delete(conn, "DELETE FROM batch_results WHERE user_id = ?",
                          subject_id if found or user_id is None else str(user_id))
    else:
        n_events = _delete(conn, "DELETE FROM events WHERE session_id = ?", subject_id)
        n_interactions = n_batch = 0
    requested = datetime.fromtimestamp(requested_at, tz=timezone.utc).replace(tzinfo=None)
    conn.execute("INSERT INTO erasures VALUES (?, ?, ?, now()::TIMESTAMP, ?, ?, ?)",
                 [subject, str(subject_id), requested, n_events, n_interactions, n_batch])
    return {"subject": subject, "subject_id": str(subject_id), "n_events": n_events,
            "n_interactions": n_interactions, "n_batch_results": n_batch}


def _delete(conn: duckdb.DuckDBPyConnection, sql: str, key) -> int:
    return conn.execute(sql, [key]).fetchall()[0][0]
