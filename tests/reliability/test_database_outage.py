"""The database stopped and started mid-run (item 4): HTTP ingest answers 503 meanwhile, no
AMQP message is acknowledged without its durable effect and audit entry, nothing is lost.

PostgreSQL here is a private cluster the test stops (``pg_ctl stop -m fast``, which ends
every connection) and starts again while partners keep sending over AMQP and HTTP.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from broker.runtime import Runtime
from broker.service import Service
from tests.api.forge import Forger
from tests.reliability import pgnode
from tests.reliability.conftest import make_settings
from tests.reliability.faults import (
    CORE_PARTS,
    Workload,
    account,
    mixed,
    publish_until_confirmed,
    wait_settled,
)
from tests.reliability.pgnode import PostgresNode
from tests.reliability.rabbitnode import listening_port

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres]


@pytest.fixture
def pg() -> Iterator[PostgresNode]:
    if not pgnode.available():
        pytest.skip("the PostgreSQL server binaries are not installed here")
    node = PostgresNode()
    node.start()
    try:
        yield node
    finally:
        node.remove()


@pytest.fixture
def outage_service(pg: PostgresNode, amqp_url: str, keys_dir: Path) -> Iterator[Service]:
    port = listening_port()
    settings = make_settings(pg.url, amqp_url, keys_dir)
    settings = settings.model_copy(
        update={
            "api": settings.api.model_copy(
                update={
                    "port": port,
                    "public_base_url": f"http://127.0.0.1:{port}",
                    "rate_per_second": 1000.0,
                    "rate_burst": 1000,
                }
            )
        }
    )
    service = Service.load(settings)
    try:
        yield service
    finally:
        service.engine.dispose()


async def _post_all(
    service: Service, items: list[tuple[str, bytes, str]], statuses: Counter[int]
) -> None:
    """POST each message until it is accepted; every answer's status is counted."""
    base = service.settings.api.public_base_url
    forger = Forger(service.keys_dir, base)
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        for n, (adapter, raw, sender) in enumerate(items):
            path = f"/v1/ingest/{adapter}"
            key = f"outage-{n}"
            while True:
                answer = await http.post(
                    path,
                    content=raw,
                    headers={
                        "Authorization": f"Bearer {forger.partner(sender, path)}",
                        "Idempotency-Key": key,
                    },
                )
                statuses[answer.status_code] += 1
                if answer.status_code in (200, 202):
                    break
                # A partner retries with the same key: a first attempt's claim that the
                # outage kept from being dropped is dropped when the key comes again.
                await asyncio.sleep(0.2)
            await asyncio.sleep(0.05)


async def _outage(
    service: Service, pg: PostgresNode, messages: int, down: float, outages: int
) -> None:
    items = mixed(messages)
    workload = Workload.of(service, items)
    http_items, amqp_items = items[::4], [x for n, x in enumerate(items) if n % 4]
    statuses: Counter[int] = Counter()
    async with Runtime(service, (*CORE_PARTS, "api")) as runtime:
        amqp = asyncio.create_task(
            publish_until_confirmed(service.settings.amqp, amqp_items, chunk=5, pause=0.1)
        )
        http = asyncio.create_task(_post_all(service, http_items, statuses))
        during: Counter[int] = Counter()
        for _ in range(outages):
            await asyncio.sleep(1.5)
            before = statuses.copy()
            await asyncio.to_thread(pg.stop)
            await asyncio.sleep(down)
            during.update(statuses - before)
            await asyncio.to_thread(pg.start)
        await asyncio.gather(amqp, http)
        settle = await wait_settled(service, workload, within=120, runtimes=[runtime])
    figures = await account(service, workload)
    print(  # noqa: T201 - the figures docs/reliability.md quotes
        f"\n[reliability] database outage: messages={messages} outages={outages} "
        f"down_seconds={down} http_statuses={dict(statuses)} during_outage={dict(during)} "
        f"settle_seconds={settle:.1f} | {figures.line()}"
    )
    # Never 409: a retry after the outage is processed; its first attempt, failed by the
    # outage, stored neither its effect nor an answer for its Idempotency-Key.
    assert set(statuses) <= {202, 503}, statuses
    assert during[503] > 0, "no request met the outage"


async def test_database_stopped_and_started(outage_service: Service, pg: PostgresNode) -> None:
    await _outage(outage_service, pg, messages=120, down=4.0, outages=2)


@pytest.mark.soak
async def test_database_stopped_and_started_soak(outage_service: Service, pg: PostgresNode) -> None:
    await _outage(outage_service, pg, messages=2_000, down=20.0, outages=5)
