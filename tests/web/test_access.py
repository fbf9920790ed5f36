"""Who sees what: nobody signed out, intake staff triage, managers see KPIs, no audit for intake."""

from __future__ import annotations

import re

import httpx
import pytest
from sqlalchemy import select
from sqlmodel import col

from broker.api.auth import Role
from broker.db import session_scope
from broker.models import AuditEntry, AuditKind
from broker.service import Service
from tests.web.conftest import sign_in

PAGES = [
    "/intake",
    "/intake/alerts/1",
    "/intake/episodes",
    "/intake/clocks",
    "/intake/kpis",
    "/intake/profiles",
]
JSON = ["/v1/intake/alerts", "/v1/intake/alerts/1", "/v1/intake/episodes", "/v1/intake/kpis"]


@pytest.mark.parametrize("path", PAGES)
async def test_signed_out_pages_send_you_to_sign_in(client: httpx.AsyncClient, path: str) -> None:
    answer = await client.get(path)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/intake/sign-in"
    assert "Thornlow" not in answer.text


@pytest.mark.parametrize("path", [*JSON, "/v1/intake/kpis.csv", "/v1/intake/tracker"])
async def test_signed_out_json_is_refused(client: httpx.AsyncClient, path: str) -> None:
    answer = await client.get(path)
    assert answer.status_code == 401
    assert "Thornlow" not in answer.text


async def test_a_wrong_password_is_refused_on_the_page(client: httpx.AsyncClient) -> None:
    answer = await client.post(
        "/intake/sign-in", data={"username": "intake-user", "password": "not it at all"}
    )
    assert answer.status_code == 401
    assert "not right" in answer.text
    assert "mash_session" not in answer.headers.get("set-cookie", "")


async def test_intake_staff_triage_but_see_neither_kpis_nor_the_audit_log(
    client: httpx.AsyncClient, web_service: Service
) -> None:
    await sign_in(client, Role.INTAKE)
    queue = await client.get("/intake")
    assert queue.status_code == 200
    assert 'href="/intake/alerts/1"' in queue.text
    assert "/intake/kpis" not in queue.text  # not offered in the navigation either
    detail = await client.get("/intake/alerts/1")
    assert detail.status_code == 200
    assert "Thornlow" in detail.text  # the disclosed content, opened for a person
    assert "missing-to-mash" in detail.text
    for path in (
        "/intake/kpis",
        "/intake/kpis.csv",
        "/intake/profiles",
        "/v1/intake/kpis",
        "/v1/intake/profiles",
        "/v1/audit",
    ):
        assert (await client.get(path)).status_code == 403, path
    with session_scope(web_service.sessions) as session:
        opened = (
            session.execute(select(AuditEntry).where(col(AuditEntry.kind) == AuditKind.OPENED))
            .scalars()
            .all()
        )
    assert [(e.actor, e.reason, e.detail) for e in opened] == [
        ("intake-user", "viewed", "alert_id=1 role=intake")
    ]


async def test_a_manager_sees_the_kpis_and_exports_them(client: httpx.AsyncClient) -> None:
    await sign_in(client, Role.MANAGER)
    page = await client.get("/intake/kpis")
    assert page.status_code == 200
    assert page.text.count('role="img"') == 2
    assert "overlap at 2–3" in page.text
    csv = await client.get("/intake/kpis.csv")
    assert csv.status_code == 200
    assert csv.headers["content-type"].startswith("text/csv")
    assert csv.text.startswith("measure,value,band,detail\r\n")
    assert (await client.get("/v1/intake/kpis")).json()["protection_band"]


@pytest.mark.parametrize("role", [Role.DPO, Role.AUDITOR, Role.ADMIN])
async def test_other_roles_see_no_case_content(client: httpx.AsyncClient, role: Role) -> None:
    await sign_in(client, role)
    for path in ["/intake", "/intake/alerts/1", *JSON]:
        answer = await client.get(path)
        assert answer.status_code == 403, path
        assert "Thornlow" not in answer.text


async def test_json_twins_follow_the_workflow(client: httpx.AsyncClient) -> None:
    await sign_in(client, Role.INTAKE)
    [item] = (await client.get("/v1/intake/alerts")).json()
    assert (item["band"], item["status"]) == ("immediate", "new")
    assert item["decision_clock"]["kind"] == "mash_decision"
    refused = await client.post("/v1/intake/alerts/1/close")
    assert refused.status_code == 409
    steps = [
        ("/v1/intake/alerts/1/acknowledge", None, "acknowledged"),
        ("/v1/intake/alerts/1/assign", {"assignee": "jo.social"}, "assigned"),
        ("/v1/intake/alerts/1/decision", {"decision": "early_help"}, "decided"),
        ("/v1/intake/alerts/1/close", None, "closed"),
    ]
    for path, body, status in steps:
        answer = await client.post(path, json=body) if body else await client.post(path)
        assert answer.status_code == 200, answer.text
        assert answer.json()["status"] == status
    detail = (await client.get("/v1/intake/alerts/1")).json()
    assert [h["action"] for h in detail["history"]][:4] == [
        "acknowledged",
        "assigned",
        "decided",
        "closed",
    ]
    assert (await client.get("/v1/intake/alerts/999")).status_code == 404


async def test_a_cross_origin_form_post_is_refused(client: httpx.AsyncClient) -> None:
    await sign_in(client, Role.INTAKE)
    answer = await client.post(
        "/intake/alerts/1/acknowledge", headers={"origin": "https://evil.example"}
    )
    assert answer.status_code == 303  # sent to sign in, nothing done
    detail = (await client.get("/v1/intake/alerts/1")).json()
    assert detail["item"]["status"] == "new"


async def test_pages_carry_a_strict_policy_and_no_inline_script_or_style(
    client: httpx.AsyncClient,
) -> None:
    await sign_in(client, Role.MANAGER)
    for path in PAGES:
        answer = await client.get(path)
        assert answer.status_code == 200, path
        policy = answer.headers["content-security-policy"]
        assert "script-src 'self'" in policy
        assert "unsafe-inline" not in policy
        assert "frame-ancestors 'none'" in policy
        assert not re.search(r"<script(?![^>]*\bsrc=)", answer.text), path
        assert " style=" not in answer.text, path
        assert "<style" not in answer.text, path
        # Every form control has a label.
        for control in re.findall(r'<(?:input|select)[^>]*\bid="([^"]+)"', answer.text):
            assert f'for="{control}"' in answer.text, (path, control)
