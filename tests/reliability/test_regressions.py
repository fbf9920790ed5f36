"""Regression tests for faults the reliability suite found in the service code."""

from __future__ import annotations

import asyncio
import itertools
import re
import time
import uuid
from collections import Counter
from datetime import UTC, datetime

import pytest
from aio_pika.abc import AbstractChannel
from pydantic import ValidationError

from adapters import AdapterContext, get_adapter
from broker import envelope
from broker.audit import AuditRecord
from broker.exceptions import TransportError
from broker.messaging import (
    Backoff,
    Consumer,
    Publisher,
    ReceivedMessage,
    RetryLater,
    list_dead_letters,
)
from broker.models import AuditKind
from broker.settings import AmqpSettings
from broker.topology import Topology
from schemas.common import make_test_nhs_number
from tests.broker.messaging.conftest import (
    admin,
    amqp,
    declared,
    disclosure,
    eventually,
    queue_depth,
    topology,
)
from tests.reliability.faults import varied

__all__ = ["admin", "amqp", "declared", "topology"]  # fixtures, imported to be found


def _shared(jti: str) -> AuditRecord:
    return AuditRecord(
        kind=AuditKind.SHARED,
        event_id=uuid.uuid4(),
        recipient="wam-mash",
        rule_id="R1",
        lawful_basis="cda-1998-s115",
        fields=("body.type",),
        jti=jti,
    )


def test_a_token_id_holding_an_nhs_number_cannot_be_audited() -> None:
    """Why token ids must avoid long digit runs: the audit log refuses them."""
    jti = "ab" + make_test_nhs_number(4242) + "cdef0123456789ab"[:20]
    with pytest.raises(ValidationError, match="NHS number"):
        _shared(jti)


def test_token_ids_never_hold_ten_digits_in_a_row() -> None:
    """About 1 in 500 random hex ids held a valid NHS number; the disclosure then failed
    its audit entry and the whole ingest with it. 50,000 draws: none has a 10-digit run."""
    ten_digits = re.compile(r"\d{10}")
    shape = re.compile(r"[a-p]{12}[0-9a-f]{20}")
    for _ in range(50_000):
        jti = envelope._new_token_id()
        assert shape.fullmatch(jti), jti
        assert not ten_digits.search(jti)
    _shared(envelope._new_token_id())


def test_token_ids_sort_by_the_millisecond_they_were_made_in(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Time first, so that the tables keyed by token id grow at their indexes' end."""
    made: list[tuple[int, str]] = []
    for millisecond in (1, 15, 16, 255, 256, 2**40, 2**47 + 3, 2**48 - 1):
        monkeypatch.setattr(time, "time_ns", lambda m=millisecond: m * 1_000_000)
        made += [(millisecond, envelope._new_token_id()) for _ in range(3)]
    for (earlier, first), (later, second) in itertools.pairwise(made):
        if later > earlier:
            assert first < second
    # The time is the first 48 bits, read back from the letters.
    assert [
        int(jti[:12].translate(str.maketrans("abcdefghijklmnop", "0123456789abcdef")), 16)
        for _, jti in made
    ] == [m for m, _ in made]
    assert len({jti for _, jti in made}) == len(made)


# --- an outage must not use up the delivery limit ----------------------------------------------


@pytest.mark.rabbitmq
async def test_an_outage_holds_the_message_instead_of_spending_deliveries(
    amqp: AmqpSettings, declared: Topology, admin: AbstractChannel
) -> None:
    """A handler whose database is down raised RetryLater; the consumer requeued at once, and
    within milliseconds the queue's delivery limit dead-lettered sound messages. Held and
    retried in place, the message survives an outage longer than the limit and is acked once."""
    failures = amqp.delivery_limit + 3
    calls: Counter[str] = Counter()

    async def handler(message: ReceivedMessage) -> None:
        calls[message.message_id or ""] += 1
        if calls[message.message_id or ""] <= failures:
            raise RetryLater("database_unavailable") from TransportError("database down")

    async with Publisher(amqp) as publisher:
        (result,) = await publisher.publish_batch([disclosure("held-1")])
    assert result.confirmed
    quick = Backoff(initial=0.01, maximum=0.05)
    consumer = Consumer(amqp, "mash.E06000040", handler, backoff=quick, hold_backoff=quick)
    task = asyncio.create_task(consumer.run())
    try:
        await eventually(lambda: consumer.stats.acked == 1, within=20)
    finally:
        await consumer.stop()
        await task
    assert calls["held-1"] == failures + 1
    assert consumer.stats.held == failures
    assert consumer.stats.retried == 0
    assert (await list_dead_letters(amqp, "mash.E06000040")).total == 0
    assert await queue_depth(admin, "mash.E06000040") == 0


@pytest.mark.rabbitmq
async def test_a_success_wakes_the_messages_held_through_an_outage(
    amqp: AmqpSettings, declared: Topology, admin: AbstractChannel
) -> None:
    """Messages held through a database outage waited out their back-off (up to 30 s) after
    the database was back, unacknowledged and so invisible in their queue: the outage test
    found the service 'settled' with a message still held. The first handler to succeed
    now wakes every held message at once."""
    database_up = asyncio.Event()
    calls: Counter[str] = Counter()

    async def handler(message: ReceivedMessage) -> None:
        calls[message.message_id or ""] += 1
        if message.message_id == "after-outage":
            database_up.set()
        elif not database_up.is_set():
            raise RetryLater("database_unavailable") from TransportError("database down")

    # Without the wake-up the held message would next be tried after 60 s.
    slow = Backoff(initial=60.0, maximum=60.0, jitter=0.0)
    consumer = Consumer(amqp, "mash.E06000040", handler, hold_backoff=slow)
    task = asyncio.create_task(consumer.run())
    try:
        await consumer.wait_ready()
        async with Publisher(amqp) as publisher:
            await publisher.publish_batch([disclosure("held-through-outage")])
            await eventually(lambda: consumer.stats.held == 1, within=10)
            await publisher.publish_batch([disclosure("after-outage")])
        await eventually(lambda: consumer.stats.acked == 2, within=10)
    finally:
        await consumer.stop()
        await task
    assert calls == {"held-through-outage": 2, "after-outage": 1}
    assert consumer.stats.held == 1
    assert await queue_depth(admin, "mash.E06000040") == 0


def test_the_load_generator_gives_each_batch_children_of_its_own() -> None:
    """One sample wrote its NHS number spaced (``999 001 0072``) and the load generator
    left it as it was, as it left the children's Paris ids: every batch then had children
    with those identifiers under other names, each a conflict the intake filed for review,
    and linking slowed as they piled up."""
    owners: dict[tuple[str, str], int] = {}
    now = datetime.now(UTC)
    for batch in (1, 2, 3):
        for adapter, raw, sender in varied(batch):
            for event in get_adapter(adapter).parse(raw, AdapterContext(sender, now=now)):
                for name in ("nhs_number", "paris_id", "police_person_ref"):
                    value = getattr(event.subject, name, None)
                    if value is not None:
                        assert owners.setdefault((name, value), batch) == batch, name
    numbers = {value for (name, value) in owners if name == "nhs_number"}
    assert len(numbers) == 3 * 4
    assert any(name == "paris_id" for name, _ in owners)
