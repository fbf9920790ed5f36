"""The outbox relay: publishes committed outbox rows with confirms, marks them sent after.

A row is marked ``sent`` only once RabbitMQ confirmed it. An unroutable row (no queue bound
for its routing key) stays ``pending`` with ``last_error='unroutable'`` and is retried with
back-off while an error is logged: never a silent drop. A crash between publish and commit
republishes the row; consumers make that harmless with their inbox.

Rows are found two ways. A writer in the relay's own process hands it the rows it has just
committed (``hand``): they are published without being selected again. Every poll interval
the relay also selects due rows from the table, which finds rows committed by other
processes, rows handed to a relay that stopped before publishing them, and rows whose retry
time has come. A row is keyed by its ``jti`` (unique in the table) throughout.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Integer, bindparam, func, or_, select, update
from sqlmodel import SQLModel, col

from broker.audit import AuditKind, AuditRecord, draft
from broker.db import gated_session, session_scope
from broker.exceptions import TransportError
from broker.logging import get_logger
from broker.messaging import OutgoingMessage, Publisher, PublishResult, PublishStatus
from broker.models import OutboxMessage, OutboxStatus
from broker.service import Service

__all__ = ["OutboxRelay", "RelayReport", "outbox_backlog"]

_log = get_logger("outbox")

#: Back-off for rows that could not be published, by attempt (capped at the last).
_RETRY_AFTER = (1, 2, 5, 10, 30, 60)

# Core statements on the table, built once: run on the connection they skip the ORM's
# layer (about 120 µs a statement; the relay runs three a batch).
_OUTBOX = SQLModel.metadata.tables[OutboxMessage.__tablename__]
_DUE = (
    select(
        _OUTBOX.c.recipient,
        _OUTBOX.c.exchange,
        _OUTBOX.c.routing_key,
        _OUTBOX.c.token,
        _OUTBOX.c.jti,
        _OUTBOX.c.attempts,
    )
    .where(
        _OUTBOX.c.status == OutboxStatus.PENDING,
        or_(_OUTBOX.c.next_attempt_at.is_(None), _OUTBOX.c.next_attempt_at <= bindparam("now")),
    )
    .order_by(_OUTBOX.c.id)
    .limit(bindparam("limit", type_=Integer))
)
#: Due rows but those in flight (published, their outcome not yet committed).
_DUE_BUT = _DUE.where(_OUTBOX.c.jti.not_in(bindparam("exclude", expanding=True)))
_MARK_SENT = (
    update(_OUTBOX)
    .where(_OUTBOX.c.jti.in_(bindparam("jtis", expanding=True)))
    .values(
        status=OutboxStatus.SENT,
        sent_at=bindparam("now", type_=_OUTBOX.c.sent_at.type),
        attempts=_OUTBOX.c.attempts + 1,
        last_error=None,
    )
)
_MARK_UNSENT = (
    update(_OUTBOX)
    .where(_OUTBOX.c.jti == bindparam("row_jti"))
    .values(
        attempts=bindparam("attempts"),
        last_error=bindparam("error"),
        next_attempt_at=bindparam("retry_at", type_=_OUTBOX.c.next_attempt_at.type),
    )
)


@dataclass(frozen=True)
class RelayReport:
    """What one pass of the relay did."""

    taken: int
    sent: int
    unroutable: int
    failed: int


@dataclass(frozen=True)
class _Row:
    recipient: str
    exchange: str
    routing_key: str
    token: str
    jti: str
    event_type: str
    attempts: int


class OutboxRelay:
    """Publishes pending outbox rows in batches, pipelining the confirms."""

    def __init__(
        self,
        service: Service,
        publisher: Publisher,
        *,
        batch_size: int = 500,
        record_every: float = 0.05,
    ) -> None:
        """Relay ``service``'s outbox through ``publisher``.

        ``record_every``: seconds a recording waits for more outcomes to join it, unless
        a batch's worth is waiting already. Recording is off the disclosures' path (they
        are published by then), but each recording is a transaction that holds SQLite's
        write gate: at 50 events a second one per published batch held it about a quarter
        of its busy time. A crash meanwhile publishes those rows again (at least once:
        consumers' inboxes drop the copy).
        """
        self._service = service
        self._publisher = publisher
        self._batch_size = batch_size
        self._record_every = record_every
        self._source = f"urn:mash:party:{service.settings.crypto.service_party}"
        self._wakeup = asyncio.Event()
        # Its database work runs on a thread of its own, not queued in the shared pool
        # behind the ingest's translating and sealing.
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbox relay")
        # Outcomes are recorded on a thread of their own, so that while one batch's are
        # written (waiting for SQLite's write lock, say) the next batch is already selected
        # and published.
        self._record_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbox record")
        # Rows published whose outcome could not be recorded (the database went away after
        # the publish): recorded first on the next pass instead of published again.
        self._unrecorded: tuple[list[_Row], list[PublishResult]] | None = None
        # The jtis of rows published whose outcome is not yet committed: never selected
        # again meanwhile (a second publish would be harmless, but is work and noise).
        self._in_flight: set[str] = set()
        # Outcomes waiting for the recording under way to end; recorded together then.
        self._to_record: list[tuple[_Row, PublishResult]] = []
        self._recording: asyncio.Task[None] | None = None
        # Rows handed over by this process's writers, not yet published: at most
        # ``_handed_limit``, so that a stalled publish (a RabbitMQ alarm, say) does not
        # gather tokens in memory; rows beyond it are left to the selection.
        self._handed: list[_Row] = []
        self._handed_limit = 4 * batch_size
        # The jtis of the rows taken to be published last (a few batches' worth), so that
        # a row both selected and handed over (committed just as a selection ran, handed
        # over once the selection had read it, even while it is being published) goes
        # out once.
        self._taken: OrderedDict[str, None] = OrderedDict()
        self._taken_limit = 4 * batch_size
        # When the next pass selects due rows from the table, on the monotonic clock;
        # passes before it publish what was handed over.
        self._select_at = 0.0
        self._select_every = 0.2

    def wake(self) -> None:
        """Start the next pass now: rows were just committed (by another part, say).

        Without it the relay finds new rows at its next poll.
        """
        self._wakeup.set()

    def hand(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Publish ``rows`` in the next pass: outbox rows this process has just committed.

        Each is a mapping of the table's columns (``recipient``, ``exchange``,
        ``routing_key``, ``token``, ``jti``; ``attempts`` 0 if absent). They are published
        without being selected from the table again, so a disclosure waits for no
        selection; if the relay stops first, or too many wait already, they stay pending
        and a later selection finds them. Call on the relay's event loop, only after the
        rows' commit.
        """
        for row in rows:
            if len(self._handed) >= self._handed_limit:
                break
            jti = str(row["jti"])
            if jti in self._in_flight or jti in self._taken:
                continue
            routing_key = str(row["routing_key"])
            self._handed.append(
                _Row(
                    recipient=str(row["recipient"]),
                    exchange=str(row["exchange"]),
                    routing_key=routing_key,
                    token=str(row["token"]),
                    jti=jti,
                    event_type=_event_type(routing_key),
                    attempts=int(row.get("attempts") or 0),
                )
            )
        self._wakeup.set()

    async def run_once(self) -> RelayReport:
        """Publish one batch of due rows; record each outcome.

        Raises:
            TransportError: the database or broker is unavailable; what was published is
                recorded on the next pass.
        """
        loop = asyncio.get_running_loop()
        await self._record_kept(self._thread)
        rows = await loop.run_in_executor(self._thread, self._due_rows)
        if not rows:
            return RelayReport(0, 0, 0, 0)
        results = await self._publisher.publish_batch(self._messages(rows))
        try:
            return await loop.run_in_executor(self._thread, self._record, rows, results)
        except TransportError:
            self._unrecorded = (rows, results)
            raise

    async def run(self, stop: asyncio.Event, *, idle_seconds: float = 0.2) -> None:
        """Relay until ``stop`` is set; when nothing is due, wait for ``wake`` or the poll.

        Pipelined: a batch's outcomes are recorded while the next batch is selected and
        published (the rows being recorded are left out of that selection), and outcomes
        that arrive while one recording runs are recorded together in the next. Before it
        returns, every outcome it published is recorded (or kept for the next pass if the
        database is unavailable).

        Rows handed over (``hand``) are published as they come. At least every
        ``idle_seconds`` a pass selects due rows from the table instead: rows committed by
        other processes, and rows whose retry time has come.
        """
        self._select_every = idle_seconds
        try:
            while not stop.is_set():
                # Cleared before the pass: a wake-up during it means rows it may have missed.
                self._wakeup.clear()
                try:
                    taken = await self._publish_pass()
                except TransportError as exc:
                    # An outage (database or broker): expected, said once per pass, no trace.
                    _log.warning("relay_pass_deferred", error=exc.code)
                    taken = 0
                    await _sleep_or_stop(stop, 1.0)
                except Exception:  # noqa: BLE001 - the relay must outlive any one failure
                    _log.exception("relay_pass_failed")
                    taken = 0
                    await _sleep_or_stop(stop, 1.0)
                if taken < self._batch_size:
                    await _wait_either(stop, self._wakeup, idle_seconds)
        finally:
            await self._recorded()

    async def _publish_pass(self) -> int:
        """Select due rows not in flight, publish them, hand their outcomes to recording.

        Returns:
            How many rows were taken.

        Raises:
            TransportError: the database or broker is unavailable.
        """
        loop = asyncio.get_running_loop()
        if self._unrecorded is not None:
            await self._recorded()
            kept = await self._record_kept(self._record_thread)
            self._in_flight.difference_update(row.jti for row in kept)
        if len(self._in_flight) >= self._batch_size:
            # Recording lags behind publishing: let it catch up (this bounds the rows
            # in flight, and the jtis the next select leaves out).
            await self._recorded()
        if self._handed and time.monotonic() < self._select_at:
            rows = self._handed[: self._batch_size]
            del self._handed[: self._batch_size]
        else:
            # The set as it is before the select starts: a row whose outcome commits while
            # the select runs may still read as pending there, and is left out by this.
            exclude = frozenset(self._in_flight)
            rows = await loop.run_in_executor(self._thread, self._due_rows, exclude)
            self._select_at = time.monotonic() + self._select_every
            if self._handed:
                # Committed before the selection read them: published once, as selected.
                selected = {row.jti for row in rows}
                self._handed = [row for row in self._handed if row.jti not in selected]
        if not rows:
            return 0
        # Before the publish, which yields: a writer may hand over these rows meanwhile.
        # A row whose publish fails stays pending, for the next selection to find.
        for row in rows:
            self._taken[row.jti] = None
            self._taken.move_to_end(row.jti)
        while len(self._taken) > self._taken_limit:
            self._taken.popitem(last=False)
        results = await self._publisher.publish_batch(self._messages(rows))
        self._in_flight.update(row.jti for row in rows)
        self._to_record.extend(zip(rows, results, strict=True))
        if self._recording is None or self._recording.done():
            self._recording = asyncio.create_task(self._record_pending(), name="outbox record")
        return len(rows)

    async def _record_kept(self, executor: ThreadPoolExecutor) -> list[_Row]:
        """Record the outcomes kept through an outage, if any; their rows.

        Raises:
            TransportError: still unavailable; they are kept for the next pass.
        """
        if self._unrecorded is None:
            return []
        # Kept only through outages: any other failure leaves the rows pending, to be
        # published again (at least once) rather than retried here for ever.
        unrecorded, self._unrecorded = self._unrecorded, None
        try:
            await asyncio.get_running_loop().run_in_executor(executor, self._record, *unrecorded)
        except TransportError:
            self._unrecorded = unrecorded
            raise
        return unrecorded[0]

    async def _record_pending(self) -> None:
        """Record the outcomes handed over, in batches, until none are left."""
        loop = asyncio.get_running_loop()
        while self._to_record:
            if len(self._to_record) < self._batch_size:
                # Outcomes published meanwhile join this recording: fewer transactions.
                await asyncio.sleep(self._record_every)
            taken, self._to_record = self._to_record, []
            rows = [row for row, _ in taken]
            results = [result for _, result in taken]
            try:
                await loop.run_in_executor(self._record_thread, self._record, rows, results)
            except TransportError as exc:
                # Kept and recorded first on the next pass, not published again.
                _log.warning("relay_record_deferred", error=exc.code)
                if self._unrecorded is None:
                    self._unrecorded = (rows, results)
                else:
                    self._unrecorded[0].extend(rows)
                    self._unrecorded[1].extend(results)
                continue
            except Exception:  # noqa: BLE001 - the rows stay pending: published again
                _log.exception("relay_record_failed", rows=len(rows))
            self._in_flight.difference_update(row.jti for row in rows)

    async def _recorded(self) -> None:
        """Wait for the recording under way, if any."""
        if self._recording is not None:
            await asyncio.shield(self._recording)

    def _messages(self, rows: list[_Row]) -> list[OutgoingMessage]:
        return [
            OutgoingMessage(
                exchange=row.exchange,
                routing_key=row.routing_key,
                body=row.token.encode("ascii"),
                message_id=row.jti,
                event_type=row.event_type,
                source=self._source,
            )
            for row in rows
        ]

    def _due_rows(self, exclude: frozenset[str] = frozenset()) -> list[_Row]:
        parameters: dict[str, Any] = {"now": datetime.now(UTC), "limit": self._batch_size}
        if exclude:
            parameters["exclude"] = list(exclude)
        with session_scope(self._service.sessions) as session:
            found = session.connection().execute(_DUE_BUT if exclude else _DUE, parameters).all()
        return [
            _Row(
                recipient=r[0],
                exchange=r[1],
                routing_key=r[2],
                token=r[3],
                jti=r[4],
                event_type=_event_type(r[2]),
                attempts=r[5],
            )
            for r in found
        ]

    def _record(self, rows: list[_Row], results: list[PublishResult]) -> RelayReport:
        now = datetime.now(UTC)
        sent = [row for row, result in zip(rows, results, strict=True) if result.confirmed]
        unsent = [
            (row, result) for row, result in zip(rows, results, strict=True) if not result.confirmed
        ]
        # Made (and checked) before the write lock is taken: pure work that would hold it.
        published = [
            draft(
                AuditRecord(
                    kind=AuditKind.PUBLISHED,
                    recipient=row.recipient,
                    jti=row.jti,
                    detail=f"exchange={row.exchange} routing_key={row.routing_key}",
                )
            )
            for row in sent
        ]
        with gated_session(self._service.sessions) as session:
            connection = session.connection()
            if sent:
                connection.execute(_MARK_SENT, {"jtis": [row.jti for row in sent], "now": now})
            for row, result in unsent:
                delay = _RETRY_AFTER[min(row.attempts, len(_RETRY_AFTER) - 1)]
                connection.execute(
                    _MARK_UNSENT,
                    {
                        "row_jti": row.jti,
                        "attempts": row.attempts + 1,
                        "error": result.status.value,
                        "retry_at": now + timedelta(seconds=delay),
                    },
                )
            self._service.audit.append_many(session, published)
        unroutable = sum(1 for _, r in unsent if r.status is PublishStatus.UNROUTABLE)
        for row, result in unsent:
            # An alarm, not a drop: the row stays pending and is retried.
            _log.error(
                "outbox_not_published",
                jti=row.jti,
                recipient=row.recipient,
                routing_key=row.routing_key,
                status=result.status.value,
                attempts=row.attempts + 1,
            )
        return RelayReport(
            taken=len(rows), sent=len(sent), unroutable=unroutable, failed=len(unsent) - unroutable
        )


def _event_type(routing_key: str) -> str:
    """The event type a disclosure's routing key (``recipient.event_type``) names."""
    return routing_key.split(".", 1)[1] if "." in routing_key else "unknown"


def outbox_backlog(service: Service) -> int:
    """How many outbox rows wait to be published."""
    with session_scope(service.sessions) as session:
        count = session.execute(
            select(func.count()).where(col(OutboxMessage.status) == OutboxStatus.PENDING)
        ).scalar_one()
    return int(count)


async def _wait_either(stop: asyncio.Event, wakeup: asyncio.Event, seconds: float) -> None:
    """Wait until ``stop`` or ``wakeup`` is set, or ``seconds`` pass."""
    if stop.is_set() or wakeup.is_set():
        return
    waiters = {asyncio.ensure_future(stop.wait()), asyncio.ensure_future(wakeup.wait())}
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    try:
        async with asyncio.timeout(seconds):
            await stop.wait()
    except TimeoutError:
        pass
