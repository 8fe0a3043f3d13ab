"""The event landing area: an append-only SQLite file the HTTP service owns.

Why not DuckDB: DuckDB lets one process write and refuses other processes' opens while it
does, so a service writing events into the warehouse would block `ingest`, `train` and
`batch-score` (and be blocked by them). SQLite in WAL mode lets several service workers append
at once and readers read while they do; with ``synchronous=FULL`` a commit is on disk before
it returns, so an event acknowledged after ``append`` survives a `kill -9` or a power cut.

The writing commands later merge what landed into DuckDB (``warehouse.events``), in the same
transaction as a watermark, so every event is merged exactly once.

    HOME/events/landing.sqlite
      events(event_id, user_id, session_id, item_id, type, value, timestamp, received_at)
      erasures(erasure_id, subject, subject_id, requested_at)   -- pending right-to-be-forgotten
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional

LANDING_FILE = "landing.sqlite"
EVENT_TYPES = ("view", "click", "like", "dislike", "rating")
_BUSY_TIMEOUT_MS = 10_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    event_id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id INTEGER,
    session_id TEXT,
    item_id INTEGER NOT NULL,
    type TEXT NOT NULL,
    value REAL,
    timestamp INTEGER NOT NULL,     -- unix seconds, when it happened (client's or arrival)
    received_at REAL NOT NULL,      -- unix seconds, when the service acknowledged it
    CHECK ((user_id IS NULL) <> (session_id IS NULL))
);
CREATE INDEX IF NOT EXISTS events_by_user ON events(user_id) WHERE user_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS events_by_session ON events(session_id) WHERE session_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS erasures (
    erasure_id INTEGER PRIMARY KEY AUTOINCREMENT,
    subject TEXT NOT NULL CHECK (subject IN ('user', 'session')),
    subject_id TEXT NOT NULL,
    requested_at REAL NOT NULL
);
"""


@dataclass(frozen=True)
class Event:
    item_id: int
    type: str
    user_id: Optional[int] = None
    session_id: Optional[str] = None
    value: Optional[float] = None
    timestamp: Optional[int] = None  # unix seconds; arrival time when absent


@dataclass(frozen=True)
class StoredEvent:
    event_id: int
    user_id: Optional[int]
    session_id: Optional[str]
    item_id: int
    type: str
    value: Optional[float]
    timestamp: int
    received_at: float


def landing_path(home: Path) -> Path:
    return Path(home) / "events" / LANDING_FILE


class Landing:
    """One process's handle on the landing file; safe to share between its threads."""

    def __init__(self, home: Path):
        self.path = landing_path(home)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._committer = _GroupCommit(self._write)
        with self._connection() as conn:
            conn.executescript(_SCHEMA)

    def _connection(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            # isolation_level=None: we issue BEGIN/COMMIT ourselves.
            conn = sqlite3.connect(self.path, timeout=_BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                                   check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")  # durable at COMMIT, not just crash-consistent
            conn.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
            self._local.conn = conn
        return _Reusable(conn)

    def append(self, events: Iterable[Event]) -> list[int]:
        """Writes the events durably and returns their ids in order.

        Group commit: while one thread's transaction is being fsync'd, other threads' batches
        queue up and go to disk together in the next one, so the fsync cost is shared under
        load. Every batch is all or nothing, and append returns only once its batch is on disk.
        """
        now = time.time()
        rows = [
            (e.user_id, e.session_id, e.item_id, e.type, e.value,
             int(e.timestamp if e.timestamp is not None else now), now)
            for e in events
        ]
        if not rows:
            return []
        return self._committer.submit(rows)

    def _write(self, batches: list[list[tuple]]) -> list[list[int]]:
        with self._connection() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                ids = []
                for rows in batches:
                    ids.append([
                        conn.execute(
                            "INSERT INTO events (user_id, session_id, item_id, type, value, timestamp, received_at) "
                            "VALUES (?, ?, ?, ?, ?, ?, ?)", row).lastrowid
                        for row in rows
                    ])
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return ids

    def events_of(self, *, user_id: Optional[int] = None, session_id: Optional[str] = None,
                  after_id: int = 0) -> list[StoredEvent]:
        """A user's or a session's events, oldest first (only those after ``after_id``)."""
        column, value = ("user_id", user_id) if user_id is not None else ("session_id", session_id)
        with self._connection() as conn:
            rows = conn.execute(
                f"SELECT event_id, user_id, session_id, item_id, type, value, timestamp, received_at "
                f"FROM events WHERE {column} = ? AND event_id > ? ORDER BY event_id", (value, after_id)
            ).fetchall()
        return [StoredEvent(*row) for row in rows]

    def events_after(self, event_id: int, limit: int = 100_000) -> list[StoredEvent]:
        with self._connection() as conn:
            rows = conn.execute(
                "SELECT event_id, user_id, session_id, item_id, type, value, timestamp, received_at "
                "FROM events WHERE event_id > ? ORDER BY event_id LIMIT ?", (event_id, limit)
            ).fetchall()
        return [StoredEvent(*row) for row in rows]

    def erase(self, subject: str, subject_id: str, *, user_key: Optional[int] = None) -> int:
        """Deletes the subject's landed events and queues the erasure for the warehouse.

        A user's ``subject_id`` is their id as the source spells it; events land by key, so a
        string id comes with its ``user_key`` (None and not an integer: no landed events).
        """
        column = "user_id" if subject == "user" else "session_id"
        if subject == "user":
            key = user_key if user_key is not None else (int(subject_id) if subject_id.strip().lstrip("+-").isdigit() else None)
        else:
            key = subject_id
        with self._connection() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                deleted = conn.execute(f"DELETE FROM events WHERE {column} = ?", (key,)).rowcount if key is not None else 0
                conn.execute("INSERT INTO erasures (subject, subject_id, requested_at) VALUES (?, ?, ?)",
                             (subject, str(subject_id), time.time()))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return deleted

    def pending_erasures(self) -> list[tuple[int, str, str, float]]:
        with self._connection() as conn:
            return conn.execute(
                "SELECT erasure_id, subject, subject_id, requested_at FROM erasures ORDER BY erasure_id").fetchall()

    def erased_users(self) -> set[str]:
        """Ids (as the source spells them) of users whose erasure the warehouse has not applied yet."""
        with self._connection() as conn:
            rows = conn.execute("SELECT subject_id FROM erasures WHERE subject = 'user'").fetchall()
        return {str(r[0]) for r in rows}

    def forget_erasures(self, erasure_ids: list[int]) -> None:
        """Drops erasure requests once the warehouse has applied (and audited) them."""
        if not erasure_ids:
            return
        with self._connection() as conn:
            conn.executemany("DELETE FROM erasures WHERE erasure_id = ?", [(i,) for i in erasure_ids])

    def compact(self, merged_up_to: int, older_than_s: float) -> int:
        """Deletes merged events older than ``older_than_s``; the warehouse holds them now."""
        with self._connection() as conn:
            return conn.execute("DELETE FROM events WHERE event_id <= ? AND received_at < ?",
                                (merged_up_to, time.time() - older_than_s)).rowcount

    def count(self) -> int:
        with self._connection() as conn:
            return conn.execute("SELECT count(*) FROM events").fetchone()[0]

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


class _GroupCommit:
    """One writer at a time; whoever finds no writer busy writes everything queued so far."""

    def __init__(self, write):
        self._write = write
        self._cond = threading.Condition()
        self._queue: list[dict] = []
        self._writing = False

    def submit(self, rows: list[tuple]) -> list[int]:
        entry = {"rows": rows, "ids": None, "error": None, "done": False}
        with self._cond:
            self._queue.append(entry)
            while not entry["done"]:
                if self._writing:
                    self._cond.wait()
                    continue
                self._writing = True
                batch, self._queue = self._queue, []
                self._cond.release()
                try:
                    try:
                        for queued, ids in zip(batch, self._write([b["rows"] for b in batch])):
                            queued["ids"] = ids
                    except BaseException as e:  # noqa: BLE001 - handed to every waiting caller
                        for queued in batch:
                            queued["error"] = e
                finally:
                    self._cond.acquire()
                    self._writing = False
                    for queued in batch:
                        queued["done"] = True
                    self._cond.notify_all()
        if entry["error"] is not None:
            raise entry["error"]
        return entry["ids"]


class _Reusable:
    """A context manager over a thread's long-lived connection that does not close it."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        return self.conn

    def __exit__(self, *exc) -> None:
        return None
