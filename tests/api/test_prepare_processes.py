"""``api.prepare_processes``: messages translated, decided and sealed in other processes.

The prepared message (sealed disclosures, audit records, the raw row, or the adapter's
located problems) comes back pickled and is stored by the API process as before.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from broker.api import create_app
from broker.exceptions import SecurityError
from broker.models import OutboxMessage
from broker.preparers import PrepareProcessDied, PrepareProcesses
from broker.samples import render_all
from broker.service import Service
from schemas.events import MissingReported, RiskGrade
from tests.api import prepare_targets
from tests.api.conftest import BASE_URL, AssertionMaker, make_settings
from tests.api.test_ingest import POLICE, _auth, _count, _police_sample
from tests.broker.intake.conftest import seal_for_mash
from tests.broker.intake.factories import child as make_child
from tests.broker.intake.factories import event as make_event


def _police_samples(count: int) -> list[bytes]:
    samples = render_all(1)
    return [samples[n] for n in sorted(samples) if n.startswith("police/")][:count]


async def _replaced(processes: PrepareProcesses, old: int) -> int:
    """The pid of the process started in place of ``old``, once it has loaded."""
    for _ in range(600):
        ready = [p for p in processes._processes if p.alive and p.ready.done()]
        if ready and processes.pids != [old]:
            break
        await asyncio.sleep(0.1)
    (new,) = processes.pids
    assert new != old
    return new


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
    await app.state.api.start()  # as the lifespan does: the process has loaded
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
    # The work really went to the process: both messages were answered from there.
    assert app.state.api._prepare_processes.answered == 2


async def test_a_dead_prepare_process_fails_no_request(
    pooled: tuple[FastAPI, Service], assertion: AssertionMaker
) -> None:
    """Requests while no process is ready are prepared in the API's own threads, and a
    new process is started in its place."""
    app, _ = pooled
    context = app.state.api
    await context.start()
    processes = context._prepare_processes
    (first,) = processes.pids
    os.kill(first, signal.SIGKILL)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url=BASE_URL, timeout=60
    ) as client:
        answers = [
            await client.post(POLICE, content=raw, headers=_auth(assertion()))
            for raw in _police_samples(2)
        ]
    assert [a.status_code for a in answers] == [202, 202], [a.text for a in answers]
    # A replacement loads and takes the work again.
    await _replaced(processes, first)
    answered = processes.answered
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url=BASE_URL, timeout=60
    ) as client:
        again = await client.post(POLICE, content=_police_samples(3)[2], headers=_auth(assertion()))
    assert again.status_code == 202, again.text
    assert processes.answered == answered + 1


async def test_what_preparing_raises_crosses_with_its_type(
    pooled: tuple[FastAPI, Service],
) -> None:
    _, service = pooled
    async with PrepareProcesses(service.settings, 1) as processes:
        with pytest.raises(KeyError):
            await processes.prepare("no-such-adapter", b"{}", "tvp-police", None)
        # The process goes on: the next message is prepared there.
        prepared = await processes.prepare("police", _police_sample(), "tvp-police", None)
        assert prepared.result.event_ids
        assert processes.answered == 2


async def test_an_exception_that_cannot_cross_arrives_as_its_type_name(
    pooled: tuple[FastAPI, Service],
) -> None:
    _, service = pooled
    async with PrepareProcesses(
        service.settings, 1, target=prepare_targets.unpicklable
    ) as processes:
        with pytest.raises(RuntimeError, match="prepare failed: Unpicklable"):
            await processes.prepare("police", b"{}", "tvp-police", None)


async def test_a_process_that_dies_fails_only_what_it_held_and_is_replaced(
    pooled: tuple[FastAPI, Service],
) -> None:
    _, service = pooled
    async with PrepareProcesses(service.settings, 1, target=prepare_targets.silent) as processes:
        (first,) = processes.pids
        held = [
            asyncio.ensure_future(processes.prepare("police", b"{}", "tvp-police", None))
            for _ in range(3)
        ]
        await asyncio.sleep(0.2)
        assert not any(h.done() for h in held)
        os.kill(first, signal.SIGKILL)
        for h in held:
            with pytest.raises(PrepareProcessDied):
                await asyncio.wait_for(h, 30)
        # A new process is started in its place at once.
        await _replaced(processes, first)
    assert processes.pids == []


async def test_closing_ends_the_processes(pooled: tuple[FastAPI, Service]) -> None:
    _, service = pooled
    processes = PrepareProcesses(service.settings, 2)
    await processes.start()
    workers = [p.process for p in processes._processes]
    assert len(processes.pids) == 2
    await processes.aclose()
    assert all(w.exitcode is not None for w in workers)
    with pytest.raises(PrepareProcessDied):
        await processes.prepare("police", b"{}", "tvp-police", None)


async def test_a_disclosure_is_opened_in_the_process_or_refused_with_its_reason(
    pooled: tuple[FastAPI, Service],
) -> None:
    _, service = pooled
    at = datetime(2026, 11, 20, 21, 0, tzinfo=UTC)
    event = make_event(
        MissingReported(episode_id="EP-1", risk_grade=RiskGrade.HIGH, reported_at=at),
        subject=make_child(given="Ivy", family="Thornbury", born=date(2012, 5, 6), nhs=51),
        at=at,
    )
    token = seal_for_mash(service, event)
    async with PrepareProcesses(service.settings, 1) as processes:
        opened = await processes.open("wam-mash", token)
        assert opened.claims.provenance.source_event_id == event.metadata.event_id
        assert opened.jti[0] == opened.claims.jti  # remembered later, by the store
        # Sealed for the MASH: nobody else's key opens it.
        with pytest.raises(SecurityError) as refused:
            await processes.open("wam-childrens-services", token)
        assert refused.value.code
        with pytest.raises(SecurityError):
            await processes.open("wam-mash", token[:-8] + b"AAAAAAAA")


async def test_a_stuck_process_is_given_up_on_and_replaced(
    pooled: tuple[FastAPI, Service],
) -> None:
    """A process that never answers must not hold a message for ever: the caller hears
    of it in time (and does the work elsewhere), and the process is replaced."""
    _, service = pooled
    async with PrepareProcesses(
        service.settings, 1, target=prepare_targets.silent, answer_seconds=0.5
    ) as processes:
        (stuck,) = processes.pids
        with pytest.raises(PrepareProcessDied, match="did not answer in time"):
            await processes.prepare("police", b"{}", "tvp-police", None)
        await _replaced(processes, stuck)


async def test_a_stop_signal_to_the_group_leaves_the_processes_to_the_service(
    pooled: tuple[FastAPI, Service],
) -> None:
    """A Ctrl-C, or a SIGTERM to the whole process group (timeout, systemd), reaches the
    prepare processes too: they carry on until the service closes them."""
    _, service = pooled
    async with PrepareProcesses(service.settings, 1) as processes:
        (pid,) = processes.pids
        os.kill(pid, signal.SIGINT)
        os.kill(pid, signal.SIGTERM)
        await asyncio.sleep(0.5)
        prepared = await processes.prepare("police", _police_sample(), "tvp-police", None)
        assert prepared.result.event_ids
        assert processes.pids == [pid]
