"""Declaring the topology on a real RabbitMQ: idempotent, with the arguments the design sets."""

from __future__ import annotations

import aio_pika
import pytest
from pydantic import SecretStr

from broker.exceptions import ConfigurationError, TransportError
from broker.settings import AmqpSettings
from broker.topology import build_topology, declare_topology, ensure_topology
from tests.broker.messaging.conftest import BOROUGH, RECIPIENTS
from tests.rabbitfixtures import management, quoted

pytestmark = pytest.mark.rabbitmq


async def test_declaring_twice_changes_nothing_and_queues_have_the_right_arguments(
    vhost, amqp, topology
):
    await ensure_topology(amqp, topology)
    before = management("GET", f"/queues/{quoted(vhost)}")
    await ensure_topology(amqp, topology)
    after = management("GET", f"/queues/{quoted(vhost)}")

    assert sorted(q["name"] for q in after) == sorted(q["name"] for q in before)
    assert sorted(q["name"] for q in after) == sorted(q.name for q in topology.queues)
    by_name = {q["name"]: q for q in after}
    for spec in topology.queues:
        queue = by_name[spec.name]
        assert queue["durable"] is True
        assert queue["type"] == "quorum"
        assert queue["arguments"] == dict(spec.arguments)
    mash = by_name["mash.E06000040"]["arguments"]
    assert mash["x-delivery-limit"] == amqp.delivery_limit
    assert mash["x-dead-letter-strategy"] == "at-least-once"
    assert mash["x-overflow"] == "reject-publish"
    assert mash["x-dead-letter-exchange"] == "mash.E06000040.dlx"

    exchanges = {
        e["name"]: e for e in management("GET", f"/exchanges/{quoted(vhost)}") if e["name"]
    }
    for spec in topology.exchanges:
        assert exchanges[spec.name]["type"] == spec.type
        assert exchanges[spec.name]["durable"] is True

    bindings = management("GET", f"/bindings/{quoted(vhost)}")
    found = {(b["source"], b["destination"], b["routing_key"]) for b in bindings if b["source"]}
    assert found == {(b.exchange, b.queue, b.routing_key) for b in topology.bindings}


async def test_a_conflicting_redeclaration_is_a_located_configuration_error(amqp, topology):
    await ensure_topology(amqp, topology)
    changed = build_topology(BOROUGH, RECIPIENTS, delivery_limit=amqp.delivery_limit + 1)
    with pytest.raises(ConfigurationError, match=r"queue ingest\.police: exists with different"):
        await ensure_topology(amqp, changed)


async def test_declare_topology_on_a_caller_channel(amqp_url, topology):
    connection = await aio_pika.connect(amqp_url, timeout=5)
    async with connection:
        channel = await connection.channel()
        await declare_topology(channel, topology, call_timeout=5)
        await declare_topology(channel, topology, call_timeout=5)
        queue = await channel.declare_queue("partner.tvp-police", passive=True)
        assert queue.declaration_result.message_count == 0


async def test_ensure_topology_without_a_broker_is_a_transport_error(topology):
    nowhere = AmqpSettings(url=SecretStr("amqp://guest:hunter2@127.0.0.1:1/"), timeout_seconds=1)
    with pytest.raises(TransportError) as caught:
        await ensure_topology(nowhere, topology)
    assert "127.0.0.1:1" in str(caught.value)
    assert "hunter2" not in str(caught.value)
