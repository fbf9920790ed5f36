"""The receiving side without RabbitMQ: open, check the sender, complete, route, audit."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlmodel import col
from structlog.testing import capture_logs

from broker import envelope
from broker.audit import verify
from broker.crossborder import (
    NOT_A_NEIGHBOUR,
    SOURCE_SYSTEM,
    UNAUDITABLE_JTI,
    CrossBorderReceiver,
    ReceiptOutcome,
)
from broker.db import session_scope
from broker.keys import KeyRegistry, KeyUse, PartyKeys, PrivateKey
from broker.messaging import RejectMessage
from broker.models import AuditEntry, AuditKind, OutboxMessage
from broker.policy import load_agreement
from broker.replay import MemoryReplayStore
from broker.service import Service
from schemas.common import make_test_nhs_number
from tests.crossborder.helpers import (
    AGREEMENT_A,
    PARTY_A,
    SLOUGH,
    WINDSOR,
    BoroughKeys,
    borough_settings,
    disclosure_to_b,
    filled_paths,
    missing_found_event,
    seal_to_b,
)


@pytest.fixture
def service_b(tmp_path: Path, borough_keys: BoroughKeys) -> Iterator[Service]:
    settings = borough_settings(
        side="b",
        keys=borough_keys,
        amqp_url="amqp://guest:guest@127.0.0.1:5672/unused",
        db_url=f"sqlite:///{tmp_path / 'b.db'}",
    )
    service = Service.load(settings)
    try:
        yield service
    finally:
        service.engine.dispose()


@pytest.fixture
def receiver(service_b: Service) -> CrossBorderReceiver:
    return CrossBorderReceiver(service_b)


@pytest.fixture
def registry_a(borough_keys: BoroughKeys) -> KeyRegistry:
    return KeyRegistry.load(borough_keys.a)


@pytest.fixture
def wam_broker(borough_keys: BoroughKeys, registry_a: KeyRegistry) -> PartyKeys:
    return PartyKeys.load(borough_keys.a, PARTY_A, registry_a)


def _sealed_found(
    wam_broker: PartyKeys, registry_a: KeyRegistry, **event_args: Any
) -> tuple[uuid.UUID, str]:
    event = missing_found_event(**event_args)
    minimised = disclosure_to_b(load_agreement(AGREEMENT_A), event)
    token = seal_to_b(
        minimised, sender=wam_broker, registry=registry_a, event_id=event.metadata.event_id
    )
    return event.metadata.event_id, token


def _audit(service: Service, kind: AuditKind) -> list[AuditEntry]:
    with session_scope(service.sessions) as session:
        rows = session.execute(
            select(AuditEntry).where(col(AuditEntry.kind) == kind).order_by(col(AuditEntry.seq))
        ).scalars()
        return list(rows)


def _outbox(service: Service) -> list[OutboxMessage]:
    with session_scope(service.sessions) as session:
        return list(session.execute(select(OutboxMessage)).scalars())


def test_a_neighbours_disclosure_is_routed_under_this_borough_s_agreement(
    receiver: CrossBorderReceiver,
    service_b: Service,
    wam_broker: PartyKeys,
    registry_a: KeyRegistry,
    borough_keys: BoroughKeys,
) -> None:
    event_id, token = _sealed_found(wam_broker, registry_a, lives_in=SLOUGH)

    receipt = receiver.receive(token.encode(), "m-1")

    assert receipt.outcome is ReceiptOutcome.ACCEPTED
    assert (receipt.sender, receipt.event_id) == (PARTY_A, event_id)
    outbox = {row.recipient: row for row in _outbox(service_b)}
    # The MASH in full, the panel by its own-area subscription (the child lives in Slough).
    assert set(outbox) == {"slough-mash", "slough-panel"}
    received = _audit(service_b, AuditKind.RECEIVED)
    assert [(e.party, e.jti, e.event_id) for e in received] == [(PARTY_A, receipt.jti, event_id)]
    assert "adapter=xborder" in (received[0].detail or "")
    mash = PartyKeys.load(borough_keys.b, "slough-mash", service_b.registry)
    claims = envelope.open(
        outbox["slough-mash"].token,
        recipient=mash,
        registry=service_b.registry,
        replay=MemoryReplayStore(),
    )
    assert claims.iss == "slough-broker"
    assert claims.provenance.source_agency == PARTY_A
    metadata = claims.event["metadata"]
    assert metadata["event_id"] == str(event_id)
    assert metadata["source"] == {
        "agency": PARTY_A,
        "system": SOURCE_SYSTEM,
        "reference": f"tvp-police:{receipt.jti}",
    }
    paths = filled_paths(claims.event)
    # What A's agreement withheld never reached B, so B cannot pass it on.
    assert "subject.home_address.lines" not in paths
    assert "subject.home_address.postcode" not in paths
    assert not any(p.startswith("body.found_place") for p in paths)
    assert "subject.home_address.local_authority" in paths
    with session_scope(service_b.sessions) as session:
        assert verify(session, None).ok


def test_the_same_message_twice_is_processed_once(
    receiver: CrossBorderReceiver,
    service_b: Service,
    wam_broker: PartyKeys,
    registry_a: KeyRegistry,
) -> None:
    _, token = _sealed_found(wam_broker, registry_a)
    first = receiver.receive(token.encode(), "m-1")
    again = receiver.receive(token.encode(), "m-1")
    assert first.outcome is ReceiptOutcome.ACCEPTED
    assert again.outcome is ReceiptOutcome.DUPLICATE
    assert len(_outbox(service_b)) == first.disclosures == 2
    assert len(_audit(service_b, AuditKind.RECEIVED)) == 1


def test_a_token_id_used_again_in_other_bytes_is_refused(
    receiver: CrossBorderReceiver,
    service_b: Service,
    wam_broker: PartyKeys,
    registry_a: KeyRegistry,
) -> None:
    event = missing_found_event()
    minimised = disclosure_to_b(load_agreement(AGREEMENT_A), event)
    # Dashes every eight characters: never ten digits in a row (see the next-but-one test).
    jti = "-".join(uuid.uuid4().hex[i : i + 8] for i in range(0, 32, 8))
    tokens = [
        seal_to_b(
            minimised,
            sender=wam_broker,
            registry=registry_a,
            event_id=event.metadata.event_id,
            jti=jti,
        )
        for _ in range(2)
    ]
    assert tokens[0] != tokens[1]  # fresh encryption each time
    receiver.receive(tokens[0].encode(), jti)
    with pytest.raises(RejectMessage) as refused:
        receiver.receive(tokens[1].encode(), jti)
    assert refused.value.reason == "replay"
    [rejected] = _audit(service_b, AuditKind.REJECTED)
    assert (rejected.reason, rejected.party, rejected.jti) == ("replay", PARTY_A, jti)
    assert len(_outbox(service_b)) == 2


def test_a_forger_s_key_is_refused_and_audited(
    receiver: CrossBorderReceiver,
    service_b: Service,
    borough_keys: BoroughKeys,
) -> None:
    forger_registry = KeyRegistry(
        [
            *KeyRegistry.load(borough_keys.forger).records,
            *service_b.registry.keys_of("slough-broker"),
        ]
    )
    forger = PartyKeys.load(borough_keys.forger, PARTY_A, forger_registry)
    event = missing_found_event()
    minimised = disclosure_to_b(load_agreement(AGREEMENT_A), event)
    token = seal_to_b(
        minimised, sender=forger, registry=forger_registry, event_id=event.metadata.event_id
    )
    with pytest.raises(RejectMessage) as refused:
        receiver.receive(token.encode(), "forged-1")
    assert refused.value.reason == "unknown_key"
    [rejected] = _audit(service_b, AuditKind.REJECTED)
    assert rejected.reason == "unknown_key"
    assert rejected.party is None  # nothing of an unverified message is believed
    assert "message_id=forged-1" in (rejected.detail or "")
    assert _outbox(service_b) == []
    assert _audit(service_b, AuditKind.RECEIVED) == []


def test_a_wrong_signature_under_the_neighbour_s_key_id_is_refused(
    receiver: CrossBorderReceiver,
    service_b: Service,
    borough_keys: BoroughKeys,
) -> None:
    forger_keys = PartyKeys.load(borough_keys.forger, PARTY_A)
    assert forger_keys.signing is not None
    # The header names wam-broker's real signing key; the forger's key made the signature.
    real = service_b.registry.current_key(PARTY_A, KeyUse.SIGNING)
    impostor = PartyKeys(PARTY_A, PrivateKey(real, forger_keys.signing.key), {})
    event = missing_found_event()
    minimised = disclosure_to_b(load_agreement(AGREEMENT_A), event)
    token = seal_to_b(
        minimised, sender=impostor, registry=service_b.registry, event_id=event.metadata.event_id
    )
    with pytest.raises(RejectMessage) as refused:
        receiver.receive(token.encode(), None)
    assert refused.value.reason == "signature_invalid"
    assert [e.reason for e in _audit(service_b, AuditKind.REJECTED)] == ["signature_invalid"]
    assert _outbox(service_b) == []


def test_a_sender_that_is_not_a_neighbouring_broker_is_refused(
    receiver: CrossBorderReceiver,
    service_b: Service,
    borough_keys: BoroughKeys,
) -> None:
    # A party of B's own agreement, with registered keys, but a panel, not a broker.
    panel = PartyKeys.load(borough_keys.b, "slough-panel", service_b.registry)
    event = missing_found_event()
    minimised = disclosure_to_b(load_agreement(AGREEMENT_A), event)
    token = seal_to_b(
        minimised, sender=panel, registry=service_b.registry, event_id=event.metadata.event_id
    )
    with pytest.raises(RejectMessage) as refused:
        receiver.receive(token.encode(), None)
    assert refused.value.reason == NOT_A_NEIGHBOUR
    [rejected] = _audit(service_b, AuditKind.REJECTED)
    assert (rejected.party, rejected.event_id) == ("slough-panel", event.metadata.event_id)
    assert _outbox(service_b) == []


def test_an_event_lacking_a_required_field_is_refused_without_echoing_values(
    receiver: CrossBorderReceiver,
    service_b: Service,
    wam_broker: PartyKeys,
    registry_a: KeyRegistry,
) -> None:
    event = missing_found_event()
    minimised = disclosure_to_b(load_agreement(AGREEMENT_A), event)
    del minimised["body"]["found_at"]
    nhs_number = minimised["subject"]["nhs_number"]
    token = seal_to_b(
        minimised, sender=wam_broker, registry=registry_a, event_id=event.metadata.event_id
    )
    with capture_logs() as logs, pytest.raises(RejectMessage) as refused:
        receiver.receive(token.encode(), None)
    assert refused.value.reason == "incomplete_event"
    [rejected] = _audit(service_b, AuditKind.REJECTED)
    assert (rejected.reason, rejected.party) == ("incomplete_event", PARTY_A)
    assert nhs_number not in repr(logs)
    assert _outbox(service_b) == []


def test_an_event_is_never_sent_back_to_the_broker_it_came_from(
    receiver: CrossBorderReceiver,
    service_b: Service,
    wam_broker: PartyKeys,
    registry_a: KeyRegistry,
) -> None:
    # Placed by Slough, living in Windsor: A tells Slough (the placing authority); B's rule
    # for children living in Windsor would tell wam-broker, which sent it.
    _, token = _sealed_found(wam_broker, registry_a, lives_in=WINDSOR, placed_by=SLOUGH)
    receipt = receiver.receive(token.encode(), None)
    assert receipt.outcome is ReceiptOutcome.ACCEPTED
    assert PARTY_A not in {row.recipient for row in _outbox(service_b)}
    refused = [
        (e.recipient, e.rule_id, e.reason)
        for e in _audit(service_b, AuditKind.REFUSED)
        if e.recipient == PARTY_A
    ]
    assert refused == [(PARTY_A, "cross-border-back", "source_of_event")]


def test_a_token_id_the_audit_log_cannot_record_is_refused_not_retried_forever(
    receiver: CrossBorderReceiver,
    service_b: Service,
    wam_broker: PartyKeys,
    registry_a: KeyRegistry,
) -> None:
    # An older or careless sender's random id that happens to hold a valid NHS number.
    jti = f"ab{make_test_nhs_number(42)}cdef0123abcdef"
    event = missing_found_event()
    minimised = disclosure_to_b(load_agreement(AGREEMENT_A), event)
    token = seal_to_b(
        minimised, sender=wam_broker, registry=registry_a, event_id=event.metadata.event_id, jti=jti
    )
    with pytest.raises(RejectMessage) as refused:
        receiver.receive(token.encode(), jti)
    assert refused.value.reason == UNAUDITABLE_JTI
    [rejected] = _audit(service_b, AuditKind.REJECTED)
    assert (rejected.party, rejected.jti) == (PARTY_A, None)
    assert jti not in (rejected.detail or "")
    assert _outbox(service_b) == []
