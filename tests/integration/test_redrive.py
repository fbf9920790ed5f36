"""The service puts back what RabbitMQ dead-lettered for its delivery count alone."""

from __future__ import annotations

import asyncio

import aio_pika
import pytest

from broker.messaging import (
    REDRIVE_COUNT_HEADER,
    Backoff,
    Consumer,
    OutgoingMessage,
    Publisher,
    ReceivedMessage,
    RejectMessage,
    RetryLater,
    list_dead_letters,
)
from broker.runtime import Runtime
from broker.service import Service
from broker.settings import Settings
from broker.topology import ensure_topology
from tests.broker.messaging.conftest import disclosure, eventually, queue_depth

pytestmark = pytest.mark.rabbitmq


@pytest.fixture
def sweeping(broker_settings: Settings) -> Service:
    amqp = broker_settings.amqp.model_copy(
        update={"redrive_interval_seconds": 0.2, "redrive_max": 2}
    )
    return Service.load(broker_settings.model_copy(update={"amqp": amqp}))


async def test_the_service_redrives_letters_returned_by_crashes_but_not_refusals(
    sweeping: Service, amqp_url: str
) -> None:
    settings = sweeping.settings.amqp
    await ensure_topology(settings, sweeping.topology)
    queue = sweeping.topology.recipient_queues["wam-mash"]

    def message(message_id: str) -> OutgoingMessage:
        return disclosure(message_id, event_type="missing.reported")

    async with Publisher(settings) as publisher:
        results = await publisher.publish_batch([message("returned"), message("refused")])
    assert all(r.confirmed for r in results)

    async def handler(received: ReceivedMessage) -> None:
        if received.message_id == "refused":
            raise RejectMessage("claims_invalid")
        raise RetryLater("as a crash returns it")

    connection = await aio_pika.connect(amqp_url, timeout=5)
    admin = await connection.channel()
    try:
        consumer = Consumer(settings, queue, handler, backoff=Backoff(initial=0.05))
        task = asyncio.create_task(consumer.run())
        try:

            async def both_dead() -> bool:
                return await queue_depth(admin, f"{queue}.dlq") == 2

            await eventually(both_dead, within=20)
        finally:
            await consumer.stop()
            await task

        runtime = Runtime(sweeping, ["redrive"])
        async with runtime:

            async def back_on_the_queue() -> bool:
                return await queue_depth(admin, queue) == 1

            await eventually(back_on_the_queue, within=20)
        work = await admin.declare_queue(queue, passive=True)
        back = await work.get(timeout=5)
        await back.ack()
        assert back.message_id == "returned"
        assert back.headers[REDRIVE_COUNT_HEADER] == 1
        report = await list_dead_letters(settings, queue)
        assert [(letter.message_id, letter.reason) for letter in report.letters] == [
            ("refused", "claims_invalid")
        ]
    finally:
        await connection.close()
        sweeping.engine.dispose()
