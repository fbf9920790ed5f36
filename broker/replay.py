"""Replay protection: remember each token id (jti) until its token expires."""

from __future__ import annotations

import heapq
import sqlite3
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Protocol, runtime_checkable

from broker.exceptions import ConfigurationError, ReplayDetected, TransportError

__all__ = ["MemoryReplayStore", "ReplayStore", "SqliteReplayStore"]


@runtime_checkable
class ReplayStore(Protocol):
    """Where the jtis of opened disclosures are remembered.

    Implementations must make :meth:`check_and_remember` atomic: of two concurrent calls
    with the same jti, exactly one returns and the other raises ``ReplayDetected``.
    """

    def check_and_remember(self, jti: str, expires_at: datetime) -> None:
        """Remember ``jti`` until ``expires_at``; raise ``ReplayDetected`` if already known.

        Args:
            jti: The token id.
            expires_at: When the token stops being acceptable anyway; the store may forget
                the jti after this instant.

        Raises:
            ReplayDetected: The jti was remembered before and has not yet expired.
        """
        ...


class MemoryReplayStore:
    """A per-process replay store: a dict plus an expiry heap, pruned on every call.

    Suits tests, one-process deployments and the benchmark. Memory grows with the number of
    tokens opened within one token lifetime.
    """

    def __init__(self) -> None:
        self._expiry: dict[str, float] = {}
        self._heap: list[tuple[float, str]] = []
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._expiry)

    def __contains__(self, jti: object) -> bool:
        """Whether ``jti`` is remembered and has not yet expired."""
        with self._lock:
            known = self._expiry.get(jti) if isinstance(jti, str) else None
        return known is not None and known > time.time()

    def check_and_remember(self, jti: str, expires_at: datetime) -> None:
        """See :meth:`ReplayStore.check_and_remember`."""
        deadline = expires_at.timestamp()
        now = time.time()
        with self._lock:
            self._prune(now)
            known = self._expiry.get(jti)
            if known is not None and known > now:
                raise ReplayDetected(f"token jti={jti} was already opened")
            self._expiry[jti] = deadline
            heapq.heappush(self._heap, (deadline, jti))

    def _prune(self, now: float) -> None:
        heap = self._heap
        while heap and heap[0][0] <= now:
            deadline, jti = heapq.heappop(heap)
            # A jti may sit in the heap twice if it was remembered again after expiring.
            if self._expiry.get(jti) == deadline:
                del self._expiry[jti]


class SqliteReplayStore:
    """A replay store in a SQLite file, shared by every process that opens the same file.

    The command line uses it so that ``envelope open`` run twice on one disclosure refuses
    the second time. The primary key makes check-and-remember atomic across processes.
    """

    def __init__(self, path: Path) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Usable from any thread (e.g. asyncio.to_thread); the lock serialises this
            # connection, and SQLite's own locking serialises connections.
            self._db = sqlite3.connect(
                path, timeout=10.0, isolation_level=None, check_same_thread=False
            )
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS seen_jti"
                " (jti TEXT PRIMARY KEY, expires_at REAL NOT NULL)"
            )
        except (OSError, sqlite3.Error) as exc:
            raise ConfigurationError(f"replay store {path}: cannot be opened ({exc})") from exc
        self._path = path
        self._lock = threading.Lock()

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._db.close()

    def check_and_remember(self, jti: str, expires_at: datetime) -> None:
        """See :meth:`ReplayStore.check_and_remember`."""
        now = time.time()
        with self._lock:
            inserted = self._insert(jti, expires_at.timestamp(), now)
        if inserted == 0:
            raise ReplayDetected(f"token jti={jti} was already opened")

    def _insert(self, jti: str, deadline: float, now: float) -> int:
        try:
            # IMMEDIATE takes the write lock first, so two processes cannot both see "absent".
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute("DELETE FROM seen_jti WHERE expires_at <= ?", (now,))
                inserted = self._db.execute(
                    "INSERT OR IGNORE INTO seen_jti (jti, expires_at) VALUES (?, ?)",
                    (jti, deadline),
                ).rowcount
            except sqlite3.Error:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise TransportError(f"replay store {self._path}: {exc}") from exc
        return inserted
