"""Service settings: environment variables with the ``MASH_`` prefix, nested by ``__``."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from broker.exceptions import ConfigurationError

__all__ = [
    "AmqpSettings",
    "ApiSettings",
    "CrossBorderSettings",
    "CryptoSettings",
    "DatabaseSettings",
    "IntakeSettings",
    "Settings",
]

#: Passwords and secrets that only the development environment may use.
DEMO_SECRETS = frozenset({"guest", "changeme", "demo", "password", ""})


class AmqpSettings(BaseModel):
    """RabbitMQ connection and behaviour."""

    url: SecretStr = SecretStr("amqp://guest:guest@127.0.0.1:5672/")
    management_url: str = "http://127.0.0.1:15672"
    timeout_seconds: float = Field(default=10.0, gt=0)
    prefetch: int = Field(default=64, ge=1)
    delivery_limit: int = Field(default=5, ge=1)
    #: How often the service re-drives what RabbitMQ dead-lettered for its delivery count
    #: alone (returns by lost connections and killed consumers count before RabbitMQ 4.3);
    #: 0 turns it off. See ``broker.messaging.deadletter.returned_by_the_broker``.
    redrive_interval_seconds: float = Field(default=60.0, ge=0)
    #: The most times one message is re-driven so; then it waits for an operator.
    redrive_max: int = Field(default=3, ge=0)
    #: AMQP user name → party id. RabbitMQ checks a message's ``user_id`` property against
    #: the user that published it, so this is how the AMQP ingest knows who sent a message.
    partner_users: dict[str, str] = Field(default_factory=dict)
    #: Processes that translate, decide and seal what the AMQP ingest queues deliver, and
    #: open the MASH intake's deliveries (0: threads of the service process), as
    #: ``api.prepare_processes`` does for HTTP.
    prepare_processes: int = Field(default=0, ge=0, le=16)


class DatabaseSettings(BaseModel):
    """The relational store: SQLite file by default, PostgreSQL in production."""

    url: SecretStr = SecretStr("sqlite:///var/mash.db")
    echo: bool = False
    #: How often ``mash-broker run`` removes expired token ids and idempotency answers
    #: (``broker.housekeeping``); 0 turns it off.
    housekeeping_interval_seconds: float = Field(default=600.0, ge=0)


class CryptoSettings(BaseModel):
    """Keys and the limits of the JOSE envelope."""

    keys_dir: Path = Path("var/keys")
    #: The party id this broker signs as (its own service key) and opens disclosures for.
    service_party: str = "wam-broker"
    max_envelope_bytes: int = Field(default=256 * 1024, ge=1024)
    token_lifetime_seconds: int = Field(default=7 * 24 * 3600, ge=60)
    clock_skew_seconds: int = Field(default=120, ge=0)


class ApiSettings(BaseModel):
    """The HTTP API (see ``docs/partners/integration.md`` and ``docs/operations-auth.md``)."""

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    #: Largest ingest body; an adapter's own lower limit applies first.
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    #: Largest body of any other request (login, for example).
    max_request_bytes: int = Field(default=16 * 1024, ge=1024)
    tls_certfile: Path | None = None
    tls_keyfile: Path | None = None
    #: The scheme, host and port partners call; a client assertion's ``aud`` must be this
    #: plus the path of the request (e.g. ``https://mash.example.org/v1/ingest/police``).
    public_base_url: str = Field(default="http://127.0.0.1:8080", pattern=r"^https?://[^/?#]+$")
    #: Longest a client assertion may live (``exp`` at most this far ahead).
    assertion_max_lifetime_seconds: int = Field(default=300, ge=30, le=300)
    #: Per-partner token bucket: steady requests per second, and the burst allowed.
    rate_per_second: float = Field(default=50.0, gt=0)
    rate_burst: int = Field(default=100, ge=1)
    #: Lifetime of a staff session or bearer token.
    staff_token_lifetime_seconds: int = Field(default=900, ge=60, le=12 * 3600)
    #: Send the session cookie with ``Secure`` even without TLS here (behind a TLS proxy).
    secure_cookies: bool = False
    #: A Prometheus scrape token for ``GET /metrics`` (staff admins may read it too).
    metrics_token: SecretStr | None = None
    #: How long an ``Idempotency-Key`` answer is kept.
    idempotency_ttl_seconds: int = Field(default=24 * 3600, ge=60)
    #: Processes that translate, decide and seal ingested messages beside the API's own
    #: (0: two threads of the API process). Sealing holds Python's lock for most of its
    #: time, so on a busy API separate processes let it use more than one core.
    prepare_processes: int = Field(default=0, ge=0, le=16)


class CrossBorderSettings(BaseModel):
    """Links to neighbouring boroughs' brokers (``mash-broker crossborder``)."""

    #: Neighbour's ONS code → the AMQP URI of its broker, with the credentials it issued to
    #: us (``MASH_CROSSBORDER__LINKS='{"E06000039": "amqps://..."}'``).
    links: dict[str, SecretStr] = Field(default_factory=dict)
    #: A directory of secret files ``<ONS>.uri``, one neighbour's AMQP URI each (mode 0600).
    secrets_dir: Path | None = None
    #: Seconds the shovel waits before reconnecting after the link fails.
    reconnect_delay_seconds: int = Field(default=5, ge=1, le=3600)
    #: Messages the shovel has in flight (unconfirmed by the neighbour) at once.
    prefetch: int = Field(default=100, ge=1, le=10_000)


class IntakeSettings(BaseModel):
    """MASH intake: clocks, working hours and the pages (see ``docs/intake.md``).

    The 72 hours come from statutory guidance; the rest is local practice.
    """

    #: The party the intake consumer stores alerts for.
    mash_party: str = "wam-mash"
    return_interview_hours: int = Field(default=72, ge=1)
    #: "Immediately" for telling the placing authority, as a number.
    notify_within_minutes: int = Field(default=60, ge=1)
    repeat_missing_threshold: int = Field(default=3, ge=2)
    repeat_missing_window_days: int = Field(default=90, ge=1)
    opening: str = Field(default="09:00", pattern=r"^\d{2}:\d{2}$")
    closing: str = Field(default="17:00", pattern=r"^\d{2}:\d{2}$")
    #: Bank holidays replacing the built-in ones for each year listed (list whole years).
    holidays: list[date] | None = None
    #: Further days the MASH is closed.
    extra_closures: list[date] = Field(default_factory=list)
    #: How often the queue page refreshes itself, in seconds.
    refresh_seconds: int = Field(default=5, ge=1, le=300)


class Settings(BaseSettings):
    """Every setting of the service, read once at an entry point and passed down."""

    model_config = SettingsConfigDict(
        env_prefix="MASH_",
        env_nested_delimiter="__",
        env_file=".env",
        extra="ignore",
    )

    environment: Literal["development", "test", "production"] = "development"
    borough: str = Field(default="E06000040", pattern=r"^[EWSN]\d{8}$")
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_json: bool | None = None
    agreement_path: Path = Path("policy/agreement.yaml")
    amqp: AmqpSettings = AmqpSettings()
    database: DatabaseSettings = DatabaseSettings()
    crypto: CryptoSettings = CryptoSettings()
    api: ApiSettings = ApiSettings()
    crossborder: CrossBorderSettings = CrossBorderSettings()
    intake: IntakeSettings = IntakeSettings()

    @model_validator(mode="after")
    def _refuse_demo_secrets_in_production(self) -> Settings:
        if self.environment != "production":
            return self
        amqp_password = _password_of(self.amqp.url.get_secret_value())
        if amqp_password in DEMO_SECRETS:
            raise ConfigurationError(
                "amqp.url: a demo password is not allowed when environment=production"
            )
        if self.crypto.keys_dir == Path("var/keys"):
            raise ConfigurationError(
                "crypto.keys_dir: the demo key directory is not allowed in production"
            )
        return self


def _password_of(url: str) -> str:
    """The password part of a URL such as ``amqp://user:pass@host/``, or ``""``."""
    credentials = url.split("://", 1)[-1].split("@", 1)
    if len(credentials) < 2 or ":" not in credentials[0]:
        return ""
    return credentials[0].split(":", 1)[1]
