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

from broker.db import SQLITE_AUTOCHECKPOINT_PAGES, make_engine
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


def _rows_while_copied(engine: Engine) -> int | None:
    """``_rows_in_the_database_file`` while a checkpoint may be copying pages into it: None
    when the read met a page in the middle of being written."""
    try:
        return _rows_in_the_database_file(engine)
    except sqlite3.DatabaseError:
        return None


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


def test_past_the_limit_a_writer_checkpoints_and_the_log_starts_again(engine: Engine) -> None:
    for _ in range(40):  # about 10,000 pages of log written in all, no thread
        _write(engine, 500)
    # The log file is reused from its beginning after each writer's checkpoint, so it
    # never grew much past the limit (a page of log is the page and a 24-byte header).
    largest_pages = Path(f"{engine.url.database}-wal").stat().st_size // (4096 + 24)
    assert largest_pages < SQLITE_AUTOCHECKPOINT_PAGES + 600
    assert _rows_in_the_database_file(engine) >= 10_000  # copied by the writers


def test_a_long_reader_holds_back_only_what_it_reads(engine: Engine) -> None:
    _write(engine, 10)
    reader = sqlite3.connect(str(engine.url.database), isolation_level=None)
    try:
        reader.execute("BEGIN")
        assert reader.execute("SELECT count(*) FROM item").fetchone() == (10,)
        _write(engine, 10)  # log pages the reader's snapshot does not see
        started = time.perf_counter()
        result = WalCheckpoints(engine).checkpoint()
        # It copied what it could without waiting for the reader (not the writers' 30 s).
        assert time.perf_counter() - started < 2
        assert result.copied_pages < result.log_pages
    finally:
        reader.close()
    result = WalCheckpoints(engine).checkpoint()
    assert result.copied_pages == result.log_pages
    assert _rows_in_the_database_file(engine) == 20


def test_the_thread_checkpoints_as_writers_write(engine: Engine) -> None:
    checkpoints = WalCheckpoints(engine, every=0.02)
    checkpoints.start()
    try:
        _write(engine, 20)
        deadline = time.monotonic() + 5
        while _rows_while_copied(engine) != 20 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        checkpoints.stop()
    assert not _checkpoint_threads()
    # Read once the thread has stopped: an ``immutable`` reader takes no lock, so a read
    # while pages are being copied into the file can meet a page half written.
    assert _rows_in_the_database_file(engine) == 20


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
