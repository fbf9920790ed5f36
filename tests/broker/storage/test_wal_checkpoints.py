"""SQLite's write-ahead log checkpointed by a background thread (broker.walcheckpoints)."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from broker.db import SQLITE_AUTOCHECKPOINT_PAGES, gate_if_free, make_engine, write_gate
from broker.walcheckpoints import (
    WalCheckpoints,
    hold_wal_checkpoints,
    release_wal_checkpoints,
)

THREAD_NAME = "sqlite wal checkpoints"


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'wal.db'}")
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE item (id INTEGER PRIMARY KEY, body TEXT)")
    try:
        yield engine
    finally:
        engine.dispose()


def _write(engine: Engine, rows: int) -> None:
    with engine.begin() as connection:
        connection.execute(
            sa.text("INSERT INTO item (body) VALUES (:body)"),
            [{"body": "x" * 2000} for _ in range(rows)],
        )


def _rows_in_the_database_file(engine: Engine) -> int:
    """Rows in the main file alone: ``immutable`` reads it without the log."""
    path = engine.url.database
    with sqlite3.connect(f"file:{path}?immutable=1", uri=True) as reader:
        try:
            return int(reader.execute("SELECT count(*) FROM item").fetchone()[0])
        except sqlite3.OperationalError:  # the table itself is still only in the log
            return 0


def _checkpoint_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == THREAD_NAME]


def test_writers_leave_the_log_to_the_checkpoints_until_it_is_large(engine: Engine) -> None:
    with engine.connect() as connection:
        pages = connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar()
    assert pages == SQLITE_AUTOCHECKPOINT_PAGES
    _write(engine, 3000)  # about 1,500 pages of log: past SQLite's default of 1,000
    assert _rows_in_the_database_file(engine) == 0


def test_a_checkpoint_copies_the_log_into_the_database_file(engine: Engine) -> None:
    _write(engine, 50)
    assert _rows_in_the_database_file(engine) == 0
    result = WalCheckpoints(engine).checkpoint()
    assert not result.busy
    assert result.log_pages > 0
    assert result.copied_pages == result.log_pages
    assert _rows_in_the_database_file(engine) == 50


def test_a_log_grown_to_the_limit_is_restarted_under_the_write_gate(engine: Engine) -> None:
    _write(engine, 10)
    taken, go_on = threading.Event(), threading.Event()

    def writer() -> None:
        with write_gate(engine) as gate:
            gate.enter()
            taken.set()
            go_on.wait(5)
            time.sleep(0.2)

    thread = threading.Thread(target=writer)
    thread.start()
    assert taken.wait(5)
    go_on.set()
    try:
        # Under the limit: a passive checkpoint, which does not wait for the writer.
        started = time.perf_counter()
        WalCheckpoints(engine, restart_pages=1_000_000).checkpoint()
        assert time.perf_counter() - started < 0.15
        # At the limit: it waits for the gate, so no writer is mid-transaction.
        started = time.perf_counter()
        result = WalCheckpoints(engine, restart_pages=1).checkpoint()
        assert time.perf_counter() - started >= 0.1
        assert not result.busy
    finally:
        thread.join(5)
    assert _rows_in_the_database_file(engine) == 10


def test_a_long_reader_does_not_keep_the_write_gate_shut(engine: Engine) -> None:
    _write(engine, 10)
    reader = sqlite3.connect(str(engine.url.database), isolation_level=None)
    try:
        reader.execute("BEGIN")
        assert reader.execute("SELECT count(*) FROM item").fetchone() == (10,)
        _write(engine, 10)  # log pages the reader's snapshot still needs
        started = time.perf_counter()
        result = WalCheckpoints(engine, restart_pages=1).checkpoint()
        waited = time.perf_counter() - started
        # The restart could not wait the reader out, and gave up in its patience, not the
        # writers' 30 s; the gate is open again for the writers.
        assert result.busy
        assert waited < 2
        free = gate_if_free(engine)
        assert free is not None
        with free:
            pass
    finally:
        reader.close()
    # Once the reader has gone, the next one copies everything.
    result = WalCheckpoints(engine, restart_pages=1).checkpoint()
    assert not result.busy
    assert _rows_in_the_database_file(engine) == 20


def test_the_thread_checkpoints_as_writers_write(engine: Engine) -> None:
    checkpoints = WalCheckpoints(engine, every=0.02)
    checkpoints.start()
    try:
        _write(engine, 20)
        deadline = time.monotonic() + 5
        while _rows_in_the_database_file(engine) < 20 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert _rows_in_the_database_file(engine) == 20
    finally:
        checkpoints.stop()
    assert not _checkpoint_threads()


def test_one_thread_serves_every_holder_until_the_last_lets_go(engine: Engine) -> None:
    assert not _checkpoint_threads()
    hold_wal_checkpoints(engine)
    hold_wal_checkpoints(engine)
    try:
        assert len(_checkpoint_threads()) == 1
        release_wal_checkpoints(engine)
        assert len(_checkpoint_threads()) == 1
    finally:
        release_wal_checkpoints(engine)
    assert not _checkpoint_threads()
    release_wal_checkpoints(engine)  # one too many: nothing to do


@pytest.mark.parametrize(
    "url", ["sqlite://", "postgresql+psycopg://nobody@127.0.0.1:1/none"], ids=["memory", "pg"]
)
def test_databases_without_a_log_file_get_no_thread(url: str) -> None:
    engine = make_engine(url)
    try:
        assert not WalCheckpoints.applies_to(engine)
        hold_wal_checkpoints(engine)
        assert not _checkpoint_threads()
        release_wal_checkpoints(engine)
    finally:
        engine.dispose()
