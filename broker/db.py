"""Database engines, sessions, migrations and the database replay store."""

from __future__ import annotations

import fcntl
import functools
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.orm import sessionmaker
from sqlalchemy.pool import StaticPool
from sqlmodel import Session, SQLModel

from broker.exceptions import ConfigurationError, ReplayDetected, TransportError
from broker.models import InboxEntry, utc_now
from broker.rowinsert import RowInsert
from broker.settings import Settings

__all__ = [
    "MIGRATIONS_DIR",
    "DbReplayStore",
    "GateStats",
    "WriteGate",
    "applied_among",
    "current_revision",
    "delete_expired",
    "downgrade",
    "engine_from_settings",
    "gate_if_free",
    "gated_at_first_write",
    "gated_session",
    "make_engine",
    "make_sessionmaker",
    "mark_applied",
    "migrate",
    "normalise_url",
    "remember_jti",
    "remember_jtis",
    "session_scope",
    "sqlite_database_file",
    "write_gate",
    "write_gate_stats",
    "writes",
]

#: The alembic scripts (``env.py`` and ``versions/``) at the project root.
MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"

#: Rows ``delete_expired`` removes in one transaction: each holds the write gate for a few
#: milliseconds, so writers queued behind it are not held up for long.
EXPIRED_CHUNK_ROWS = 500

#: How the statements that write begin (``gated_at_first_write`` takes the gate for them).
_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")

#: How long a SQLite writer waits for the write lock before giving up, in milliseconds.
SQLITE_BUSY_TIMEOUT_MS = 30_000
#: Pages of write-ahead log past which a SQLite writer checkpoints it in its commit
#: (SQLite's default is 1,000). Where the service runs, a background thread has copied
#: most of it by then (``broker.walcheckpoints``): the writer copies the rest, and the log
#: starts again from its beginning.
SQLITE_AUTOCHECKPOINT_PAGES = 4_096
#: Seconds to wait for a PostgreSQL connection.
PG_CONNECT_TIMEOUT_S = 10
#: Advisory lock key that serialises concurrent ``migrate`` calls on PostgreSQL ("mash").
_MIGRATE_LOCK_KEY = 0x6D617368


def normalise_url(url: str | URL) -> URL:
    """Parse a database URL, steering every PostgreSQL spelling to psycopg 3.

    ``postgres://``, ``postgresql://`` and ``postgresql+psycopg2://`` all become
    ``postgresql+psycopg://``; SQLite URLs are kept as given.

    Raises:
        ConfigurationError: the URL does not parse or names an unsupported database.
    """
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError as exc:
        raise ConfigurationError("database.url: not a valid database URL") from exc
    backend = parsed.get_backend_name()
    if backend in {"postgres", "postgresql"}:
        return parsed.set(drivername="postgresql+psycopg")
    if backend == "sqlite":
        return parsed
    raise ConfigurationError(
        f"database.url: unsupported database {backend!r}; use sqlite or postgresql"
    )


def _is_memory(url: URL) -> bool:
    return url.database in {None, "", ":memory:"} or "mode=memory" in str(url)


def _sqlite_engine(url: URL, echo: bool) -> Engine:
    kwargs: dict[str, Any] = {}
    if _is_memory(url):
        # One shared connection, or every session would see its own empty database.
        kwargs["poolclass"] = StaticPool
    elif url.database and not url.database.startswith("file:"):
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(
        url,
        echo=echo,
        hide_parameters=True,
        connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
        **kwargs,
    )
    memory = _is_memory(url)

    @sa.event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA foreign_keys = ON")
            if not memory:
                # WAL: readers never block the writer; the write lock serialises writers
                # (which is what keeps the audit chain linear on SQLite).
                cursor.execute("PRAGMA journal_mode = WAL")
                # Checkpoints are mostly a background thread's work where the service
                # runs (``broker.walcheckpoints``); a writer checkpoints past this size.
                cursor.execute(f"PRAGMA wal_autocheckpoint = {SQLITE_AUTOCHECKPOINT_PAGES}")
        finally:
            cursor.close()

    return engine


def make_engine(url: str | URL, *, echo: bool = False) -> Engine:
    """A synchronous SQLAlchemy engine for SQLite or PostgreSQL.

    SQLite: the file's directory is created, WAL mode, foreign keys on, a 30 s busy
    timeout; ``sqlite://`` gives one shared in-memory database. PostgreSQL: psycopg 3,
    pre-ping, a connect timeout. Statement parameters are never shown in logs or errors,
    because they may hold personal data.

    Args:
        url: a database URL (``sqlite:///var/mash.db``, ``postgresql://user@host/db``).
        echo: log SQL statements (without their parameters).

    Raises:
        ConfigurationError: the URL is not usable.
    """
    parsed = normalise_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed, echo)
    return sa.create_engine(
        parsed,
        echo=echo,
        hide_parameters=True,
        pool_pre_ping=True,
        connect_args={"connect_timeout": PG_CONNECT_TIMEOUT_S, "application_name": "mash-broker"},
    )


def engine_from_settings(settings: Settings) -> Engine:
    """The engine for ``settings.database`` (``MASH_DATABASE__URL``, ``MASH_DATABASE__ECHO``)."""
    return make_engine(settings.database.url.get_secret_value(), echo=settings.database.echo)


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    """A factory of SQLModel sessions; objects stay readable after commit."""
    return sessionmaker(bind=engine, class_=Session, expire_on_commit=False)


@contextmanager
def session_scope(bind: Engine | sessionmaker[Session]) -> Iterator[Session]:
    """One short transaction: commit on success, roll back on any error.

    Database connection failures and timeouts surface as ``TransportError``; other
    errors (for example ``IntegrityError``) pass through unchanged.

    Args:
        bind: an engine, or a factory from ``make_sessionmaker``.
    """
    factory = make_sessionmaker(bind) if isinstance(bind, Engine) else bind
    with factory() as session:
        try:
            yield session
            session.commit()
        except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
            session.rollback()
            raise TransportError(
                f"database unavailable or timed out ({type(exc.orig).__name__})"
            ) from exc
        except BaseException:
            session.rollback()
            raise


class WriteGate:
    """Queues the service's batch writers on a SQLite database, first come first served.

    SQLite has one write lock per database, and a writer that finds it taken sleeps in
    growing steps (1, 2, 5, 10, ... ms) before it tries again, so a few busy writers lose
    many milliseconds to sleeping. Every writer of the service (the ingest, relay and
    intake batches; refusals, audit checkpoints, staff actions and accounts) takes this gate
    just before its first write and holds it until its transaction ends: they queue and go
    on the moment the previous one commits, and a batch run on an event loop while the gate
    is free (``gate_if_free``) never meets a writer that did not queue. The test suite
    fails a test in which the service's code writes without it
    (``tests/reliability/gatecheck.py``). The gate is a lock of this process
    and, for a database file, an advisory lock (``flock``) on a file beside it
    (``<database>-gate``), so the parts of the service run as processes of their own
    (``mash-broker run --only ...``) queue on it too. On PostgreSQL it does nothing.

    Use: ``with write_gate(engine) as gate, session_scope(engine) as session:``, read,
    ``gate.enter()``, write; the transaction ends before the gate opens.
    """

    def __init__(self, lock: _GateLock | None, *, held: bool = False) -> None:
        self._lock = lock
        self._held = held

    def enter(self) -> None:
        """Wait for the gate (no-op if already held or not SQLite)."""
        if self._lock is not None and not self._held:
            self._lock.acquire()
            self._held = True

    def __enter__(self) -> WriteGate:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._held and self._lock is not None:
            self._held = False
            self._lock.release()


@dataclass(frozen=True)
class GateStats:
    """What this process's writers spent at a SQLite database's write gate, so far.

    ``held_seconds`` over a time is the share of it the gate was closed by this process:
    near 1, writers queue (the other parts of the service, and other processes, wait for
    it). ``waited_seconds`` is the writers' time waiting to get in, summed over writers.
    """

    transactions: int = 0
    waited_seconds: float = 0.0
    held_seconds: float = 0.0


class _GateLock:
    """A SQLite database's gate: a re-entrant lock of this process, and the file lock.

    The file lock is taken by the outermost holder in this process and let go by it; a
    thread that holds the gate may take it again (a writer called from another's
    transaction) without deadlocking on its own file lock. The outermost holders' waits
    and holds are counted (``stats``; two clock readings a transaction).
    """

    def __init__(self, path: Path | None) -> None:
        self._thread_lock = threading.RLock()
        self._path = path
        self._file: int | None = None
        self._depth = 0
        self._owner: int | None = None
        self._since = 0.0
        # Counted by the holder (under the thread lock), read by anyone via ``stats``.
        self._transactions = 0
        self._waited = 0.0
        self._held = 0.0

    @property
    def stats(self) -> GateStats:
        """What this process's writers spent at the gate so far."""
        return GateStats(self._transactions, self._waited, self._held)

    def held_here(self) -> bool:
        """Whether the calling thread holds the gate."""
        return self._owner == threading.get_ident()

    def __del__(self) -> None:
        if self._file is not None:
            os.close(self._file)

    def acquire(self) -> None:
        """Take the gate, waiting for whoever holds it."""
        self._take(wait=True)

    def try_acquire(self) -> bool:
        """Take the gate only if no other thread or process holds it; True if taken."""
        return self._take(wait=False)

    def _take(self, *, wait: bool) -> bool:
        asked = time.perf_counter()
        if not self._thread_lock.acquire(blocking=wait):
            return False
        try:
            if self._depth == 0 and self._path is not None:
                if self._file is None:
                    self._file = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
                # Waiting, it waits without the interpreter lock.
                fcntl.flock(self._file, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._thread_lock.release()
            return False
        except BaseException:
            self._thread_lock.release()
            raise
        if self._depth == 0:
            self._since = time.perf_counter()
            self._waited += self._since - asked
            self._owner = threading.get_ident()
        self._depth += 1
        return True

    def release(self) -> None:
        self._depth -= 1
        if self._depth == 0:
            self._owner = None
            self._transactions += 1
            self._held += time.perf_counter() - self._since
        try:
            if self._depth == 0 and self._file is not None:
                fcntl.flock(self._file, fcntl.LOCK_UN)
        finally:
            self._thread_lock.release()


def sqlite_database_file(engine: Engine) -> Path | None:
    """The file of ``engine``'s SQLite database; None for an in-memory one (or a ``file:``
    URI) and for PostgreSQL."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        return None
    if database.startswith("file:"):
        return None
    return Path(database)


def _gate_path(engine: Engine) -> Path | None:
    """The gate's lock file for a SQLite database file; None for an in-memory database."""
    database = sqlite_database_file(engine)
    return None if database is None else database.with_name(database.name + "-gate")


_GATES: weakref.WeakKeyDictionary[Engine, _GateLock] = weakref.WeakKeyDictionary()
_GATES_LOCK = threading.Lock()


def _gate_lock(bind: Engine | sessionmaker[Session]) -> _GateLock | None:
    """The gate of ``bind``'s database in this process, made on first use; None if it
    has none (PostgreSQL)."""
    engine = bind if isinstance(bind, Engine) else bind.kw.get("bind")
    if not isinstance(engine, Engine) or engine.dialect.name != "sqlite":
        return None
    with _GATES_LOCK:
        lock = _GATES.get(engine)
        if lock is None:
            lock = _GATES[engine] = _GateLock(_gate_path(engine))
    return lock


def write_gate(bind: Engine | sessionmaker[Session]) -> WriteGate:
    """The write gate of ``bind``'s database (see ``WriteGate``)."""
    return WriteGate(_gate_lock(bind))


@contextmanager
def gated_session(bind: Engine | sessionmaker[Session]) -> Iterator[Session]:
    """``session_scope`` inside ``bind``'s write gate, taken first: for a writer with
    nothing to read before it writes (the batch writers read first, then enter)."""
    with write_gate(bind) as gate, session_scope(bind) as session:
        gate.enter()
        yield session


@contextmanager
def gated_at_first_write(bind: Engine | sessionmaker[Session]) -> Iterator[Session]:
    """``session_scope`` that takes ``bind``'s write gate just before its first write, for
    a unit of work that may only read, or reads at length before it writes (a staff page,
    a staff action): a reading page does not queue behind the batch writers, and a writing
    one queues only for its writes."""
    lock = _gate_lock(bind)
    with WriteGate(lock) as gate, session_scope(bind) as session:
        if lock is not None:

            def enter_before_writing(
                _conn: Connection, _cursor: object, statement: str, *_args: object
            ) -> None:
                if writes(statement):
                    gate.enter()

            def watch(_session: Session, _transaction: object, connection: Connection) -> None:
                # Each transaction of the session (a unit that commits part-way has two).
                sa.event.listen(connection, "before_cursor_execute", enter_before_writing)

            sa.event.listen(session, "after_begin", watch)
        yield session


def writes(statement: str) -> bool:
    """Whether an SQL statement writes (INSERT, UPDATE, DELETE or REPLACE)."""
    return statement.lstrip()[:7].upper().startswith(_WRITES)


def gate_if_free(bind: Engine | sessionmaker[Session]) -> WriteGate | None:
    """``bind``'s write gate, entered, if it was free (no other thread or process of the
    service held it); None if it was not, or the database has none (PostgreSQL).

    A batch that gets it can run where it is, knowing it will not wait for another
    writer (``broker.batching.Batcher``'s ``inline``); the caller leaves it (``with``).
    """
    lock = _gate_lock(bind)
    if lock is None or not lock.try_acquire():
        return None
    return WriteGate(lock, held=True)


def write_gate_stats(bind: Engine | sessionmaker[Session]) -> GateStats | None:
    """What this process's writers spent at ``bind``'s write gate so far (a snapshot);
    None if it has none (PostgreSQL)."""
    lock = _gate_lock(bind)
    return lock.stats if lock is not None else None


# --------------------------------------------------------------------------- migrations


def _alembic_config() -> Config:
    if not (MIGRATIONS_DIR / "env.py").is_file():
        raise ConfigurationError(f"migrations not found at {MIGRATIONS_DIR}")
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def _engine_of(target: Engine | str | URL) -> tuple[Engine, bool]:
    if isinstance(target, Engine):
        return target, False
    return make_engine(target), True


def _run_alembic(target: Engine | str | URL, action: Callable[[Config], None]) -> None:
    engine, owned = _engine_of(target)
    try:
        config = _alembic_config()
        with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                # Two processes starting at once must not both create the same tables.
                connection.execute(
                    sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATE_LOCK_KEY}
                )
            config.attributes["connection"] = connection
            action(config)
    finally:
        if owned:
            engine.dispose()


def migrate(target: Engine | str | URL, revision: str = "head") -> None:
    """Bring the schema up to ``revision`` (alembic upgrade), on SQLite or PostgreSQL.

    Args:
        target: an engine, or a database URL (an engine is made and disposed of).
        revision: the alembic revision to reach; ``head`` by default.
    """
    _run_alembic(target, lambda config: command.upgrade(config, revision))


def downgrade(target: Engine | str | URL, revision: str) -> None:
    """Take the schema down to ``revision`` (``base`` drops every table of ours)."""
    _run_alembic(target, lambda config: command.downgrade(config, revision))


def current_revision(target: Engine | Connection) -> str | None:
    """The alembic revision the database is at, or None when it was never migrated."""
    if isinstance(target, Connection):
        return MigrationContext.configure(target).get_current_revision()
    with target.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


# --------------------------------------------------------------------------- replay store


class DbReplayStore:
    """Remembers accepted token ids (``jti``) in ``replay_seen`` until they expire.

    Implements ``broker.replay.ReplayStore`` over the broker's database, so every worker
    process shares one memory of what was opened. Atomic across processes: the jti is the
    primary key and the write is a single upsert, so of two concurrent callers exactly
    one wins.
    """

    def __init__(self, engine: Engine, *, clock: Callable[[], datetime] = utc_now) -> None:
        """Use ``engine``; ``clock`` gives the current UTC time (expiry and pruning)."""
        self._engine = engine
        self._clock = clock

    def check_and_remember(self, jti: str, expires_at: datetime) -> None:
        """Record ``jti`` as seen until ``expires_at``, in its own short transaction.

        Args:
            jti: the token id.
            expires_at: when the token expires (aware); the id is kept until then.

        Raises:
            ReplayDetected: the id was seen before and has not expired.
            TransportError: the database is unavailable.
        """
        try:
            # Queued at the write gate with the batch writers: the HTTP API's store batch
            # runs on its event loop only when the gate is free, and must not meet this
            # write at SQLite's busy handler there.
            with write_gate(self._engine) as gate, self._engine.begin() as connection:
                gate.enter()
                remember_jti(connection, jti, expires_at, now=self._clock())
        except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
            raise TransportError(f"replay store unavailable ({type(exc.orig).__name__})") from exc

    def prune(self, now: datetime | None = None) -> int:
        """Forget ids whose tokens have expired; returns how many were removed.

        Raises:
            TransportError: the database is unavailable.
        """
        table = SQLModel.metadata.tables["replay_seen"]
        return delete_expired(self._engine, table, now or self._clock())


def delete_expired(
    bind: Engine | sessionmaker[Session],
    table: sa.Table,
    cutoff: datetime,
    *,
    including_cutoff: bool = False,
    chunk: int = EXPIRED_CHUNK_ROWS,
) -> int:
    """Delete ``table``'s rows whose ``expires_at`` is before ``cutoff``, ``chunk`` at a time.

    Each chunk is a transaction of its own that takes the write gate, so a table that has
    piled up is emptied in steps between the service's other writers rather than in one
    transaction that keeps them all waiting (on SQLite, holding its one write lock).

    Args:
        bind: the database.
        table: a table with an ``expires_at`` column and a primary key.
        cutoff: rows expiring before it go (aware UTC).
        including_cutoff: rows expiring at ``cutoff`` itself go too.
        chunk: rows a transaction, at most.

    Returns:
        How many rows were deleted.

    Raises:
        ValueError: ``chunk`` is under one row.
        TransportError: the database is unavailable.
    """
    if chunk < 1:
        raise ValueError(f"a chunk must hold at least one row, not {chunk}")
    key_columns = list(table.primary_key.columns)
    key = key_columns[0] if len(key_columns) == 1 else sa.tuple_(*key_columns)
    expires_at = table.c.expires_at
    expired = expires_at <= cutoff if including_cutoff else expires_at < cutoff
    statement = sa.delete(table).where(key.in_(sa.select(*key_columns).where(expired).limit(chunk)))
    deleted = 0
    while True:
        with gated_session(bind) as session:
            count = int(session.execute(statement).rowcount)  # type: ignore[attr-defined]
        deleted += count
        if count < chunk:
            return deleted


def remember_jti(
    connection: Connection | Session,
    jti: str,
    expires_at: datetime,
    *,
    now: datetime | None = None,
) -> None:
    """Remember ``jti`` in ``replay_seen`` within the caller's transaction.

    Use this when remembering the id must commit or roll back with other work. A row
    left by an expired token is taken over (the old token is refused for expiry anyway);
    a live one means replay. A conflict does not abort the caller's transaction.

    Args:
        connection: the caller's connection or session.
        jti: the token id (at most 128 characters).
        expires_at: when the token expires.
        now: the current time; the clock if omitted.

    Raises:
        ReplayDetected: the id is there and has not expired.
    """
    if not jti or len(jti) > 128:
        raise ReplayDetected("token id missing or longer than 128 characters")
    if not remember_jtis(connection, [(jti, expires_at)], now=now):
        raise ReplayDetected(f"token id {jti} was seen before")


#: Token ids remembered by one statement at most (the statement is built once per count).
_JTIS_PER_STATEMENT = 64


@functools.lru_cache(maxsize=_JTIS_PER_STATEMENT)
def _upsert_jtis(count: int) -> sa.TextClause:
    """Remember ``count`` token ids: insert each, or take over the row of an expired token.

    One statement decides for each id: insert, take over an expired row, or change nothing;
    RETURNING names the ids remembered, where rowcount would not (drivers disagree on it
    after ON CONFLICT). The same text on SQLite and PostgreSQL. Written as text and built
    once per count: the dialects' upsert constructs cannot be cached, so SQLAlchemy
    compiled them again for every batch.
    """
    rows = ", ".join(f"(:jti_{n}, :expires_{n})" for n in range(count))
    statement = sa.text(
        f"INSERT INTO replay_seen (jti, expires_at) VALUES {rows} "  # noqa: S608 - no input
        "ON CONFLICT (jti) DO UPDATE SET expires_at = excluded.expires_at "
        "WHERE replay_seen.expires_at < :now RETURNING jti"
    )
    when = SQLModel.metadata.tables["replay_seen"].c.expires_at.type
    return statement.bindparams(
        sa.bindparam("now", type_=when),
        *(sa.bindparam(f"expires_{n}", type_=when) for n in range(count)),
    )


def remember_jtis(
    connection: Connection | Session,
    tokens: Sequence[tuple[str, datetime]],
    *,
    now: datetime | None = None,
) -> set[str]:
    """Remember several token ids in one statement (per 64 ids), in the caller's transaction.

    ``remember_jti`` for a batch: each id is inserted, or takes over the row of an expired
    token; an id that is there and live, or that comes twice in ``tokens``, is a replay.

    Args:
        connection: the caller's connection or session.
        tokens: (jti, expires_at) per token.
        now: the current time; the clock if omitted.

    Returns:
        The ids remembered now; every other id of ``tokens`` is a replay. An id given
        twice is remembered once: only its first occurrence is to be accepted.
    """
    unique: dict[str, datetime] = {}
    for jti, expires_at in tokens:
        if jti and len(jti) <= 128 and jti not in unique:
            unique[jti] = expires_at
    if not unique:
        return set()
    if isinstance(connection, Session):
        connection = connection.connection()
    pending = list(unique.items())
    at = now or utc_now()
    remembered: set[str] = set()
    for start in range(0, len(pending), _JTIS_PER_STATEMENT):
        chunk = pending[start : start + _JTIS_PER_STATEMENT]
        values: dict[str, object] = {"now": at}
        for n, (jti, expires_at) in enumerate(chunk):
            values[f"jti_{n}"] = jti
            values[f"expires_{n}"] = expires_at
        remembered.update(row[0] for row in connection.execute(_upsert_jtis(len(chunk)), values))
    return remembered


# --------------------------------------------------------------------------- inbox

_INBOX = SQLModel.metadata.tables[InboxEntry.__tablename__]
#: The message ids among some that an inbox consumer has applied already (Core, built
#: once: run on the connection, a statement skips the ORM's layer, about 120 µs of it).
_APPLIED = sa.select(_INBOX.c.message_id).where(
    _INBOX.c.consumer == sa.bindparam("consumer"),
    _INBOX.c.message_id.in_(sa.bindparam("message_ids", expanding=True)),
)
_INSERT_INBOX = RowInsert(_INBOX)


def mark_applied(connection: Connection, entries: Sequence[Mapping[str, Any]]) -> None:
    """Add inbox rows (``consumer``, ``message_id``, ``processed_at`` each) in one
    statement: those messages are applied, in the caller's transaction."""
    _INSERT_INBOX(connection, entries)


def applied_among(
    connection: Connection | Session, consumer: str, message_ids: Iterable[str]
) -> set[str]:
    """Which of ``message_ids`` the inbox ``consumer`` has applied already, in one query
    by the inbox's unique index (consumer first: by message id alone it would read the
    whole inbox)."""
    wanted = list(set(message_ids))
    if not wanted:
        return set()
    if isinstance(connection, Session):
        connection = connection.connection()
    found = connection.execute(_APPLIED, {"consumer": consumer, "message_ids": wanted})
    return set(found.scalars())
