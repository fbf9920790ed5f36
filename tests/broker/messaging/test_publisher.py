"""Publishing with pipelined confirms and mandatory routing on a real RabbitMQ."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest
from pydantic import SecretStr

from broker.exceptions import TransportError
from broker.messaging import (
    CE_HEADERS,
    OutgoingMessage,
    Publisher,
    PublishStatus,
)
from broker.settings import AmqpSettings
from broker.topology import DISCLOSURES_EXCHANGE, disclosure_routing_key
from tests.broker.messaging.conftest import (
    close_from_server,
    connections_named,
    eventually,
    queue_depth,
)

pytestmark = pytest.mark.rabbitmq


def disclosure(party: str = "wam-mash", event_type: str = "missing.reported", **kw):
    return OutgoingMessage(
        exchange=kw.pop("exchange", DISCLOSURES_EXCHANGE),
        routing_key=kw.pop("routing_key", disclosure_routing_key(party, event_type)),
        body=kw.pop("body", b"eyJhbGciOiJFQ0RILUVTK0EyNTZLVyJ9.sealed"),
        message_id=kw.pop("message_id", str(uuid.uuid4())),
        event_type=event_type,
        source="urn:mash:party:wam-broker",
        **kw,
    )


async def test_a_pipelined_batch_of_1000_is_all_confirmed(amqp, declared, admin):
    messages = [disclosure() for _ in range(1000)]
    async with Publisher(amqp) as publisher:
        results = await publisher.publish_batch(messages)

    assert [r.message_id for r in results] == [m.message_id for m in messages]
    assert all(r.status is PublishStatus.CONFIRMED for r in results)
    assert await queue_depth(admin, "mash.E06000040") == 1000


async def test_messages_are_persistent_and_carry_cloudevents_headers_only(amqp, declared, admin):
    when = datetime(2026, 3, 4, 17, 30, tzinfo=UTC)
    message = disclosure(
        "tvp-police",
        "cse.screening",
        time=when,
        correlation_id="EP-2026-0042",
        headers={"rule-id": "R12"},
    )
    async with Publisher(amqp) as publisher:
        assert (await publisher.publish(message)).confirmed

    queue = await admin.declare_queue("partner.tvp-police", passive=True)
    got = await queue.get(timeout=5)
    await got.ack()
    assert got.delivery_mode == 2
    assert got.message_id == message.message_id
    assert got.correlation_id == "EP-2026-0042"
    assert got.content_type == "application/jose"
    assert got.routing_key == "tvp-police.cse.screening"
    headers = dict(got.headers)
    assert headers.pop("x-delivery-count", 0) == 0  # the quorum queue's own count
    assert headers == {
        "ce-specversion": "1.0",
        "ce-id": message.message_id,
        "ce-type": "cse.screening",
        "ce-source": "urn:mash:party:wam-broker",
        "ce-time": "2026-03-04T17:30:00Z",
        "rule-id": "R12",
    }
    assert set(CE_HEADERS) <= set(got.headers)
    assert got.type == "cse.screening"
    assert got.app_id == "mash-broker"
    assert got.timestamp == when


def test_the_properties_written_are_those_of_the_aio_pika_message():
    """The publisher writes ``properties()`` on the AMQP client's channel; the dead-letter
    and re-drive paths publish ``aio_pika.Message`` objects: both must say the same."""
    when = datetime(2026, 3, 4, 17, 30, 12, 345678, tzinfo=UTC)
    for message in (
        disclosure(time=when, correlation_id="EP-2026-0042", headers={"rule-id": "R12"}),
        disclosure("tvp-police", "cse.screening", time=when),
    ):
        assert message.properties() == message.to_amqp().properties


async def test_an_unroutable_message_is_reported_never_silently_confirmed(amqp, declared, admin):
    good = [disclosure() for _ in range(20)]
    stray = disclosure("nobody-here")
    no_exchange = disclosure(exchange="no-such-exchange")
    async with Publisher(amqp) as publisher:
        results = await publisher.publish_batch([*good[:10], stray, no_exchange, *good[10:]])
        # The channel survives: a later batch on the same publisher is confirmed.
        after = await publisher.publish(disclosure())

    by_id = {r.message_id: r for r in results}
    assert by_id[stray.message_id].status is PublishStatus.UNROUTABLE
    assert "NO_ROUTE" in (by_id[stray.message_id].detail or "")
    assert by_id[no_exchange.message_id].status is PublishStatus.UNROUTABLE
    assert "does not exist" in (by_id[no_exchange.message_id].detail or "")
    assert all(by_id[m.message_id].confirmed for m in good)
    assert after.confirmed
    assert await queue_depth(admin, "mash.E06000040") == 21


async def test_a_message_the_broker_refuses_is_reported_nacked(amqp, admin):
    await admin.declare_queue(
        "full",
        durable=True,
        arguments={"x-queue-type": "quorum", "x-max-length": 2, "x-overflow": "reject-publish"},
    )
    messages = [disclosure(exchange="", routing_key="full") for _ in range(5)]
    async with Publisher(amqp) as publisher:
        results = []
        for message in messages:  # one by one, so the queue is full before the third arrives
            results.append(await publisher.publish(message))
    statuses = [r.status for r in results]
    # A quorum queue applies its length limit once it is reached, so the first messages
    # are taken and the ones after the limit are refused.
    assert statuses[:2] == [PublishStatus.CONFIRMED] * 2
    assert statuses[-2:] == [PublishStatus.NACKED] * 2
    assert all(r.detail for r in results if r.status is PublishStatus.NACKED)


async def test_the_publisher_reconnects_after_the_broker_closes_its_connection(
    vhost, amqp, declared, admin
):
    async with Publisher(amqp, name="relay-under-test") as publisher:
        assert (await publisher.publish(disclosure())).confirmed
        assert await asyncio.to_thread(close_from_server, vhost, "relay-under-test") == 1

        async def gone():
            return not await asyncio.to_thread(connections_named, vhost, "relay-under-test")

        await eventually(gone)
        results = await publisher.publish_batch([disclosure() for _ in range(50)])
        assert all(r.confirmed for r in results)
    assert await queue_depth(admin, "mash.E06000040") == 51


async def test_a_lost_connection_mid_batch_reports_failed_not_confirmed(proxied, proxy, declared):
    async with Publisher(proxied) as publisher:
        assert (await publisher.publish(disclosure())).confirmed
        proxy.stall()  # messages leave the client but no confirm can come back

        async def cut_soon() -> None:
            await asyncio.sleep(0.2)
            proxy.cut()

        results, _ = await asyncio.gather(
            publisher.publish_batch([disclosure() for _ in range(200)]), cut_soon()
        )
        proxy.resume()
        # The next batch reconnects through the proxy and is confirmed.
        again = await publisher.publish_batch([disclosure() for _ in range(10)])

    assert [r.status for r in results] == [PublishStatus.FAILED] * 200
    assert all(r.detail for r in results)
    assert all(r.confirmed for r in again)


async def test_a_confirm_that_never_comes_times_out_as_failed(proxied, proxy, declared):
    async with Publisher(proxied) as publisher:
        assert (await publisher.publish(disclosure())).confirmed
        proxy.stall()
        loop = asyncio.get_running_loop()
        started = loop.time()
        results = await publisher.publish_batch([disclosure() for _ in range(5)])
        elapsed = loop.time() - started
        proxy.resume()
    assert [r.status for r in results] == [PublishStatus.FAILED] * 5
    assert all("no confirm within 1.0s" in (r.detail or "") for r in results)
    assert elapsed < 2.5


async def test_duplicate_ids_in_a_batch_are_refused_before_sending(amqp, declared):
    message = disclosure()
    async with Publisher(amqp) as publisher:
        with pytest.raises(ValueError, match="appears twice"):
            await publisher.publish_batch([message, message])


def test_outgoing_messages_refuse_reserved_headers_and_naive_times():
    with pytest.raises(ValueError, match="reserved"):
        disclosure(headers={"ce-subject": "anything"})
    with pytest.raises(ValueError, match="reserved"):
        disclosure(headers={"x-death": "forged"})
    with pytest.raises(ValueError, match="timezone-aware"):
        disclosure(time=datetime(2026, 1, 1))  # noqa: DTZ001 - the naive time under test
    with pytest.raises(ValueError, match="message_id"):
        disclosure(message_id="")


async def test_no_broker_means_a_transport_error_within_the_timeout():
    settings = AmqpSettings(url=SecretStr("amqp://guest:s3cret@127.0.0.1:1/"), timeout_seconds=1)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(TransportError) as caught:
        await Publisher(settings).publish(disclosure())
    assert loop.time() - started < 3
    assert "s3cret" not in str(caught.value)


async def test_a_broker_that_never_answers_times_out():
    # A TCP listener that takes the client's bytes and never answers, like a hung broker.
    clients: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        clients.append(writer)
        try:
            while await reader.read(65536):
                pass
        finally:
            writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    settings = AmqpSettings(
        url=SecretStr(f"amqp://guest:guest@127.0.0.1:{port}/"), timeout_seconds=0.5
    )
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        with pytest.raises(TransportError, match="failed"):
            await Publisher(settings).start()
        assert loop.time() - started < 2.5
    finally:
        for writer in clients:
            writer.transport.abort()
        server.close()
        await server.wait_closed()
