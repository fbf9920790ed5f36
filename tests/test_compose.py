"""docker-compose.yml parses and agrees with broker/settings.py (no Docker engine needed)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from broker.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def _setting_exists(name: str) -> bool:
    """Whether ``MASH_A__B`` names a field of Settings (nested by ``__``)."""
    parts = name.removeprefix("MASH_").lower().split("__")
    model: type[BaseModel] = Settings
    for i, part in enumerate(parts):
        field = model.model_fields.get(part)
        if field is None:
            return False
        annotation = field.annotation
        if i < len(parts) - 1:
            if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
                return False
            model = annotation
    return True


def test_services_present(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {"rabbitmq", "postgres", "broker"}


def test_every_broker_variable_is_a_setting(compose: dict[str, Any]) -> None:
    env = compose["services"]["broker"]["environment"]
    mash_vars = [k for k in env if k.startswith("MASH_")]
    assert mash_vars
    unknown = [k for k in mash_vars if not _setting_exists(k)]
    assert unknown == []


def test_compose_environment_builds_production_settings(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    env = compose["services"]["broker"]["environment"]
    monkeypatch.chdir(ROOT / "tests")  # keep a developer's .env out of it
    for key, value in env.items():
        resolved = re.sub(r"\$\{[A-Z_]+\}", "s3cret-from-env", str(value))
        monkeypatch.setenv(key, resolved)
    settings = Settings()
    assert settings.environment == "production"
    assert settings.amqp.url.get_secret_value().startswith("amqp://mash:")
    assert settings.database.url.get_secret_value().startswith("postgresql+psycopg://")
    assert settings.api.port == 8080
    assert settings.amqp.prepare_processes == settings.api.prepare_processes == 1


def test_ports_agree_with_default_settings(compose: dict[str, Any]) -> None:
    defaults = Settings()
    amqp_port = defaults.amqp.url.get_secret_value().rsplit(":", 1)[1].split("/")[0]
    management_port = defaults.amqp.management_url.rsplit(":", 1)[1]
    published = {p.rsplit(":", 1)[1] for p in compose["services"]["rabbitmq"]["ports"]}
    assert {amqp_port, management_port} <= published
    assert f"127.0.0.1:{defaults.api.port}:8080" in compose["services"]["broker"]["ports"]


def test_rabbitmq_enables_shovel_and_management(compose: dict[str, Any]) -> None:
    mounts = compose["services"]["rabbitmq"]["volumes"]
    plugins_mount = next(m for m in mounts if m.endswith("enabled_plugins:ro"))
    plugins = (ROOT / plugins_mount.split(":", 1)[0]).read_text()
    for plugin in ("rabbitmq_management", "rabbitmq_shovel", "rabbitmq_shovel_management"):
        assert plugin in plugins


def test_secrets_are_required_not_defaulted(compose: dict[str, Any]) -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    assert "guest" not in text
    for var in ("MASH_RABBITMQ_PASSWORD", "MASH_POSTGRES_PASSWORD"):
        assert f"${{{var}:?" in text


def test_dockerfile_copies_only_existing_paths() -> None:
    lines = (ROOT / "Dockerfile").read_text().splitlines()
    for line in lines:
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), source
