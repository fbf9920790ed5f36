"""Rows handed to the relay by a writer in its process: published without a selection.

On the real RabbitMQ and on SQLite and PostgreSQL. What counts: every committed row reaches
its queue exactly once (a row both handed over and selected included), rows handed to a
relay that never publishes them are not lost, and rows committed by other writers are
still found while handed rows keep coming.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import aio_pika
import pytest
from sqlalchemy import event, select
from sqlmodel import col

from broker.db import session_scope
from broker.messaging import Publisher
from broker.models import AuditEntry
from broker.outbox import OutboxRelay, outbox_backlog
from broker.pipeline import Ingestor
from broker.samples import render_all
from broker.service import Service
from broker.topology import ensure_topology
from tests.integration.helpers import eventually

pytestmark = [pytest.mark.rabbitmq]

SENDER = "tvp-police"


def _police_samples() -> list[bytes]:
    return [raw for name, raw in sorted(render_all(1).items()) if name.startswith("police/")]


def _store(ingestor: Ingestor, raw: bytes) -> list[dict[str, Any]]:
    """Store one message as the ingest does; the outbox rows its commit wrote."""
    prepared = ingestor.prepare("police", raw, SENDER)
    [result] = ingestor.store_prepared([prepared])
    rows = prepared.stored_outbox(result)
    assert rows, "the sample shares with someone"
    return rows


@contextmanager
def _outbox_selections(service: Service) -> Iterator[list[str]]:
    """The relay's selections of due rows run meanwhile (SELECTs of the outbox's tokens)."""
    seen: list[str] = []

    def before(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        text = " ".join(statement.split()).lower()
        if text.startswith("select") and "outbox.token" in text and "from outbox" in text:
            seen.append(text)

    event.listen(service.engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(service.engine, "before_cursor_execute", before)


def _published(service: Service) -> Counter[str]:
    """Each jti's count of ``published`` audit entries."""
    with session_scope(service.sessions) as session:
        return Counter(
            session.execute(
                select(col(AuditEntry.jti)).where(col(AuditEntry.kind) == "published")
            ).scalars()
        )


def _each_published_once(service: Service, rows: Sequence[Mapping[str, Any]]) -> bool:
    return _published(service) == Counter(str(row["jti"]) for row in rows)


@asynccontextmanager
async def _running(relay: OutboxRelay, *, idle_seconds: float) -> AsyncIterator[None]:
    """``relay`` running meanwhile; stopped (its outcomes recorded) on the way out."""
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop, idle_seconds=idle_seconds))
    try:
        yield
    finally:
        stop.set()
        await task


async def _on_queues(channel: aio_pika.abc.AbstractChannel, service: Service) -> int:
    total = 0
    for queue in set(service.topology.recipient_queues.values()):
        declared = await channel.declare_queue(queue, passive=True)
        total += int(declared.declaration_result.message_count or 0)
    return total


async def test_handed_rows_are_published_without_a_selection(service: Service) -> None:
    await ensure_topology(service.settings.amqp, service.topology)
    ingestor = Ingestor(service)
    handed: list[Mapping[str, Any]] = []
    connection = await aio_pika.connect(service.settings.amqp.url.get_secret_value())
    async with connection, Publisher(service.settings.amqp) as publisher:
        channel = await connection.channel()
        relay = OutboxRelay(service, publisher)
        async with _running(relay, idle_seconds=60):
            await asyncio.sleep(0.3)  # its first pass selected (nothing): the next in a minute
            with _outbox_selections(service) as selections:
                for raw in _police_samples():
                    rows = _store(ingestor, raw)
                    handed += rows
                    relay.hand(rows)
                await eventually(lambda: outbox_backlog(service) == 0, within=10)
            assert selections == []
            assert await _on_queues(channel, service) == len(handed)
    assert _each_published_once(service, handed)


@pytest.mark.parametrize(
    "order", ["selected-then-handed", "handed-while-publishing", "handed-then-selected"]
)
async def test_a_row_both_selected_and_handed_is_published_once(
    service: Service, order: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await ensure_topology(service.settings.amqp, service.topology)
    ingestor = Ingestor(service)
    connection = await aio_pika.connect(service.settings.amqp.url.get_secret_value())
    async with connection, Publisher(service.settings.amqp) as publisher:
        channel = await connection.channel()
        relay = OutboxRelay(service, publisher)
        rows = _store(ingestor, _police_samples()[0])
        publish_batch = publisher.publish_batch

        async def publishing(messages: Any) -> Any:
            if order == "handed-while-publishing" and not relay._handed:
                # The writer's commit was read by the selection; the writer hands the
                # rows over only now, while the selection's publish waits for confirms.
                relay.hand(rows)
            return await publish_batch(messages)

        monkeypatch.setattr(publisher, "publish_batch", publishing)
        if order == "handed-then-selected":
            # Handed over before the relay's first pass, which selects: the selection
            # finds the same rows, and the handed copies are dropped.
            relay.hand(rows)
        async with _running(relay, idle_seconds=60):
            await eventually(lambda: outbox_backlog(service) == 0, within=10)
            if order == "selected-then-handed":
                # The selection published them before the writer got round to handing
                # them over (and their outcome is recorded already).
                relay.hand(rows)
            await asyncio.sleep(0.3)
            assert await _on_queues(channel, service) == len(rows)
    assert _each_published_once(service, rows)


async def test_rows_handed_to_a_relay_that_stops_are_found_by_the_next(
    service: Service,
) -> None:
    await ensure_topology(service.settings.amqp, service.topology)
    rows = _store(Ingestor(service), _police_samples()[0])
    stopped = asyncio.Event()
    stopped.set()
    async with Publisher(service.settings.amqp) as publisher:
        gone = OutboxRelay(service, publisher)
        gone.hand(rows)
        await gone.run(stopped)  # stopped before its first pass: nothing published
        assert outbox_backlog(service) == len(rows)
        async with _running(OutboxRelay(service, publisher), idle_seconds=60):
            await eventually(lambda: outbox_backlog(service) == 0, within=10)
    assert _each_published_once(service, rows)


async def test_rows_of_other_writers_are_found_while_handed_rows_keep_coming(
    service: Service,
) -> None:
    # One message is committed by "another process" (not handed over); messages handed
    # over keep the relay busy. Its selection every poll interval still finds the first.
    await ensure_topology(service.settings.amqp, service.topology)
    ingestor = Ingestor(service)
    samples = _police_samples()
    async with Publisher(service.settings.amqp) as publisher:
        relay = OutboxRelay(service, publisher)
        async with _running(relay, idle_seconds=0.3):
            await asyncio.sleep(0.1)  # its first pass selected (nothing)
            others = {str(row["jti"]) for row in _store(ingestor, samples[0])}
            for n, raw in enumerate(samples[1:] * 8, start=1):
                relay.hand(_store(ingestor, raw + b" " * n))  # new bytes: not duplicates
                await asyncio.sleep(0.05)
                if others <= set(_published(service)):
                    break
            assert others <= set(_published(service))
            await eventually(lambda: outbox_backlog(service) == 0, within=10)
    assert set(_published(service).values()) == {1}


async def test_rows_handed_beyond_the_limit_are_left_to_the_selection(service: Service) -> None:
    # A relay whose publishing stalls is not handed tokens without end: past its limit
    # (four batches) rows are not kept, and its selection publishes them later.
    # ``_taken`` (the rows it took last, to drop what is handed over again) is bounded too.
    await ensure_topology(service.settings.amqp, service.topology)
    ingestor = Ingestor(service)
    rows = [row for raw in _police_samples() for row in _store(ingestor, raw)]
    async with Publisher(service.settings.amqp) as publisher:
        relay = OutboxRelay(service, publisher, batch_size=2)
        relay.hand(rows)
        assert len(rows) > 8
        assert [row.jti for row in relay._handed] == [str(row["jti"]) for row in rows[:8]]
        async with _running(relay, idle_seconds=0.1):
            await eventually(lambda: outbox_backlog(service) == 0, within=20)
        # What it remembers having taken is bounded the same way.
        assert len(relay._taken) == 8
    assert _each_published_once(service, rows)
