"""Fixtures for the reliability suite: a whole broker with a key directory of its own."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from broker.service import Service
from broker.settings import AmqpSettings, CryptoSettings, DatabaseSettings, Settings
from tests.integration.conftest import AGREEMENT, demo_keys

__all__ = ["demo_keys"]


@pytest.fixture
def keys_dir(demo_keys: Path, tmp_path: Path) -> Path:
    """A copy of the demo keys this test may rotate, revoke or add to."""
    target = tmp_path / "keys"
    shutil.copytree(demo_keys, target)  # copy2 keeps the private files' 0600 mode
    return target


def make_settings(db_url: str, amqp_url: str, keys: Path, **crypto: object) -> Settings:
    """Test settings for a broker on ``db_url`` and ``amqp_url`` with the keys in ``keys``."""
    return Settings(
        _env_file=None,
        environment="test",
        agreement_path=AGREEMENT,
        amqp=AmqpSettings(
            url=SecretStr(amqp_url),
            timeout_seconds=5,
            delivery_limit=3,
            # Sweeps often, so that a run's letters returned by crashes go round again in it.
            redrive_interval_seconds=2,
        ),
        database=DatabaseSettings(url=SecretStr(db_url)),
        crypto=CryptoSettings(keys_dir=keys, service_party="wam-broker", **crypto),  # type: ignore[arg-type]
    )


@pytest.fixture
def broker_settings(db_url: str, amqp_url: str, keys_dir: Path) -> Settings:
    return make_settings(db_url, amqp_url, keys_dir)


@pytest.fixture
def service(broker_settings: Settings) -> Iterator[Service]:
    loaded = Service.load(broker_settings)
    try:
        yield loaded
    finally:
        loaded.engine.dispose()
