"""HTTP ingest: one commit per request, shared between requests, and the assertion's id in it.

The client assertion's id is remembered in the transaction that stores the message, so a
request costs one commit, and concurrent requests share it (group commit). A reused id is
refused with nothing stored; a request that ends before the store still remembers its id.
Each test runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlmodel import col

from adapters import get_adapter
from broker.api import create_app
from broker.api.context import ApiContext, Refusal
from broker.api.ratelimit import RateLimiter
from broker.db import DbReplayStore, session_scope, write_gate
from broker.models import (
    AuditEntry,
    AuditKind,
    InboxEntry,
    OutboxMessage,
    RawMessage,
    ReplaySeen,
)
from broker.pipeline import IngestResult, PreparedMessage
from broker.samples import render_all
from broker.service import Service
from tests.api.conftest import BASE_URL, AssertionMaker, make_settings
from tests.dbfixtures import finishes_while_the_gate_is_held

POLICE = "/v1/ingest/police"
PARTY = "tvp-police"


@pytest.fixture
def service(db_url: str, api_keys: Path) -> Iterator[Service]:
    loaded = Service.load(make_settings(db_url, api_keys, "amqp://guest:guest@127.0.0.1:1/"))
    try:
        yield loaded
    finally:
        loaded.engine.dispose()


@pytest.fixture
def handed() -> list[list[str]]:
    """The jtis of the outbox rows each ``on_stored`` call handed over."""
    return []


@pytest.fixture
def app(service: Service, handed: list[list[str]]) -> FastAPI:
    return create_app(
        service, on_stored=lambda rows: handed.append([str(row["jti"]) for row in rows])
    )


@pytest.fixture
def context(app: FastAPI) -> ApiContext:
    api: ApiContext = app.state.api
    return api


@pytest.fixture
async def http(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url=BASE_URL
    ) as client:
        yield client


def _police(n: int) -> bytes:
    """Police message number ``n``: distinct bytes, so never a duplicate of another."""
    samples = render_all(1)
    name = next(k for k in sorted(samples) if k.startswith("police/") and "reported" in k)
    record = json.loads(samples[name])
    record["report"]["circumstances"] = f"Test record {n}."
    return json.dumps(record).encode()


def _an_hour() -> datetime:
    return datetime.now(UTC) + timedelta(hours=1)


def _auth(token: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **extra}


def _count(service: Service, table: type) -> int:
    with session_scope(service.sessions) as session:
        return int(session.execute(select(func.count()).select_from(table)).scalar_one())


def _stored(service: Service) -> dict[str, int]:
    """How many rows of everything a message causes."""
    return {
        table.__name__: _count(service, table)
        for table in (RawMessage, InboxEntry, OutboxMessage, AuditEntry)
    }


def _rejections(service: Service) -> list[AuditEntry]:
    with session_scope(service.sessions) as session:
        return list(
            session.execute(
                select(AuditEntry)
                .where(col(AuditEntry.kind) == AuditKind.REJECTED)
                .order_by(col(AuditEntry.seq))
            ).scalars()
        )


def _replay_id(party: str, token: str) -> str:
    """The id a client assertion is remembered under (``ClientAssertionVerifier.check``)."""
    jti = jwt.decode(token, options={"verify_signature": False})["jti"]
    return "ca:" + hashlib.sha256(f"{party}\x00{jti}".encode()).hexdigest()


def _remembered(service: Service, replay_id: str) -> bool:
    with session_scope(service.sessions) as session:
        found = session.execute(
            select(col(ReplaySeen.jti)).where(col(ReplaySeen.jti) == replay_id)
        ).first()
    return found is not None


class _Commits:
    """Counts the transactions committed on an engine while it is active."""

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine
        self.count = 0

    def _on_commit(self, _connection: Any) -> None:
        self.count += 1

    def __enter__(self) -> _Commits:
        sa.event.listen(self._engine, "commit", self._on_commit)
        return self

    def __exit__(self, *exc_info: object) -> None:
        sa.event.remove(self._engine, "commit", self._on_commit)


# --------------------------------------------------------------------------- one commit


def _outbox_jtis(service: Service) -> list[str]:
    with session_scope(service.sessions) as session:
        found = session.execute(select(col(OutboxMessage.jti)).order_by(col(OutboxMessage.id)))
        return [str(jti) for jti in found.scalars()]


async def test_an_accepted_request_commits_once(
    http: httpx.AsyncClient,
    service: Service,
    assertion: AssertionMaker,
    handed: list[list[str]],
) -> None:
    token = assertion()
    with _Commits(service.engine) as commits:
        answer = await http.post(POLICE, content=_police(1), headers=_auth(token))
    assert answer.status_code == 202, answer.text
    assert answer.json()["event_ids"]
    assert commits.count == 1
    # That one commit remembered the assertion's id and stored the message.
    assert _remembered(service, _replay_id(PARTY, token))
    assert _count(service, RawMessage) == 1
    assert _count(service, OutboxMessage) > 0
    # The relay hook was handed exactly the rows committed, once.
    assert handed == [_outbox_jtis(service)]


async def test_a_duplicate_hands_the_relay_nothing(
    http: httpx.AsyncClient, assertion: AssertionMaker, handed: list[list[str]]
) -> None:
    first = await http.post(POLICE, content=_police(1), headers=_auth(assertion()))
    again = await http.post(POLICE, content=_police(1), headers=_auth(assertion()))
    assert first.status_code == again.status_code == 202, again.text
    assert again.json()["duplicate"] is True
    assert len(handed) == 1  # the second request stored nothing, and handed nothing


async def test_a_rejected_message_commits_once_and_remembers_its_assertion(
    http: httpx.AsyncClient, service: Service, assertion: AssertionMaker
) -> None:
    token = assertion()
    with _Commits(service.engine) as commits:
        answer = await http.post(POLICE, content=b'{"record_type": "x"}', headers=_auth(token))
    assert answer.status_code == 422
    assert answer.json()["error"] == "adapter_error"
    assert commits.count == 1
    assert _remembered(service, _replay_id(PARTY, token))
    assert _count(service, RawMessage) == 1  # rejected messages are kept too


async def test_requests_submitted_together_share_one_commit(
    context: ApiContext, service: Service
) -> None:
    items: list[PreparedMessage] = [
        context.ingestor.prepare(
            "police", _police(n), PARTY, replay_token=(f"ca:test-{n}", _an_hour())
        )
        for n in range(6)
    ]
    with _Commits(service.engine) as commits:
        results = await asyncio.gather(*(context.ingest_batcher.submit(i) for i in items))
    assert commits.count == 1
    assert all(r.event_ids and not (r.replayed or r.duplicate) for r in results)
    assert _count(service, RawMessage) == 6
    assert all(_remembered(service, f"ca:test-{n}") for n in range(6))


async def test_the_store_runs_on_the_event_loop_only_while_sqlites_gate_is_free(
    http: httpx.AsyncClient, service: Service, assertion: AssertionMaker
) -> None:
    committed_by: list[threading.Thread] = []

    def on_commit(_connection: Any) -> None:
        committed_by.append(threading.current_thread())

    loop_thread = threading.current_thread()
    sa.event.listen(service.engine, "commit", on_commit)
    try:
        answer = await http.post(POLICE, content=_police(1), headers=_auth(assertion()))
        assert answer.status_code == 202, answer.text
        sqlite = service.engine.dialect.name == "sqlite"
        assert (committed_by[-1] is loop_thread) == sqlite
        if not sqlite:
            return
        # Another writer holds the gate: the batch waits for it in the batcher's thread,
        # and the API goes on answering meanwhile.
        taken, go_on = threading.Event(), threading.Event()

        def other_writer() -> None:
            with write_gate(service.engine) as gate:
                gate.enter()
                taken.set()
                go_on.wait(10)

        writer = threading.Thread(target=other_writer)
        writer.start()
        assert taken.wait(5)
        try:
            ingest = asyncio.create_task(
                http.post(POLICE, content=_police(2), headers=_auth(assertion()))
            )
            await asyncio.sleep(0.2)
            health = await asyncio.wait_for(http.get("/healthz"), 5)
            assert health.status_code == 200
            assert not ingest.done()
        finally:
            go_on.set()
        answer = await asyncio.wait_for(ingest, 10)
        writer.join(5)
        assert answer.status_code == 202, answer.text
        assert committed_by[-1] is not loop_thread
    finally:
        sa.event.remove(service.engine, "commit", on_commit)


def test_the_apis_own_short_writes_queue_at_the_write_gate(
    context: ApiContext, service: Service
) -> None:
    """A refusal's audit entry and an assertion id remembered on its own take the gate, so
    the store batch, which runs on the event loop only while the gate is free, never meets
    them at SQLite's busy handler there."""
    refusal = Refusal(reason="expired", endpoint="ingest", request_id="be1cc429-3615d6ac-0d0ef8cf")
    writers = [
        lambda: context.audit_refusal(refusal),
        lambda: DbReplayStore(service.engine).check_and_remember("ca:gated-1", _an_hour()),
    ]
    while_held = [finishes_while_the_gate_is_held(service.engine, w) for w in writers]
    assert while_held == [service.engine.dialect.name != "sqlite"] * 2
    with service.engine.connect() as connection:
        reasons = connection.execute(sa.text("SELECT reason FROM audit_entry")).scalars().all()
        remembered = connection.execute(sa.text("SELECT jti FROM replay_seen")).scalars().all()
    assert "auth.expired" in reasons
    assert "ca:gated-1" in remembered


# --------------------------------------------------------------------------- replays


async def test_a_reused_assertion_is_refused_audited_and_stores_nothing(
    http: httpx.AsyncClient, service: Service, assertion: AssertionMaker
) -> None:
    token = assertion()
    first = await http.post(POLICE, content=_police(1), headers=_auth(token))
    assert first.status_code == 202
    before = _stored(service)

    again = await http.post(POLICE, content=_police(2), headers=_auth(token))

    assert again.status_code == 401
    assert again.json()["error"] == "unauthenticated"
    entry = _rejections(service)[-1]
    assert entry.reason == "auth.replay"
    assert entry.party is None
    assert f"request_id={again.headers['x-request-id']}" in (entry.detail or "")
    # Nothing of the second message: the only new row is the refusal's audit entry.
    assert _stored(service) == {**before, "AuditEntry": before["AuditEntry"] + 1}


async def test_a_reuse_this_process_saw_is_refused_before_any_work(
    http: httpx.AsyncClient,
    context: ApiContext,
    assertion: AssertionMaker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    token = assertion()
    assert (await http.post(POLICE, content=_police(1), headers=_auth(token))).status_code == 202
    prepared: list[object] = []
    monkeypatch.setattr(context.ingestor, "prepare", lambda *a, **k: prepared.append(a))

    again = await http.post(POLICE, content=_police(2), headers=_auth(token))

    assert again.status_code == 401
    assert prepared == []  # not parsed, decided or sealed


async def test_a_reuse_through_another_api_process_is_refused_by_the_store(
    http: httpx.AsyncClient, service: Service, assertion: AssertionMaker
) -> None:
    """Each process refuses the ids it saw early; remembering in the transaction decides."""
    token = assertion()
    assert (await http.post(POLICE, content=_police(1), headers=_auth(token))).status_code == 202
    before = _stored(service)
    other = create_app(service)  # a second API process over the same database

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=other), base_url=BASE_URL
    ) as elsewhere:
        again = await elsewhere.post(POLICE, content=_police(2), headers=_auth(token))

    assert again.status_code == 401
    assert _rejections(service)[-1].reason == "auth.replay"
    assert _stored(service) == {**before, "AuditEntry": before["AuditEntry"] + 1}


async def test_one_assertion_sent_twice_at_once_is_accepted_once(
    http: httpx.AsyncClient, service: Service, assertion: AssertionMaker
) -> None:
    token = assertion()
    answers = await asyncio.gather(
        http.post(POLICE, content=_police(1), headers=_auth(token)),
        http.post(POLICE, content=_police(2), headers=_auth(token)),
    )
    assert sorted(a.status_code for a in answers) == [202, 401]
    assert _count(service, RawMessage) == 1
    assert [e.reason for e in _rejections(service)] == ["auth.replay"]


async def test_a_batch_stores_a_token_once_and_nothing_of_its_copies(
    context: ApiContext, service: Service
) -> None:
    until = _an_hour()
    items = [
        context.ingestor.prepare("police", _police(n), PARTY, replay_token=(token, until))
        for n, token in enumerate(["ca:same", "ca:same", "ca:other"])
    ]
    results: list[IngestResult] = await asyncio.gather(
        *(context.ingest_batcher.submit(i) for i in items)
    )
    assert [r.replayed for r in results] == [False, True, False]
    assert results[1].raw_id is None
    assert _count(service, RawMessage) == 2
    assert _count(service, InboxEntry) == 2
    # One received entry per event, for the two stored messages only.
    events = len(results[0].event_ids) + len(results[2].event_ids)
    with session_scope(service.sessions) as session:
        received = session.execute(
            select(func.count())
            .select_from(AuditEntry)
            .where(col(AuditEntry.kind) == AuditKind.RECEIVED)
        ).scalar_one()
    assert received == events
    # Sent again later, a remembered token is still a replay; a duplicate's token is kept.
    later = context.ingestor.prepare("police", _police(0), PARTY, replay_token=("ca:new", until))
    replayed = context.ingestor.prepare(
        "police", _police(9), PARTY, replay_token=("ca:same", until)
    )
    again = context.ingestor.store_prepared([later, replayed])
    assert again[0].duplicate
    assert again[1].replayed
    assert _remembered(service, "ca:new")
    assert _count(service, RawMessage) == 2


async def test_a_failed_batch_stored_one_by_one_still_remembers_every_token(
    context: ApiContext, service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A dedup race with another process splits the batch; each token is remembered once."""
    ingestor = context.ingestor
    until = _an_hour()
    ingestor.store_prepared([ingestor.prepare("police", _police(1), PARTY)])
    real = type(ingestor)._seen_among
    blind = iter(range(2))  # the batch and the first try alone miss the other's commit

    def seen_among(session: Any, items: Any) -> set[tuple[str, str]]:
        if next(blind, None) is not None:
            return set()
        return real(session, items)

    monkeypatch.setattr(type(ingestor), "_seen_among", staticmethod(seen_among))
    items = [
        ingestor.prepare("police", _police(1), PARTY, replay_token=("ca:dup", until)),
        ingestor.prepare("police", _police(2), PARTY, replay_token=("ca:new", until)),
    ]
    outcomes = ingestor.store_isolated(items)
    assert isinstance(outcomes[0], IngestResult)
    assert outcomes[0].duplicate
    assert isinstance(outcomes[1], IngestResult)
    assert outcomes[1].event_ids
    assert _remembered(service, "ca:dup")
    assert _remembered(service, "ca:new")
    assert _count(service, RawMessage) == 2


# --------------------------------------------------------------------------- early answers

#: The answer, the assertion it carried, and the path it went to.
Sent = tuple[httpx.Response, str, str]


async def _forbidden(http: httpx.AsyncClient, make: AssertionMaker, _: ApiContext) -> Sent:
    token = make("fhft-hospital", POLICE)
    return (await http.post(POLICE, content=_police(1), headers=_auth(token)), token, POLICE)


async def _unknown_adapter(http: httpx.AsyncClient, make: AssertionMaker, _: ApiContext) -> Sent:
    path = "/v1/ingest/nonexistent"
    token = make(PARTY, path)
    return (await http.post(path, content=b"{}", headers=_auth(token)), token, path)


async def _too_large(http: httpx.AsyncClient, make: AssertionMaker, _: ApiContext) -> Sent:
    """Without a Content-Length: refused while the route reads it (with one, before)."""
    token = make()
    chunk = b"x" * 8192

    async def body() -> AsyncIterator[bytes]:
        for _ in range(get_adapter("police").max_bytes // len(chunk) + 2):
            yield chunk

    return (await http.post(POLICE, content=body(), headers=_auth(token)), token, POLICE)


async def _bad_key(http: httpx.AsyncClient, make: AssertionMaker, _: ApiContext) -> Sent:
    token = make()
    headers = _auth(token, **{"Idempotency-Key": "two words"})
    return (await http.post(POLICE, content=_police(1), headers=headers), token, POLICE)


async def _rate_limited(http: httpx.AsyncClient, make: AssertionMaker, ctx: ApiContext) -> Sent:
    ctx.limiter = RateLimiter(0.001, 0)
    token = make()
    return (await http.post(POLICE, content=_police(1), headers=_auth(token)), token, POLICE)


async def _idempotent_replay(http: httpx.AsyncClient, make: AssertionMaker, _: ApiContext) -> Sent:
    key = {"Idempotency-Key": "once"}
    first = await http.post(POLICE, content=_police(1), headers=_auth(make(), **key))
    assert first.status_code == 202
    token = make()
    answer = await http.post(POLICE, content=_police(1), headers=_auth(token, **key))
    assert answer.headers["idempotent-replayed"] == "true"
    return (answer, token, POLICE)


async def _idempotent_mismatch(
    http: httpx.AsyncClient, make: AssertionMaker, _: ApiContext
) -> Sent:
    key = {"Idempotency-Key": "once"}
    await http.post(POLICE, content=_police(1), headers=_auth(make(), **key))
    token = make()
    return (await http.post(POLICE, content=_police(2), headers=_auth(token, **key)), token, POLICE)


EARLY: dict[str, tuple[Callable[..., Awaitable[Sent]], int]] = {
    "adapter_not_allowed": (_forbidden, 403),
    "unknown_adapter": (_unknown_adapter, 422),
    "too_large": (_too_large, 413),
    "bad_idempotency_key": (_bad_key, 422),
    "rate_limited": (_rate_limited, 429),
    "idempotent_replay": (_idempotent_replay, 202),
    "idempotent_mismatch": (_idempotent_mismatch, 422),
}


@pytest.mark.parametrize("case", sorted(EARLY))
async def test_a_request_answered_before_the_store_still_remembers_its_assertion(
    http: httpx.AsyncClient,
    context: ApiContext,
    service: Service,
    assertion: AssertionMaker,
    case: str,
) -> None:
    send, status = EARLY[case]
    answer, token, path = await send(http, assertion, context)
    assert answer.status_code == status, answer.text
    # The pipeline did not store it (an idempotency case stored its first request only).
    assert _count(service, RawMessage) == (1 if case.startswith("idempotent") else 0)
    party = "fhft-hospital" if case == "adapter_not_allowed" else PARTY
    assert _remembered(service, _replay_id(party, token))

    again = await http.post(path, content=_police(3), headers=_auth(token))

    assert again.status_code == 401
    assert _rejections(service)[-1].reason == "auth.replay"


async def test_a_reused_assertion_on_an_early_answer_is_refused_as_a_replay(
    http: httpx.AsyncClient, service: Service, assertion: AssertionMaker
) -> None:
    """Replay comes first, as before: a reused token gets 401, not the adapter's 403."""
    token = assertion("fhft-hospital", POLICE)
    assert (await http.post(POLICE, content=b"{}", headers=_auth(token))).status_code == 403
    again = await http.post(POLICE, content=b"{}", headers=_auth(token))
    assert again.status_code == 401
    assert [e.reason for e in _rejections(service)] == ["auth.adapter_not_allowed", "auth.replay"]


async def test_a_request_that_fails_in_the_pipeline_remembers_its_assertion(
    app: FastAPI,
    context: ApiContext,
    service: Service,
    assertion: AssertionMaker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("fault")

    monkeypatch.setattr(context.ingestor, "store_prepared", broken)
    token = assertion()
    raising = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
        base_url=BASE_URL,
    )
    async with raising:
        answer = await raising.post(POLICE, content=_police(1), headers=_auth(token))
    assert answer.status_code == 500
    assert _count(service, RawMessage) == 0
    assert _remembered(service, _replay_id(PARTY, token))
