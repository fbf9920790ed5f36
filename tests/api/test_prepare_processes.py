"""``api.prepare_processes``: messages translated, decided and sealed in other processes.

The prepared message (sealed disclosures, audit records, the raw row, or the adapter's
located problems) comes back pickled and is stored by the API process as before.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from broker.api import create_app
from broker.models import OutboxMessage
from broker.samples import render_all
from broker.service import Service
from tests.api.conftest import BASE_URL, AssertionMaker, make_settings
from tests.api.test_ingest import POLICE, _auth, _count, _police_sample


def _police_samples(count: int) -> list[bytes]:
    samples = render_all(1)
    return [samples[n] for n in sorted(samples) if n.startswith("police/")][:count]


@pytest.fixture
async def pooled(tmp_path: Path, api_keys: Path) -> AsyncIterator[tuple[FastAPI, Service]]:
    settings = make_settings(
        f"sqlite:///{tmp_path / 'api.db'}",
        api_keys,
        "amqp://guest:guest@127.0.0.1:1/",
        prepare_processes=1,
    )
    service = Service.load(settings)
    app = create_app(service)
    try:
        yield app, service
    finally:
        await app.state.api.aclose()  # the lifespan's end: the pool is shut down
        service.engine.dispose()


async def test_a_message_prepared_in_another_process_is_stored_and_answered(
    pooled: tuple[FastAPI, Service], assertion: AssertionMaker
) -> None:
    app, service = pooled
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url=BASE_URL, timeout=60
    ) as client:
        good = await client.post(POLICE, content=_police_sample(), headers=_auth(assertion()))
        assert good.status_code == 202, good.text
        assert good.json()["event_ids"]
        assert _count(service, OutboxMessage) > 0
        # The adapter's error crosses the process boundary with its located problems.
        bad = await client.post(POLICE, content=b'{"record_id": 5}', headers=_auth(assertion()))
        assert bad.status_code == 422, bad.text
        assert bad.json()["problems"]
    pool = app.state.api._prepare_processes
    assert pool is not None  # the work really went to the pool


async def test_a_dead_prepare_process_fails_no_request(
    pooled: tuple[FastAPI, Service], assertion: AssertionMaker
) -> None:
    """Its pool is broken for good: the request in flight is prepared in the API's own
    threads, and the next one gets a new pool."""
    app, _ = pooled
    context = app.state.api
    await context.start()
    first = context._prepare_processes
    loop = asyncio.get_running_loop()
    os.kill(await loop.run_in_executor(first, os.getpid), signal.SIGKILL)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url=BASE_URL, timeout=60
    ) as client:
        answers = [
            await client.post(POLICE, content=raw, headers=_auth(assertion()))
            for raw in _police_samples(2)
        ]
    assert [a.status_code for a in answers] == [202, 202], [a.text for a in answers]
    assert context._prepare_processes is not None
    assert context._prepare_processes is not first
