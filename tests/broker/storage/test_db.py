"""Engines, sessions, migrations and UTC datetimes on SQLite and PostgreSQL."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.dialects.sqlite import dialect as sqlite_dialect
from sqlmodel import Session, SQLModel, col, select

import broker.api.tables
import broker.intake.tables
import broker.models  # noqa: F401  (registers the tables)
from broker.db import (
    current_revision,
    downgrade,
    engine_from_settings,
    make_engine,
    migrate,
    normalise_url,
    session_scope,
)
from broker.exceptions import ConfigurationError, TransportError
from broker.models import InboxEntry, OutboxMessage, OutboxStatus, ReplaySeen, UtcDateTime
from broker.settings import Settings
from tests.broker.storage import tamper

HEAD_REVISION = "0006"
OUR_TABLES = {
    "audit_checkpoint",
    "idempotency_key",
    "staff_account",
    "mash_alert",
    "intake_action",
    "intake_alert",
    "intake_child",
    "intake_clock",
    "intake_episode",
    "intake_link_review",
    "intake_notification",
    "intake_tracker",
    "audit_entry",
    "audit_head",
    "inbox",
    "outbox",
    "raw_message",
    "replay_seen",
}


@pytest.mark.parametrize(
    ("given", "driver"),
    [
        ("postgres://u@h/db", "postgresql+psycopg"),
        ("postgresql://u@h/db", "postgresql+psycopg"),
        ("postgresql+psycopg2://u@h/db", "postgresql+psycopg"),
        ("sqlite:///var/mash.db", "sqlite"),
    ],
)
def test_normalise_url_steers_postgres_to_psycopg3(given: str, driver: str) -> None:
    assert normalise_url(given).drivername == driver


@pytest.mark.parametrize("url", ["mysql://u@h/db", "not a url"])
def test_unsupported_urls_are_a_configuration_error(url: str) -> None:
    with pytest.raises(ConfigurationError, match=r"database\.url"):
        make_engine(url)


def test_sqlite_engine_creates_its_directory_and_sets_pragmas(tmp_path: Path) -> None:
    path = tmp_path / "var" / "nested" / "mash.db"
    engine = make_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as connection:
            pragma = {
                name: connection.exec_driver_sql(f"PRAGMA {name}").scalar()
                for name in ("journal_mode", "foreign_keys", "busy_timeout")
            }
    finally:
        engine.dispose()
    assert path.parent.is_dir()
    assert pragma == {"journal_mode": "wal", "foreign_keys": 1, "busy_timeout": 30000}


def test_in_memory_sqlite_is_one_database_for_every_session() -> None:
    engine = make_engine("sqlite://")
    try:
        migrate(engine)
        with session_scope(engine) as session:
            session.add(InboxEntry(consumer="mash-intake", message_id="m-1"))
        with session_scope(engine) as session:
            assert session.get(InboxEntry, 1) is not None
    finally:
        engine.dispose()


def test_engine_from_settings_reads_the_database_url(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("MASH_DATABASE__URL", f"sqlite:///{tmp_path / 'settings.db'}")
    engine = engine_from_settings(Settings())
    try:
        assert engine.url.database == str(tmp_path / "settings.db")
    finally:
        engine.dispose()


def test_migrations_run_up_from_empty_match_the_models_and_come_down(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        assert current_revision(engine) is None
        migrate(db_url)  # by URL: an engine of its own, disposed of
        assert current_revision(engine) == HEAD_REVISION
        assert set(sa.inspect(engine).get_table_names()) >= OUR_TABLES
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            ours = [diff for diff in compare_metadata(context, SQLModel.metadata) if _ours(diff)]
        assert ours == []
        migrate(engine)  # idempotent
        downgrade(engine, "base")
        assert not OUR_TABLES & set(sa.inspect(engine).get_table_names())
        migrate(engine)
        assert current_revision(engine) == HEAD_REVISION
    finally:
        engine.dispose()


def _ours(diff: object) -> bool:
    """Whether an autogenerate difference concerns this module's tables."""
    text = repr(diff)
    return any(f"'{table}'" in text for table in OUR_TABLES)


def test_session_scope_commits_or_rolls_back(db_engine) -> None:
    with session_scope(db_engine) as session:
        session.add(InboxEntry(consumer="mash-intake", message_id="m-1"))

    def failing() -> None:
        with session_scope(db_engine) as session:
            session.add(InboxEntry(consumer="mash-intake", message_id="m-2"))
            raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        failing()
    with session_scope(db_engine) as session:
        ids = [row.message_id for row in session.exec(select(InboxEntry)).all()]
    assert ids == ["m-1"]


def test_an_unreachable_database_is_a_transport_error() -> None:
    engine = make_engine("postgresql://postgres@127.0.0.1:1/mash_test")
    try:

        def reach() -> None:
            with session_scope(engine) as session:
                session.connection()

        with pytest.raises(TransportError, match="database unavailable") as caught:
            reach()
        assert "127.0.0.1" not in str(caught.value)
    finally:
        engine.dispose()


def test_the_inbox_refuses_a_second_entry_for_the_same_consumer_and_message(
    db_session: Session,
) -> None:
    db_session.add(InboxEntry(consumer="mash-intake", message_id="jti-1"))
    db_session.add(InboxEntry(consumer="partner-tvp", message_id="jti-1"))
    db_session.flush()
    db_session.add(InboxEntry(consumer="mash-intake", message_id="jti-1"))
    with pytest.raises(sa.exc.IntegrityError):
        db_session.flush()


def test_outbox_defaults_and_unique_jti(db_session: Session) -> None:
    def outbox_row() -> OutboxMessage:
        return OutboxMessage(
            event_id=tamper.EVENT,
            recipient="wam-mash",
            exchange="disclosures",
            routing_key="mash.E06000040",
            token="eyJ.fake.jwe.token.parts",
            jti="jti-1",
        )

    row = outbox_row()
    db_session.add(row)
    db_session.flush()
    db_session.expire_all()
    stored = db_session.get(OutboxMessage, row.id)
    assert stored is not None
    assert (stored.status, stored.attempts, stored.sent_at) == (OutboxStatus.PENDING, 0, None)
    assert stored.created_at.tzinfo is not None
    assert stored.event_id == tamper.EVENT
    db_session.add(outbox_row())
    with pytest.raises(sa.exc.IntegrityError):
        db_session.flush()


def test_datetimes_come_back_aware_in_utc(db_session: Session) -> None:
    plus_two = timezone(timedelta(hours=2))
    given = datetime(2026, 6, 1, 14, 30, 5, 123456, tzinfo=plus_two)
    db_session.add(ReplaySeen(jti="jti-tz", expires_at=given))
    db_session.flush()
    db_session.expire_all()
    stored = db_session.get(ReplaySeen, "jti-tz")
    assert stored is not None
    assert stored.expires_at == given
    assert stored.expires_at.tzinfo == UTC
    assert stored.expires_at.hour == 12


def test_naive_datetimes_are_refused(db_session: Session) -> None:
    db_session.add(ReplaySeen(jti="jti-naive", expires_at=datetime(2026, 6, 1)))  # noqa: DTZ001
    with pytest.raises(sa.exc.StatementError, match="naive datetime refused"):
        db_session.flush()


def _instants() -> list[datetime]:
    """Aware instants across the range SQLite's text must order correctly: whole seconds,
    microseconds, early years, offsets either side of UTC and a leap day."""
    zones = [UTC, timezone(timedelta(hours=1)), timezone(timedelta(hours=-9, minutes=-30))]
    moments = [
        datetime(2026, 12, 7, 19, 0, 0),  # noqa: DTZ001 - made aware below
        datetime(2026, 3, 29, 1, 30, 0, 123456),  # noqa: DTZ001
        datetime(2028, 2, 29, 23, 59, 59, 999999),  # noqa: DTZ001
        datetime(999, 1, 1, 12, 0, 0, 5),  # noqa: DTZ001
        datetime(9998, 12, 31, 0, 0, 0, 1),  # noqa: DTZ001
    ]
    return [moment.replace(tzinfo=zone) for moment in moments for zone in zones]


def test_sqlites_datetime_text_is_what_sqlalchemys_own_processor_writes() -> None:
    # UtcDateTime writes SQLite's text itself (a faster path); it must be the very text
    # SQLAlchemy's DATETIME would write for the same UTC instant, or stored values, their
    # order and their reading would change.
    dialect = sqlite_dialect()
    ours = UtcDateTime()._cached_bind_processor(dialect)
    theirs = UtcDateTime.impl._cached_bind_processor(dialect)  # the type it decorates
    assert ours is not None
    assert theirs is not None
    for instant in _instants():
        assert ours(instant) == theirs(instant.astimezone(UTC).replace(tzinfo=None)), instant
    assert ours(None) is None
    with pytest.raises(ValueError, match="naive datetime refused"):
        ours(datetime(2026, 6, 1))  # noqa: DTZ001 - the point of the test


def test_datetimes_written_and_compared_in_the_database_keep_their_order(
    db_session: Session,
) -> None:
    # On both databases: stored instants come back equal, and the database orders and
    # compares them as instants (SQLite compares the text).
    instants = _instants()
    for number, instant in enumerate(instants):
        db_session.add(ReplaySeen(jti=f"jti-order-{number:02d}", expires_at=instant))
    db_session.flush()
    db_session.expire_all()
    ordered = db_session.exec(
        select(ReplaySeen)
        .where(col(ReplaySeen.jti).startswith("jti-order-"))
        .order_by(col(ReplaySeen.expires_at))
    ).all()
    assert [row.expires_at for row in ordered] == sorted(instants)
    middle = sorted(instants)[len(instants) // 2]
    later = db_session.exec(
        select(ReplaySeen).where(
            col(ReplaySeen.jti).startswith("jti-order-"), col(ReplaySeen.expires_at) > middle
        )
    ).all()
    assert sorted(row.expires_at for row in later) == [i for i in sorted(instants) if i > middle]


def test_sqlite_stores_utc_text_readable_by_other_tools(tmp_path: Path) -> None:
    path = tmp_path / "plain.db"
    engine = make_engine(f"sqlite:///{path}")
    try:
        migrate(engine)
        with session_scope(engine) as session:
            moment = datetime(2026, 6, 1, 14, 30, tzinfo=timezone(timedelta(hours=1)))
            session.add(ReplaySeen(jti="jti-text", expires_at=moment))
    finally:
        engine.dispose()
    with sqlite3.connect(path) as connection:
        (text,) = connection.execute("SELECT expires_at FROM replay_seen").fetchone()
    connection.close()
    assert text.startswith("2026-06-01 13:30:00")
