"""Settings: environment prefix, nesting, and refusal of demo secrets outside development."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from broker.exceptions import ConfigurationError
from broker.settings import Settings


def test_defaults_are_local_development() -> None:
    settings = Settings(_env_file=None)
    assert settings.environment == "development"
    assert settings.borough == "E06000040"
    assert settings.database.url.get_secret_value().startswith("sqlite:///")


def test_nested_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MASH_AMQP__PREFETCH", "7")
    monkeypatch.setenv("MASH_DATABASE__URL", "postgresql+psycopg://u@h/db")
    settings = Settings(_env_file=None)
    assert settings.amqp.prefetch == 7
    assert settings.database.url.get_secret_value() == "postgresql+psycopg://u@h/db"


def test_secrets_not_shown_in_repr() -> None:
    settings = Settings(_env_file=None)
    assert "guest:guest" not in repr(settings)


def test_production_refuses_demo_amqp_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MASH_ENVIRONMENT", "production")
    monkeypatch.setenv("MASH_CRYPTO__KEYS_DIR", "/srv/keys")
    with pytest.raises((ConfigurationError, ValidationError), match=r"amqp\.url"):
        Settings(_env_file=None)


def test_production_refuses_demo_key_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MASH_ENVIRONMENT", "production")
    monkeypatch.setenv("MASH_AMQP__URL", "amqp://mash:Xk9-long-secret@mq:5672/")
    with pytest.raises((ConfigurationError, ValidationError), match=r"keys_dir"):
        Settings(_env_file=None)


def test_production_accepts_real_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MASH_ENVIRONMENT", "production")
    monkeypatch.setenv("MASH_AMQP__URL", "amqp://mash:Xk9-long-secret@mq:5672/")
    monkeypatch.setenv("MASH_CRYPTO__KEYS_DIR", "/srv/keys")
    assert Settings(_env_file=None).environment == "production"


def test_borough_must_be_an_ons_code() -> None:
    with pytest.raises(ValidationError, match="borough"):
        Settings(_env_file=None, borough="Maidenhead")
