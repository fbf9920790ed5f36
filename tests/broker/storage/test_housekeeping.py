"""Housekeeping: expired token ids and idempotency answers are removed, a chunk at a time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from broker.api.idempotency import IdempotencyStore
from broker.api.tables import IdempotencyRecord
from broker.db import DbReplayStore, delete_expired, make_sessionmaker
from tests.dbfixtures import finishes_while_the_gate_is_held

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
REPLAY = SQLModel.metadata.tables["replay_seen"]
IDEMPOTENCY = SQLModel.metadata.tables[IdempotencyRecord.__tablename__]


def _replay_ids(engine: Engine, expiries: dict[str, datetime]) -> None:
    with engine.begin() as connection:
        connection.execute(
            sa.insert(REPLAY), [{"jti": jti, "expires_at": at} for jti, at in expiries.items()]
        )


def _answers(engine: Engine, expiries: dict[tuple[str, str], datetime]) -> None:
    with engine.begin() as connection:
        connection.execute(
            sa.insert(IDEMPOTENCY),
            [
                {
                    "party": party,
                    "key": key,
                    "request_sha256": "0" * 64,
                    "status_code": 202,
                    "body": "{}",
                    "created_at": at - timedelta(days=1),
                    "expires_at": at,
                }
                for (party, key), at in expiries.items()
            ],
        )


def _left(engine: Engine, table: sa.Table, *columns: str) -> set[Any]:
    with engine.connect() as connection:
        rows = connection.execute(sa.select(*(table.c[c] for c in columns))).all()
    return {row[0] if len(columns) == 1 else tuple(row) for row in rows}


def test_only_ids_expired_before_the_cutoff_are_removed(db_engine: Engine) -> None:
    _replay_ids(
        db_engine,
        {
            "long-gone": NOW - timedelta(days=8),
            "just-gone": NOW - timedelta(microseconds=1),
            "at-the-cutoff": NOW,
            "current": NOW + timedelta(minutes=5),
        },
    )
    assert DbReplayStore(db_engine).prune(NOW) == 2
    assert _left(db_engine, REPLAY, "jti") == {"at-the-cutoff", "current"}


def test_answers_expiring_at_the_cutoff_go_too_and_keys_are_pairs(db_engine: Engine) -> None:
    # The answer's key is (party, key): the same key of another party is another row.
    _answers(
        db_engine,
        {
            ("police", "k-1"): NOW - timedelta(hours=1),
            ("police", "k-2"): NOW,
            ("health", "k-1"): NOW + timedelta(hours=1),
            ("health", "k-2"): NOW + timedelta(days=1),
        },
    )
    store = IdempotencyStore(make_sessionmaker(db_engine), ttl=timedelta(days=1))
    assert store.prune(NOW) == 2
    assert _left(db_engine, IDEMPOTENCY, "party", "key") == {("health", "k-1"), ("health", "k-2")}


def test_a_pile_of_expired_rows_goes_in_transactions_of_a_chunk_each(db_engine: Engine) -> None:
    _replay_ids(db_engine, {f"old-{n}": NOW - timedelta(days=1) for n in range(1_234)})
    _replay_ids(db_engine, {f"new-{n}": NOW + timedelta(days=1) for n in range(10)})
    commits: list[int] = []

    def count(_connection: object) -> None:
        commits.append(1)

    sa.event.listen(db_engine, "commit", count)
    try:
        assert delete_expired(db_engine, REPLAY, NOW, chunk=500) == 1_234
    finally:
        sa.event.remove(db_engine, "commit", count)
    assert len(commits) == 3  # 500, 500, 234: the last, short of a chunk, ends it
    assert _left(db_engine, REPLAY, "jti") == {f"new-{n}" for n in range(10)}


def test_nothing_expired_is_one_short_transaction(db_engine: Engine) -> None:
    _replay_ids(db_engine, {"current": NOW + timedelta(days=1)})
    assert delete_expired(db_engine, REPLAY, NOW, chunk=500) == 0
    assert _left(db_engine, REPLAY, "jti") == {"current"}


def test_each_chunk_queues_at_the_write_gate(db_engine: Engine) -> None:
    # On SQLite a chunk waits for the writer holding the gate; PostgreSQL has no gate.
    _replay_ids(db_engine, {f"old-{n}": NOW - timedelta(days=1) for n in range(3)})
    deleted: list[int] = []
    finished_under_the_gate = finishes_while_the_gate_is_held(
        db_engine, lambda: deleted.append(delete_expired(db_engine, REPLAY, NOW, chunk=2))
    )
    assert deleted == [3]
    assert finished_under_the_gate is (db_engine.dialect.name != "sqlite")


@pytest.mark.parametrize("chunk", [0, -1])
def test_a_chunk_must_hold_a_row(db_engine: Engine, chunk: int) -> None:
    with pytest.raises(ValueError, match="chunk"):
        delete_expired(db_engine, REPLAY, NOW, chunk=chunk)
