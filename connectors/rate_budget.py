"""One request budget per API account, shared by every process that calls it (stdlib only).

HubSpot counts a private app's requests per portal and token, whichever process sends them; GA4
counts a property's concurrent requests the same way. A limiter inside one process cannot see the
requests of another run that Dagster started beside it, and learning about them from response headers
comes one answer too late: four processes that each believe the whole window is theirs send four
windows' worth before the first header tells them otherwise.

This module keeps the same sliding-window log the in-process limiter keeps (``ratelimit._Window``: the
send times of the last ``max`` requests of each bucket) in a SQLite file in WAL mode that every process
on the host opens. A request is booked inside ``BEGIN IMMEDIATE``, which takes SQLite's single write
lock, so two processes can never both take the last free slot. A booking is a few hundred microseconds,
far below the 10-100 ms that separate requests at HubSpot's rates. Times are wall-clock seconds
(``time.time``): monotonic clocks are not comparable between processes on every platform.

Accounts are opaque keys (the HubSpot limiter uses a hash of host and token, never the token).
A block after a 429 (``Retry-After`` or backoff) is shared too: nobody on the account sends until it
ends. Leases (``lease``/``release``) bound concurrent requests across processes (GA4's 10 per
property); a lease left by a killed process expires after ``ttl`` seconds.

SQLite file locks work between processes of one host (and one container); they are not reliable on
network file systems. Runs on several machines (Kubernetes run pods) need a store they all reach:
see the README's "Production deployment" section.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS sent (account TEXT NOT NULL, bucket TEXT NOT NULL, at REAL NOT NULL)",
    "CREATE INDEX IF NOT EXISTS sent_by_key ON sent (account, bucket, at)",
    "CREATE TABLE IF NOT EXISTS blocked (account TEXT NOT NULL, bucket TEXT NOT NULL, until REAL NOT NULL,"
    " PRIMARY KEY (account, bucket))",
    "CREATE TABLE IF NOT EXISTS leases (account TEXT NOT NULL, lease TEXT NOT NULL, expires REAL NOT NULL,"
    " PRIMARY KEY (account, lease))",
)
# Rows older than this are dropped whatever their account (accounts that no longer run).
_FORGET_AFTER_SECONDS = 86_400.0


class RateBudgetError(Exception):
    """The shared budget store cannot be opened or written (path, permissions, corruption)."""


class SharedRateBudget:
    """A sliding-window request log per (account, bucket) in a SQLite file; see the module docstring.

    Thread-safe and fork-safe: each process opens its own connection on first use.
    """

    def __init__(self, path: str | os.PathLike[str], busy_timeout_seconds: float = 30.0) -> None:
        self.path = Path(path)
        self.busy_timeout_seconds = busy_timeout_seconds
        self._lock = threading.Lock()
        self._con: sqlite3.Connection | None = None
        self._pid = -1
        self._last_forget = 0.0
        self._connection()  # fail at construction, before any API call, if the file cannot be used

    # --- connection ---------------------------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        if self._con is not None and self._pid == os.getpid():
            return self._con
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            con = sqlite3.connect(
                self.path, timeout=self.busy_timeout_seconds, isolation_level=None, check_same_thread=False
            )
            con.execute("PRAGMA journal_mode=WAL")
            # A lost booking after a power cut only costs one window of caution; fsync per request would not.
            con.execute("PRAGMA synchronous=NORMAL")
            for statement in _SCHEMA:
                con.execute(statement)
        except (sqlite3.Error, OSError) as exc:
            raise RateBudgetError(
                f"rate budget store {self.path}: cannot open it ({exc}); point the rate budget path at a "
                "writable local file (not a network file system)"
            ) from exc
        self._con, self._pid = con, os.getpid()
        return con

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction under SQLite's write lock (BEGIN IMMEDIATE)."""
        with self._lock:
            con = self._connection()
            con.execute("BEGIN IMMEDIATE")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")

    # --- sliding windows ----------------------------------------------------------------------------

    def try_take(self, account: str, windows: Sequence[tuple[str, int, float]], margin: float = 0.0) -> float:
        """Book one request in every ``(bucket, max_requests, interval_seconds)`` window, or none.

        Returns 0.0 when booked, else the seconds until a slot of every window may be free.
        """
        with self._write() as con:
            now = time.time()
            self._forget(con, now)
            wait = 0.0
            for bucket, max_requests, interval in windows:
                con.execute(
                    "DELETE FROM sent WHERE account = ? AND bucket = ? AND at <= ?",
                    (account, bucket, now - interval - margin),
                )
                row = con.execute(
                    "SELECT until FROM blocked WHERE account = ? AND bucket = ?", (account, bucket)
                ).fetchone()
                if row is not None:
                    wait = max(wait, row[0] - now)
                # The max-th most recent send must leave the window before another may go.
                row = con.execute(
                    "SELECT at FROM sent WHERE account = ? AND bucket = ? ORDER BY at DESC LIMIT 1 OFFSET ?",
                    (account, bucket, max(int(max_requests), 1) - 1),
                ).fetchone()
                if row is not None:
                    wait = max(wait, row[0] + interval + margin - now)
            if wait > 0:
                return wait
            con.executemany(
                "INSERT INTO sent (account, bucket, at) VALUES (?, ?, ?)",
                [(account, bucket, now) for bucket, _, _ in windows],
            )
            return 0.0

    def block(self, account: str, bucket: str, seconds: float) -> None:
        """Nobody sends on ``bucket`` of ``account`` for ``seconds`` (after a 429)."""
        with self._write() as con:
            until = time.time() + seconds
            con.execute(
                "INSERT INTO blocked (account, bucket, until) VALUES (?, ?, ?) "
                "ON CONFLICT (account, bucket) DO UPDATE SET until = max(until, excluded.until)",
                (account, bucket, until),
            )

    def count_since(self, account: str, bucket: str, since: float) -> int:
        """Requests booked on ``bucket`` of ``account`` after wall time ``since``."""
        with self._lock:
            row = (
                self._connection()
                .execute(
                    "SELECT count(*) FROM sent WHERE account = ? AND bucket = ? AND at > ?",
                    (account, bucket, since),
                )
                .fetchone()
            )
        return int(row[0])

    def book(self, account: str, bucket: str, count: int) -> None:
        """Book ``count`` requests sent now by someone outside the store (another app on the token)."""
        if count <= 0:
            return
        with self._write() as con:
            now = time.time()
            con.executemany(
                "INSERT INTO sent (account, bucket, at) VALUES (?, ?, ?)", [(account, bucket, now)] * count
            )

    # --- leases (concurrent requests) ---------------------------------------------------------------

    def lease(self, account: str, limit: int, ttl: float = 600.0) -> str | None:
        """A lease id if fewer than ``limit`` unexpired leases of ``account`` are held, else None."""
        with self._write() as con:
            now = time.time()
            con.execute("DELETE FROM leases WHERE account = ? AND expires <= ?", (account, now))
            (held,) = con.execute("SELECT count(*) FROM leases WHERE account = ?", (account,)).fetchone()
            if held >= limit:
                return None
            lease_id = uuid.uuid4().hex
            con.execute(
                "INSERT INTO leases (account, lease, expires) VALUES (?, ?, ?)",
                (account, lease_id, now + ttl),
            )
            return lease_id

    def release(self, account: str, lease_id: str) -> None:
        with self._write() as con:
            con.execute("DELETE FROM leases WHERE account = ? AND lease = ?", (account, lease_id))

    @contextlib.contextmanager
    def concurrent_slot(
        self, account: str, limit: int, ttl: float = 600.0, poll_seconds: float = 0.05
    ) -> Iterator[float]:
        """Hold one of ``limit`` concurrent-request slots of ``account``; yields the seconds waited."""
        waited = 0.0
        while (lease_id := self.lease(account, limit, ttl)) is None:
            time.sleep(poll_seconds)
            waited += poll_seconds
        try:
            yield waited
        finally:
            self.release(account, lease_id)

    # --- housekeeping -------------------------------------------------------------------------------

    def _forget(self, con: sqlite3.Connection, now: float) -> None:
        if now - self._last_forget < 3_600:
            return
        self._last_forget = now
        horizon = now - _FORGET_AFTER_SECONDS
        con.execute("DELETE FROM sent WHERE at <= ?", (horizon,))
        con.execute("DELETE FROM blocked WHERE until <= ?", (horizon,))
        con.execute("DELETE FROM leases WHERE expires <= ?", (horizon,))

    def close(self) -> None:
        with self._lock:
            if self._con is not None and self._pid == os.getpid():
                self._con.close()
            self._con = None


_OPEN: dict[str, SharedRateBudget] = {}
_OPEN_LOCK = threading.Lock()


def open_budget(path: str | os.PathLike[str]) -> SharedRateBudget:
    """The process's handle on the store at ``path`` (one connection per file and process)."""
    key = str(Path(path).resolve())
    with _OPEN_LOCK:
        budget = _OPEN.get(key)
        if budget is None:
            budget = _OPEN[key] = SharedRateBudget(key)
        return budget
