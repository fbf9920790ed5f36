"""Many rows into one table by one INSERT, compiled once and handed to the driver.

The writers of the message path (the ingest's inbox, raw message and outbox rows, the
audit entries, the MASH intake's rows) insert a batch's rows into a table in one
statement. Run as ``connection.execute(insert(table), rows)``, SQLAlchemy looks the
statement up in its compiled cache, builds an execution context and processes every
parameter of every row through its machinery each time: for three rows about as many
instructions again as the driver's own ``executemany``. ``RowInsert`` compiles the
statement once per dialect and set of columns, applies the very bind processors that
compilation gives (so the driver receives the same values SQLAlchemy would send: the
suite checks that on both databases), and runs it with ``exec_driver_sql``, which keeps
the engine's events (the write gate's watchers see the statement as before).

Where the rows leave a column to a Python-side default that SQLAlchemy would compute at
execution, or the compiled statement renames a parameter, the statement runs through
SQLAlchemy as before: the shortcut only takes rows that give every value themselves.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Dialect

__all__ = ["RowInsert"]

_Processor = Callable[[Any], Any] | None


@dataclass(frozen=True, slots=True)
class _Plan:
    """An INSERT compiled for one dialect and one set of columns."""

    sql: str
    positional: bool
    #: (parameter name, its bind processor or None), in the statement's order.
    binds: tuple[tuple[str, _Processor], ...]

    def parameters(
        self, rows: Sequence[Mapping[str, Any]]
    ) -> list[tuple[Any, ...]] | list[dict[str, Any]]:
        binds = self.binds
        if self.positional:
            return [
                tuple(row[n] if process is None else process(row[n]) for n, process in binds)
                for row in rows
            ]
        return [
            {name: row[name] if process is None else process(row[name]) for name, process in binds}
            for row in rows
        ]


def _plan(statement: sa.Insert, dialect: Dialect, columns: tuple[str, ...]) -> _Plan | None:
    """``statement`` compiled for ``dialect`` and ``columns``; None if the driver cannot be
    given the rows' own values as they are (a default to compute, a renamed parameter)."""
    compiled = statement.compile(dialect=dialect, column_keys=list(columns))
    if compiled.insert_prefetch or compiled.escaped_bind_names:
        return None
    names = compiled.positiontup if compiled.positional else list(compiled.bind_names.values())
    if names is None or set(names) != set(columns):
        return None
    processors = compiled._bind_processors  # what SQLAlchemy applies itself
    binds: list[tuple[str, _Processor]] = []
    for name in names:
        process = processors.get(name)
        if process is not None and not callable(process):
            return None  # a tuple-valued parameter's processors: left to SQLAlchemy
        binds.append((name, process))
    return _Plan(sql=compiled.string, positional=compiled.positional, binds=tuple(binds))


class RowInsert:
    """``rows`` into ``table`` by one INSERT, in the caller's transaction.

    Every row must name the same columns (as SQLAlchemy's executemany requires); the
    first row's keys say which. Nothing is read back: for ids made by the database, use
    an ``INSERT ... RETURNING`` through SQLAlchemy.
    """

    def __init__(self, table: sa.Table) -> None:
        #: The table's column names, for callers that build rows from objects.
        self.columns = tuple(column.name for column in table.columns)
        self._statement = sa.insert(table)
        # Per engine's dialect (its JSON serialiser, say, is its own): plans by columns.
        self._plans: weakref.WeakKeyDictionary[Dialect, dict[tuple[str, ...], _Plan | None]] = (
            weakref.WeakKeyDictionary()
        )

    def __call__(self, connection: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        if not rows:
            return
        columns = tuple(rows[0])
        dialect = connection.dialect
        plans = self._plans.get(dialect)
        if plans is None:
            plans = self._plans[dialect] = {}
        try:
            plan = plans[columns]
        except KeyError:
            plan = plans[columns] = _plan(self._statement, dialect, columns)
        if plan is None:
            connection.execute(self._statement, list(rows))
        else:
            connection.exec_driver_sql(plan.sql, plan.parameters(rows))
