"""An API over a real service (demo keys, a fresh database), clients, and credential makers."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from argon2 import PasswordHasher
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI
from pydantic import SecretStr

from broker.api import create_app
from broker.api.auth import AccountStore, Role
from broker.demokeys import ensure_demo_keys
from broker.keys import PartyKeys
from broker.policy import load_agreement
from broker.service import Service
from broker.settings import (
    AmqpSettings,
    ApiSettings,
    CryptoSettings,
    DatabaseSettings,
    Settings,
)

ROOT = Path(__file__).resolve().parents[2]
AGREEMENT = ROOT / "policy" / "agreement.yaml"
BASE_URL = "https://mash.test"
PASSWORD = "correct horse battery staple"

#: A cheap argon2id for tests: the cost parameters are the store's business, not theirs.
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


@pytest.fixture(scope="session")
def api_keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    keys = tmp_path_factory.mktemp("api-keys")
    ensure_demo_keys(keys, load_agreement(AGREEMENT), "wam-broker")
    return keys


def make_settings(db_url: str, keys: Path, amqp_url: str, **api: Any) -> Settings:
    api = {"public_base_url": BASE_URL, **api}
    return Settings(
        _env_file=None,
        environment="test",
        agreement_path=AGREEMENT,
        amqp=AmqpSettings(url=SecretStr(amqp_url), timeout_seconds=2),
        database=DatabaseSettings(url=SecretStr(db_url)),
        crypto=CryptoSettings(keys_dir=keys, service_party="wam-broker"),
        api=ApiSettings(**api),
    )


@pytest.fixture
def api_settings(tmp_path: Path, api_keys: Path) -> Settings:
    """SQLite in a temporary file; RabbitMQ on a closed port (readiness says so)."""
    return make_settings(
        f"sqlite:///{tmp_path / 'api.db'}", api_keys, "amqp://guest:guest@127.0.0.1:1/"
    )


@pytest.fixture
def api_service(api_settings: Settings) -> Iterator[Service]:
    service = Service.load(api_settings)
    try:
        yield service
    finally:
        service.engine.dispose()


@pytest.fixture
def accounts(api_service: Service) -> AccountStore:
    store = AccountStore(api_service.sessions, hasher=FAST_HASHER)
    for role in Role:
        store.add(f"{role.value}-user", PASSWORD, [role])
    return store


@pytest.fixture
def app(api_service: Service, accounts: AccountStore) -> FastAPI:
    return create_app(api_service, accounts=accounts)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:
        yield http


def signing_key(keys: Path, party: str) -> tuple[str, Ed25519PrivateKey]:
    """A party's current signing kid and private key (as a partner's system holds it)."""
    loaded = PartyKeys.load(keys, party)
    assert loaded.signing is not None
    private = loaded.signing.key.private_key
    assert isinstance(private, Ed25519PrivateKey)
    return loaded.signing.kid, private


AssertionMaker = Callable[..., str]


@pytest.fixture
def assertion(api_keys: Path) -> AssertionMaker:
    """Sign a client assertion with PyJWT, as a partner would; keywords override claims."""

    def make(
        party: str = "tvp-police",
        path: str = "/v1/ingest/police",
        *,
        headers: dict[str, Any] | None = None,
        **claims: Any,
    ) -> str:
        kid, private = signing_key(api_keys, party)
        now = int(time.time())
        body = {
            "iss": party,
            "sub": party,
            "aud": BASE_URL + path,
            "iat": now,
            "exp": now + 120,
            "jti": str(uuid.uuid4()),
        }
        body.update(claims)
        return jwt.encode(body, private, algorithm="EdDSA", headers={"kid": kid, **(headers or {})})

    return make


StaffTokenMaker = Callable[[Role], str]


@pytest.fixture
def staff_token(client: httpx.AsyncClient) -> Callable[[Role], Any]:
    async def login(role: Role) -> str:
        answer = await client.post(
            "/v1/auth/token", json={"username": f"{role.value}-user", "password": PASSWORD}
        )
        assert answer.status_code == 200, answer.text
        token: str = answer.json()["access_token"]
        return token

    return login
