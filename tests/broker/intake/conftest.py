"""A loaded service (demo keys, a fresh database) and a MASH intake consumer to deliver to."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import select
from sqlmodel import col

from broker import envelope
from broker.db import session_scope
from broker.demokeys import ensure_demo_keys
from broker.intake.consumer import IntakeConsumer
from broker.keys import PartyKeys
from broker.models import MashAlert
from broker.policy import load_agreement
from broker.service import Service
from broker.settings import CryptoSettings, DatabaseSettings, Settings
from schemas import Provenance
from schemas.events import Event

ROOT = Path(__file__).resolve().parents[3]
AGREEMENT = ROOT / "policy" / "agreement.yaml"

Deliver = Callable[[Event], int]


@pytest.fixture(scope="session")
def intake_keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    keys = tmp_path_factory.mktemp("intake-keys")
    ensure_demo_keys(keys, load_agreement(AGREEMENT), "wam-broker")
    return keys


def intake_settings(db_url: str, keys: Path) -> Settings:
    return Settings(
        _env_file=None,
        environment="test",
        agreement_path=AGREEMENT,
        database=DatabaseSettings(url=SecretStr(db_url)),
        crypto=CryptoSettings(keys_dir=keys, service_party="wam-broker"),
    )


@pytest.fixture
def intake_service(db_url: str, intake_keys: Path) -> Iterator[Service]:
    service = Service.load(intake_settings(db_url, intake_keys))
    try:
        yield service
    finally:
        service.engine.dispose()


def seal_for_mash(service: Service, event: Event, rule_id: str = "missing-to-mash") -> bytes:
    """A disclosure of ``event`` to the MASH, sealed by this broker as the relay would."""
    document = event.model_dump(mode="json")
    sealed = envelope.seal(
        document,
        sender=PartyKeys.load(service.keys_dir, "wam-broker", service.registry),
        recipient="wam-mash",
        registry=service.registry,
        rule_id=rule_id,
        lawful_basis="ca-2004-s11",
        purpose="To let the MASH triage the event.",
        # Hex token ids sometimes hold a 10-digit run that passes the NHS check, which the
        # audit log then refuses (reported separately); base64url ids practically never do.
        jti=f"jt-{secrets.token_urlsafe(18)}",
        provenance=Provenance(
            source_agency=event.metadata.source.agency,
            source_event_id=event.metadata.event_id,
            original_sha256=hashlib.sha256(event.model_dump_json().encode()).hexdigest(),
        ),
    )
    return sealed.token.encode() if isinstance(sealed.token, str) else sealed.token


@pytest.fixture
def consumer(intake_service: Service) -> IntakeConsumer:
    return IntakeConsumer(intake_service)


@pytest.fixture
def deliver(intake_service: Service, consumer: IntakeConsumer) -> Deliver:
    """Seal an event for the MASH and store it through the consumer; returns the alert id."""

    def run(event: Event) -> int:
        consumer.store(seal_for_mash(intake_service, event), None)
        with session_scope(intake_service.sessions) as session:
            alert_id = session.execute(
                select(col(MashAlert.id)).where(col(MashAlert.event_id) == event.metadata.event_id)
            ).scalar_one()
            return int(alert_id)

    return run


def frozen(moment: datetime) -> Callable[[], datetime]:
    """A clock stopped at ``moment``."""
    return lambda: moment
