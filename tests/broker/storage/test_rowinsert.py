"""RowInsert: the rows the driver is handed and the database stores, on both databases."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from enum import StrEnum
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import Session, SQLModel

from broker.db import mark_applied
from broker.models import InboxEntry, UtcDateTime
from broker.rowinsert import RowInsert


class _Kind(StrEnum):
    FIRST = "first"
    SECOND = "second"


_METADATA = sa.MetaData()
#: A table of every column type the message path's inserts carry.
_SAMPLE = sa.Table(
    "rowinsert_sample",
    _METADATA,
    sa.Column("key", sa.String(40), primary_key=True),
    sa.Column("at", UtcDateTime(), nullable=False),
    sa.Column("maybe_at", UtcDateTime(), nullable=True),
    sa.Column("ref", sa.Uuid(), nullable=True),
    sa.Column("kind", sa.Enum(_Kind, name="rowinsert_kind"), nullable=False),
    sa.Column("facts", sa.JSON(), nullable=True),
    sa.Column("flag", sa.Boolean(), nullable=False),
    sa.Column("blob", sa.LargeBinary(), nullable=True),
    sa.Column("count", sa.BigInteger(), nullable=False),
    sa.Column("note", sa.String(200), nullable=True),
    sa.Column("with_default", sa.Integer(), nullable=False, default=7),
)
_COLUMNS = [c.name for c in _SAMPLE.columns]


def _rows(prefix: str, count: int) -> list[dict[str, Any]]:
    base = datetime(2026, 3, 29, 0, 59, 59, 999_999, tzinfo=UTC)  # the clocks go forward
    return [
        {
            "key": f"{prefix}-{n}",
            "at": (base + timedelta(minutes=n)).astimezone(timezone(timedelta(hours=-5))),
            "maybe_at": None if n % 2 else base - timedelta(days=400 * n),
            "ref": uuid.UUID(int=n * 7919 + 1) if n % 3 else None,
            "kind": _Kind.SECOND if n % 2 else _Kind.FIRST,
            "facts": {"n": n, "list": [1, "two", None], "text": "Ffion's \u00e9pisode"}
            if n % 2 == 0
            else None,
            "flag": bool(n % 2),
            "blob": bytes(range(n, n + 5)) if n else None,
            "count": 2**40 + n,
            "note": None if n == 1 else f"note {n} % ? :x",
            "with_default": n,
        }
        for n in range(count)
    ]


@pytest.fixture
def sample_session(db_session: Session) -> Session:
    """``db_session`` with the sample table made in its transaction (gone at its end)."""
    _METADATA.create_all(db_session.connection())
    return db_session


def _stored(session: Session, keys: list[str]) -> list[tuple[Any, ...]]:
    """The rows as the driver returns them (no SQLAlchemy type processing): the stored
    text of an instant, a UUID or a JSON document on SQLite, as it is."""
    marks = ", ".join(f"'{key}'" for key in keys)  # the test's own keys, no quotes in them
    found = session.connection().exec_driver_sql(
        f"SELECT {', '.join(_COLUMNS)} FROM rowinsert_sample "  # noqa: S608 - the test's table
        f"WHERE key IN ({marks}) ORDER BY key"
    )
    return [tuple(row) for row in found]


class _Statements:
    """What the engine's ``before_cursor_execute`` saw: (statement, compiled or not, rows)."""

    def __init__(self, connection: sa.Connection) -> None:
        self.seen: list[tuple[str, bool, int]] = []
        self._connection = connection

    def __enter__(self) -> _Statements:
        sa.event.listen(self._connection, "before_cursor_execute", self._on)
        return self

    def __exit__(self, *_exc: object) -> None:
        sa.event.remove(self._connection, "before_cursor_execute", self._on)

    def _on(
        self,
        _conn: sa.Connection,
        _cursor: object,
        statement: str,
        parameters: Any,
        context: Any,
        executemany: bool,
    ) -> None:
        count = len(parameters) if executemany else 1
        verb = statement.split(maxsplit=1)[0].upper()
        self.seen.append((verb, context.compiled is not None, count))


@pytest.mark.parametrize("count", [1, 3, 17])
def test_stores_what_sqlalchemys_insert_stores(sample_session: Session, count: int) -> None:
    # The same rows written both ways, each in a savepoint rolled back after reading them:
    # the database holds the very same values (byte for byte on SQLite).
    connection = sample_session.connection()
    rows = _rows("row", count)
    keys = [row["key"] for row in rows]
    with connection.begin_nested() as savepoint:
        connection.execute(sa.insert(_SAMPLE), rows)
        theirs = _stored(sample_session, keys)
        savepoint.rollback()
    into = RowInsert(_SAMPLE)
    with connection.begin_nested() as savepoint, _Statements(connection) as statements:
        into(connection, rows)
        ours = _stored(sample_session, keys)
        savepoint.rollback()
    assert len(theirs) == count
    assert ours == theirs
    # One statement, run through the driver (no compiled statement: the shortcut), with
    # every row; the engine's events saw it (the write gate's watchers rely on that).
    assert [s for s in statements.seen if s[0] == "INSERT"] == [("INSERT", False, count)]


def test_a_column_left_to_its_default_goes_through_sqlalchemy(sample_session: Session) -> None:
    connection = sample_session.connection()
    rows = _rows("default", 2)
    for row in rows:
        del row["with_default"]
    with _Statements(connection) as statements:
        RowInsert(_SAMPLE)(connection, rows)
    assert [s for s in statements.seen if s[0] == "INSERT"] == [("INSERT", True, 2)]
    found = connection.execute(
        sa.select(_SAMPLE.c.with_default).where(_SAMPLE.c.key.in_(["default-0", "default-1"]))
    )
    assert sorted(found.scalars()) == [7, 7]


def test_rows_with_other_columns_get_a_statement_of_their_own(sample_session: Session) -> None:
    connection = sample_session.connection()
    into = RowInsert(_SAMPLE)
    full = _rows("full", 2)
    partial = [
        {k: v for k, v in row.items() if k not in ("note", "blob")} for row in _rows("part", 2)
    ]
    with _Statements(connection) as statements:
        into(connection, full)
        into(connection, partial)
        into(connection, full[:0])  # nothing to write: no statement
    inserts = [s for s in statements.seen if s[0] == "INSERT"]
    assert inserts == [("INSERT", False, 2), ("INSERT", False, 2)]
    found = connection.execute(
        sa.select(_SAMPLE.c.key, _SAMPLE.c.note, _SAMPLE.c.blob).order_by(_SAMPLE.c.key)
    ).all()
    assert [tuple(r) for r in found] == [
        ("full-0", "note 0 % ? :x", None),
        ("full-1", None, bytes(range(1, 6))),
        ("part-0", None, None),
        ("part-1", None, None),
    ]


def test_a_row_missing_a_column_the_first_has_is_refused(sample_session: Session) -> None:
    connection = sample_session.connection()
    rows = _rows("ragged", 2)
    del rows[1]["note"]
    with pytest.raises(KeyError, match="note"):
        RowInsert(_SAMPLE)(connection, rows)


def test_the_inbox_rows_of_the_message_path(db_session: Session) -> None:
    # A table of the service's own, through the function the ingest and intake call.
    now = datetime.now(UTC)
    mark_applied(
        db_session.connection(),
        [{"consumer": "rowinsert", "message_id": f"m-{n}", "processed_at": now} for n in range(3)],
    )
    table = SQLModel.metadata.tables[InboxEntry.__tablename__]
    found = db_session.connection().execute(
        sa.select(table.c.message_id, table.c.processed_at).where(table.c.consumer == "rowinsert")
    )
    assert sorted(found.all()) == [(f"m-{n}", now) for n in range(3)]
