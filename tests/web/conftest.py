"""The API app with the intake pages over a real service, staff of every role, one alert."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from argon2 import PasswordHasher
from fastapi import FastAPI
from pydantic import SecretStr

from broker.api import create_app
from broker.api.auth import AccountStore, Role
from broker.demokeys import ensure_demo_keys
from broker.intake.consumer import IntakeConsumer
from broker.policy import load_agreement
from broker.service import Service
from broker.settings import (
    AmqpSettings,
    ApiSettings,
    CryptoSettings,
    DatabaseSettings,
    Settings,
)
from schemas.events import MissingReported, RiskGrade
from tests.broker.intake.conftest import seal_for_mash
from tests.broker.intake.factories import WAM, child, event, utc

ROOT = Path(__file__).resolve().parents[2]
AGREEMENT = ROOT / "policy" / "agreement.yaml"
BASE_URL = "http://127.0.0.1:8080"
PASSWORD = "correct horse battery staple"
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


@pytest.fixture(scope="session")
def web_keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    keys = tmp_path_factory.mktemp("web-keys")
    ensure_demo_keys(keys, load_agreement(AGREEMENT), "wam-broker")
    return keys


def web_settings(db_url: str, keys: Path, amqp_url: str, base_url: str = BASE_URL) -> Settings:
    host, _, port = base_url.removeprefix("http://").partition(":")
    return Settings(
        _env_file=None,
        environment="test",
        agreement_path=AGREEMENT,
        amqp=AmqpSettings(url=SecretStr(amqp_url), timeout_seconds=2),
        database=DatabaseSettings(url=SecretStr(db_url)),
        crypto=CryptoSettings(keys_dir=keys, service_party="wam-broker"),
        api=ApiSettings(public_base_url=base_url, host=host, port=int(port or 80)),
    )


@pytest.fixture
def web_service(tmp_path: Path, web_keys: Path) -> Iterator[Service]:
    settings = web_settings(
        f"sqlite:///{tmp_path / 'web.db'}", web_keys, "amqp://guest:guest@127.0.0.1:1/"
    )
    service = Service.load(settings)
    try:
        yield service
    finally:
        service.engine.dispose()


def add_staff(service: Service) -> AccountStore:
    store = AccountStore(service.sessions, hasher=FAST_HASHER)
    for role in Role:
        store.add(f"{role.value}-user", PASSWORD, [role])
    return store


@pytest.fixture
def alert_id(web_service: Service) -> int:
    """One high-risk missing report, stored through the intake consumer."""
    report = event(
        MissingReported(
            episode_id="EP-77",
            risk_grade=RiskGrade.HIGH,
            reported_at=utc(2026, 11, 20, 21, 30),
            missing_from=WAM,
        ),
        subject=child(),
        at=utc(2026, 11, 20, 21, 30),
        correlation_id="EP-77",
    )
    IntakeConsumer(web_service).store(seal_for_mash(web_service, report), None)
    return 1


@pytest.fixture
def app(web_service: Service, alert_id: int) -> FastAPI:
    return create_app(web_service, accounts=add_staff(web_service))


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:
        yield http


async def sign_in(client: httpx.AsyncClient, role: Role) -> None:
    """Sign in through the page's form; the session cookie stays on the client."""
    answer = await client.post(
        "/intake/sign-in", data={"username": f"{role.value}-user", "password": PASSWORD}
    )
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == "/intake"
