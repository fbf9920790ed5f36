"""End to end over the real RabbitMQ and database: samples in, disclosures where agreed."""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import aio_pika
import pytest
from fastapi import FastAPI
from sqlalchemy import Select, func, select
from sqlmodel import col

from adapters import AdapterContext, get_adapter
from broker import envelope
from broker.audit import AuditEntryInvalid, verify
from broker.db import session_scope
from broker.exceptions import TransportError
from broker.intake.consumer import IntakeConsumer, StoreOutcome
from broker.keys import PartyKeys
from broker.messaging import Consumer, OutgoingMessage, Publisher, ReceivedMessage, RetryLater
from broker.models import (
    AuditEntry,
    AuditKind,
    MashAlert,
    OutboxMessage,
    OutboxStatus,
    RawMessage,
)
from broker.outbox import OutboxRelay, outbox_backlog
from broker.policy import evaluate, leaf_paths
from broker.replay import MemoryReplayStore
from broker.runtime import Runtime, audit_public_keys
from broker.samples import render_all
from broker.samples.catalogue import adapter_for, sender_for
from broker.service import Service
from broker.topology import ingest_queue_name
from schemas import Event
from tests.integration.helpers import eventually, publish_native

pytestmark = [pytest.mark.rabbitmq]


def _native_samples() -> list[tuple[str, bytes, str]]:
    items = []
    for name, raw in sorted(render_all(1).items()):
        adapter = adapter_for(name)
        items.append((adapter, raw, sender_for(adapter)))
    return items


def _expected(service: Service, items: list[tuple[str, bytes, str]]) -> Counter[tuple[UUID, str]]:
    """(event id, recipient) → how many disclosures the agreement makes for the samples."""
    expected: Counter[tuple[UUID, str]] = Counter()
    now = datetime.now(UTC)
    for adapter, raw, sender in items:
        for event in get_adapter(adapter).parse(raw, AdapterContext(sender, now=now)):
            for disclosure in evaluate(service.policy, event, now).disclosures:
                expected[(event.metadata.event_id, disclosure.recipient)] += 1
    return expected


def _count(service: Service, statement: Select[Any]) -> int:
    with session_scope(service.sessions) as session:
        return int(session.execute(statement).scalar_one())


async def _drain(service: Service, queue: str) -> list[bytes]:
    connection = await aio_pika.connect(service.settings.amqp.url.get_secret_value())
    bodies = []
    async with connection:
        channel = await connection.channel()
        source = await channel.get_queue(queue, ensure=False)
        while (message := await source.get(no_ack=False, fail=False)) is not None:
            bodies.append(message.body)
            await message.ack()
    return bodies


async def test_every_sample_routes_as_the_agreement_says(service: Service) -> None:
    items = _native_samples()
    expected = _expected(service, items)
    mash_events = {event_id for event_id, party in expected if party == "wam-mash"}
    assert mash_events, "the agreement routes sample alerts to the MASH"
    async with Runtime(service):
        await publish_native(service, items)
        await eventually(
            lambda: (
                _count(service, select(func.count()).select_from(MashAlert)) == len(mash_events)
                and outbox_backlog(service) == 0
            )
        )
    with session_scope(service.sessions) as session:
        stored = {row[0] for row in session.execute(select(col(MashAlert.event_id)))}
        outbox = Counter(
            (row[0], row[1])
            for row in session.execute(
                select(col(OutboxMessage.event_id), col(OutboxMessage.recipient))
            )
        )
        statuses = {row[0] for row in session.execute(select(col(OutboxMessage.status)))}
    assert stored == mash_events
    assert outbox == expected
    assert statuses == {OutboxStatus.SENT}

    # Every partner queue holds exactly what the agreement shares, minimised, and opens
    # only with that partner's own key.
    replay = MemoryReplayStore()
    for party, queue in service.topology.recipient_queues.items():
        if party == "wam-mash":
            continue
        keys = PartyKeys.load(service.keys_dir, party, service.registry)
        received: Counter[tuple[UUID, str]] = Counter()
        for body in await _drain(service, queue):
            claims = envelope.open(body, recipient=keys, registry=service.registry, replay=replay)
            assert claims.aud == party
            received[(claims.provenance.source_event_id, party)] += 1
            allowed = set(
                service.policy.evaluate(
                    _event_of(items, claims.provenance.source_event_id), datetime.now(UTC)
                )
                .require(party)
                .fields
            )
            assert leaf_paths(claims.event) <= _expand(allowed, claims.event)
        assert received == Counter({k: v for k, v in expected.items() if k[1] == party}), party

    with session_scope(service.sessions) as session:
        report = verify(session, audit_public_keys(service))
        kinds = Counter(row[0] for row in session.execute(select(col(AuditEntry.kind))))
    assert report.ok, report.summary()
    assert kinds[AuditKind.SHARED] == sum(expected.values())
    assert kinds[AuditKind.PUBLISHED] == sum(expected.values())
    assert kinds[AuditKind.DELIVERED] == len(mash_events)
    assert kinds[AuditKind.REFUSED] > 0  # the youth trust never receives under s.115


async def _drain_until(service: Service, queue: str, count: int) -> list[bytes]:
    """Drain ``queue`` until ``count`` messages have come, or ten seconds have passed."""
    bodies: list[bytes] = []
    for _ in range(100):
        bodies.extend(await _drain(service, queue))
        if len(bodies) >= count:
            break
        await asyncio.sleep(0.1)
    return bodies


def _event_of(items: list[tuple[str, bytes, str]], event_id: UUID) -> Event:
    now = datetime.now(UTC)
    for adapter, raw, sender in items:
        for event in get_adapter(adapter).parse(raw, AdapterContext(sender, now=now)):
            if event.metadata.event_id == event_id:
                return event
    raise AssertionError(f"no sample event {event_id}")


def _expand(allowed: set[str], event: dict[str, object]) -> set[str]:
    """Leaf paths of ``event`` that an allow-list with wildcards and parents permits."""
    permitted = set()
    for path in leaf_paths(event):
        if any(path == a or path.startswith(a.rstrip("*").rstrip(".") + ".") for a in allowed):
            permitted.add(path)
    return permitted


async def test_bad_input_is_rejected_audited_and_dead_lettered(service: Service) -> None:
    good = _native_samples()[:1]
    bad = [("police", b'{"record_type": "missing_report"}', "tvp-police")]
    async with Runtime(service, ("ingest",)):
        await publish_native(service, bad + good)
        await eventually(
            lambda: (
                _count(
                    service,
                    select(func.count())
                    .select_from(AuditEntry)
                    .where(col(AuditEntry.kind) == AuditKind.REJECTED),
                )
                == 1
                and _count(service, select(func.count()).select_from(OutboxMessage)) > 0
            )
        )
        dead = await _drain_until(service, ingest_queue_name("police") + ".dlq", 1)
    assert dead == [bad[0][1]]


async def test_redelivery_after_a_crash_before_ack_has_no_second_effect(
    service: Service,
) -> None:
    items = [i for i in _native_samples() if i[0] == "police"]
    async with Runtime(service, ("ingest", "relay")):
        await publish_native(service, items)
        # Every message ingested (not only the first batch) and its rows published.
        await eventually(
            lambda: (
                _count(service, select(func.count()).select_from(RawMessage)) == len(items)
                and outbox_backlog(service) == 0
            )
        )
    sent_to_mash = _count(
        service,
        select(func.count())
        .select_from(OutboxMessage)
        .where(col(OutboxMessage.recipient) == "wam-mash"),
    )
    intake = IntakeConsumer(service)
    crashed: set[str | None] = set()
    outcomes: list[str] = []

    async def store_then_crash_once(message: ReceivedMessage) -> None:
        outcomes.append(await asyncio.to_thread(intake.store, message.body, message.message_id))
        if message.message_id not in crashed:
            crashed.add(message.message_id)
            raise RetryLater("crashed after commit, before ack")

    # One delivery at a time, as the intake's own batcher stores them one batch at a time.
    consumer = Consumer(service.settings.amqp, intake.queue, store_then_crash_once, prefetch=1)
    task = asyncio.create_task(consumer.run())
    try:
        await eventually(lambda: consumer.stats.acked == sent_to_mash, within=60)
    finally:
        await consumer.stop()
        await task
    assert outcomes.count(StoreOutcome.STORED) == sent_to_mash
    assert outcomes.count(StoreOutcome.DUPLICATE) == sent_to_mash
    assert _count(service, select(func.count()).select_from(MashAlert)) == sent_to_mash
    delivered = (
        select(func.count())
        .select_from(AuditEntry)
        .where(col(AuditEntry.kind) == AuditKind.DELIVERED)
    )
    assert _count(service, delivered) == sent_to_mash


async def test_a_forged_disclosure_is_dead_lettered_and_audited(service: Service) -> None:
    forged = OutgoingMessage(
        exchange="disclosures",
        routing_key="wam-mash.missing.reported",
        body=b"eyJhbGciOiJub25lIn0.e30.",
        message_id="forged-1",
        event_type="missing.reported",
        source="urn:mash:party:unknown",
    )
    async with Runtime(service, ("intake",)):
        async with Publisher(service.settings.amqp) as publisher:
            [result] = await publisher.publish_batch([forged])
        assert result.confirmed
        await eventually(
            lambda: (
                _count(
                    service,
                    select(func.count())
                    .select_from(AuditEntry)
                    .where(col(AuditEntry.kind) == AuditKind.DEAD_LETTERED),
                )
                == 1
            )
        )
        # The audit entry is written before the consumer moves the message aside.
        dead = await _drain_until(service, "mash.E06000040.dlq", 1)
    assert dead == [forged.body]
    assert _count(service, select(func.count()).select_from(MashAlert)) == 0


def _pending_row(service: Service, recipient: str, *, token: str, jti: str) -> None:
    """An outbox row for ``recipient``, due now (no agreement needed)."""
    with session_scope(service.sessions) as session:
        session.add(
            OutboxMessage(
                event_id=UUID(int=7),
                recipient=recipient,
                exchange="disclosures",
                routing_key=f"{recipient}.missing.reported",
                token=token,
                jti=jti,
            )
        )


async def test_an_unroutable_disclosure_stays_pending_until_it_can_be_routed(
    service: Service,
) -> None:
    _pending_row(service, "nobody-here", token="x.y.z.w.v", jti="0123456789abcdef0123456789abcdef")
    async with Runtime(service, ()), Publisher(service.settings.amqp) as publisher:
        relay = OutboxRelay(service, publisher)
        report = await relay.run_once()
        assert (report.taken, report.sent, report.unroutable) == (1, 0, 1)
        with session_scope(service.sessions) as session:
            row = session.execute(select(OutboxMessage)).scalar_one()
            assert row.status == OutboxStatus.PENDING
            assert row.last_error == "unroutable"
            row.next_attempt_at = None  # due again now
        connection = await aio_pika.connect(service.settings.amqp.url.get_secret_value())
        async with connection:
            channel = await connection.channel()
            queue = await channel.declare_queue("late-arrival", durable=True)
            await queue.bind("disclosures", "nobody-here.#")
            report = await relay.run_once()
            assert report.sent == 1
            assert (await queue.get(no_ack=True)).body == b"x.y.z.w.v"


async def test_a_publish_recorded_after_an_outage_is_not_published_again(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database went away between the publish and its record: the next pass records
    the outcome it has instead of publishing the row a second time."""
    _pending_row(
        service, "recorded-later", token="a.b.c.d.e", jti="feedbeefcafe0123feedbeefcafe0123"
    )
    async with Runtime(service, ()), Publisher(service.settings.amqp) as publisher:
        connection = await aio_pika.connect(service.settings.amqp.url.get_secret_value())
        async with connection:
            channel = await connection.channel()
            queue = await channel.declare_queue("recorded-later", exclusive=True)
            await queue.bind("disclosures", "recorded-later.#")
            relay = OutboxRelay(service, publisher)
            record = relay._record

            def outage(*args: Any) -> Any:
                raise TransportError("database unavailable or timed out (OperationalError)")

            monkeypatch.setattr(relay, "_record", outage)
            with pytest.raises(TransportError):
                await relay.run_once()
            assert (
                _count(
                    service,
                    select(func.count())
                    .select_from(OutboxMessage)
                    .where(col(OutboxMessage.status) == OutboxStatus.PENDING),
                )
                == 1
            )
            monkeypatch.setattr(relay, "_record", record)
            report = await relay.run_once()  # records the first pass; nothing else is due
            assert report.taken == 0
            assert outbox_backlog(service) == 0
            copies = []
            while (message := await queue.get(no_ack=True, fail=False, timeout=5)) is not None:
                copies.append(message.body)
            assert copies == [b"a.b.c.d.e"]
    with session_scope(service.sessions) as session:
        published = session.execute(
            select(func.count()).where(col(AuditEntry.kind) == AuditKind.PUBLISHED)
        ).scalar_one()
    assert published == 1


async def test_an_audit_write_failure_means_no_ack_and_no_effect(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing_append(*args: object, **kwargs: object) -> None:
        raise AuditEntryInvalid("simulated audit write failure")

    monkeypatch.setattr(service.audit, "append_many", failing_append)
    item = next(i for i in _native_samples() if i[0] == "police")
    async with Runtime(service, ("ingest",)):
        await publish_native(service, [item])
        # Never acked: retried up to the delivery limit, then kept on the dead-letter queue.
        dead: list[bytes] = []

        async def dead_lettered() -> bool:
            dead.extend(await _drain(service, ingest_queue_name("police") + ".dlq"))
            return bool(dead)

        for _ in range(100):
            if await dead_lettered():
                break
            await asyncio.sleep(0.2)
    assert dead == [item[1]]
    assert _count(service, select(func.count()).select_from(OutboxMessage)) == 0
    assert _count(service, select(func.count()).select_from(AuditEntry)) == 0


async def test_ingest_prepared_in_processes_routes_the_same(service: Service) -> None:
    """``amqp.prepare_processes``: the AMQP ingest translates, decides and seals in
    another process, and the MASH intake opens there, and they store exactly what they
    store when they do it in threads."""
    service.settings.amqp.prepare_processes = 1
    items = _native_samples()
    expected = _expected(service, items)
    mash_events = {event_id for event_id, party in expected if party == "wam-mash"}
    runtime = Runtime(service, ["ingest", "relay", "intake"])
    async with runtime:
        assert runtime.preparers is not None
        processes = runtime.preparers.pids
        assert len(processes) == 1
        await publish_native(service, items)
        await eventually(
            lambda: (
                _count(service, select(func.count()).select_from(MashAlert)) == len(mash_events)
                and outbox_backlog(service) == 0
            )
        )
        # Every native message was prepared there (rejected ones included), and every
        # disclosure to the MASH opened there (an event shared twice arrives twice).
        preparers = runtime.preparers
        to_mash = sum(n for (_, party), n in expected.items() if party == "wam-mash")
        await eventually(lambda: preparers.answered == len(items) + to_mash)
    with session_scope(service.sessions) as session:
        outbox = Counter(
            (row[0], row[1])
            for row in session.execute(
                select(col(OutboxMessage.event_id), col(OutboxMessage.recipient))
            )
        )
        report = verify(session, audit_public_keys(service))
    assert outbox == expected
    assert report.ok, report.summary()
    assert runtime.preparers.pids == []  # stopped with the service


async def test_the_api_and_the_amqp_parts_share_one_set_of_prepare_processes(
    service: Service,
) -> None:
    """``mash-broker run`` with both ``amqp.prepare_processes`` and
    ``api.prepare_processes``: one set, as large as the larger setting, used by the
    HTTP ingest as well as the AMQP ingest and the intake; closed with the service."""
    service.settings.amqp.prepare_processes = 1
    service.settings.api.prepare_processes = 2
    runtime = Runtime(service, ["api", "ingest", "relay", "intake"])
    async with runtime:
        preparers = runtime.preparers
        assert preparers is not None
        assert len(preparers.pids) == 2
        assert runtime.api_server is not None
        app = runtime.api_server.config.app
        assert isinstance(app, FastAPI)
        api = app.state.api
        assert api._prepare_processes is preparers
        adapter, raw, sender = next(i for i in _native_samples() if i[0] == "police")
        before = preparers.answered
        prepared = await api.prepare(adapter, raw, sender, ("jti-shared-test", datetime.now(UTC)))
        assert prepared.result.event_ids
        assert preparers.answered == before + 1
        # The AMQP parts use the same processes.
        await publish_native(service, [(adapter, raw, sender)])
        await eventually(lambda: preparers.answered >= before + 2)
        pids = preparers.pids
    assert preparers.pids == []
    assert all(not _alive(pid) for pid in pids)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
