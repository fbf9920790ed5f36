"""Load (item 15): mixed events through both ingests, AMQP and HTTP, for a long while.

The whole service runs as one ``mash-broker run`` process on a private RabbitMQ node and
PostgreSQL; partners publish at a steady rate over AMQP and POST over HTTPS-less loopback
HTTP with their client assertions, and take their own copies off their queues as they come.
At the end: 0 lost, 0 duplicate effects, the outbox and the queues drained, and the
resident memory of the service process and of the RabbitMQ node at the start (after a
warm-up) and at the end. ``pytest -m soak`` runs the issue's 100,000 events over at least
ten minutes; the default run is a short version of the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from broker.service import Service
from tests.api.forge import Forger
from tests.dbfixtures import fresh_database
from tests.reliability import rabbitnode
from tests.reliability.conftest import make_settings
from tests.reliability.faults import (
    ROOT,
    Workload,
    account,
    drain_partners,
    mixed,
    publish_until_confirmed,
    service_env,
    wait_settled,
)
from tests.reliability.rabbitnode import RabbitNode, listening_port, rss_kb

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres]


@pytest.fixture
def soak_service(tmp_path: Path, keys_dir: Path) -> Iterator[tuple[Service, RabbitNode]]:
    if not rabbitnode.available():
        pytest.skip("the RabbitMQ server scripts are not installed here")
    node = RabbitNode(tmp_path / "node")
    node.start()
    port = listening_port()
    try:
        with fresh_database("postgres", tmp_path) as url:
            settings = make_settings(url, node.url(), keys_dir)
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
                yield service, node
            finally:
                service.engine.dispose()
    finally:
        node.stop()


async def _http_partner(
    service: Service, items: list[tuple[str, bytes, str]], rate: float, statuses: Counter[int]
) -> None:
    """POST each message with a fresh client assertion, at ``rate`` per second."""
    base = service.settings.api.public_base_url
    forger = Forger(service.keys_dir, base)
    started = time.monotonic()
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        for n, (adapter, raw, sender) in enumerate(items):
            await asyncio.sleep(max(0.0, started + n / rate - time.monotonic()))
            path = f"/v1/ingest/{adapter}"
            while True:
                answer = await http.post(
                    path,
                    content=raw,
                    headers={
                        "Authorization": f"Bearer {forger.partner(sender, path)}",
                        "Idempotency-Key": f"soak-{n}",
                    },
                )
                statuses[answer.status_code] += 1
                if answer.status_code in (200, 202):
                    break
                assert answer.status_code in (429, 503), answer.text[:300]
                await asyncio.sleep(0.5)


async def _amqp_partner(service: Service, items: list[tuple[str, bytes, str]], rate: float) -> None:
    """Publish at ``rate`` messages per second, each until confirmed."""
    chunk = max(1, int(rate / 4))
    started = time.monotonic()
    for start in range(0, len(items), chunk):
        await asyncio.sleep(max(0.0, started + start / rate - time.monotonic()))
        await publish_until_confirmed(service.settings.amqp, items[start : start + chunk])


async def _soak(service: Service, node: RabbitNode, messages: int, seconds: float) -> None:
    items = mixed(messages)
    workload = Workload.of(service, items)
    http_items = [item for n, item in enumerate(items) if n % 5 == 4]  # a fifth over HTTP
    amqp_items = [item for n, item in enumerate(items) if n % 5 != 4]
    rate = messages / seconds
    log = Path(service.settings.crypto.keys_dir).parent / f"soak-{uuid.uuid4().hex[:6]}.log"
    env = {
        **service_env(service),
        "MASH_API__PORT": str(service.settings.api.port),
        "MASH_API__PUBLIC_BASE_URL": service.settings.api.public_base_url,
        "MASH_API__RATE_PER_SECOND": "1000",
        "MASH_API__RATE_BURST": "1000",
    }
    with log.open("ab") as out:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "broker", "run", env=env, stdout=out, stderr=out, cwd=ROOT
        )
    seen: dict[str, Counter[str]] = {}
    stop = asyncio.Event()
    drain: asyncio.Task[None] | None = None
    statuses: Counter[int] = Counter()
    samples: list[tuple[float, int, int]] = []
    sampler: asyncio.Task[None] | None = None
    try:
        await _ready(service)
        drain = asyncio.create_task(drain_partners(service, seen, stop))
        began = time.monotonic()
        senders = [
            asyncio.create_task(_amqp_partner(service, amqp_items, rate * 4 / 5)),
            asyncio.create_task(_http_partner(service, http_items, rate / 5, statuses)),
        ]
        sampler = asyncio.create_task(
            _sample_rss(process.pid, node, began=began, samples=samples, stop=stop)
        )
        # Resident memory once warm (a tenth of the way in), then at the end.
        await asyncio.sleep(min(seconds / 10, 60))
        start_rss = (rss_kb(process.pid), node.rss_kb())
        await asyncio.gather(*senders)
        sent_seconds = time.monotonic() - began
        settle = await wait_settled(service, workload, within=600 + messages / 50)
        end_rss = (rss_kb(process.pid), node.rss_kb())
    finally:
        stop.set()
        if sampler is not None:
            await sampler
        if process.returncode is None:
            process.terminate()
            await asyncio.wait_for(process.wait(), timeout=60)
        if drain is not None:
            await drain
    await asyncio.sleep(1)
    figures = await account(service, workload, partner_seen=seen)
    print(  # noqa: T201 - the figures docs/reliability.md quotes
        f"\n[reliability] soak: messages={messages} (http={len(http_items)} "
        f"amqp={len(amqp_items)}) events={workload.events} sent_seconds={sent_seconds:.0f} "
        f"settle_seconds={settle:.1f} rate={messages / (sent_seconds + settle):.0f} msg/s "
        f"service_rss_kb start={start_rss[0]} end={end_rss[0]} "
        f"rabbitmq_rss_kb start={start_rss[1]} end={end_rss[1]} http={dict(statuses)} "
        f"| {figures.line()}"
        f"\n[reliability] soak rss (seconds service_mb rabbitmq_mb): "
        + " ".join(f"{t:.0f}:{a / 1024:.1f}/{b / 1024:.1f}" for t, a, b in samples)
    )
    assert len(samples) >= 2
    if messages >= 10_000:
        # Flat: the service holds nothing per message. (RabbitMQ's own memory rises and
        # falls with its quorum-queue write-ahead log, so it is reported, not bounded.)
        assert end_rss[0] <= start_rss[0] * 1.25, (start_rss, end_rss)
    assert process.returncode == 0, log.read_text()[-3000:]


async def _sample_rss(
    pid: int,
    node: RabbitNode,
    *,
    began: float,
    samples: list[tuple[float, int, int]],
    stop: asyncio.Event,
    every: float = 30.0,
) -> None:
    """Record the service's and the node's resident memory every ``every`` seconds, so a
    run shows whether memory levels off or keeps climbing, not just two points."""
    while True:
        try:
            samples.append((time.monotonic() - began, rss_kb(pid), node.rss_kb()))
        except (OSError, RuntimeError, ValueError):
            return  # a process has gone: the run's own checks say why
        if stop.is_set():
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=every)


async def _ready(service: Service) -> None:
    base = service.settings.api.public_base_url
    deadline = time.monotonic() + 60
    async with httpx.AsyncClient(base_url=base, timeout=5) as http:
        while True:
            try:
                if (await http.get("/readyz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("the service never became ready")
            await asyncio.sleep(0.25)


async def test_soak_short(soak_service: tuple[Service, RabbitNode]) -> None:
    await _soak(*soak_service, messages=300, seconds=10)


@pytest.mark.soak
async def test_soak_a_hundred_thousand_events(soak_service: tuple[Service, RabbitNode]) -> None:
    """100,000 messages over 30 minutes (55 a second, what one service process keeps up
    with on the project's 2-core machine kind); ``MASH_SOAK_MESSAGES`` and
    ``MASH_SOAK_SECONDS`` change the load (docs/reliability.md)."""
    messages = int(os.environ.get("MASH_SOAK_MESSAGES", "100000"))
    seconds = float(os.environ.get("MASH_SOAK_SECONDS", "1800"))
    await _soak(*soak_service, messages=messages, seconds=seconds)
