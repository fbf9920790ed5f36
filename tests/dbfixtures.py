"""Database fixtures for every test package: SQLite and PostgreSQL, migrated, cleaned up.

Load it as a plugin from the root conftest (``pytest_plugins = ["tests.dbfixtures"]``) or
import the fixtures by name into a package's conftest. Fixtures:

- ``db_backend``: ``"sqlite"`` or ``"postgres"`` (the latter marked ``postgres``); every
  test that uses any fixture below runs once per backend.
- ``db_session``: a session on a migrated database shared by the test run, inside a
  transaction that is rolled back at the end (commits inside the test become savepoint
  releases). The default for database tests.
- ``db_url`` / ``db_engine``: a fresh, private database (a SQLite file, or a PostgreSQL
  schema dropped afterwards), unmigrated / migrated, for tests that commit across
  sessions, threads or processes.
- ``fresh_database(backend, directory)``: the same as a context manager.
- ``finishes_while_the_gate_is_held(engine, work)``: whether a writer queues at the write
  gate (a helper, not a fixture).

PostgreSQL is reached at ``MASH_TEST_PG_URL`` (default: user postgres, trust auth, database
``mash_test`` on 127.0.0.1).
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from urllib.parse import quote

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from broker.db import make_engine, migrate, write_gate

__all__ = [
    "BACKENDS",
    "PG_URL",
    "db_backend",
    "db_engine",
    "db_session",
    "db_url",
    "finishes_while_the_gate_is_held",
    "fresh_database",
    "shared_engines",
]

PG_URL = os.environ.get(
    "MASH_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/mash_test"
)

#: Parameters for ``db_backend``: PostgreSQL cases carry the ``postgres`` marker.
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def _schema_url(schema: str) -> str:
    separator = "&" if "?" in PG_URL else "?"
    return f"{PG_URL}{separator}options={quote(f'-csearch_path={schema}')}"


@contextmanager
def fresh_database(backend: str, directory: Path) -> Iterator[str]:
    """Yield the URL of a new, empty database; remove it afterwards.

    Args:
        backend: ``"sqlite"`` (a file in ``directory``) or ``"postgres"`` (a new schema in
            the test database, reached through ``search_path``, dropped on exit).
        directory: where SQLite files go.
    """
    if backend == "sqlite":
        yield f"sqlite:///{directory / f'mash-{uuid.uuid4().hex[:8]}.db'}"
        return
    schema = f"test_{uuid.uuid4().hex[:12]}"
    admin = make_engine(PG_URL)
    try:
        with admin.begin() as connection:
            connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        yield _schema_url(schema)
    finally:
        with admin.begin() as connection:
            connection.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=BACKENDS)
def db_backend(request: pytest.FixtureRequest) -> str:
    """The database backend under test."""
    return str(request.param)


@pytest.fixture
def db_url(db_backend: str, tmp_path: Path) -> Iterator[str]:
    """A fresh, unmigrated database of the backend under test."""
    with fresh_database(db_backend, tmp_path) as url:
        yield url


@pytest.fixture
def db_engine(db_url: str) -> Iterator[Engine]:
    """A fresh database migrated to head; for tests that commit."""
    engine = make_engine(db_url)
    try:
        migrate(engine)
        yield engine
    finally:
        engine.dispose()


class _SharedEngines:
    """One migrated database per backend for the whole run, made on first use."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._engines: dict[str, Engine] = {}
        self._databases = ExitStack()

    def get(self, backend: str) -> Engine:
        if backend not in self._engines:
            url = self._databases.enter_context(fresh_database(backend, self._directory))
            engine = make_engine(url)
            migrate(engine)
            self._engines[backend] = engine
        return self._engines[backend]

    def close(self) -> None:
        for engine in self._engines.values():
            engine.dispose()
        self._databases.close()


@pytest.fixture(scope="session")
def shared_engines(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_SharedEngines]:
    """The run's migrated databases, one per backend."""
    engines = _SharedEngines(tmp_path_factory.mktemp("shared-db"))
    try:
        yield engines
    finally:
        engines.close()


@pytest.fixture
def db_session(db_backend: str, shared_engines: _SharedEngines) -> Iterator[Session]:
    """A session whose work is rolled back when the test ends, whatever it committed."""
    engine = shared_engines.get(db_backend)
    with engine.connect() as connection:
        transaction = connection.begin()
        session = Session(
            bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
        )
        try:
            yield session
        finally:
            session.close()
            transaction.rollback()


def finishes_while_the_gate_is_held(engine: Engine, work: Callable[[], object]) -> bool:
    """Run ``work`` in a thread while this thread holds ``engine``'s write gate for 0.3 s;
    whether it had finished by then (a writer that queues at the gate had not, on SQLite).
    The gate is then let go and ``work`` waited for; what it raised is raised here."""
    failed: list[BaseException] = []

    def run() -> None:
        try:
            work()
        except BaseException as exc:  # noqa: BLE001 - raised in the test's thread below
            failed.append(exc)

    worker = threading.Thread(target=run)
    with write_gate(engine) as gate:
        gate.enter()
        worker.start()
        time.sleep(0.3)
        finished = not worker.is_alive()
    worker.join(10)
    if worker.is_alive():
        raise AssertionError("the writer did not finish once the gate was let go")
    if failed:
        raise failed[0]
    return finished
