"""The HTTP layer: security headers, request ids, request logs without bodies, error shapes."""

from __future__ import annotations

import json
import re

import httpx
from structlog.testing import capture_logs

from broker.api.middleware import new_request_id
from tests.api.conftest import AssertionMaker

POLICE = "/v1/ingest/police"


async def test_security_headers_on_every_answer(client: httpx.AsyncClient) -> None:
    for answer in [
        await client.get("/healthz"),
        await client.get("/no/such/page"),
        await client.post(POLICE, content=b"{}"),
    ]:
        headers = answer.headers
        assert headers["content-security-policy"].startswith("default-src 'none'")
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "no-referrer"
        assert headers["x-frame-options"] == "DENY"
        assert headers["cache-control"] == "no-store"
        # The test client speaks https://, as a TLS-terminating deployment would.
        assert headers["strict-transport-security"].startswith("max-age=")
        assert "access-control-allow-origin" not in headers


async def test_no_hsts_over_plain_http(app) -> None:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1"
    ) as http:
        answer = await http.get("/healthz")
    assert "strict-transport-security" not in answer.headers


async def test_cors_is_off(client: httpx.AsyncClient) -> None:
    preflight = await client.options(
        POLICE,
        headers={"Origin": "https://elsewhere.example", "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in preflight.headers
    assert preflight.status_code in {401, 405}


async def test_request_id_is_kept_when_safe_and_replaced_when_not(
    client: httpx.AsyncClient,
) -> None:
    kept = await client.get("/healthz", headers={"X-Request-ID": "abc-123-def-456"})
    assert kept.headers["x-request-id"] == "abc-123-def-456"
    replaced = await client.get("/healthz", headers={"X-Request-ID": "<script>alert(1)</script>"})
    assert replaced.headers["x-request-id"] != "<script>alert(1)</script>"
    assert len(replaced.headers["x-request-id"]) == 26
    nhs_like = await client.get("/healthz", headers={"X-Request-ID": "req-9990010005"})
    assert "9990010005" not in nhs_like.headers["x-request-id"]


def test_generated_request_ids_never_hold_ten_digits_in_a_row() -> None:
    ids = [new_request_id() for _ in range(20_000)]
    assert not any(re.search(r"\d{10}", i) for i in ids)
    assert len(set(ids)) == len(ids)


async def test_request_logs_carry_ids_never_bodies(
    client: httpx.AsyncClient, assertion: AssertionMaker
) -> None:
    secret_name = "Philippa Wintersgill-Oddbody"
    record = {"record_type": "missing_report", "missing_person": {"forenames": secret_name}}
    with capture_logs() as logs:
        answer = await client.post(
            POLICE,
            content=json.dumps(record).encode(),
            headers={"Authorization": f"Bearer {assertion()}"},
        )
    assert answer.status_code == 422
    assert secret_name not in answer.text
    assert secret_name not in repr(logs)
    lines = [line for line in logs if line["event"] == "http_request"]
    assert len(lines) == 1
    assert lines[0]["route"] == "/v1/ingest/{adapter}"
    assert lines[0]["status"] == 422
    assert lines[0]["party"] == "tvp-police"
    assert "request_id" not in lines[0] or lines[0]["request_id"]


async def test_validation_errors_never_echo_input(client: httpx.AsyncClient) -> None:
    secret = "Ottoline Brackenbury 9990010005"
    answer = await client.post("/v1/auth/token", json={"username": secret})
    assert answer.status_code == 422
    body = answer.json()
    assert body["error"] == "request_invalid"
    assert {p["location"] for p in body["problems"]} == {"body.password"}
    assert "Ottoline" not in answer.text
    assert "9990010005" not in answer.text


async def test_not_found_and_method_not_allowed_are_json(client: httpx.AsyncClient) -> None:
    missing = await client.get("/v1/nothing")
    assert missing.status_code == 404
    assert missing.json()["error"] == "http_404"
    wrong = await client.get(POLICE)
    assert wrong.status_code == 405


async def test_an_unexpected_fault_is_500_without_a_trace(
    app, client: httpx.AsyncClient, assertion: AssertionMaker, monkeypatch
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("secret detail: Ottoline Brackenbury, /srv/mash/keys")

    monkeypatch.setattr(app.state.api.ingestor, "prepare", broken)
    raising = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
        base_url="https://mash.test",
    )
    async with raising:
        answer = await raising.post(
            POLICE, content=b"{}", headers={"Authorization": f"Bearer {assertion()}"}
        )
    assert answer.status_code == 500
    assert answer.json()["error"] == "internal"
    assert "Ottoline" not in answer.text
    assert "Traceback" not in answer.text
    assert "RuntimeError" not in answer.text


async def test_health_and_readiness(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    # The fixture points RabbitMQ at a closed port: not ready, and it says which part.
    assert ready.status_code == 503
    assert ready.json() == {
        "status": "not_ready",
        "database": "ok",
        "rabbitmq": "fail",
        "keys": "ok",
    }


async def test_agreement_and_jwks(
    client: httpx.AsyncClient, assertion: AssertionMaker, api_service
) -> None:
    import hashlib  # noqa: PLC0415

    path = "/v1/agreement"
    answer = await client.get(path, headers={"Authorization": f"Bearer {assertion(path=path)}"})
    body = answer.json()
    assert body["version"] == api_service.agreement.version
    assert (
        body["sha256"]
        == hashlib.sha256(api_service.settings.agreement_path.read_bytes()).hexdigest()
    )
    assert "tvp-police" in body["parties"]
    path = "/v1/parties/wam-broker/jwks.json"
    jwks = await client.get(path, headers={"Authorization": f"Bearer {assertion(path=path)}"})
    keys = jwks.json()["keys"]
    assert {k["use"] for k in keys} == {"sig", "enc"}
    assert all("d" not in k for k in keys)
    path = "/v1/parties/no-such-party/jwks.json"
    missing = await client.get(path, headers={"Authorization": f"Bearer {assertion(path=path)}"})
    assert missing.status_code == 404
