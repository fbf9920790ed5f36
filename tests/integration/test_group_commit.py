"""Group commit on SQLite and PostgreSQL: batches store what each message alone would."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import threading
import time
import uuid
from collections import Counter
from typing import Any

import aio_pika
import pytest
from sqlalchemy import Select, func, select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from broker import pipeline
from broker.audit import verify
from broker.db import session_scope
from broker.exceptions import DecryptionFailed, ReplayDetected
from broker.ingest import IngestWorker
from broker.intake.consumer import IntakeConsumer, StoreOutcome
from broker.messaging import Publisher, RejectMessage
from broker.models import AuditEntry, MashAlert, OutboxMessage, RawMessage, SealedRaw
from broker.outbox import OutboxRelay, outbox_backlog
from broker.pipeline import Ingestor, IngestResult, PreparedMessage
from broker.runtime import audit_public_keys
from broker.samples import render_all
from broker.service import Service
from broker.topology import ensure_topology
from schemas.common import make_test_nhs_number
from tests.integration.helpers import eventually

pytestmark = [pytest.mark.rabbitmq]

SENDER = "tvp-police"


def _police_samples() -> list[bytes]:
    return [raw for name, raw in sorted(render_all(1).items()) if name.startswith("police/")]


def _count(service: Service, statement: Select[Any]) -> int:
    with session_scope(service.sessions) as session:
        return int(session.execute(statement).scalar_one())


def _audit_kinds(service: Service) -> Counter[str]:
    with session_scope(service.sessions) as session:
        rows = session.execute(
            select(col(AuditEntry.kind), func.count()).group_by(col(AuditEntry.kind))
        )
        return Counter({str(kind.value): int(n) for kind, n in rows})


def _chain_verifies(service: Service) -> bool:
    with session_scope(service.sessions) as session:
        return verify(session, audit_public_keys(service)).ok


def _results(outcomes: list[IngestResult | Exception]) -> list[IngestResult]:
    assert all(isinstance(o, IngestResult) for o in outcomes), outcomes
    return [o for o in outcomes if isinstance(o, IngestResult)]


def test_a_batch_stores_what_the_messages_one_by_one_would(service: Service) -> None:
    samples = _police_samples()
    results = _results(Ingestor(service).ingest_batch([("police", r, SENDER) for r in samples]))
    assert not any(r.duplicate or r.rejected for r in results)
    disclosures = sum(r.disclosures for r in results)
    events = sum(len(r.event_ids) for r in results)
    assert _count(service, select(func.count()).select_from(RawMessage)) == len(samples)
    assert _count(service, select(func.count()).select_from(OutboxMessage)) == disclosures
    kinds = _audit_kinds(service)
    assert kinds["received"] == events
    assert kinds["shared"] == disclosures
    assert kinds["refused"] == sum(r.refusals for r in results)
    assert _chain_verifies(service)


def test_duplicates_within_a_batch_and_of_earlier_batches_are_recognised(
    service: Service,
) -> None:
    first, second = _police_samples()[:2]
    ingestor = Ingestor(service)
    results = _results(ingestor.ingest_batch([("police", first, SENDER)] * 2))
    assert [r.duplicate for r in results] == [False, True]
    again = _results(ingestor.ingest_batch([("police", first, SENDER), ("police", second, SENDER)]))
    assert [r.duplicate for r in again] == [True, False]
    assert _count(service, select(func.count()).select_from(RawMessage)) == 2


def test_a_rejected_message_is_stored_and_audited_with_the_rest(service: Service) -> None:
    good = _police_samples()[0]
    bad = b'{"record_type": "missing_report"}'
    results = _results(
        Ingestor(service).ingest_batch([("police", bad, SENDER), ("police", good, SENDER)])
    )
    assert results[0].rejected
    assert results[0].raw_id is not None
    assert not results[1].rejected
    assert results[1].disclosures > 0
    assert _audit_kinds(service)["rejected"] == 1
    assert _count(service, select(func.count()).select_from(RawMessage)) == 2


def test_a_message_that_fails_before_storing_leaves_the_others_stored(service: Service) -> None:
    good = _police_samples()[0]
    outcomes = Ingestor(service).ingest_batch(
        [("no-such-adapter", good, SENDER), ("police", good, SENDER)]
    )
    assert isinstance(outcomes[0], KeyError)
    assert isinstance(outcomes[1], IngestResult)
    assert outcomes[1].disclosures > 0
    assert _count(service, select(func.count()).select_from(RawMessage)) == 1


def test_raw_message_ids_never_read_as_nhs_numbers(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    nhs = make_test_nhs_number(42)
    assert pipeline._reads_as_nhs_number(f"abc{nhs}def")
    assert not pipeline._reads_as_nhs_number(f"1{nhs}")  # eleven digits: not one number
    unlucky = uuid.UUID(f"00000000-0000-4000-8000-a{nhs}b")
    drawn = iter([unlucky, uuid.UUID(int=7)])
    real_seal = SealedRaw.seal

    def seal(*args: Any, **kwargs: Any) -> SealedRaw:
        return dataclasses.replace(real_seal(*args, **kwargs), id=next(drawn))

    monkeypatch.setattr(SealedRaw, "seal", seal)
    item = Ingestor(service).prepare("police", _police_samples()[0], SENDER)
    assert item.raw_row.id == uuid.UUID(int=7)


def test_if_the_batch_fails_each_message_is_stored_on_its_own(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = _police_samples()[:2]
    ingestor = Ingestor(service)
    earlier = ingestor.prepare("police", first, SENDER)
    ingestor.store_prepared([earlier])
    # Another process stored ``first`` after this batch looked: its inbox key collides.
    monkeypatch.setattr(Ingestor, "_seen_among", staticmethod(lambda _session, _items: set()))
    worker = IngestWorker(service, "police")
    items: list[PreparedMessage] = [
        ingestor.prepare("police", first, SENDER),
        ingestor.prepare("police", second, SENDER),
    ]
    with pytest.raises(IntegrityError):
        ingestor.store_prepared(items)
    outcomes = worker._store_batch(items)
    assert isinstance(outcomes[0], IngestResult)
    assert outcomes[0].duplicate
    assert isinstance(outcomes[1], IngestResult)
    assert outcomes[1].disclosures > 0
    assert _count(service, select(func.count()).select_from(RawMessage)) == 2


def _mash_tokens(service: Service) -> list[tuple[bytes, str]]:
    with session_scope(service.sessions) as session:
        rows = session.execute(
            select(col(OutboxMessage.token), col(OutboxMessage.jti))
            .where(col(OutboxMessage.recipient) == "wam-mash")
            .order_by(col(OutboxMessage.id))
        ).all()
    return [(token.encode("ascii"), jti) for token, jti in rows]


def _alerts(session: Session) -> int:
    return int(session.execute(select(func.count()).select_from(MashAlert)).scalar_one())


def test_the_intake_stores_a_batch_once_and_refuses_what_it_must(service: Service) -> None:
    Ingestor(service).ingest_batch([("police", r, SENDER) for r in _police_samples()])
    tokens = _mash_tokens(service)
    assert len(tokens) >= 3
    (t1, j1), (t2, j2), (t3, j3) = tokens[:3]
    intake = IntakeConsumer(service)
    forged = (b"eyJhbGciOiJub25lIn0.e30.", "forged-1")
    outcomes = intake.store_many([(t1, j1), (t1, j1), forged, (t2, j2)])
    assert outcomes[0] == StoreOutcome.STORED
    assert outcomes[1] == StoreOutcome.DUPLICATE
    assert isinstance(outcomes[2], RejectMessage)
    assert outcomes[2].reason == DecryptionFailed.code
    assert outcomes[3] == StoreOutcome.STORED
    # A redelivery is a duplicate; the same token under no message id is a replay.
    later = intake.store_many([(t2, j2), (t1, None), (t3, j3)])
    assert later[0] == StoreOutcome.DUPLICATE
    assert isinstance(later[1], RejectMessage)
    assert later[1].reason == ReplayDetected.code
    assert later[2] == StoreOutcome.STORED
    with session_scope(service.sessions) as session:
        assert _alerts(session) == 3
    kinds = _audit_kinds(service)
    assert kinds["delivered"] == 3
    assert kinds["dead_lettered"] == 2
    assert _chain_verifies(service)


async def test_a_woken_relay_publishes_without_waiting_for_its_poll(service: Service) -> None:
    await ensure_topology(service.settings.amqp, service.topology)
    stop = asyncio.Event()
    async with Publisher(service.settings.amqp) as publisher:
        relay = OutboxRelay(service, publisher)
        task = asyncio.create_task(relay.run(stop, idle_seconds=60))
        try:
            await asyncio.sleep(0.3)  # its first pass found nothing: it now waits a minute
            Ingestor(service).ingest_batch([("police", _police_samples()[0], SENDER)])
            assert outbox_backlog(service) > 0
            relay.wake()
            await eventually(lambda: outbox_backlog(service) == 0, within=10)
        finally:
            stop.set()
            await task


async def test_the_relay_publishes_while_it_records_and_each_row_only_once(
    service: Service,
) -> None:
    # The first batch's outcomes are held at the database (as behind SQLite's write lock):
    # meanwhile the relay publishes the rows committed after, and not again those it is
    # still recording (pending in the database until then). When it stops, all are
    # recorded, each row published and recorded once.
    await ensure_topology(service.settings.amqp, service.topology)
    samples = _police_samples()
    ingestor = Ingestor(service)
    ingestor.ingest_batch([("police", samples[0], SENDER)])
    first_rows = outbox_backlog(service)
    held = threading.Event()
    recordings: list[int] = []
    stop = asyncio.Event()
    connection = await aio_pika.connect(service.settings.amqp.url.get_secret_value())
    async with connection, Publisher(service.settings.amqp) as publisher:
        channel = await connection.channel()

        async def on_queues() -> int:
            total = 0
            for queue in set(service.topology.recipient_queues.values()):
                declared = await channel.declare_queue(queue, passive=True)
                total += int(declared.declaration_result.message_count or 0)
            return total

        relay = OutboxRelay(service, publisher)
        record = relay._record

        def slow_record(rows: list[Any], results: list[Any]) -> Any:
            recordings.append(len(rows))
            if len(recordings) == 1:
                held.wait(10)
            return record(rows, results)

        relay._record = slow_record  # type: ignore[method-assign]
        task = asyncio.create_task(relay.run(stop, idle_seconds=0.02))
        try:
            await eventually(lambda: recordings == [first_rows], within=10)
            ingestor.ingest_batch([("police", raw, SENDER) for raw in samples[1:]])
            all_rows = outbox_backlog(service)
            relay.wake()
            for _ in range(50):  # passes that meet the first batch's rows still pending
                if await on_queues() == all_rows:
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.2)
            assert await on_queues() == all_rows  # the later rows too, the first ones once
            assert recordings == [first_rows]  # still held: nothing more recorded yet
            assert outbox_backlog(service) == all_rows
        finally:
            held.set()
            stop.set()
            await task
    assert outbox_backlog(service) == 0
    assert sum(recordings) == all_rows
    with session_scope(service.sessions) as session:
        published = Counter(
            session.execute(
                select(col(AuditEntry.jti)).where(col(AuditEntry.kind) == "published")
            ).scalars()
        )
    assert len(published) == all_rows
    assert set(published.values()) == {1}


def _outbox_rows(service: Service) -> int:
    with session_scope(service.sessions) as session:
        return int(session.execute(select(func.count()).select_from(OutboxMessage)).scalar_one())


@pytest.mark.parametrize("record_every", [0.0, 2.0], ids=["at-once", "joined"])
async def test_outcomes_published_within_the_recording_wait_are_recorded_together(
    service: Service, record_every: float
) -> None:
    # Three messages committed one at a time, each waking the relay (as the ingest does):
    # three passes publish them. A recording that waits two seconds takes all three
    # passes' outcomes in one transaction; one that does not wait records them as they
    # come.
    await ensure_topology(service.settings.amqp, service.topology)
    samples = _police_samples()[:3]
    ingestor = Ingestor(service)
    recordings: list[int] = []
    stop = asyncio.Event()
    async with Publisher(service.settings.amqp) as publisher:
        relay = OutboxRelay(service, publisher, record_every=record_every)
        record = relay._record

        def counted(rows: list[Any], results: list[Any]) -> Any:
            recordings.append(len(rows))
            return record(rows, results)

        relay._record = counted  # type: ignore[method-assign]
        task = asyncio.create_task(relay.run(stop, idle_seconds=60))
        try:
            await asyncio.sleep(0.2)  # its first pass found nothing
            for raw in samples:
                ingestor.ingest_batch([("police", raw, SENDER)])
                relay.wake()
                made = _outbox_rows(service)

                def all_published(made: int = made) -> bool:
                    return len(relay._in_flight) + sum(recordings) == made

                # Published (in flight or recorded) before the next message comes.
                await eventually(all_published)
            published = _outbox_rows(service)
            await eventually(lambda: outbox_backlog(service) == 0, within=10)
        finally:
            stop.set()
            await task
    assert sum(recordings) == published
    if record_every:
        assert recordings == [published]
    else:
        assert len(recordings) > 1
    assert _chain_verifies(service)


async def test_a_stopping_relay_records_what_it_published(service: Service) -> None:
    await ensure_topology(service.settings.amqp, service.topology)
    Ingestor(service).ingest_batch([("police", raw, SENDER) for raw in _police_samples()])
    rows = outbox_backlog(service)
    assert rows > 0
    stop = asyncio.Event()
    async with Publisher(service.settings.amqp) as publisher:
        relay = OutboxRelay(service, publisher)
        record = relay._record

        loop = asyncio.get_running_loop()

        def record_after_stop(rows: list[Any], results: list[Any]) -> Any:
            # The run is told to stop while this batch is being recorded.
            loop.call_soon_threadsafe(stop.set)
            time.sleep(0.3)
            return record(rows, results)

        relay._record = record_after_stop  # type: ignore[method-assign]
        await asyncio.wait_for(relay.run(stop, idle_seconds=60), 10)
    assert outbox_backlog(service) == 0
    assert _audit_kinds(service)["published"] == rows


@pytest.mark.parametrize("path", ["alone", "batch"])
def test_an_over_size_message_is_kept_as_its_size_and_digest_only(
    service: Service, path: str
) -> None:
    """Refused before parsing, and not stored whole: 8 MB over AMQP would otherwise be
    encrypted and written in full (RabbitMQ accepts up to 128 MB)."""
    body = b'{"padding": "' + b"x" * (8 * 1024 * 1024) + b'"}'
    ingestor = Ingestor(service)
    if path == "alone":
        result = ingestor.ingest("police", body, SENDER)
    else:
        [outcome] = ingestor.ingest_batch([("police", body, SENDER)])
        assert isinstance(outcome, IngestResult)
        result = outcome
    assert result.rejected
    assert result.problems
    assert result.raw_id is not None
    with session_scope(service.sessions) as session:
        row = session.get(RawMessage, result.raw_id)
        assert row is not None
        assert len(row.ciphertext) < 512
        kept = json.loads(row.open(service.data_key))
    assert kept == {
        "omitted": "too_large",
        "bytes": len(body),
        "sha256": pipeline.message_digest(body),
    }
    assert _audit_kinds(service)["rejected"] == 1
    # The same bytes again are still recognised as the same message.
    again = ingestor.ingest("police", body, SENDER)
    assert again.duplicate
