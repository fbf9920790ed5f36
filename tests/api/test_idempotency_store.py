"""The ``Idempotency-Key`` store on both databases: look-ups, the answer hook, requests in flight.

The hook runs inside the ingest transaction (``broker.pipeline.StoreHook``); here it runs on
a connection in a transaction of the test's own, as the pipeline would call it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from broker.api.idempotency import ClaimState, IdempotencyStore
from broker.api.tables import IdempotencyRecord
from broker.db import make_sessionmaker
from broker.exceptions import TransportError
from broker.pipeline import IngestResult

PARTY, KEY, DIGEST = "tvp-police", "retry-1", "d" * 64
TABLE = IdempotencyRecord.__table__  # type: ignore[attr-defined]


def _render(result: IngestResult) -> tuple[int, str]:
    return 202, f'{{"duplicate": {str(result.duplicate).lower()}}}'


@pytest.fixture
def store(db_engine: Engine) -> IdempotencyStore:
    return IdempotencyStore(make_sessionmaker(db_engine), ttl=timedelta(hours=1))


def _row(
    engine: Engine, *, status: int | None, expires_in: timedelta, digest: str = DIGEST
) -> None:
    now = datetime.now(UTC)
    with engine.begin() as connection:
        connection.execute(
            sa.insert(TABLE),
            {
                "party": PARTY,
                "key": KEY,
                "request_sha256": digest,
                "status_code": status,
                "body": None if status is None else '{"first": true}',
                "created_at": now - timedelta(minutes=1),
                "expires_at": now + expires_in,
            },
        )


def _stored_on(connection: sa.Connection) -> list[tuple[Any, ...]]:
    rows = connection.execute(sa.select(TABLE.c.request_sha256, TABLE.c.status_code, TABLE.c.body))
    return [tuple(row) for row in rows]


def _stored(engine: Engine) -> list[tuple[Any, ...]]:
    with engine.connect() as connection:
        return _stored_on(connection)


def test_a_new_key_is_stored_with_its_answer_and_then_replayed(
    store: IdempotencyStore, db_engine: Engine
) -> None:
    assert store.look(PARTY, KEY, DIGEST).state is ClaimState.NEW
    hook = store.answer_hook(PARTY, KEY, DIGEST, _render)
    with db_engine.begin() as connection:
        assert hook.before(connection)
        hook.after(connection, IngestResult(raw_id=None, duplicate=True))
    again = store.look(PARTY, KEY, DIGEST)
    assert (again.state, again.status_code, again.body) == (
        ClaimState.REPLAY,
        202,
        '{"duplicate": true}',
    )
    assert store.look(PARTY, KEY, "e" * 64).state is ClaimState.MISMATCH
    assert store.look("fhft-hospital", KEY, DIGEST).state is ClaimState.NEW


def test_a_hook_rolled_back_with_its_transaction_leaves_nothing(
    store: IdempotencyStore, db_engine: Engine
) -> None:
    hook = store.answer_hook(PARTY, KEY, DIGEST, _render)
    connection = db_engine.connect()
    try:
        with connection.begin():
            assert hook.before(connection)
            hook.after(connection, IngestResult(raw_id=None))
            assert _stored_on(connection) == [(DIGEST, 202, '{"duplicate": false}')]
            connection.rollback()  # the store failed after the answer was written
    finally:
        connection.close()
    assert _stored(db_engine) == []
    assert store.look(PARTY, KEY, DIGEST).state is ClaimState.NEW


def test_a_key_answered_meanwhile_holds_the_request_back(
    store: IdempotencyStore, db_engine: Engine
) -> None:
    _row(db_engine, status=202, expires_in=timedelta(hours=1))
    with db_engine.begin() as connection:
        assert not store.answer_hook(PARTY, KEY, DIGEST, _render).before(connection)
    assert _stored(db_engine) == [(DIGEST, 202, '{"first": true}')]


@pytest.mark.parametrize(
    ("status", "expires_in"),
    [(202, timedelta(seconds=-1)), (None, timedelta(hours=1))],
    ids=["expired answer", "unanswered claim of an earlier version"],
)
def test_an_expired_answer_or_an_old_claim_gives_way(
    store: IdempotencyStore, db_engine: Engine, status: int | None, expires_in: timedelta
) -> None:
    _row(db_engine, status=status, expires_in=expires_in, digest="0" * 64)
    assert store.look(PARTY, KEY, DIGEST).state is ClaimState.NEW
    hook = store.answer_hook(PARTY, KEY, DIGEST, _render)
    with db_engine.begin() as connection:
        assert hook.before(connection)
        hook.after(connection, IngestResult(raw_id=None))
    assert _stored(db_engine) == [(DIGEST, 202, '{"duplicate": false}')]


def test_a_second_answer_for_one_key_meets_the_primary_key(
    store: IdempotencyStore, db_engine: Engine
) -> None:
    # Two processes whose transactions both passed ``before``: the second insert fails, its
    # batch is stored again alone, and ``before`` then holds it back (as above).
    first = store.answer_hook(PARTY, KEY, DIGEST, _render)
    with db_engine.begin() as connection:
        first.after(connection, IngestResult(raw_id=None))
    with pytest.raises(sa.exc.IntegrityError), db_engine.begin() as connection:
        first.after(connection, IngestResult(raw_id=None))


def test_a_request_in_flight_is_known_to_its_process_until_it_ends(
    store: IdempotencyStore, db_engine: Engine
) -> None:
    other = IdempotencyStore(make_sessionmaker(db_engine), ttl=timedelta(hours=1))
    assert store.begin(PARTY, KEY)
    assert not store.begin(PARTY, KEY)
    assert other.begin(PARTY, KEY)  # another process does not know of it
    store.end(PARTY, KEY)
    assert store.begin(PARTY, KEY)


def test_a_look_up_in_an_outage_is_a_transport_error(
    store: IdempotencyStore, db_engine: Engine
) -> None:
    def gone(*_args: Any, **_kwargs: Any) -> None:
        raise sa.exc.OperationalError("statement", {}, ConnectionError("server gone"))

    sa.event.listen(db_engine, "before_cursor_execute", gone)
    try:
        with pytest.raises(TransportError):
            store.look(PARTY, KEY, DIGEST)
    finally:
        sa.event.remove(db_engine, "before_cursor_execute", gone)
    assert store.look(PARTY, KEY, DIGEST).state is ClaimState.NEW
