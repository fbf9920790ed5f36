"""Storage for group commit: many token ids remembered in one statement; the write gate."""

from __future__ import annotations

import fcntl
import multiprocessing
import os
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from broker import db, outbox
from broker.db import (
    GateStats,
    gate_if_free,
    make_engine,
    make_sessionmaker,
    remember_jti,
    remember_jtis,
    write_gate,
    write_gate_stats,
)
from broker.intake import consumer as intake_consumer

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
LATER = NOW + timedelta(days=7)


def test_new_ids_are_remembered_and_live_ones_are_replays(db_engine: Engine) -> None:
    with db_engine.begin() as connection:
        remember_jti(connection, "seen-live", LATER, now=NOW)
        remember_jti(connection, "seen-expired", NOW - timedelta(seconds=1), now=NOW)
    with db_engine.begin() as connection:
        accepted = remember_jtis(
            connection,
            [("new-1", LATER), ("seen-live", LATER), ("seen-expired", LATER), ("new-2", LATER)],
            now=NOW,
        )
    assert accepted == {"new-1", "seen-expired", "new-2"}
    with db_engine.begin() as connection:
        assert remember_jtis(connection, [("new-1", LATER)], now=NOW) == set()


def test_an_id_given_twice_is_remembered_once(db_engine: Engine) -> None:
    with db_engine.begin() as connection:
        assert remember_jtis(connection, [("twice", LATER), ("twice", LATER)], now=NOW) == {"twice"}


def test_ids_that_cannot_be_token_ids_are_never_accepted(db_engine: Engine) -> None:
    with db_engine.begin() as connection:
        assert remember_jtis(connection, [("", LATER), ("x" * 129, LATER)], now=NOW) == set()


def test_a_rolled_back_batch_remembers_nothing(db_engine: Engine) -> None:
    connection = db_engine.connect()
    try:
        transaction = connection.begin()
        assert remember_jtis(connection, [("undone", LATER)], now=NOW) == {"undone"}
        transaction.rollback()
    finally:
        connection.close()
    with db_engine.begin() as again:
        assert remember_jtis(again, [("undone", LATER)], now=NOW) == {"undone"}


def test_the_write_gate_queues_writers_on_sqlite_and_is_open_on_postgres(
    db_engine: Engine,
) -> None:
    sessions = make_sessionmaker(db_engine)
    inside = threading.Event()
    order: list[str] = []

    def holder() -> None:
        with write_gate(sessions) as gate:
            gate.enter()
            gate.enter()  # entering again does not wait on itself
            order.append("first in")
            inside.set()
            time.sleep(0.2)
            order.append("first out")

    def waiter() -> None:
        inside.wait(5)
        with write_gate(db_engine) as gate:
            gate.enter()
            order.append("second in")

    threads = [threading.Thread(target=holder), threading.Thread(target=waiter)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    if db_engine.dialect.name == "sqlite":
        assert order == ["first in", "first out", "second in"]
    else:
        assert order == ["first in", "second in", "first out"]


def test_a_batch_larger_than_one_statement_is_remembered_whole(db_engine: Engine) -> None:
    # 150 ids take three statements; replays fall on both sides of their boundaries.
    seen = {f"seen-{n}" for n in (0, 63, 64, 127, 149)}
    with db_engine.begin() as connection:
        assert remember_jtis(connection, [(jti, LATER) for jti in sorted(seen)], now=NOW) == seen
    ids = [f"seen-{n}" if f"seen-{n}" in seen else f"new-{n}" for n in range(150)]
    with db_engine.begin() as connection:
        accepted = remember_jtis(connection, [(jti, LATER) for jti in ids], now=NOW)
    assert accepted == set(ids) - seen
    assert len(accepted) == 145
    # What was stored is the expiry given, read back as UTC.
    with db_engine.connect() as connection:
        stored = connection.execute(
            sa.text("SELECT expires_at FROM replay_seen WHERE jti = 'new-100'")
        ).scalar_one()
    assert (stored if isinstance(stored, datetime) else datetime.fromisoformat(stored)).replace(
        tzinfo=UTC
    ) == LATER


def test_an_expired_row_taken_over_keeps_the_new_expiry(db_engine: Engine) -> None:
    with db_engine.begin() as connection:
        remember_jti(connection, "old", NOW - timedelta(seconds=1), now=NOW)
    with db_engine.begin() as connection:
        remember_jti(connection, "old", LATER, now=NOW)
    # Live again until LATER: a second use before then is a replay.
    with db_engine.begin() as connection:
        assert (
            remember_jtis(connection, [("old", LATER)], now=LATER - timedelta(seconds=1)) == set()
        )
    with db_engine.begin() as connection:
        assert remember_jtis(connection, [("old", LATER)], now=LATER + timedelta(seconds=1)) == {
            "old"
        }


_A_TIME = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
#: The path's look-ups, each with the index it must search (name, statement, table, index).
_LOOKUPS: list[tuple[str, Any, str, str]] = [
    (
        "inbox: messages applied (the ingest's digests, the intake's token ids)",
        db._APPLIED.params(consumer="ingest:police:tvp-police", message_ids=["a", "b"]),
        "inbox",
        "COVERING INDEX",
    ),
    (
        "intake: events stored",
        intake_consumer._STORED_EVENTS.params(party="wam-mash", events=[uuid.uuid4()]),
        "mash_alert",
        "COVERING INDEX",
    ),
    (
        "relay: due rows",
        outbox._DUE.params(now=_A_TIME, limit=500),
        "outbox",
        "ix_outbox_status_id",
    ),
    (
        "relay: due rows but those in flight",
        outbox._DUE_BUT.params(now=_A_TIME, limit=500, exclude=["jti-1", "jti-2"]),
        "outbox",
        "ix_outbox_status_id",
    ),
]


@pytest.mark.parametrize(
    ("statement", "table", "index"),
    [lookup[1:] for lookup in _LOOKUPS],
    ids=[lookup[0] for lookup in _LOOKUPS],
)
def test_the_paths_lookups_search_by_an_index(
    db_engine: Engine, statement: Any, table: str, index: str
) -> None:
    """A look-up by a column that does not lead an index reads the whole table every batch
    (the ingest's digests once did: the inbox holds two rows a message ever stored)."""
    if db_engine.dialect.name != "sqlite":
        pytest.skip("the plan is read from SQLite's EXPLAIN QUERY PLAN")
    sql = statement.compile(dialect=db_engine.dialect, compile_kwargs={"literal_binds": True})
    with db_engine.connect() as connection:
        plan = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}").all()
    details = " ".join(str(row[-1]) for row in plan)
    assert f"SEARCH {table} USING" in details, details
    assert index in details, details
    assert f"SCAN {table}" not in details, details


def test_the_write_gate_counts_its_transactions_waits_and_holds(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'stats.db'}")
    try:
        assert write_gate_stats(engine) == GateStats()
        with write_gate(engine) as outer:
            outer.enter()
            with write_gate(engine) as inner:  # taken again in its thread: one transaction
                inner.enter()
            time.sleep(0.05)
        first = write_gate_stats(engine)
        assert first is not None
        assert first.transactions == 1
        assert first.held_seconds >= 0.05
        # A writer that finds the gate held waits for it, and its wait is counted.
        taken, go_on = threading.Event(), threading.Event()

        def hold() -> None:
            with write_gate(engine) as gate:
                gate.enter()
                taken.set()
                go_on.wait(5)
                time.sleep(0.05)

        holder = threading.Thread(target=hold)
        holder.start()
        assert taken.wait(5)
        go_on.set()
        with write_gate(engine) as gate:
            gate.enter()
        holder.join(5)
        second = write_gate_stats(engine)
        assert second is not None
        assert second.transactions == 3
        assert second.waited_seconds - first.waited_seconds >= 0.04
        assert second.held_seconds - first.held_seconds >= 0.05
    finally:
        engine.dispose()


def test_postgresql_has_no_write_gate_to_count_or_give() -> None:
    engine = make_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")
    try:
        assert write_gate_stats(engine) is None
        assert gate_if_free(engine) is None
    finally:
        engine.dispose()


def _hold_gate_in_another_process(url: str, inside: Any, released: Any) -> None:
    """Child process: take the gate of ``url``'s database, say so, hold it, mark, let go."""
    engine = make_engine(url)
    try:
        with write_gate(engine) as gate:
            gate.enter()
            inside.set()
            time.sleep(0.3)
            released.value = 1  # marked before the gate opens: a waiter must see it
    finally:
        engine.dispose()


def test_the_write_gate_of_a_sqlite_file_queues_writers_of_other_processes(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'gate.db'}"
    context = multiprocessing.get_context("spawn")
    inside, released = context.Event(), context.Value("i", 0)
    child = context.Process(target=_hold_gate_in_another_process, args=(url, inside, released))
    engine = make_engine(url)
    child.start()
    try:
        assert inside.wait(30), "the other process never took the gate"
        with write_gate(engine) as gate:
            gate.enter()
            seen = released.value
        assert seen == 1, "entered the gate while another process held it"
    finally:
        child.join(30)
        engine.dispose()
    assert child.exitcode == 0


def test_a_gate_taken_again_in_its_thread_keeps_the_file_lock_until_the_outer_one_opens(
    tmp_path: Path,
) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'nested.db'}")
    lock_file = tmp_path / "nested.db-gate"

    def lock_is_free() -> bool:
        probe = os.open(lock_file, os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        finally:
            os.close(probe)  # closing lets go of a lock the probe took
        return True

    try:
        with write_gate(engine) as outer:
            outer.enter()
            with write_gate(engine) as inner:
                inner.enter()
            assert not lock_is_free(), "the inner gate let go of the outer one's file lock"
        assert lock_is_free()
    finally:
        engine.dispose()


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
def test_an_in_memory_database_has_a_gate_but_no_lock_file(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # where a relative lock file would be made
    engine = make_engine(url)
    try:
        with write_gate(engine) as gate:
            gate.enter()
    finally:
        engine.dispose()
    assert list(tmp_path.iterdir()) == []


def test_the_gate_is_given_only_when_no_other_writer_holds_it(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'free.db'}")
    lock_file = tmp_path / "free.db-gate"
    try:
        held = gate_if_free(engine)
        assert held is not None
        with held:
            # Held: another thread of this process does not get it...
            others: list[object] = []
            thread = threading.Thread(target=lambda: others.append(gate_if_free(engine)))
            thread.start()
            thread.join(5)
            assert others == [None]
            # ...nor another process (its own open file description of the lock file).
            probe = os.open(lock_file, os.O_RDWR)
            try:
                with pytest.raises(BlockingIOError):
                    fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
            finally:
                os.close(probe)
            # Its own thread may take it again, as a batch's writer does inside it.
            with write_gate(engine) as inner:
                inner.enter()
        stats = write_gate_stats(engine)
        assert stats is not None
        assert stats.transactions == 1
        # Let go: free for the next writer; and a lock another process holds means None.
        again = gate_if_free(engine)
        assert again is not None
        with again:
            pass
        other = os.open(lock_file, os.O_RDWR)
        try:
            fcntl.flock(other, fcntl.LOCK_EX)
            assert gate_if_free(engine) is None
        finally:
            os.close(other)
        after = gate_if_free(engine)
        assert after is not None
        with after:
            pass
    finally:
        engine.dispose()
