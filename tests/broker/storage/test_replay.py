"""The database replay store: one winner per token id, on every backend and under concurrency."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import Session, select

from broker.db import DbReplayStore, make_engine, make_sessionmaker, remember_jti
from broker.exceptions import ReplayDetected, TransportError
from broker.models import InboxEntry, ReplaySeen
from broker.replay import ReplayStore

LATER = datetime(2030, 1, 1, tzinfo=UTC)


def test_a_token_id_is_accepted_once(db_engine) -> None:
    store = DbReplayStore(db_engine)
    store.check_and_remember("jti-1", LATER)
    store.check_and_remember("jti-2", LATER)
    with pytest.raises(ReplayDetected, match="jti-1"):
        store.check_and_remember("jti-1", LATER)


def test_concurrent_callers_have_exactly_one_winner(db_engine) -> None:
    store = DbReplayStore(db_engine)
    outcomes: list[str] = []
    barrier = threading.Barrier(4)

    def attempt() -> None:
        barrier.wait()
        try:
            store.check_and_remember("jti-race", LATER)
            outcomes.append("accepted")
        except ReplayDetected:
            outcomes.append("replay")

    threads = [threading.Thread(target=attempt) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["accepted", "replay", "replay", "replay"]


def test_an_expired_id_is_taken_over_without_waiting_for_prune(db_engine) -> None:
    now = [datetime(2026, 3, 1, 12, 0, tzinfo=UTC)]
    store = DbReplayStore(db_engine, clock=lambda: now[0])
    store.check_and_remember("jti-short", now[0] + timedelta(minutes=5))
    with pytest.raises(ReplayDetected):
        store.check_and_remember("jti-short", now[0] + timedelta(minutes=5))
    now[0] += timedelta(minutes=6)
    store.check_and_remember("jti-short", now[0] + timedelta(minutes=5))
    with pytest.raises(ReplayDetected):  # and the new expiry holds
        store.check_and_remember("jti-short", now[0] + timedelta(minutes=5))


def test_it_is_a_replay_store(db_engine) -> None:
    assert isinstance(DbReplayStore(db_engine), ReplayStore)


def test_prune_forgets_only_expired_ids(db_engine) -> None:
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    store = DbReplayStore(db_engine, clock=lambda: now)
    store.check_and_remember("old", now - timedelta(seconds=1))
    store.check_and_remember("current", now + timedelta(hours=1))
    assert store.prune() == 1
    store.check_and_remember("old", now + timedelta(hours=1))
    with pytest.raises(ReplayDetected):
        store.check_and_remember("current", now + timedelta(hours=2))


def test_remember_in_the_callers_transaction_rolls_back_with_it(db_session: Session) -> None:
    savepoint = db_session.begin_nested()
    remember_jti(db_session, "jti-tx", LATER)
    savepoint.rollback()
    remember_jti(db_session, "jti-tx", LATER)  # forgotten with the rollback: accepted again
    assert db_session.get(ReplaySeen, "jti-tx") is not None


def test_a_replay_does_not_abort_the_callers_transaction(db_session: Session) -> None:
    remember_jti(db_session, "jti-dup", LATER)
    with pytest.raises(ReplayDetected):
        remember_jti(db_session, "jti-dup", LATER)
    db_session.add(InboxEntry(consumer="mash-intake", message_id="after-replay"))
    db_session.flush()  # on PostgreSQL an aborted transaction would refuse this
    assert db_session.exec(select(InboxEntry)).one().message_id == "after-replay"


@pytest.mark.parametrize("jti", ["", "x" * 129])
def test_missing_or_oversized_ids_are_refused(db_session: Session, jti: str) -> None:
    with pytest.raises(ReplayDetected, match="128"):
        remember_jti(db_session, jti, LATER)


def test_unavailable_database_is_a_transport_error() -> None:
    engine = make_engine("postgresql://postgres@127.0.0.1:1/mash_test")
    try:
        with pytest.raises(TransportError, match="replay store unavailable"):
            DbReplayStore(engine).check_and_remember("jti-1", LATER)
    finally:
        engine.dispose()


def test_sessionmaker_sessions_see_the_same_store(db_engine) -> None:
    DbReplayStore(db_engine).check_and_remember("jti-shared", LATER)
    with make_sessionmaker(db_engine)() as session:
        assert session.get(ReplaySeen, "jti-shared") is not None
