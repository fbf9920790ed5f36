"""End to end over real HTTP, RabbitMQ and each database: a partner POSTs every sample format
to ``mash-broker run``'s API, and the disclosures arrive in the queues the agreement says."""

from __future__ import annotations

import socket
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import aio_pika
import httpx
import pytest
from sqlalchemy import func, select

from adapters import AdapterContext, get_adapter
from broker.db import session_scope
from broker.models import MashAlert
from broker.outbox import outbox_backlog
from broker.policy import evaluate
from broker.runtime import Runtime
from broker.samples import render_all
from broker.samples.catalogue import adapter_for, sender_for
from broker.service import Service
from tests.api.conftest import make_settings
from tests.api.forge import Forger
from tests.integration.helpers import eventually

pytestmark = [pytest.mark.rabbitmq]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def live_service(db_url: str, amqp_url: str, api_keys: Path) -> Iterator[Service]:
    port = _free_port()
    settings = make_settings(db_url, api_keys, amqp_url)
    settings = settings.model_copy(
        update={
            "api": settings.api.model_copy(
                update={"port": port, "public_base_url": f"http://127.0.0.1:{port}"}
            )
        }
    )
    service = Service.load(settings)
    try:
        yield service
    finally:
        service.engine.dispose()


async def _depth(service: Service, queue: str) -> int:
    connection = await aio_pika.connect(service.settings.amqp.url.get_secret_value())
    async with connection:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, passive=True)
        return int(declared.declaration_result.message_count or 0)


def _mash_alerts(service: Service) -> int:
    with session_scope(service.sessions) as session:
        return int(session.execute(select(func.count()).select_from(MashAlert)).scalar_one())


async def test_every_sample_format_over_http_reaches_the_agreed_queues(
    live_service: Service, api_keys: Path
) -> None:
    service = live_service
    base = service.settings.api.public_base_url
    forger = Forger(api_keys, base)
    expected: Counter[str] = Counter()
    mash_events: set[str] = set()
    now = datetime.now(UTC)
    async with Runtime(service), httpx.AsyncClient(base_url=base, timeout=30) as http:
        ready = await http.get("/readyz")
        assert ready.json() == {"status": "ready", "database": "ok", "rabbitmq": "ok", "keys": "ok"}
        for name, raw in sorted(render_all(1).items()):
            adapter = adapter_for(name)
            sender = sender_for(adapter)
            path = f"/v1/ingest/{adapter}"
            answer = await http.post(
                path,
                content=raw,
                headers={"Authorization": f"Bearer {forger.partner(sender, path)}"},
            )
            assert answer.status_code == 202, (name, answer.text)
            for event in get_adapter(adapter).parse(raw, AdapterContext(sender, now=now)):
                assert str(event.metadata.event_id) in answer.json()["event_ids"]
                for disclosure in evaluate(service.policy, event, now).disclosures:
                    expected[disclosure.recipient] += 1
                    if disclosure.recipient == "wam-mash":
                        mash_events.add(str(event.metadata.event_id))
        # The MASH intake consumes its queue: one alert per event, however many rules matched.
        del expected["wam-mash"]
        mash = len(mash_events)
        assert mash > 0
        assert expected, "the samples reach partners besides the MASH"
        await eventually(lambda: outbox_backlog(service) == 0 and _mash_alerts(service) == mash)
        for party, count in expected.items():
            assert await _depth(service, service.topology.recipient_queues[party]) == count, party
        metrics_token = service.settings.api.metrics_token
        assert metrics_token is None  # the scrape below is refused: no credentials
        assert (await http.get("/metrics")).status_code == 401
