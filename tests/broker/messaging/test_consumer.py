"""Consuming with manual acks and explicit outcomes on a real RabbitMQ."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from urllib.parse import urlsplit

import pytest

from broker.messaging import (
    DEAD_LETTER_QUEUE_HEADER,
    DEAD_LETTER_REASON_HEADER,
    AmqpPublish,
    Backoff,
    Consumer,
    OutgoingMessage,
    Publisher,
    ReceivedMessage,
    RejectMessage,
    RetryLater,
)
from broker.settings import AmqpSettings
from broker.topology import DISCLOSURES_EXCHANGE, disclosure_routing_key
from tests.broker.messaging.conftest import close_from_server, eventually, queue_depth

pytestmark = pytest.mark.rabbitmq

QUEUE = "mash.E06000040"
FAST = Backoff(initial=0.05, maximum=0.2)


def disclosure(message_id: str | None = None) -> OutgoingMessage:
    return OutgoingMessage(
        exchange=DISCLOSURES_EXCHANGE,
        routing_key=disclosure_routing_key("wam-mash", "missing.reported"),
        body=b"sealed",
        message_id=message_id or str(uuid.uuid4()),
        event_type="missing.reported",
        source="urn:mash:party:tvp-police",
    )


async def publish(settings: AmqpSettings, *ids: str) -> None:
    async with Publisher(settings) as publisher:
        results = await publisher.publish_batch([disclosure(i) for i in ids])
    assert all(r.confirmed for r in results)


Running = Callable[..., Awaitable[Consumer]]


@pytest.fixture
async def running() -> AsyncIterator[Running]:
    """Start consumers as tasks; stop them all at the end of the test."""
    started: list[tuple[Consumer, asyncio.Task[None]]] = []

    async def start(settings, handler, *, queue=QUEUE, wait=True, **kw) -> Consumer:
        consumer = Consumer(settings, queue, handler, backoff=FAST, **kw)
        task = asyncio.create_task(consumer.run())
        started.append((consumer, task))
        if wait:
            await consumer.wait_ready()
        return consumer

    yield start
    for consumer, task in started:
        await consumer.stop()
        await task


async def test_messages_handled_without_error_are_acked(amqp, declared, admin, running):
    seen: list[ReceivedMessage] = []

    async def handler(message: ReceivedMessage) -> None:
        seen.append(message)

    consumer = await running(amqp, handler)
    ids = [f"ok-{n}" for n in range(50)]
    await publish(amqp, *ids)

    async def all_acked():
        return consumer.stats.acked == 50

    await eventually(all_acked)
    assert sorted(m.message_id or "" for m in seen) == sorted(ids)
    first = seen[0]
    assert first.queue == QUEUE
    assert first.event_type == "missing.reported"
    assert first.routing_key == "wam-mash.missing.reported"
    assert first.exchange == DISCLOSURES_EXCHANGE
    assert first.redelivered is False
    assert first.delivery_count == 0
    assert first.content_type == "application/jose"
    assert first.app_id == "mash-broker"
    assert first.user_id is None
    assert first.body
    assert first.headers["ce-id"] == first.message_id
    await consumer.stop()
    assert await queue_depth(admin, QUEUE) == 0


async def test_a_poison_message_is_dead_lettered_after_the_limit_while_others_flow(
    amqp, declared, admin, running
):
    deliveries: Counter[str] = Counter()

    async def handler(message: ReceivedMessage) -> None:
        deliveries[message.message_id or ""] += 1
        if message.message_id == "poison":
            raise RetryLater("downstream store unavailable")

    good = [f"good-{n}" for n in range(30)]
    await publish(amqp, "poison", *good)
    consumer = await running(amqp, handler, prefetch=4)

    async def poison_dead_lettered():
        return await queue_depth(admin, f"{QUEUE}.dlq") == 1

    await eventually(poison_dead_lettered)
    await eventually(lambda: consumer.stats.acked == len(good))
    assert all(deliveries[g] == 1 for g in good)
    # The broker allows delivery_limit returns; the next one dead-letters it.
    assert deliveries["poison"] == amqp.delivery_limit + 1
    assert consumer.stats.retried == amqp.delivery_limit + 1
    await consumer.stop()
    assert await queue_depth(admin, QUEUE) == 0

    dlq = await admin.declare_queue(f"{QUEUE}.dlq", passive=True)
    dead = await dlq.get(timeout=5)
    await dead.ack()
    assert dead.message_id == "poison"
    assert dead.headers["x-death"][0]["reason"] == "delivery_limit"
    assert dead.headers["x-death"][0]["queue"] == QUEUE


async def test_reject_dead_letters_at_once_with_the_reason(amqp, declared, admin, running):
    calls: Counter[str] = Counter()

    async def handler(message: ReceivedMessage) -> None:
        calls[message.message_id or ""] += 1
        if message.message_id == "bad":
            raise RejectMessage("payload_invalid: body is not a compact JWE")

    consumer = await running(amqp, handler)
    await publish(amqp, "bad", "fine")

    async def settled():
        return consumer.stats.acked == 1 and consumer.stats.rejected == 1

    await eventually(settled)
    assert calls == {"bad": 1, "fine": 1}
    assert consumer.stats.by_reason == {"payload_invalid: body is not a compact JWE": 1}
    await eventually(lambda: _dlq_depth_is(admin, 1))
    await consumer.stop()
    assert await queue_depth(admin, QUEUE) == 0

    dlq = await admin.declare_queue(f"{QUEUE}.dlq", passive=True)
    dead = await dlq.get(timeout=5)
    await dead.ack()
    assert dead.message_id == "bad"
    assert dead.body == b"sealed"
    assert dead.headers[DEAD_LETTER_REASON_HEADER] == "payload_invalid: body is not a compact JWE"
    assert dead.headers[DEAD_LETTER_QUEUE_HEADER] == QUEUE
    assert dead.headers["ce-type"] == "missing.reported"
    assert dead.delivery_mode == 2


async def _dlq_depth_is(admin, expected: int) -> bool:
    return await queue_depth(admin, f"{QUEUE}.dlq") == expected


async def test_reject_without_a_dead_letter_exchange_still_dead_letters(amqp, admin, running):
    # A queue declared outside the topology: no <queue>.dlx to copy to, so the consumer
    # falls back to a plain reject, which the queue's own dead-letter settings handle.
    await admin.declare_exchange("elsewhere", "fanout", durable=True)
    await admin.declare_queue("bare.dlq", durable=True)
    await (await admin.declare_queue("bare.dlq", passive=True)).bind("elsewhere")
    await admin.declare_queue(
        "bare",
        durable=True,
        arguments={"x-queue-type": "quorum", "x-dead-letter-exchange": "elsewhere"},
    )

    async def handler(message: ReceivedMessage) -> None:
        raise RejectMessage("not for us")

    consumer = await running(amqp, handler, queue="bare")
    async with Publisher(amqp) as publisher:
        sent = await publisher.publish_amqp(
            [AmqpPublish("", "bare", disclosure("orphan").to_amqp())]
        )
    assert sent[0].confirmed

    async def dead_lettered():
        return await queue_depth(admin, "bare.dlq") == 1

    await eventually(dead_lettered)
    assert consumer.stats.rejected == 1
    assert await queue_depth(admin, "bare") == 0


async def test_a_handler_failure_requeues_and_the_next_delivery_can_succeed(
    amqp, declared, admin, running
):
    attempts: list[ReceivedMessage] = []

    async def handler(message: ReceivedMessage) -> None:
        attempts.append(message)
        if len(attempts) == 1:
            raise OSError("disk full")

    consumer = await running(amqp, handler)
    await publish(amqp, "flaky")
    await eventually(lambda: consumer.stats.acked == 1)
    assert consumer.stats.errors == 1
    assert [a.message_id for a in attempts] == ["flaky", "flaky"]
    assert attempts[1].redelivered is True
    assert attempts[1].delivery_count == 1


async def test_a_consumer_cut_off_before_its_ack_gets_the_message_again(
    proxied, proxy, declared, admin, running
):
    first_delivery = asyncio.Event()
    handled: list[ReceivedMessage] = []

    async def handler(message: ReceivedMessage) -> None:
        handled.append(message)
        if len(handled) == 1:
            first_delivery.set()
            await asyncio.sleep(30)  # killed before it can ack

    consumer = await running(proxied, handler)
    await publish(proxied, "interrupted")
    await asyncio.wait_for(first_delivery.wait(), 5)
    proxy.cut()

    await eventually(lambda: consumer.stats.acked == 1)
    assert [m.message_id for m in handled] == ["interrupted", "interrupted"]
    assert handled[1].redelivered is True
    assert consumer.stats.reconnects >= 1
    await consumer.stop()
    assert await queue_depth(admin, QUEUE) == 0


async def test_the_consumer_reconnects_after_the_broker_closes_its_connection(
    vhost, amqp, declared, admin, running
):
    got: list[str] = []

    async def handler(message: ReceivedMessage) -> None:
        got.append(message.message_id or "")

    consumer = await running(amqp, handler, name="intake-under-test")
    await publish(amqp, "before")
    await eventually(lambda: got == ["before"])

    assert await asyncio.to_thread(close_from_server, vhost, "intake-under-test") == 1
    await eventually(lambda: consumer.stats.reconnects >= 1)
    await consumer.wait_ready()
    await publish(amqp, "after")
    await eventually(lambda: got == ["before", "after"])


async def test_stop_lets_a_handler_in_progress_finish_and_ack(amqp, declared, admin, running):
    started = asyncio.Event()
    finished: list[str] = []

    async def handler(message: ReceivedMessage) -> None:
        started.set()
        await asyncio.sleep(0.3)
        finished.append(message.message_id or "")

    consumer = await running(amqp, handler)
    await publish(amqp, "slow")
    await asyncio.wait_for(started.wait(), 5)
    await consumer.stop()
    assert finished == ["slow"]
    assert consumer.stats.acked == 1
    assert await queue_depth(admin, QUEUE) == 0


async def test_a_consumer_waits_for_its_queue_to_be_declared(amqp, admin, declared, running):
    got: list[str] = []

    async def handler(message: ReceivedMessage) -> None:
        got.append(message.message_id or "")

    consumer = await running(amqp, handler, queue="late", wait=False)
    await asyncio.sleep(0.3)
    assert consumer.stats.reconnects >= 1
    await admin.declare_queue("late", durable=True, arguments={"x-queue-type": "quorum"})
    await consumer.wait_ready(within=5)
    async with Publisher(amqp) as publisher:
        sent = await publisher.publish_amqp(
            [AmqpPublish("", "late", disclosure("late-1").to_amqp())]
        )
    assert sent[0].confirmed
    await eventually(lambda: got == ["late-1"])


async def test_the_user_id_rabbitmq_checked_reaches_the_handler(amqp, declared, running):
    """The ingest establishes a partner by the ``user_id`` RabbitMQ checks against the
    connection's user; the handler must see it as sent (and see none when none was)."""
    user = urlsplit(amqp.url.get_secret_value()).username
    seen: list[ReceivedMessage] = []

    async def handler(message: ReceivedMessage) -> None:
        seen.append(message)

    await running(amqp, handler)
    stamped = disclosure("stamped").to_amqp()
    stamped.user_id = user
    async with Publisher(amqp) as publisher:
        sent = await publisher.publish_amqp(
            [
                AmqpPublish(DISCLOSURES_EXCHANGE, disclosure().routing_key, stamped),
                AmqpPublish(
                    DISCLOSURES_EXCHANGE, disclosure().routing_key, disclosure("bare").to_amqp()
                ),
            ]
        )
    assert all(r.confirmed for r in sent)

    async def both():
        return len(seen) == 2

    await eventually(both)
    by_id = {m.message_id: m for m in seen}
    assert by_id["stamped"].user_id == user
    assert by_id["bare"].user_id is None


async def test_acks_of_later_deliveries_never_settle_one_still_being_handled(
    amqp, declared, admin, running
):
    # The first delivery's handler is still running while the next 20 are handled and
    # acked (in multiple runs); it then fails. Had an ack of the others covered it, its
    # nack would name a delivery the broker no longer has (a channel error) and the
    # message would be gone; it must come back and be handled.
    release = asyncio.Event()
    handled: list[str] = []

    async def handler(message: ReceivedMessage) -> None:
        if message.message_id == "slow" and message.delivery_count == 0:
            await release.wait()
            raise OSError("disk full")
        handled.append(message.message_id or "")

    consumer = await running(amqp, handler)
    await publish(amqp, "slow", *[f"fast-{n}" for n in range(20)])
    await eventually(lambda: len(handled) == 20)
    release.set()
    await eventually(lambda: "slow" in handled)
    assert consumer.stats.acked == 21
    assert consumer.stats.errors == 1
    assert consumer.stats.reconnects == 0
    await consumer.stop()
    assert await queue_depth(admin, QUEUE) == 0


async def test_a_delivery_abandoned_at_stop_returns_to_the_queue_and_the_acked_do_not(
    amqp, declared, admin, running
):
    handled: list[str] = []

    async def handler(message: ReceivedMessage) -> None:
        if message.message_id == "stuck":
            await asyncio.sleep(60)
        handled.append(message.message_id or "")

    consumer = await running(amqp, handler, stop_timeout=0.2)
    await publish(amqp, "stuck", *[f"done-{n}" for n in range(10)])
    await eventually(lambda: len(handled) == 10)
    await consumer.stop()
    # Only the abandoned delivery is back: the acks of the ten behind it were sent
    # (before the channel closed) and did not take it with them. (The quorum queue
    # requeues it a moment after the channel has closed.)

    async def one_back() -> bool:
        return await queue_depth(admin, QUEUE) == 1

    await eventually(one_back, within=5)
    got: list[str] = []

    async def second(message: ReceivedMessage) -> None:
        got.append(message.message_id or "")

    await running(amqp, second)
    await eventually(lambda: got == ["stuck"])
