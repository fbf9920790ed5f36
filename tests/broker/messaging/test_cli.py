"""The ``topology`` and ``deadletter`` commands, run through Typer's test runner."""

from __future__ import annotations

import asyncio
import json

import pytest
import structlog
import typer
from typer.testing import CliRunner, Result

from broker.cli import deadletter_cmd, topology_cmd
from broker.messaging import DEAD_LETTER_REASON_HEADER, AmqpPublish, OutgoingMessage, Publisher
from broker.settings import AmqpSettings, Settings
from broker.topology import Recipient, RecipientKind
from tests.rabbitfixtures import management, quoted

_runner = CliRunner()


def invoke(app: typer.Typer, args: list[str], env: dict[str, str]) -> Result:
    """Run a command; then undo its logging set-up, which points at the runner's stderr."""
    try:
        return _runner.invoke(app, args, env=env)
    finally:
        structlog.reset_defaults()


RECIPIENT_ARGS = [
    "--recipient", "wam-mash:mash",
    "--recipient", "tvp-police:partner",
    "--recipient", "slough-broker:xborder:E06000039",
    "--neighbour", "E06000036",
]  # fmt: skip


@pytest.fixture(autouse=True)
def _no_recipient_source():
    yield
    topology_cmd.set_recipient_source(None)


def env(url: str | None = None) -> dict[str, str]:
    values = {"MASH_BOROUGH": "E06000040", "MASH_AMQP__DELIVERY_LIMIT": "4"}
    if url:
        values["MASH_AMQP__URL"] = url
    return values


def test_show_prints_the_topology_without_a_broker():
    result = invoke(topology_cmd.app, ["show", *RECIPIENT_ARGS], env())
    assert result.exit_code == 0, result.output
    assert "mash.E06000040 (quorum) delivery-limit=4 dlq=mash.E06000040.dlq" in result.stdout
    assert "disclosures --tvp-police.#--> partner.tvp-police" in result.stdout
    assert "ingest --paris-xml--> ingest.paris-xml" in result.stdout
    assert "xborder.E06000036" in result.stdout


def test_show_json_and_a_custom_adapter_list():
    result = invoke(
        topology_cmd.app,
        ["show", "--json", "--adapter", "police", "-r", "wam-mash:mash"],
        env=env(),
    )
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert sorted(q["name"] for q in shown["queues"]) == [
        "ingest.police", "ingest.police.dlq", "mash.E06000040", "mash.E06000040.dlq",
    ]  # fmt: skip
    assert shown["recipients"] == {"wam-mash": "mash.E06000040"}


def test_a_malformed_recipient_is_a_clear_error():
    result = invoke(topology_cmd.app, ["show", "-r", "tvp-police"], env())
    assert result.exit_code == 1
    assert "expected PARTY:KIND[:BOROUGH]" in result.stderr


def test_recipients_come_from_the_source_when_none_are_named():
    seen: list[Settings] = []

    def from_agreement(settings: Settings) -> list[Recipient]:
        seen.append(settings)
        return [Recipient("wam-mash", RecipientKind.MASH)]

    topology_cmd.set_recipient_source(from_agreement)
    result = invoke(topology_cmd.app, ["show", "--json"], env())
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["recipients"] == {"wam-mash": "mash.E06000040"}
    assert seen
    assert seen[0].borough == "E06000040"


@pytest.mark.rabbitmq
def test_declare_twice_then_dead_letters_listed_and_redriven(vhost, amqp_url):
    for _ in range(2):
        result = invoke(topology_cmd.app, ["declare", *RECIPIENT_ARGS], env(amqp_url))
        assert result.exit_code == 0, result.output
        assert "bindings on 127.0.0.1:5672 vhost=" in result.stdout
        assert "guest:guest" not in result.output
    queues = {q["name"]: q for q in management("GET", f"/queues/{quoted(vhost)}")}
    assert queues["partner.tvp-police"]["arguments"]["x-delivery-limit"] == 4
    assert "xborder.E06000036.dlq" in queues

    settings = AmqpSettings(url=amqp_url)
    asyncio.run(_publish_to_dlq(settings, ["dl-1", "dl-2", "dl-3"]))

    listed = invoke(deadletter_cmd.app, ["list", "partner.tvp-police"], env(amqp_url))
    assert listed.exit_code == 0, listed.output
    assert "partner.tvp-police.dlq: 3 message(s)" in listed.stdout
    assert "dl-2  type=intelligence  reason='audience_mismatch'" in listed.stdout
    assert "by reason: audience_mismatch: 3" in listed.stdout
    assert "body-of-dl" not in listed.output  # bodies are never printed

    as_json = invoke(
        deadletter_cmd.app,
        ["list", "partner.tvp-police.dlq", "--json", "--limit", "2"],
        env(amqp_url),
    )
    shown = json.loads(as_json.stdout)
    assert shown["total"] == 3
    assert [letter["message_id"] for letter in shown["letters"]] == ["dl-1", "dl-2"]

    moved = invoke(
        deadletter_cmd.app, ["redrive", "partner.tvp-police", "--limit", "2"], env(amqp_url)
    )
    assert moved.exit_code == 0, moved.output
    assert "moved 2 message(s) back to partner.tvp-police; 0 failed; 1 left" in moved.stdout

    missing = invoke(deadletter_cmd.app, ["list", "nowhere"], env(amqp_url))
    assert missing.exit_code == 1
    assert "queue nowhere.dlq does not exist" in missing.stderr


async def _publish_to_dlq(settings: AmqpSettings, ids: list[str]) -> None:
    """Put messages straight on the dead-letter exchange, as the consumer does on a reject."""
    items = []
    for message_id in ids:
        message = OutgoingMessage(
            exchange="partner.tvp-police.dlx",
            routing_key="tvp-police.intelligence",
            body=f"body-of-{message_id}".encode(),
            message_id=message_id,
            event_type="intelligence",
            source="urn:mash:party:wam-broker",
        ).to_amqp()
        message.headers[DEAD_LETTER_REASON_HEADER] = "audience_mismatch"
        items.append(AmqpPublish("partner.tvp-police.dlx", "tvp-police.intelligence", message))
    async with Publisher(settings) as publisher:
        results = await publisher.publish_amqp(items)
    assert all(r.confirmed for r in results)
