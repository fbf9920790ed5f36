"""Staff accounts, login, tokens, cookie sessions, roles, and the ``mash-broker staff`` CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Annotated

import httpx
import pytest
from fastapi import Depends
from sqlmodel import col, select

from broker.api import require_role
from broker.api.auth import AccountStore, CredentialRefused, Role, StaffIdentity
from broker.api.tables import StaffAccount
from broker.db import make_engine, session_scope
from broker.exceptions import ConfigurationError
from broker.models import AuditEntry, AuditKind
from broker.service import Service
from tests.api.conftest import PASSWORD


async def _login(client: httpx.AsyncClient, username: str, password: str = PASSWORD):
    return await client.post("/v1/auth/token", json={"username": username, "password": password})


def _last_entry(service: Service) -> AuditEntry:
    with session_scope(service.sessions) as session:
        entry = session.exec(select(AuditEntry).order_by(col(AuditEntry.seq).desc())).first()
    assert entry is not None
    return entry


async def test_token_login_and_who_am_i(client: httpx.AsyncClient) -> None:
    answer = await _login(client, "dpo-user")
    assert answer.status_code == 200
    body = answer.json()
    assert body["token_type"] == "bearer"
    assert 0 < body["expires_in"] <= 900
    me = await client.get(
        "/v1/auth/me", headers={"Authorization": f"Bearer {body['access_token']}"}
    )
    assert me.json() == {"username": "dpo-user", "roles": ["dpo"], "provider": "local"}


@pytest.mark.parametrize(
    ("username", "password", "actor"),
    [
        ("dpo-user", "wrong password entirely", "dpo-user"),
        ("nobody-here", PASSWORD, None),
        ("a password typed here", PASSWORD, None),
    ],
)
async def test_failed_login_is_generic_and_audited(
    client: httpx.AsyncClient, api_service: Service, username: str, password: str, actor: str | None
) -> None:
    answer = await _login(client, username, password)
    assert answer.status_code == 401
    assert answer.json()["message"] == "authentication failed"
    entry = _last_entry(api_service)
    assert entry.kind is AuditKind.REJECTED
    assert entry.reason == "auth.login_failed"
    assert entry.actor == actor  # a user name is recorded only when the account exists
    assert "typed" not in (entry.detail or "")


async def test_password_change_and_disable_end_sessions(
    client: httpx.AsyncClient, accounts: AccountStore
) -> None:
    token = (await _login(client, "admin-user")).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    assert (await client.get("/v1/auth/me", headers=headers)).status_code == 200
    accounts.set_password("admin-user", "another long password")
    assert (await client.get("/v1/auth/me", headers=headers)).status_code == 401
    token = (await _login(client, "admin-user", "another long password")).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    accounts.set_active("admin-user", False)
    assert (await client.get("/v1/auth/me", headers=headers)).status_code == 401
    assert (await _login(client, "admin-user", "another long password")).status_code == 401


async def test_roles_decide_access(client: httpx.AsyncClient, staff_token) -> None:
    cases = {
        (Role.DPO, "/v1/audit"): 200,
        (Role.AUDITOR, "/v1/audit"): 200,
        (Role.ADMIN, "/v1/audit"): 403,
        (Role.INTAKE, "/v1/audit"): 403,
        (Role.ADMIN, "/v1/audit/verify"): 200,
        (Role.MANAGER, "/v1/audit/verify"): 403,
        (Role.ADMIN, "/metrics"): 200,
        (Role.DPO, "/metrics"): 403,
        (Role.INTAKE, "/v1/agreement"): 200,
        (Role.INTAKE, "/v1/parties/wam-broker/jwks.json"): 200,
    }
    seen = {}
    for (role, path), _ in cases.items():
        token = await staff_token(role)
        answer = await client.get(path, headers={"Authorization": f"Bearer {token}"})
        seen[(role, path)] = answer.status_code
    assert seen == cases


async def test_cookie_session(client: httpx.AsyncClient) -> None:
    answer = await client.post(
        "/v1/auth/session", json={"username": "intake-user", "password": PASSWORD}
    )
    assert answer.status_code == 204
    cookie = answer.headers["set-cookie"]
    assert "mash_session=" in cookie
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie or "SameSite=Strict" in cookie
    assert "Path=/" in cookie
    me = await client.get("/v1/auth/me")  # the client keeps the cookie
    assert me.status_code == 200
    assert me.json()["username"] == "intake-user"
    logout = await client.delete("/v1/auth/session")
    assert logout.status_code == 204
    client.cookies.clear()
    assert (await client.get("/v1/auth/me")).status_code == 401


async def test_cookie_is_secure_under_tls(api_service: Service, accounts: AccountStore) -> None:
    from broker.api import create_app  # noqa: PLC0415

    settings = api_service.settings.model_copy(
        update={"api": api_service.settings.api.model_copy(update={"secure_cookies": True})}
    )
    service = Service(**{**api_service.__dict__, "settings": settings})
    app = create_app(service, accounts=accounts)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="https://mash.test"
    ) as http:
        answer = await http.post(
            "/v1/auth/session", json={"username": "intake-user", "password": PASSWORD}
        )
    assert "Secure" in answer.headers["set-cookie"]


async def test_cookie_sessions_refuse_cross_origin_changes(app, client: httpx.AsyncClient) -> None:
    """A change riding on the cookie from another origin is refused (CSRF, besides SameSite)."""

    async def change(
        staff: Annotated[StaffIdentity, Depends(require_role(Role.INTAKE))],
    ) -> dict[str, str]:
        return {"by": staff.username}

    app.add_api_route("/v1/test-change", change, methods=["POST"], name="test_change")
    await client.post("/v1/auth/session", json={"username": "intake-user", "password": PASSWORD})
    evil = await client.post("/v1/test-change", headers={"Origin": "https://evil.example"})
    ours = await client.post("/v1/test-change", headers={"Origin": "https://mash.test"})
    plain = await client.post("/v1/test-change")
    assert evil.status_code == 401
    assert _last_entry(app.state.api.service).reason == "auth.origin_refused"
    assert ours.status_code == plain.status_code == 200
    assert ours.json() == {"by": "intake-user"}


def test_account_rules(accounts: AccountStore) -> None:
    with pytest.raises(ConfigurationError, match="at least 12"):
        accounts.add("shortpw", "short", [Role.INTAKE])
    with pytest.raises(ConfigurationError, match="user name"):
        accounts.add("Has Spaces", PASSWORD, [Role.INTAKE])
    with pytest.raises(ConfigurationError, match="already exists"):
        accounts.add("dpo-user", PASSWORD, [Role.DPO])
    with pytest.raises(ConfigurationError, match="role"):
        accounts.add("noroles", PASSWORD, [])
    with pytest.raises(CredentialRefused):
        accounts.authenticate("dpo-user", "x" * 5000)


def test_passwords_are_stored_as_argon2id(accounts: AccountStore, api_service: Service) -> None:
    with session_scope(api_service.sessions) as session:
        row = session.get(StaffAccount, "dpo-user")
        assert row is not None
        assert row.password_hash.startswith("$argon2id$")
        assert PASSWORD not in row.password_hash


def test_cli_adds_an_account_with_the_password_from_stdin(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'staff.db'}"
    command = [sys.executable, "-m", "broker", "staff", "add", "rosa", "--role", "dpo"]
    done = subprocess.run(  # noqa: S603 - fixed argv
        [*command, "--role", "auditor", "--password-stdin", "--database-url", url],
        input="a perfectly long passphrase\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "a perfectly long passphrase" not in done.stdout + done.stderr
    engine = make_engine(url)
    try:
        identity, _ = AccountStore(engine).authenticate("rosa", "a perfectly long passphrase")
    finally:
        engine.dispose()
    assert identity.roles == {Role.DPO, Role.AUDITOR}
    # There is no option to pass the password as an argument.
    refused = subprocess.run(  # noqa: S603 - fixed argv
        [*command, "--password", "x" * 20, "--database-url", url],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert refused.returncode != 0
