"""Fixtures for the messaging tests: a RabbitMQ virtual host of their own per test."""

from __future__ import annotations

import asyncio
import inspect
import shutil
import subprocess
from collections.abc import AsyncIterator
from typing import Any

import aio_pika
import pytest
from aio_pika.abc import AbstractChannel, AbstractConnection
from pydantic import SecretStr

from broker.messaging import OutgoingMessage
from broker.settings import AmqpSettings
from broker.topology import (
    DISCLOSURES_EXCHANGE,
    Recipient,
    RecipientKind,
    Topology,
    build_topology,
    declare_topology,
    disclosure_routing_key,
)
from tests.rabbitfixtures import quoted

BOROUGH = "E06000040"
RECIPIENTS = (
    Recipient("wam-mash", RecipientKind.MASH),
    Recipient("tvp-police", RecipientKind.PARTNER),
    Recipient("slough-broker", RecipientKind.CROSS_BORDER, "E06000039"),
)


@pytest.fixture
def amqp(amqp_url: str) -> AmqpSettings:
    return AmqpSettings(url=SecretStr(amqp_url), timeout_seconds=5, prefetch=32, delivery_limit=3)


@pytest.fixture
def topology(amqp: AmqpSettings) -> Topology:
    return build_topology(BOROUGH, RECIPIENTS, delivery_limit=amqp.delivery_limit)


@pytest.fixture
async def admin(amqp_url: str) -> AsyncIterator[AbstractChannel]:
    """A plain channel for arranging and inspecting the broker's state."""
    connection: AbstractConnection = await aio_pika.connect(amqp_url, timeout=5)
    try:
        yield await connection.channel()
    finally:
        await connection.close()


@pytest.fixture
async def declared(admin: AbstractChannel, topology: Topology) -> Topology:
    """The test topology, declared in the test's virtual host."""
    await declare_topology(admin, topology, call_timeout=5)
    return topology


def disclosure(
    message_id: str,
    *,
    event_type: str = "missing.found",
    recipient: str = "wam-mash",
    source: str = "wam-broker",
) -> OutgoingMessage:
    """A disclosure-shaped message for ``recipient``'s queue (its body is not a real token)."""
    return OutgoingMessage(
        exchange=DISCLOSURES_EXCHANGE,
        routing_key=disclosure_routing_key(recipient, event_type),
        body=b"sealed",
        message_id=message_id,
        event_type=event_type,
        source=f"urn:mash:party:{source}",
    )


async def queue_depth(channel: AbstractChannel, queue: str) -> int:
    """Messages ready in a queue, read by a passive declare (no statistics lag)."""
    declared = await channel.declare_queue(queue, passive=True, timeout=5)
    return int(declared.declaration_result.message_count or 0)


async def eventually(check: Any, *, within: float = 10.0, every: float = 0.05) -> None:
    """Wait until ``check()`` (plain or async) is truthy; TimeoutError after ``within`` s."""
    async with asyncio.timeout(within):
        while True:
            outcome = check()
            if inspect.isawaitable(outcome):
                outcome = await outcome
            if outcome:
                return
            await asyncio.sleep(every)


def _rabbitmqctl(*args: str) -> str:
    """Run rabbitmqctl (on this machine, as the broker's admin) and return its output."""
    tool = shutil.which("rabbitmqctl")
    if tool is None:
        pytest.skip("rabbitmqctl is needed to close connections from the server side")
    done = subprocess.run(  # noqa: S603 - fixed tool, arguments from the test itself
        [tool, "-q", *args], capture_output=True, text=True, timeout=30, check=True
    )
    return done.stdout


def connections_named(vhost: str, name: str) -> list[str]:
    """Broker pids of the open connections in ``vhost`` whose client called itself ``name``.

    rabbitmqctl sees connections at once; the management API only after its statistics
    interval (about five seconds).
    """
    listed = _rabbitmqctl("list_connections", "-p", vhost, "pid", "client_properties")
    # One line per connection: the pid, a tab, then the client's table as an Erlang term.
    wanted = f'{{"connection_name","mash-broker {name}"}}'
    return [line.split("\t", 1)[0] for line in listed.splitlines() if wanted in line]


def close_from_server(vhost: str, name: str) -> int:
    """Close, from the broker's side, every connection the client called ``name``."""
    pids = connections_named(vhost, name)
    for pid in pids:
        _rabbitmqctl("close_connection", pid, "closed by the test")
    return len(pids)


class AmqpProxy:
    """A TCP relay in front of RabbitMQ that a test can cut or stall, like a bad network."""

    def __init__(self) -> None:
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", 5672)
        self._writers |= {writer, up_writer}
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pump(source, sink))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pump(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while data := await source.read(65536):
                await self._flowing.wait()
                sink.write(data)
                await sink.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            sink.close()

    def stall(self) -> None:
        """Stop passing bytes on (connections stay open, nothing arrives)."""
        self._flowing.clear()

    def resume(self) -> None:
        self._flowing.set()

    def cut(self) -> None:
        """Drop every connection through the proxy, as a network failure would."""
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def close(self) -> None:
        self.resume()
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


@pytest.fixture
async def proxy() -> AsyncIterator[AmqpProxy]:
    relay = AmqpProxy()
    await relay.start()
    try:
        yield relay
    finally:
        await relay.close()


@pytest.fixture
def proxied(amqp: AmqpSettings, proxy: AmqpProxy, vhost: str) -> AmqpSettings:
    """The test's settings, but reaching RabbitMQ through the proxy."""
    url = f"amqp://guest:guest@127.0.0.1:{proxy.port}/{quoted(vhost)}"
    return amqp.model_copy(update={"url": SecretStr(url), "timeout_seconds": 1.0})
