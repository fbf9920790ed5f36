"""``POST /v1/ingest/{adapter}``: formats, problems, size limits, idempotency, rate limits."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, insert, select

from adapters import AdapterContext, get_adapter
from broker.api import create_app
from broker.api.idempotency import AnswerHook, request_digest
from broker.api.tables import IdempotencyRecord
from broker.db import session_scope
from broker.exceptions import TransportError
from broker.models import AuditEntry, OutboxMessage, RawMessage
from broker.samples import render_all
from broker.samples.catalogue import adapter_for, sender_for
from broker.service import Service
from tests.api.conftest import BASE_URL, AssertionMaker, make_settings

POLICE = "/v1/ingest/police"


def _count(service: Service, table: type) -> int:
    with session_scope(service.sessions) as session:
        return int(session.execute(select(func.count()).select_from(table)).scalar_one())


def _police_sample() -> bytes:
    samples = render_all(1)
    name = next(n for n in sorted(samples) if n.startswith("police/") and "reported" in n)
    return samples[name]


def _auth(token: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **extra}


async def test_each_sample_format_is_accepted_with_its_event_ids(
    client: httpx.AsyncClient, assertion: AssertionMaker, api_service: Service
) -> None:
    seen_adapters = set()
    for name, raw in sorted(render_all(1).items()):
        adapter = adapter_for(name)
        sender = sender_for(adapter)
        path = f"/v1/ingest/{adapter}"
        answer = await client.post(path, content=raw, headers=_auth(assertion(sender, path)))
        assert answer.status_code == 202, (name, answer.text)
        expected = [
            str(e.metadata.event_id)
            for e in get_adapter(adapter).parse(raw, AdapterContext(sender, now=datetime.now(UTC)))
        ]
        assert answer.json() == {"status": "accepted", "event_ids": expected, "duplicate": False}
        seen_adapters.add(adapter)
    assert seen_adapters == {"police", "hl7v2", "fhir", "paris-csv", "paris-xml"}
    assert _count(api_service, OutboxMessage) > 0


async def test_the_same_bytes_again_are_a_duplicate_with_no_second_effect(
    client: httpx.AsyncClient, assertion: AssertionMaker, api_service: Service
) -> None:
    raw = _police_sample()
    first = await client.post(POLICE, content=raw, headers=_auth(assertion()))
    rows = _count(api_service, OutboxMessage)
    again = await client.post(POLICE, content=raw, headers=_auth(assertion()))
    assert first.status_code == again.status_code == 202
    assert again.json() == {"status": "accepted", "event_ids": [], "duplicate": True}
    assert _count(api_service, OutboxMessage) == rows


async def test_bad_input_gets_located_problems_without_its_values(
    client: httpx.AsyncClient, assertion: AssertionMaker
) -> None:
    record = json.loads(_police_sample())
    record["missing_person"]["date_of_birth"] = "Zebedee Quixotic-Marchbanks"
    raw = json.dumps(record).encode()
    answer = await client.post(POLICE, content=raw, headers=_auth(assertion()))
    assert answer.status_code == 422
    body = answer.json()
    assert body["error"] == "adapter_error"
    assert body["problems"]
    assert all(p["location"] and p["reason"] for p in body["problems"])
    assert any("date_of_birth" in p["location"] for p in body["problems"])
    assert "Zebedee" not in answer.text
    assert body["request_id"] == answer.headers["x-request-id"]


async def test_over_the_limit_by_content_length_is_refused_unread(
    client: httpx.AsyncClient, assertion: AssertionMaker, api_service: Service
) -> None:
    limit = get_adapter("police").max_bytes
    answer = await client.post(POLICE, content=b"x" * (limit + 1), headers=_auth(assertion()))
    assert answer.status_code == 413
    assert answer.json()["error"] == "too_large"
    assert _count(api_service, RawMessage) == 0


async def test_over_the_limit_without_content_length_is_refused_while_streaming(
    client: httpx.AsyncClient, assertion: AssertionMaker, api_service: Service
) -> None:
    limit = get_adapter("police").max_bytes
    sent = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal sent
        for _ in range(limit // 8192 + 10):
            sent += 8192
            yield b"x" * 8192

    answer = await client.post(POLICE, content=chunks(), headers=_auth(assertion()))
    assert answer.status_code == 413
    assert "content-length" not in answer.request.headers
    assert _count(api_service, RawMessage) == 0


async def test_refused_partner_is_not_read_at_all(
    client: httpx.AsyncClient, assertion: AssertionMaker, api_service: Service
) -> None:
    """Authentication and the adapter check come before the body: 403, nothing stored."""
    path = "/v1/ingest/paris-csv"
    answer = await client.post(
        path, content=b"x" * 10_000_000, headers=_auth(assertion("tvp-police", path))
    )
    assert answer.status_code in {403, 413}
    assert _count(api_service, RawMessage) == 0


async def test_idempotency_key_replays_the_first_answer(
    client: httpx.AsyncClient, assertion: AssertionMaker, api_service: Service
) -> None:
    raw = _police_sample()
    headers = {"Idempotency-Key": "8b0c3c9e-1f7a-4c59-9a3e-2d4b9e2f3a10"}
    first = await client.post(POLICE, content=raw, headers=_auth(assertion(), **headers))
    raws, audit = _count(api_service, RawMessage), _count(api_service, AuditEntry)
    retry = await client.post(POLICE, content=raw, headers=_auth(assertion(), **headers))
    assert first.status_code == retry.status_code == 202
    assert retry.json() == first.json()
    assert first.json()["event_ids"]
    assert retry.headers["idempotent-replayed"] == "true"
    assert (_count(api_service, RawMessage), _count(api_service, AuditEntry)) == (raws, audit)


async def test_idempotency_key_replays_a_rejection_too(
    client: httpx.AsyncClient, assertion: AssertionMaker
) -> None:
    headers = {"Idempotency-Key": "bad-message-1"}
    first = await client.post(POLICE, content=b"{}", headers=_auth(assertion(), **headers))
    retry = await client.post(POLICE, content=b"{}", headers=_auth(assertion(), **headers))
    assert first.status_code == retry.status_code == 422
    assert retry.json()["problems"] == first.json()["problems"]
    assert retry.json()["request_id"] == retry.headers["x-request-id"]


async def test_idempotency_key_with_another_body_is_refused(
    client: httpx.AsyncClient, assertion: AssertionMaker
) -> None:
    headers = {"Idempotency-Key": "k-1"}
    await client.post(POLICE, content=_police_sample(), headers=_auth(assertion(), **headers))
    other = await client.post(POLICE, content=b"{}", headers=_auth(assertion(), **headers))
    assert other.status_code == 422
    assert other.json()["error"] == "idempotency_key_reused"


async def test_idempotency_key_keys_are_per_party(
    client: httpx.AsyncClient, assertion: AssertionMaker
) -> None:
    """Another partner using the same key string gets its own answer."""
    headers = {"Idempotency-Key": "shared-key"}
    police = await client.post(POLICE, content=b"{}", headers=_auth(assertion(), **headers))
    path = "/v1/ingest/fhir"
    health = await client.post(
        path, content=b"[]", headers=_auth(assertion("fhft-hospital", path), **headers)
    )
    assert police.status_code == health.status_code == 422
    assert "Idempotent-Replayed" not in health.headers


async def test_idempotency_key_in_progress_is_a_conflict(
    client: httpx.AsyncClient, assertion: AssertionMaker, app
) -> None:
    raw = _police_sample()
    store = app.state.api.idempotency
    assert store.begin("tvp-police", "busy")  # its first request is in flight here
    answer = await client.post(
        POLICE, content=raw, headers=_auth(assertion(), **{"Idempotency-Key": "busy"})
    )
    assert answer.status_code == 409
    assert answer.json()["error"] == "idempotency_key_in_use"
    store.end("tvp-police", "busy")
    done = await client.post(
        POLICE, content=raw, headers=_auth(assertion(), **{"Idempotency-Key": "busy"})
    )
    assert done.status_code == 202


@pytest.mark.parametrize("same_request", [True, False], ids=["same", "other"])
async def test_a_key_answered_elsewhere_is_found_where_the_message_is_stored(
    client: httpx.AsyncClient, assertion: AssertionMaker, app, same_request: bool
) -> None:
    """A key answered by a request of another process (its row written behind this one's
    back): the message is prepared, found answered in the store's transaction, stores
    nothing, and is given that answer (or, for another request, told the key was used)."""
    raw = _police_sample()
    digest = request_digest("police", raw if same_request else b"another body")
    answered = '{"status":"accepted","event_ids":[],"duplicate":false}'
    api_service: Service = app.state.api.service
    with api_service.engine.begin() as connection:
        connection.execute(
            insert(IdempotencyRecord),
            {
                "party": "tvp-police",
                "key": "answered-elsewhere",
                "request_sha256": digest,
                "status_code": 202,
                "body": answered,
                "created_at": datetime.now(UTC),
                "expires_at": datetime.now(UTC) + timedelta(hours=1),
            },
        )
    raws, audit = _count(api_service, RawMessage), _count(api_service, AuditEntry)
    headers = {"Idempotency-Key": "answered-elsewhere"}
    answer = await client.post(POLICE, content=raw, headers=_auth(assertion(), **headers))
    assert (_count(api_service, RawMessage), _count(api_service, AuditEntry)) == (raws, audit)
    if same_request:
        assert answer.status_code == 202
        assert answer.json() == json.loads(answered)
        assert answer.headers["idempotent-replayed"] == "true"
    else:
        assert answer.status_code == 422
        assert answer.json()["error"] == "idempotency_key_reused"


async def test_the_answer_is_committed_with_the_effect_or_not_at_all(
    client: httpx.AsyncClient,
    assertion: AssertionMaker,
    api_service: Service,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The answer is written in the store's transaction: when that transaction fails after
    writing it, neither the answer nor the effect is left, and the retry is processed."""
    real_after = AnswerHook.after

    def after_then_fail(hook: AnswerHook, connection: Any, result: Any) -> None:
        real_after(hook, connection, result)
        raise TransportError("database unavailable (OperationalError)")

    monkeypatch.setattr(AnswerHook, "after", after_then_fail)
    raw = _police_sample()
    headers = {"Idempotency-Key": "all-or-nothing"}
    failed = await client.post(POLICE, content=raw, headers=_auth(assertion(), **headers))
    assert failed.status_code == 503
    assert _count(api_service, RawMessage) == 0
    assert _count(api_service, IdempotencyRecord) == 0
    monkeypatch.setattr(AnswerHook, "after", real_after)
    first = await client.post(POLICE, content=raw, headers=_auth(assertion(), **headers))
    again = await client.post(POLICE, content=raw, headers=_auth(assertion(), **headers))
    assert first.status_code == again.status_code == 202
    assert again.json() == first.json()
    assert _count(api_service, IdempotencyRecord) == 1


async def test_idempotency_claim_is_released_when_the_database_fails(
    client: httpx.AsyncClient, assertion: AssertionMaker, app, monkeypatch
) -> None:
    ingestor = app.state.api.ingestor
    real = ingestor.store_prepared

    def unavailable(*args: object, **kwargs: object) -> None:
        raise TransportError("database unavailable (OperationalError)")

    monkeypatch.setattr(ingestor, "store_prepared", unavailable)
    headers = {"Idempotency-Key": "retry-me"}
    raw = _police_sample()
    failed = await client.post(POLICE, content=raw, headers=_auth(assertion(), **headers))
    assert failed.status_code == 503
    assert failed.headers["retry-after"]
    assert "OperationalError" not in failed.text
    monkeypatch.setattr(ingestor, "store_prepared", real)
    retried = await client.post(POLICE, content=raw, headers=_auth(assertion(), **headers))
    assert retried.status_code == 202
    assert retried.json()["event_ids"]


async def test_bad_idempotency_key_is_a_request_error(
    client: httpx.AsyncClient, assertion: AssertionMaker
) -> None:
    answer = await client.post(
        POLICE, content=b"{}", headers=_auth(assertion(), **{"Idempotency-Key": "two words"})
    )
    assert answer.status_code == 422
    assert answer.json()["problems"][0]["location"] == "header.Idempotency-Key"


async def test_rate_limit_per_partner(
    api_service: Service, accounts, assertion: AssertionMaker, tmp_path, api_keys
) -> None:
    settings = make_settings(
        api_service.settings.database.url.get_secret_value(),
        api_keys,
        "amqp://guest:guest@127.0.0.1:1/",
        rate_per_second=0.01,
        rate_burst=2,
    )
    service = Service.load(settings)
    try:
        app = create_app(service, accounts=accounts)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url=BASE_URL
        ) as http:
            codes = [
                (await http.post(POLICE, content=b"{}", headers=_auth(assertion()))).status_code
                for _ in range(3)
            ]
            path = "/v1/ingest/hl7v2"
            other = await http.post(
                path, content=b"", headers=_auth(assertion("fhft-hospital", path))
            )
            limited = await http.post(POLICE, content=b"{}", headers=_auth(assertion()))
    finally:
        service.engine.dispose()
    assert codes == [422, 422, 429]
    assert other.status_code == 422  # another partner has its own bucket
    assert int(limited.headers["retry-after"]) >= 1
    assert limited.json()["error"] == "rate_limited"


async def test_concurrent_requests_with_one_key_have_one_effect(
    client: httpx.AsyncClient, assertion: AssertionMaker, api_service: Service
) -> None:
    raw = _police_sample()
    headers: Callable[[], dict[str, str]] = lambda: _auth(  # noqa: E731
        assertion(), **{"Idempotency-Key": "race"}
    )
    answers = await asyncio.gather(
        *(client.post(POLICE, content=raw, headers=headers()) for _ in range(4))
    )
    codes = sorted(a.status_code for a in answers)
    assert set(codes) <= {202, 409}
    assert codes.count(202) >= 1
    assert _count(api_service, RawMessage) == 1


@pytest.mark.parametrize("adapter", ["nonexistent", "POLICE"])
async def test_unknown_adapter(
    client: httpx.AsyncClient, assertion: AssertionMaker, adapter: str
) -> None:
    path = f"/v1/ingest/{adapter}"
    answer = await client.post(path, content=b"{}", headers=_auth(assertion(path=path)))
    assert answer.status_code in {403, 422}
