"""SQLite's write-ahead log checkpointed by a background thread, not by the writers.

In WAL mode every commit appends to the log, and the writer whose commit takes the log
past ``wal_autocheckpoint`` pages copies it back into the database file there and then,
inside its commit. With SQLite's default of 1,000 pages that was every half second at 200
HTTP requests a second, and each such commit took 5-10 ms instead of 1.7 (the requests of
its batch, and everything queued behind it at the write gate, waited that long:
docs/performance.md). Here a thread of the service checkpoints the log every
``every`` seconds without taking the write lock (``PASSIVE``: it copies what no reader
still needs, while the writers go on). The writers' own checkpoint stays as a safety net,
far out (``broker.db.SQLITE_AUTOCHECKPOINT_PAGES``), for processes without the thread.

A passive checkpoint never makes the log start again from its beginning; SQLite does that
at a writer's next transaction once the whole log has been copied. Under steady writes
the log can keep growing, so when it holds ``restart_pages`` the thread takes the write
gate and checkpoints with ``RESTART`` (the writers wait for that one, rarely).

One thread per database and process, however many parts ask for it (``hold``); on
PostgreSQL, or an in-memory SQLite database, there is nothing to do.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass

from sqlalchemy.engine import Engine

from broker.db import write_gate
from broker.logging import get_logger

__all__ = [
    "CheckpointResult",
    "WalCheckpoints",
    "hold_wal_checkpoints",
    "release_wal_checkpoints",
]

_log = get_logger("db")

#: Seconds between background checkpoints.
EVERY_SECONDS = 0.5
#: Pages of log at which the thread restarts it from its beginning, under the write gate.
RESTART_PAGES = 8_192


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

    def __init__(
        self, engine: Engine, *, every: float = EVERY_SECONDS, restart_pages: int = RESTART_PAGES
    ) -> None:
        self._engine = engine
        self._every = every
        self._restart_pages = restart_pages
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @staticmethod
    def applies_to(engine: Engine) -> bool:
        """Whether ``engine`` is a SQLite database file (in WAL mode, as ``make_engine``
        opens one)."""
        database = engine.url.database
        return (
            engine.dialect.name == "sqlite"
            and bool(database)
            and database != ":memory:"
            and "mode=memory" not in str(engine.url)
        )

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
        """One passive checkpoint; a restarting one under the write gate if the log has
        grown to ``restart_pages``."""
        result = self._pragma("PASSIVE")
        if result.log_pages >= self._restart_pages:
            with write_gate(self._engine) as gate:
                gate.enter()
                result = self._pragma("RESTART")
            _log.info("wal_restarted", log_pages=result.log_pages, copied_pages=result.copied_pages)
        return result

    def _pragma(self, mode: str) -> CheckpointResult:
        with self._engine.connect() as connection:
            row = connection.exec_driver_sql(f"PRAGMA wal_checkpoint({mode})").one()
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
