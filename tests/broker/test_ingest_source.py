"""Who sent an AMQP ingest message: RabbitMQ's checked user id, mapped to a party."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import pytest

from broker.ingest import source_of
from broker.messaging import ReceivedMessage, RejectMessage
from broker.service import Service

PARTIES = ("tvp-police", "fhft-health", "wam-mash")


def _service(environment: str, users: dict[str, str]) -> Service:
    stand_in: Any = SimpleNamespace(
        agreement=SimpleNamespace(parties=[SimpleNamespace(id=p) for p in PARTIES]),
        settings=SimpleNamespace(
            environment=environment, amqp=SimpleNamespace(partner_users=users)
        ),
    )
    return cast(Service, stand_in)


def _message(user_id: str | None = None, app_id: str | None = None) -> ReceivedMessage:
    return ReceivedMessage(
        queue="ingest.police",
        body=b"{}",
        message_id="m-1",
        routing_key="police",
        exchange="ingest",
        headers={},
        content_type="application/json",
        correlation_id=None,
        redelivered=False,
        delivery_count=0,
        user_id=user_id,
        app_id=app_id,
    )


USERS = {"tvp-gateway": "tvp-police", "retired": "not-in-the-agreement"}


@pytest.mark.parametrize("environment", ["production", "development"])
def test_a_checked_user_id_names_the_party_whatever_app_id_claims(environment: str) -> None:
    service = _service(environment, USERS)
    message = _message(user_id="tvp-gateway", app_id="fhft-health")
    assert source_of(message, service, "wam-mash") == "tvp-police"


def test_in_production_a_message_without_a_known_user_is_refused() -> None:
    service = _service("production", USERS)
    for message in (_message(), _message(app_id="tvp-police"), _message(user_id="guest")):
        with pytest.raises(RejectMessage) as refused:
            source_of(message, service, "tvp-police")
        assert refused.value.reason == "unknown_sender"


def test_outside_production_app_id_or_the_default_names_the_party() -> None:
    service = _service("development", USERS)
    assert source_of(_message(app_id="fhft-health"), service, "tvp-police") == "fhft-health"
    assert source_of(_message(), service, "tvp-police") == "tvp-police"


@pytest.mark.parametrize("environment", ["production", "development"])
def test_a_sender_that_is_not_a_party_of_the_agreement_is_refused(environment: str) -> None:
    service = _service(environment, USERS)
    cases = [_message(user_id="retired")]
    if environment != "production":
        cases.append(_message(app_id="someone-else"))
    for message in cases:
        with pytest.raises(RejectMessage) as refused:
            source_of(message, service, "tvp-police")
        assert refused.value.reason == "sender_not_a_party"
