"""``/metrics`` (counted from the audit chain) and ``/v1/audit`` search."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta

import httpx
from pydantic import SecretStr

from broker.api import create_app
from broker.api.auth import Role
from broker.service import Service
from tests.api.conftest import AssertionMaker
from tests.api.test_ingest import _police_sample

POLICE = "/v1/ingest/police"


def _value(text: str, name: str, labels: str = "") -> float:
    pattern = rf"^{re.escape(name)}{re.escape(labels)} (\S+)$"
    match = re.search(pattern, text, re.MULTILINE)
    assert match, f"{name}{labels} not in metrics"
    return float(match.group(1))


async def test_metrics_follow_the_audit_chain(
    client: httpx.AsyncClient, assertion: AssertionMaker, staff_token
) -> None:
    admin = {"Authorization": f"Bearer {await staff_token(Role.ADMIN)}"}
    before = (await client.get("/metrics", headers=admin)).text
    assert _value(before, "mash_events_ingested_total") == 0
    await client.post(
        POLICE, content=_police_sample(), headers={"Authorization": f"Bearer {assertion()}"}
    )
    await client.post(POLICE, content=b"{}", headers={"Authorization": f"Bearer {assertion()}"})
    await client.post(POLICE, content=b"{}")  # no token: an auth rejection
    after = (await client.get("/metrics", headers=admin)).text
    assert _value(after, "mash_events_ingested_total") == 1
    assert _value(after, "mash_disclosures_shared_total") >= 1
    assert _value(after, "mash_messages_rejected_total", '{reason="adapter_error"}') == 1
    assert _value(after, "mash_messages_rejected_total", '{reason="auth.token_missing"}') == 1
    assert _value(after, "mash_disclosures_refused_total", '{reason="not_relevant_authority"}') >= 1
    backlog = _value(after, "mash_outbox_backlog")
    assert backlog == _value(after, "mash_disclosures_shared_total")  # nothing relayed here
    assert _value(after, "mash_relay_lag_seconds") >= 0
    assert _value(after, "mash_amqp_up") == 0  # RabbitMQ is on a closed port in this fixture
    assert 'route="/v1/ingest/{adapter}"' in after
    # Labels and values are ids and codes: nothing from the message.
    assert "Pellington" not in after
    assert "999001" not in after


async def test_metrics_show_how_this_process_met_sqlites_write_gate(
    client: httpx.AsyncClient, assertion: AssertionMaker, staff_token
) -> None:
    admin = {"Authorization": f"Bearer {await staff_token(Role.ADMIN)}"}
    before = (await client.get("/metrics", headers=admin)).text
    accepted = await client.post(
        POLICE, content=_police_sample(), headers={"Authorization": f"Bearer {assertion()}"}
    )
    assert accepted.status_code == 202
    after = (await client.get("/metrics", headers=admin)).text
    # The ingest's transaction went through the gate (the API's database is SQLite here).
    transactions = _value(after, "mash_db_write_gate_transactions_total")
    assert transactions >= _value(before, "mash_db_write_gate_transactions_total") + 1
    held = _value(after, "mash_db_write_gate_held_seconds_total")
    assert held > _value(before, "mash_db_write_gate_held_seconds_total")
    assert _value(after, "mash_db_write_gate_wait_seconds_total") >= 0


async def test_metrics_token_admits_a_scraper(api_service: Service, accounts) -> None:
    api = api_service.settings.api.model_copy(
        update={"metrics_token": SecretStr("scrape-" + "s" * 24)}
    )
    settings = api_service.settings.model_copy(update={"api": api})
    app = create_app(Service(**{**api_service.__dict__, "settings": settings}), accounts=accounts)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="https://mash.test"
    ) as http:
        good = await http.get("/metrics", headers={"Authorization": "Bearer scrape-" + "s" * 24})
        bad = await http.get("/metrics", headers={"Authorization": "Bearer scrape-wrong"})
    assert good.status_code == 200
    assert good.headers["content-type"].startswith("text/plain")
    assert bad.status_code == 401


async def test_audit_search_filters_and_pages(
    client: httpx.AsyncClient, assertion: AssertionMaker, staff_token
) -> None:
    accepted = await client.post(
        POLICE, content=_police_sample(), headers={"Authorization": f"Bearer {assertion()}"}
    )
    event_id = accepted.json()["event_ids"][0]
    dpo = {"Authorization": f"Bearer {await staff_token(Role.DPO)}"}
    about = (await client.get("/v1/audit", params={"event_id": event_id}, headers=dpo)).json()
    kinds = [e["kind"] for e in about["entries"]]
    assert kinds[0] == "received"
    assert "shared" in kinds
    assert {e["event_id"] for e in about["entries"]} == {event_id}
    shared_to_mash = (
        await client.get("/v1/audit", params={"party": "wam-mash", "kind": "shared"}, headers=dpo)
    ).json()["entries"]
    assert [e["recipient"] for e in shared_to_mash] == ["wam-mash"]
    page = (await client.get("/v1/audit", params={"limit": 2}, headers=dpo)).json()
    assert len(page["entries"]) == 2
    following = (
        await client.get(
            "/v1/audit", params={"limit": 2, "after_seq": page["next_after_seq"]}, headers=dpo
        )
    ).json()
    assert following["entries"][0]["seq"] == page["entries"][-1]["seq"] + 1
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    later = await client.get("/v1/audit", params={"since": future}, headers=dpo)
    assert later.json() == {"entries": [], "next_after_seq": None}
    nobody = await client.get("/v1/audit", params={"event_id": str(uuid.uuid4())}, headers=dpo)
    assert nobody.json()["entries"] == []
    naive = await client.get("/v1/audit", params={"since": "2026-01-01T00:00:00"}, headers=dpo)
    assert naive.status_code == 422


async def test_searching_the_audit_is_itself_audited(
    client: httpx.AsyncClient, staff_token
) -> None:
    dpo = {"Authorization": f"Bearer {await staff_token(Role.DPO)}"}
    await client.get("/v1/audit", headers=dpo)
    opened = (await client.get("/v1/audit", params={"kind": "opened"}, headers=dpo)).json()
    assert opened["entries"][0]["actor"] == "dpo-user"
    assert opened["entries"][0]["detail"].startswith("endpoint=audit_search")


async def test_audit_verify_reports_the_chain(client: httpx.AsyncClient, staff_token) -> None:
    auditor = {"Authorization": f"Bearer {await staff_token(Role.AUDITOR)}"}
    state = (await client.get("/v1/audit/verify", headers=auditor)).json()
    assert state["ok"] is True
    assert state["signatures_checked"] is True
    assert state["summary"].startswith("OK")
