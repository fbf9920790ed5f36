"""The suite's write-gate check (``tests.reliability.gatecheck``) finds an ungated writer."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from broker.db import gated_session, make_engine, migrate, session_scope
from tests.reliability import gatecheck

REPLAY = SQLModel.metadata.tables["replay_seen"]
LATER = datetime.now(UTC) + timedelta(hours=1)

# A writer as the service's code would be, were it to skip the gate: compiled as a module of
# the broker package (the check knows the service's code by where it lives).
_SERVICE_SOURCE = """
def remember_without_the_gate(session_scope, engine, table, jti, expires_at):
    with session_scope(engine) as session:
        session.execute(table.insert(), [{"jti": jti, "expires_at": expires_at}])

def remember_in(session, table, jti, expires_at):
    session.execute(table.insert(), [{"jti": jti, "expires_at": expires_at}])
"""


def _service_functions() -> dict[str, Callable[..., None]]:
    namespace: dict[str, Callable[..., None]] = {}
    path = gatecheck.SERVICE_PACKAGES[0] / "ungated_example.py"
    code = compile(_SERVICE_SOURCE, str(path), "exec")
    exec(code, namespace)  # noqa: S102 - fixed source above
    return namespace


@pytest.fixture
def sqlite_file_engine(tmp_path: Path) -> Iterator[Engine]:
    """A migrated SQLite file (the check watches files only: they have a gate of their own)."""
    engine = make_engine(f"sqlite:///{tmp_path / 'gate.db'}")
    try:
        migrate(engine)
        yield engine
    finally:
        engine.dispose()


def _recorded() -> list[str]:
    found = list(gatecheck._UNGATED)
    gatecheck._UNGATED.clear()  # this test's findings are its subject, not a failure
    return found


def test_a_service_writer_without_the_gate_is_found(sqlite_file_engine: Engine) -> None:
    remember = _service_functions()["remember_without_the_gate"]
    remember(session_scope, sqlite_file_engine, REPLAY, "ungated-1", LATER)
    found = _recorded()
    assert len(found) == 1
    assert found[0].startswith("broker/ungated_example.py:")
    assert "(remember_without_the_gate)" in found[0]
    assert "INSERT INTO replay_seen" in found[0]


def test_a_writer_in_the_gate_is_not(sqlite_file_engine: Engine) -> None:
    remember_in = _service_functions()["remember_in"]
    with gated_session(sqlite_file_engine) as session:
        remember_in(session, REPLAY, "gated-1", LATER)
    assert _recorded() == []


def test_a_transaction_the_test_hands_to_the_service_is_the_tests(
    sqlite_file_engine: Engine,
) -> None:
    # Test set-up writing through the service's helpers in a session of its own.
    remember_in = _service_functions()["remember_in"]
    with session_scope(sqlite_file_engine) as session:
        remember_in(session, REPLAY, "set-up-1", LATER)
    assert _recorded() == []
    with sqlite_file_engine.connect() as connection:
        count = connection.execute(sa.select(sa.func.count()).select_from(REPLAY)).scalar()
    assert count == 1
