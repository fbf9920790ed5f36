"""SQLite's write-ahead log checkpointed by a background thread, not by the writers.

In WAL mode every commit appends to the log, and the writer whose commit takes the log
past ``wal_autocheckpoint`` pages copies what is not yet copied back into the database
file, there and then, inside its commit. With SQLite's default of 1,000 pages that was
several times a second at 200 HTTP requests a second (a request's commit writes about 40
pages), and the HTTP API's store batches' 99th percentile was 7.5 ms against 3.4 without
it (docs/performance.md). Here a thread of the service checkpoints the log every
``every`` seconds without taking the write lock (``PASSIVE``: it copies what no reader
still needs, while the writers go on), so the bulk of the copying is off the writers'
path.

The writers' own checkpoint stays, further out (``broker.db.SQLITE_AUTOCHECKPOINT_PAGES``):
a writer starts the log again from its beginning only if it finds all of it copied, and
under steady writes some land during every background checkpoint. The writer whose commit
passes that size copies the little the thread has not (a twentieth of a second's writes)
and the next one starts the log again; without the thread (the CLI, the tests) the writers
do it all, as SQLite does by default. The thread takes no gate and waits for no reader:
copying under the write gate from a thread measured 10-12 ms a time, that thread waiting
for the interpreter lock at each SQLite call while the event loop held it.

One thread per database and process, however many parts ask for it
(``hold_wal_checkpoints``); on PostgreSQL, or an in-memory SQLite database, there is
nothing to do.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass

from sqlalchemy.engine import Engine

from broker.db import sqlite_database_file
from broker.logging import get_logger

__all__ = [
    "CheckpointResult",
    "WalCheckpoints",
    "hold_wal_checkpoints",
    "release_wal_checkpoints",
]

_log = get_logger("db")

#: Seconds between background checkpoints.
EVERY_SECONDS = 0.05


@dataclass(frozen=True)
class CheckpointResult:
    """What one checkpoint found: SQLite's ``wal_checkpoint`` row."""

    #: The checkpoint could not finish (a reader or writer held what it needed).
    busy: bool
    #: Pages in the log.
    log_pages: int
    #: Pages of it now copied into the database file.
    copied_pages: int


class WalCheckpoints:
    """A thread that checkpoints one SQLite database's log (see the module's docstring)."""

    def __init__(self, engine: Engine, *, every: float = EVERY_SECONDS) -> None:
        self._engine = engine
        self._every = every
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @staticmethod
    def applies_to(engine: Engine) -> bool:
        """Whether ``engine`` is a SQLite database file (in WAL mode, as ``make_engine``
        opens one)."""
        return sqlite_database_file(engine) is not None

    def start(self) -> None:
        """Start the thread (once)."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="sqlite wal checkpoints", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        """Stop the thread after its checkpoint in progress, if any."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def checkpoint(self) -> CheckpointResult:
        """One passive checkpoint: what no reader still needs is copied; waits for nobody."""
        with self._engine.connect() as connection:
            row = connection.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").one()
        return CheckpointResult(busy=bool(row[0]), log_pages=row[1], copied_pages=row[2])

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            try:
                self.checkpoint()
            except Exception as exc:  # noqa: BLE001 - tried again next time; writers are the net
                _log.warning("wal_checkpoint_failed", error=type(exc).__name__)


_HELD: weakref.WeakKeyDictionary[Engine, tuple[WalCheckpoints, int]] = weakref.WeakKeyDictionary()
_HELD_LOCK = threading.Lock()


def hold_wal_checkpoints(engine: Engine) -> None:
    """Ask for ``engine``'s background checkpoints; started by the first to ask.

    Each call is matched by one ``release_wal_checkpoints``. No-op unless ``engine`` is a
    SQLite database file.
    """
    if not WalCheckpoints.applies_to(engine):
        return
    with _HELD_LOCK:
        checkpoints, holders = _HELD.get(engine, (None, 0))
        if checkpoints is None:
            checkpoints = WalCheckpoints(engine)
            checkpoints.start()
        _HELD[engine] = (checkpoints, holders + 1)


def release_wal_checkpoints(engine: Engine) -> None:
    """Let go of ``engine``'s background checkpoints; the last to let go stops the thread."""
    with _HELD_LOCK:
        held = _HELD.get(engine)
        if held is None:
            return
        checkpoints, holders = held
        if holders > 1:
            _HELD[engine] = (checkpoints, holders - 1)
            return
        del _HELD[engine]
    checkpoints.stop()
