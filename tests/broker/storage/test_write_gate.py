"""Every writer queues at SQLite's write gate; ``gated_at_first_write`` takes it only to write."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel

from broker.api.tables import IdempotencyRecord
from broker.db import gated_at_first_write, write_gate, writes
from tests.dbfixtures import finishes_while_the_gate_is_held

REPLAY = SQLModel.metadata.tables["replay_seen"]
LATER = datetime.now(UTC) + timedelta(hours=1)


def _finishes_while_the_gate_is_held(engine: Engine, work: Callable[[Session], object]) -> bool:
    """Whether ``work``, in ``gated_at_first_write``, finishes while another writer holds
    the gate."""

    def unit() -> None:
        with gated_at_first_write(engine) as session:
            work(session)

    return finishes_while_the_gate_is_held(engine, unit)


def test_a_unit_that_only_reads_does_not_wait_for_the_gate(db_engine: Engine) -> None:
    def read(session: Session) -> None:
        session.execute(sa.select(sa.func.count()).select_from(REPLAY)).scalar_one()

    assert _finishes_while_the_gate_is_held(db_engine, read)


def test_a_unit_that_writes_waits_for_the_gate_on_sqlite(db_engine: Engine) -> None:
    def read_then_write(session: Session) -> None:
        session.execute(sa.select(sa.func.count()).select_from(REPLAY)).scalar_one()
        session.execute(sa.insert(REPLAY), [{"jti": "gated-1", "expires_at": LATER}])

    finished = _finishes_while_the_gate_is_held(db_engine, read_then_write)
    # PostgreSQL has no gate: the write goes ahead at once.
    assert finished is (db_engine.dialect.name != "sqlite")
    with db_engine.connect() as connection:
        stored = connection.execute(sa.select(REPLAY.c.jti)).scalars().all()
    assert stored == ["gated-1"]


def test_an_orm_flush_at_commit_waits_for_the_gate_too(db_engine: Engine) -> None:
    def add(session: Session) -> None:
        # Written by the commit's flush, after the unit's own code has returned.
        session.add(
            IdempotencyRecord(
                party="police",
                key="k-1",
                request_sha256="0" * 64,
                status_code=202,
                body="{}",
                expires_at=LATER,
            )
        )

    finished = _finishes_while_the_gate_is_held(db_engine, add)
    assert finished is (db_engine.dialect.name != "sqlite")


def test_a_write_after_a_commit_part_way_waits_for_the_gate_too(db_engine: Engine) -> None:
    def read_commit_write(session: Session) -> None:
        session.execute(sa.select(sa.func.count()).select_from(REPLAY)).scalar_one()
        session.commit()  # the next statement begins a second transaction
        session.execute(sa.insert(REPLAY), [{"jti": "second-1", "expires_at": LATER}])

    finished = _finishes_while_the_gate_is_held(db_engine, read_commit_write)
    assert finished is (db_engine.dialect.name != "sqlite")


@pytest.mark.parametrize(
    ("statement", "writing"),
    [
        ("INSERT INTO inbox VALUES (1)", True),
        ("  update audit_head SET seq = 1", True),
        ("\nDELETE FROM replay_seen", True),
        ("REPLACE INTO t VALUES (1)", True),
        ("SELECT * FROM inbox", False),
        ("PRAGMA wal_checkpoint(PASSIVE)", False),
    ],
)
def test_writes_are_told_from_reads(statement: str, writing: bool) -> None:
    assert writes(statement) is writing


def test_the_gate_is_let_go_when_the_unit_fails(db_engine: Engine) -> None:
    def fail_after_writing() -> None:
        with gated_at_first_write(db_engine) as session:
            session.execute(sa.insert(REPLAY), [{"jti": "rolled-back", "expires_at": LATER}])
            raise RuntimeError("staff action failed")

    with pytest.raises(RuntimeError, match="staff action failed"):
        fail_after_writing()
    # Another thread can take the gate at once, and nothing was kept.
    taken: list[bool] = []

    def take() -> None:
        with write_gate(db_engine) as gate:
            gate.enter()
            taken.append(True)

    worker = threading.Thread(target=take)
    worker.start()
    worker.join(5)
    assert taken == [True]
    with db_engine.connect() as connection:
        assert connection.execute(sa.select(sa.func.count()).select_from(REPLAY)).scalar() == 0
