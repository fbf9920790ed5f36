"""A whole broker for integration tests: demo keys, a fresh database, a vhost of its own."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from broker.demokeys import ensure_demo_keys
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


def free_port() -> int:
    """A loopback port nothing listens on now, so a test's API part does not clash."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="session")
def demo_keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Keys for every party of the agreement and the broker, made once per run."""
    keys = tmp_path_factory.mktemp("keys")
    ensure_demo_keys(keys, load_agreement(AGREEMENT), "wam-broker")
    return keys


@pytest.fixture
def broker_settings(db_url: str, amqp_url: str, demo_keys: Path) -> Settings:
    return Settings(
        _env_file=None,
        environment="test",
        agreement_path=AGREEMENT,
        amqp=AmqpSettings(url=SecretStr(amqp_url), timeout_seconds=5, delivery_limit=3),
        database=DatabaseSettings(url=SecretStr(db_url)),
        crypto=CryptoSettings(keys_dir=demo_keys, service_party="wam-broker"),
        api=ApiSettings(port=free_port()),
    )


@pytest.fixture
def service(broker_settings: Settings) -> Iterator[Service]:
    loaded = Service.load(broker_settings)
    try:
        yield loaded
    finally:
        loaded.engine.dispose()
