"""AMQP throughput on this machine: confirmed publishing (pipelined and one by one) and consuming.

Run against the RabbitMQ in the settings (``MASH_AMQP__URL``)::

    .venv/bin/python bench/bench_amqp.py [--messages 20000] [--size 1500] [--batch 1000]

It declares one durable queue of its own (``bench.<random>``, quorum by default, as every
queue of the topology is), measures, and deletes it.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid

import aio_pika

from broker.messaging import (
    Backoff,
    Consumer,
    OutgoingMessage,
    Publisher,
    ReceivedMessage,
    connect,
)
from broker.settings import AmqpSettings, Settings


def _messages(queue: str, count: int, size: int) -> list[OutgoingMessage]:
    body = b"x" * size  # about the size of a two-recipient JWE
    return [
        OutgoingMessage(
            exchange="",
            routing_key=queue,
            body=body,
            message_id=uuid.uuid4().hex,
            event_type="missing.reported",
            source="urn:mash:party:bench",
        )
        for _ in range(count)
    ]


async def _pipelined(
    settings: AmqpSettings, queue: str, count: int, size: int, batch: int
) -> float:
    messages = _messages(queue, count, size)
    async with Publisher(settings, name="bench pipelined") as publisher:
        started = time.perf_counter()
        for start in range(0, count, batch):
            results = await publisher.publish_batch(messages[start : start + batch])
            if not all(r.confirmed for r in results):
                raise SystemExit("a message was not confirmed")
        return count / (time.perf_counter() - started)


async def _one_by_one(settings: AmqpSettings, queue: str, count: int, size: int) -> float:
    messages = _messages(queue, count, size)
    async with Publisher(settings, name="bench serial") as publisher:
        started = time.perf_counter()
        for message in messages:
            if not (await publisher.publish(message)).confirmed:
                raise SystemExit("a message was not confirmed")
        return count / (time.perf_counter() - started)


async def _consume(settings: AmqpSettings, queue: str, count: int) -> float:
    done = asyncio.Event()
    received = 0
    first: float | None = None

    async def handler(_: ReceivedMessage) -> None:
        nonlocal received, first
        if first is None:
            first = time.perf_counter()
        received += 1
        if received == count:
            done.set()

    consumer = Consumer(settings, queue, handler, name="bench consumer", backoff=Backoff())
    task = asyncio.create_task(consumer.run())
    started = time.perf_counter()
    await asyncio.wait_for(done.wait(), timeout=max(60, count / 500))
    # Let the last acks leave before measuring the end.
    elapsed = time.perf_counter() - started
    await consumer.stop()
    await task
    return count / elapsed


async def _raw_pipelined(
    settings: AmqpSettings, queue: str, count: int, size: int, batch: int
) -> float:
    """The same pipelined publish on bare aio-pika, to show what the layer costs."""
    connection = await connect(settings, name="bench raw publisher")
    try:
        channel = await connection.channel(publisher_confirms=True)
        messages = _messages(queue, count, size)
        started = time.perf_counter()
        for start in range(0, count, batch):
            await asyncio.gather(
                *(
                    channel.default_exchange.publish(
                        message.to_amqp(), queue, mandatory=True, timeout=settings.timeout_seconds
                    )
                    for message in messages[start : start + batch]
                )
            )
        return count / (time.perf_counter() - started)
    finally:
        await connection.close()


async def _raw_consume(settings: AmqpSettings, queue: str, count: int) -> float:
    """Consuming with manual acks on bare aio-pika."""
    connection = await connect(settings, name="bench raw consumer")
    try:
        channel = await connection.channel(publisher_confirms=False)
        await channel.set_qos(prefetch_count=settings.prefetch)
        source = await channel.declare_queue(queue, passive=True)
        done = asyncio.Event()
        received = 0

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            nonlocal received
            await message.ack()
            received += 1
            if received == count:
                done.set()

        started = time.perf_counter()
        tag = await source.consume(on_message)
        await asyncio.wait_for(done.wait(), timeout=max(60, count / 500))
        elapsed = time.perf_counter() - started
        await source.cancel(tag)
        return count / elapsed
    finally:
        await connection.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--serial-messages", type=int, default=3_000)
    parser.add_argument("--size", type=int, default=1_500, help="body bytes")
    parser.add_argument("--batch", type=int, default=1_000, help="messages per publish_batch")
    parser.add_argument("--prefetch", type=int, default=None)
    parser.add_argument("--queue-type", choices=["quorum", "classic"], default="quorum")
    args = parser.parse_args()

    settings = Settings().amqp
    if args.prefetch:
        settings = settings.model_copy(update={"prefetch": args.prefetch})
    queue = f"bench.{uuid.uuid4().hex[:8]}"
    admin = await connect(settings, name="bench admin")
    channel = await admin.channel()
    declared = await channel.declare_queue(
        queue, durable=True, arguments={"x-queue-type": args.queue_type}
    )
    try:
        pipelined = await _pipelined(settings, queue, args.messages, args.size, args.batch)
        consumed = await _consume(settings, queue, args.messages)
        serial = await _one_by_one(settings, queue, args.serial_messages, args.size)
        await declared.purge()
        raw_published = await _raw_pipelined(settings, queue, args.messages, args.size, args.batch)
        raw_consumed = await _raw_consume(settings, queue, args.messages)
    finally:
        await declared.delete(if_unused=False, if_empty=False)
        await admin.close()
    print(
        f"{args.queue_type} queue, {args.size}-byte bodies, prefetch {settings.prefetch}, "
        f"aio-pika {aio_pika.__version__}"
    )
    print(f"publish, pipelined confirms (batch {args.batch}): {pipelined:,.0f} msg/s")
    print(f"publish, each confirm awaited in turn:          {serial:,.0f} msg/s")
    print(f"consume, manual acks:                           {consumed:,.0f} msg/s")
    print(f"bare aio-pika, pipelined publish:               {raw_published:,.0f} msg/s")
    print(f"bare aio-pika, consume with manual acks:        {raw_consumed:,.0f} msg/s")


if __name__ == "__main__":
    asyncio.run(main())
