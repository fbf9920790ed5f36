"""Publishing native messages to the AMQP ingest, and waiting for effects, in tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import aio_pika

from broker.service import Service
from broker.topology import INGEST_EXCHANGE, ingest_routing_key


async def publish_native(service: Service, items: list[tuple[str, bytes, str]]) -> None:
    """Publish (adapter, raw, sender) messages to the ingest exchange with confirms."""
    connection = await aio_pika.connect(service.settings.amqp.url.get_secret_value())
    async with connection:
        # An unroutable message fails the test rather than vanishing.
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        exchange = await channel.get_exchange(INGEST_EXCHANGE)
        for n, (adapter, raw, sender) in enumerate(items):
            await exchange.publish(
                aio_pika.Message(
                    raw,
                    app_id=sender,
                    message_id=f"native-{n}",
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                ),
                routing_key=ingest_routing_key(adapter),
                mandatory=True,
            )


async def eventually(check: Callable[[], bool], *, within: float = 30.0) -> None:
    """Wait until ``check()`` is true, polling; fail the test when it never is."""
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within} s")
        await asyncio.sleep(0.1)
