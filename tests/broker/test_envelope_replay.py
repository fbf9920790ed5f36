"""Replay stores: a jti is accepted once until it expires, atomically, in memory and on disk."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from broker.exceptions import ReplayDetected
from broker.replay import MemoryReplayStore, ReplayStore, SqliteReplayStore


def _later(**delta: float) -> datetime:
    return datetime.now(UTC) + timedelta(**delta)


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ReplayStore]:
    if request.param == "memory":
        yield MemoryReplayStore()
        return
    sqlite_store = SqliteReplayStore(tmp_path / "replay.sqlite3")
    yield sqlite_store
    sqlite_store.close()


def test_both_stores_satisfy_the_protocol(store: ReplayStore) -> None:
    assert isinstance(store, ReplayStore)


def test_a_jti_is_accepted_once(store: ReplayStore) -> None:
    store.check_and_remember("jti-aaaaaaaaaaaaaaaa", _later(hours=1))
    with pytest.raises(ReplayDetected, match="jti-aaaaaaaaaaaaaaaa"):
        store.check_and_remember("jti-aaaaaaaaaaaaaaaa", _later(hours=1))
    store.check_and_remember("jti-bbbbbbbbbbbbbbbb", _later(hours=1))


def test_an_expired_jti_is_forgotten(store: ReplayStore) -> None:
    store.check_and_remember("jti-expired-00000001", _later(seconds=-1))
    # Its token is no longer acceptable anyway, so remembering it longer would only cost.
    store.check_and_remember("jti-expired-00000001", _later(hours=1))


def test_memory_store_prunes_expired_entries() -> None:
    store = MemoryReplayStore()
    for n in range(50):
        store.check_and_remember(f"jti-old-{n:012d}", _later(seconds=-1))
    store.check_and_remember("jti-live-000000000001", _later(hours=1))
    assert len(store) == 1


def _race(attempt_with: list[ReplayStore]) -> list[str]:
    """Every store in ``attempt_with`` tries the same jti at the same moment, one per thread."""
    outcomes: list[str] = []
    barrier = threading.Barrier(len(attempt_with))

    def attempt(store: ReplayStore) -> None:
        barrier.wait()
        try:
            store.check_and_remember("jti-race-000000000001", _later(hours=1))
            outcomes.append("accepted")
        except ReplayDetected:
            outcomes.append("replay")

    threads = [threading.Thread(target=attempt, args=(s,)) for s in attempt_with]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sorted(outcomes)


def test_one_store_lets_exactly_one_concurrent_caller_through(store: ReplayStore) -> None:
    assert _race([store] * 8) == ["accepted"] + ["replay"] * 7


def test_sqlite_store_lets_exactly_one_connection_through(tmp_path: Path) -> None:
    # One connection per thread, as separate processes would have.
    stores = [SqliteReplayStore(tmp_path / "race.sqlite3") for _ in range(6)]
    try:
        assert _race(list(stores)) == ["accepted"] + ["replay"] * 5
    finally:
        for store in stores:
            store.close()


def test_two_sqlite_stores_on_one_file_share_what_they_have_seen(tmp_path: Path) -> None:
    first = SqliteReplayStore(tmp_path / "shared.sqlite3")
    second = SqliteReplayStore(tmp_path / "shared.sqlite3")
    try:
        first.check_and_remember("jti-shared-000000001", _later(hours=1))
        with pytest.raises(ReplayDetected):
            second.check_and_remember("jti-shared-000000001", _later(hours=1))
    finally:
        first.close()
        second.close()
