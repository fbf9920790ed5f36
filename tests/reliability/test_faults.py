"""Faults on the real RabbitMQ and PostgreSQL (items 1, 2, 3, 5, 6): 0 lost, 0 duplicated.

Each test runs a workload of partner messages through the AMQP ingest while a fault
repeats, then checks the same accounting (tests/reliability/faults.py). Node-wide faults
(restarts, the disk alarm) run on a private RabbitMQ node the test starts; connection
faults and process kills use a virtual host of the shared server. Default runs are short;
``pytest -m soak`` runs the issue's counts. Each test prints its figures (``-s``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from broker.messaging import OutgoingMessage, Publisher
from broker.runtime import Runtime
from broker.service import Service
from broker.topology import DISCLOSURES_EXCHANGE, disclosure_routing_key
from tests.broker.messaging.conftest import AmqpProxy
from tests.dbfixtures import fresh_database
from tests.rabbitfixtures import quoted
from tests.reliability import rabbitnode
from tests.reliability.conftest import make_settings
from tests.reliability.faults import (
    CORE_PARTS,
    HALF_OPENED,
    Part,
    Workload,
    account,
    mixed,
    publish_until_confirmed,
    wait_settled,
)
from tests.reliability.helpers import alerts
from tests.reliability.rabbitnode import RabbitNode

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres]


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitNode]:
    if not rabbitnode.available():
        pytest.skip("the RabbitMQ server scripts are not installed here")
    private = RabbitNode(tmp_path_factory.mktemp("rabbit") / "node")
    private.start()
    try:
        yield private
    finally:
        private.stop()


@pytest.fixture
def pg_url(tmp_path: Path) -> Iterator[str]:
    with fresh_database("postgres", tmp_path) as url:
        yield url


@pytest.fixture
def on_node(node: RabbitNode, pg_url: str, keys_dir: Path) -> Iterator[Service]:
    """A service on PostgreSQL and a fresh virtual host of the private node."""
    vhost = node.add_vhost(f"fault-{uuid.uuid4().hex[:8]}")
    service = Service.load(make_settings(pg_url, node.url(vhost), keys_dir))
    try:
        yield service
    finally:
        service.engine.dispose()
        node.ctl("delete_vhost", vhost)


@pytest.fixture
def on_shared(amqp_url: str, pg_url: str, keys_dir: Path) -> Iterator[Service]:
    """A service on PostgreSQL and a fresh virtual host of the shared server."""
    service = Service.load(make_settings(pg_url, amqp_url, keys_dir))
    try:
        yield service
    finally:
        service.engine.dispose()


def _report(name: str, **figures: object) -> None:
    shown = " ".join(f"{k}={v}" for k, v in figures.items())
    print(f"\n[reliability] {name}: {shown}")  # noqa: T201 - the figures docs/reliability.md quotes


# --- 1. broker restarts and closed connections -----------------------------------------------


async def _restarts(service: Service, node: RabbitNode, messages: int, restarts: int, closes: int):
    vhost = service.settings.amqp.url.get_secret_value().rsplit("/", 1)[1]
    workload = Workload.of(service, mixed(messages))
    started = time.monotonic()
    async with Runtime(service, CORE_PARTS) as runtime:
        partner = asyncio.create_task(
            publish_until_confirmed(service.settings.amqp, workload.items, chunk=20)
        )
        plan = ["close"] * closes + ["restart"] * restarts
        random.Random(1).shuffle(plan)
        recoveries, closed = [], 0
        gap = max(0.5, min(4.0, messages / 400 / max(1, len(plan))))
        for fault in plan:
            await asyncio.sleep(gap)
            if fault == "close":
                closed += await asyncio.to_thread(node.close_connections, vhost)
                continue
            await asyncio.to_thread(node.restart_app)
            back = time.monotonic()
            await asyncio.sleep(0.5)  # the clients notice the loss
            for consumer in runtime.consumers:
                await consumer.wait_ready(within=30)
            recoveries.append(round(time.monotonic() - back, 1))
        stats = await partner
        settle = await wait_settled(service, workload, within=60 + messages / 5, runtimes=[runtime])
    figures = await account(service, workload)
    _report(
        "broker restarts",
        messages=messages,
        restarts=restarts,
        connections_closed=closed,
        recovery_seconds=recoveries,
        partner_retries=stats.unconfirmed,
        settle_seconds=round(settle, 1),
        total_seconds=round(time.monotonic() - started, 1),
        accounting=figures.line(),
    )
    assert max(recoveries, default=0) < 30


async def test_broker_restarts_and_closed_connections(on_node: Service, node: RabbitNode) -> None:
    await _restarts(on_node, node, messages=120, restarts=2, closes=2)


@pytest.mark.soak
async def test_broker_restarts_and_closed_connections_soak(
    on_node: Service, node: RabbitNode
) -> None:
    await _restarts(on_node, node, messages=10_000, restarts=2, closes=10)


# --- 2 and 3. the intake or the relay killed at random points -----------------------------------


async def _kills(service: Service, part: str, kills: int, messages: int, log: Path) -> None:
    workload = Workload.of(service, mixed(messages))
    # The part that stays up re-drives what RabbitMQ dead-lettered for the kills' returns.
    others = [p for p in ("ingest", "relay", "intake", "redrive") if p != part]
    rng = random.Random(kills)
    victim = Part(service, part, log)
    started = time.monotonic()
    async with Runtime(service, others):
        partner = asyncio.create_task(
            publish_until_confirmed(service.settings.amqp, workload.items, chunk=10, pause=0.05)
        )
        for _ in range(kills):
            await victim.start()
            # From start-up (nothing taken yet) to mid-batch, before or after a commit.
            await asyncio.sleep(rng.uniform(0.8, 3.0))
            await victim.kill()
        stats = await partner
        await victim.start()
        try:
            settle = await wait_settled(service, workload, within=60 + messages / 10)
        finally:
            await victim.stop()
    figures = await account(service, workload)
    _report(
        f"{part} killed",
        messages=messages,
        sigkills=victim.kills,
        partner_retries=stats.unconfirmed,
        settle_seconds=round(settle, 1),
        total_seconds=round(time.monotonic() - started, 1),
        accounting=figures.line(),
    )


async def test_intake_killed_repeatedly(on_shared: Service, tmp_path: Path) -> None:
    await _kills(on_shared, "intake", kills=4, messages=120, log=tmp_path / "intake.log")


@pytest.mark.soak
async def test_intake_killed_repeatedly_soak(on_shared: Service, tmp_path: Path) -> None:
    await _kills(on_shared, "intake", kills=120, messages=3_000, log=tmp_path / "intake.log")


async def test_relay_killed_repeatedly(on_shared: Service, tmp_path: Path) -> None:
    await _kills(on_shared, "relay", kills=4, messages=120, log=tmp_path / "relay.log")


@pytest.mark.soak
async def test_relay_killed_repeatedly_soak(on_shared: Service, tmp_path: Path) -> None:
    await _kills(on_shared, "relay", kills=120, messages=3_000, log=tmp_path / "relay.log")


# --- 5. disk alarm -----------------------------------------------------------------------------


async def _disk_alarm(service: Service, node: RabbitNode, messages: int, hold: float) -> None:
    workload = Workload.of(service, mixed(messages))
    settings = service.settings.amqp
    async with Runtime(service, ["intake", "redrive"]):
        await publish_until_confirmed(settings, workload.items)
        node.disk_alarm(True)
        try:
            async with Runtime(service, ["ingest", "relay"]):
                # Ingest goes on (consuming is not blocked); publishing the outbox waits.
                await asyncio.sleep(hold)
                held = alerts(service)
                began = time.monotonic()
                probe = await _one_blocked_publish(service)
                probe_seconds = time.monotonic() - began
                assert not probe, "a publish was confirmed during the disk alarm"
                assert probe_seconds < settings.timeout_seconds + 3, "a publish hung"
                node.disk_alarm(False)
                settle = await wait_settled(service, workload, within=120 + messages / 5)
        finally:
            node.disk_alarm(False)
    figures = await account(service, workload)
    _report(
        "disk alarm",
        messages=messages,
        alarm_seconds=round(hold + probe_seconds, 1),
        alerts_during_alarm=held,
        blocked_publish_returned_after=round(probe_seconds, 1),
        settle_after_clear_seconds=round(settle, 1),
        accounting=figures.line(),
    )
    assert held == 0, "a disclosure was published during the disk alarm"


async def _one_blocked_publish(service: Service) -> bool:
    """One publish while the alarm holds: it must come back (unconfirmed) within the timeout."""
    async with Publisher(service.settings.amqp, name="alarm probe") as publisher:
        result = await publisher.publish(
            OutgoingMessage(
                exchange=DISCLOSURES_EXCHANGE,
                # No queue is bound for it: once the alarm clears, it is returned, not kept.
                routing_key=disclosure_routing_key("ghost-agency", "missing.reported"),
                body=b"probe",
                message_id=f"probe-{uuid.uuid4().hex}",
                event_type="missing.reported",
                source="urn:mash:party:wam-broker",
            )
        )
    return result.confirmed


async def test_disk_alarm(on_node: Service, node: RabbitNode) -> None:
    await _disk_alarm(on_node, node, messages=60, hold=3.0)


@pytest.mark.soak
async def test_disk_alarm_soak(on_node: Service, node: RabbitNode) -> None:
    await _disk_alarm(on_node, node, messages=3_000, hold=60.0)


# --- 6. a slow, flapping link ------------------------------------------------------------------


class SlowProxy(AmqpProxy):
    """The messaging tests' proxy, with a delay on every chunk it passes on."""

    def __init__(self, delay: tuple[float, float]) -> None:
        super().__init__()
        self._delay = delay
        self._rng = random.Random(6)

    async def _pump(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while data := await source.read(65536):
                await asyncio.sleep(self._rng.uniform(*self._delay))
                await self._flowing.wait()
                sink.write(data)
                await sink.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            sink.close()


@pytest.fixture
async def slow_proxy() -> AsyncIterator[SlowProxy]:
    proxy = SlowProxy((0.0, 0.02))
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.close()


async def _flapping(service: Service, proxy: SlowProxy, vhost: str, messages: int) -> None:
    url = f"amqp://guest:guest@127.0.0.1:{proxy.port}/{quoted(vhost)}"
    amqp = service.settings.amqp.model_copy(update={"url": SecretStr(url), "timeout_seconds": 2.0})
    proxied = dataclasses.replace(
        service, settings=service.settings.model_copy(update={"amqp": amqp})
    )
    workload = Workload.of(proxied, mixed(messages))
    rng = random.Random(66)
    cuts = stalls = 0
    started = time.monotonic()
    async with Runtime(proxied, CORE_PARTS) as runtime:
        partner = asyncio.create_task(
            publish_until_confirmed(amqp, workload.items, chunk=10, pause=0.02)
        )
        # The test watches the queues directly, not through the link it breaks.
        settle = asyncio.create_task(
            wait_settled(service, workload, within=90 + messages / 10, runtimes=[runtime])
        )
        while not settle.done():
            await asyncio.wait({settle}, timeout=rng.uniform(0.5, 2.0))
            if settle.done() and partner.done():
                break
            if rng.random() < 0.7:
                proxy.cut()
                cuts += 1
            else:
                proxy.stall()
                await asyncio.sleep(rng.uniform(0.2, 1.5))
                proxy.resume()
                stalls += 1
        stats = await partner
        await settle
    figures = await account(service, workload)
    _report(
        "flapping link",
        messages=messages,
        cuts=cuts,
        stalls=stalls,
        partner_retries=stats.unconfirmed,
        slowest_partner_call=round(stats.slowest_call, 1),
        total_seconds=round(time.monotonic() - started, 1),
        accounting=figures.line(),
    )


@HALF_OPENED
async def test_slow_flapping_link(on_shared: Service, slow_proxy: SlowProxy, vhost: str) -> None:
    await _flapping(on_shared, slow_proxy, vhost, messages=100)


@pytest.mark.soak
@HALF_OPENED
async def test_slow_flapping_link_soak(
    on_shared: Service, slow_proxy: SlowProxy, vhost: str
) -> None:
    await _flapping(on_shared, slow_proxy, vhost, messages=3_000)
