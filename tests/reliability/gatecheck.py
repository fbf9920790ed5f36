"""A pytest plugin: every write the service makes to a SQLite file queues at the write gate.

Loaded from tests/conftest.py for the whole session. SQLite has one write lock; the
service's writers take ``broker.db``'s write gate before their first write, so they queue
in order instead of sleeping in SQLite's busy handler, and a batch run on an event loop
(which it does only while the gate is free) never meets a writer that did not queue.
A writer that skips the gate breaks that quietly: nothing fails, a batch just stalls.

This plugin watches every statement run on a SQLite database file. An INSERT, UPDATE,
DELETE or REPLACE run by a thread that does not hold the gate, in a transaction the
service's code opened (``_service_writer``: the outermost function of the ``broker`` or
``adapters`` packages on the stack, unless the test handed it its session or connection),
is recorded, and the test that ran it fails at teardown naming the code that wrote.
Writes in a transaction of the test's own, and ``broker.db.migrate``'s (which runs before
any writer starts), are not the service's concurrent writers and are left alone.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

import adapters
import broker
from broker.db import _gate_lock, sqlite_database_file, writes

#: Where the service's code is (wherever the packages were installed from), and the tests.
SERVICE_PACKAGES = tuple(Path(str(p.__file__)).resolve().parent for p in (broker, adapters))
_SERVICE = tuple(f"{package}/" for package in SERVICE_PACKAGES)
_ROOT = SERVICE_PACKAGES[0].parent
_TESTS = str(Path(__file__).resolve().parents[1]) + "/"

#: The schema's migrations: they run before any writer starts.
_MIGRATIONS = frozenset({"migrate", "downgrade"})
#: Transaction openers of ``broker.db``: one that a test called itself opened the test's.
_OPENERS = frozenset({"session_scope"})

_UNGATED: list[str] = []


def _where(frame: FrameType) -> str:
    name = Path(frame.f_code.co_filename).relative_to(_ROOT)
    return f"{name}:{frame.f_lineno} ({frame.f_code.co_name})"


def _given_a_transaction(frame: FrameType) -> bool:
    """Whether the function of ``frame`` was handed a session or connection by its caller."""
    code = frame.f_code
    arguments = code.co_varnames[: code.co_argcount + code.co_kwonlyargcount]
    return any(isinstance(frame.f_locals.get(a), Session | sa.Connection) for a in arguments)


def _service_writer() -> str | None:
    """Where the service's code that owns the statement's transaction called it, or None
    if the transaction is not the service's own.

    The stack is walked from the statement outwards to the test (or to the bottom of a
    worker thread's stack); the outermost function of ``broker/`` or ``adapters/`` met on
    the way is the service's entry. If a test handed that function its session or
    connection, or that function is ``session_scope`` (called by the test), the
    transaction is the test's; ``broker.db.migrate`` runs before any writer starts.
    """
    frame: FrameType | None = sys._getframe(2)
    innermost: FrameType | None = None
    outermost: FrameType | None = None
    while frame is not None:
        name = frame.f_code.co_filename
        if name.startswith(_TESTS):
            break
        if name.startswith(_SERVICE):
            innermost = innermost or frame
            outermost = frame
            if frame.f_code.co_name in _MIGRATIONS:
                return None
        frame = frame.f_back
    if outermost is None or innermost is None:
        return None
    if outermost.f_code.co_name in _OPENERS or _given_a_transaction(outermost):
        return None
    if outermost is innermost:
        return _where(innermost)
    return f"{_where(outermost)} -> {_where(innermost)}"


def _watch(conn: sa.Connection, _cursor: Any, statement: str, *_args: Any, **_kwargs: Any) -> None:
    if not writes(statement):
        return
    engine = conn.engine
    if engine.dialect.name != "sqlite" or sqlite_database_file(engine) is None:
        return
    lock = _gate_lock(engine)
    if lock is None or lock.held_here():
        return
    caller = _service_writer()
    if caller is not None:
        verb = " ".join(statement.split()[:3])
        _UNGATED.append(f"{caller}: {verb}")


def pytest_configure(config: pytest.Config) -> None:
    sa.event.listen(sa.Engine, "before_cursor_execute", _watch)


@pytest.fixture(autouse=True)
def _writes_queue_at_the_gate() -> Iterator[None]:
    """Fails a test in which the service wrote to a SQLite file without the write gate."""
    _UNGATED.clear()
    yield
    found = sorted(set(_UNGATED))
    _UNGATED.clear()
    if found:
        pytest.fail("writes without the write gate:\n" + "\n".join(found), pytrace=False)
