"""Every authenticated endpoint x every bad credential → 401/403, and each refusal audited."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
import pytest
from sqlmodel import col, select

from broker.db import session_scope
from broker.models import AuditEntry, AuditKind
from broker.service import Service
from tests.api.forge import Forger


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    #: ``partner``: a client assertion is the credential to forge; ``staff``: a staff token.
    kind: str
    #: A subject that is authenticated but not permitted here (403), if the endpoint has one.
    forbidden_subject: str | None


ENDPOINTS = [
    Endpoint("POST", "/v1/ingest/police", "partner", "fhft-hospital"),
    Endpoint("GET", "/v1/parties/tvp-police/jwks.json", "partner", None),
    Endpoint("GET", "/v1/agreement", "partner", None),
    Endpoint("GET", "/v1/audit", "staff", "intake-user"),
    Endpoint("GET", "/v1/audit/verify", "staff", "manager-user"),
    Endpoint("GET", "/metrics", "staff", "dpo-user"),
    Endpoint("GET", "/v1/auth/me", "staff", None),
]
ATTACKS = [
    "no_token",
    "expired",
    "wrong_audience",
    "alg_none",
    "hs256_public_key",
    "unknown_kid",
    "jku_header",
    "reused_jti",
    "not_permitted",
]


def _rejections(service: Service) -> list[AuditEntry]:
    with session_scope(service.sessions) as session:
        return list(
            session.exec(
                select(AuditEntry)
                .where(col(AuditEntry.kind) == AuditKind.REJECTED)
                .order_by(col(AuditEntry.seq))
            )
        )


async def _call(client: httpx.AsyncClient, endpoint: Endpoint, token: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return await client.request(endpoint.method, endpoint.path, headers=headers, content=b"{}")


def _subject(endpoint: Endpoint) -> str:
    return "tvp-police" if endpoint.kind == "partner" else "dpo-user"


@pytest.mark.parametrize("attack", ATTACKS)
@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: f"{e.method} {e.path}")
async def test_refused_and_audited(  # noqa: PLR0917 - pytest passes fixtures by name
    client: httpx.AsyncClient,
    api_service: Service,
    api_keys,
    accounts,
    endpoint: Endpoint,
    attack: str,
) -> None:
    forger = Forger(api_keys)
    expected = 401
    if attack == "no_token":
        token = None
    elif attack == "reused_jti":
        if endpoint.kind == "staff":
            pytest.skip("staff tokens are session tokens, reusable until they expire")
        token = forger.partner("tvp-police", endpoint.path)
        first = await _call(client, endpoint, token)
        assert first.status_code in {200, 422}, first.text  # accepted the first time
    elif attack == "not_permitted":
        if endpoint.forbidden_subject is None:
            pytest.skip("every authenticated caller may use this endpoint")
        expected = 403
        if endpoint.kind == "partner":
            token = forger.partner(endpoint.forbidden_subject, endpoint.path)
        else:
            token = forger.staff(endpoint.forbidden_subject)
    else:
        token = forger.attack(endpoint.kind, attack, endpoint.path, _subject(endpoint))
    before = len(_rejections(api_service))

    answer = await _call(client, endpoint, token)

    assert answer.status_code == expected, answer.text
    body = answer.json()
    assert body["error"] == ("unauthenticated" if expected == 401 else "forbidden")
    assert body["message"] in {"authentication failed", "not allowed"}
    if expected == 401:
        assert answer.headers["www-authenticate"].startswith("Bearer")
    entries = _rejections(api_service)
    assert len(entries) == before + 1
    entry = entries[-1]
    assert entry.reason is not None
    assert entry.reason.startswith("auth.")
    assert f"request_id={answer.headers['x-request-id']}" in (entry.detail or "")
    if attack == "not_permitted" and endpoint.kind == "partner":
        assert entry.party == endpoint.forbidden_subject
        assert entry.reason == "auth.adapter_not_allowed"


async def test_reasons_name_what_was_wrong(
    client: httpx.AsyncClient, api_service: Service, api_keys
) -> None:
    """The audit's reason codes tell the attacks apart (the client is told nothing)."""
    forger = Forger(api_keys)
    path = "/v1/ingest/police"
    reasons = {}
    for attack in [
        "expired",
        "wrong_audience",
        "alg_none",
        "hs256_public_key",
        "unknown_kid",
        "jku_header",
    ]:
        token = forger.attack("partner", attack, path, "tvp-police")
        answer = await client.post(
            path, headers={"Authorization": f"Bearer {token}"}, content=b"{}"
        )
        assert answer.status_code == 401
        reasons[attack] = _rejections(api_service)[-1].reason
    assert reasons == {
        "expired": "auth.expired",
        "wrong_audience": "auth.audience",
        "alg_none": "auth.alg_refused",
        "hs256_public_key": "auth.alg_refused",
        "unknown_kid": "auth.kid_unknown",
        "jku_header": "auth.header_refused",
    }
