"""Two boroughs' brokers on the local RabbitMQ, linked by a shovel: the whole path, outages,
strangers and forgeries. Each broker has its own virtual host, database, keys and agreement."""

from __future__ import annotations

import asyncio
import socket
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import aio_pika
import pytest
from pydantic import SecretStr
from sqlalchemy import select
from sqlmodel import col

from adapters import AdapterContext, get_adapter
from broker import envelope
from broker.audit import verify
from broker.crossborder import (
    LinkStatus,
    Management,
    NotANeighbour,
    link,
    link_statuses,
    neighbour_for,
    receiving_topology,
    unlink,
)
from broker.db import session_scope
from broker.intake.consumer import IntakeConsumer
from broker.keys import KeyRegistry, KeyUse, PartyKeys, PrivateKey
from broker.models import AuditEntry, AuditKind, MashAlert, OutboxMessage
from broker.outbox import outbox_backlog
from broker.policy import is_allowed, load_agreement
from broker.replay import MemoryReplayStore
from broker.runtime import Runtime
from broker.service import Service
from broker.settings import AmqpSettings
from broker.topology import DISCLOSURES_EXCHANGE, disclosure_routing_key, ensure_topology
from tests.crossborder.conftest import TwoBoroughs
from tests.crossborder.helpers import (
    AGREEMENT_A,
    PARTY_A,
    PARTY_B,
    READING,
    SLOUGH,
    BoroughKeys,
    disclosure_to_b,
    filled_paths,
    missing_found_event,
    police_found,
    police_report,
    seal_to_b,
)
from tests.integration.helpers import eventually, publish_native
from tests.rabbitfixtures import quoted

pytestmark = [pytest.mark.rabbitmq]

#: Metadata the receiving broker completes from the envelope (broker/crossborder/canonical.py).
COMPLETED = {
    "metadata.source.agency",
    "metadata.source.system",
    "metadata.source.reference",
    "metadata.lawful_basis",
    "metadata.occurred_at",
    "metadata.recorded_at",
}


# --------------------------------------------------------------------------- helpers


@asynccontextmanager
async def running(two: TwoBoroughs) -> AsyncIterator[None]:
    """A: ingest, relay, MASH intake. B: cross-border receiver, relay, its MASH intake."""
    async with (
        Runtime(two.a, ("ingest", "relay", "intake")),
        Runtime(two.b, ("xborder", "relay")),
    ):
        intake_b = IntakeConsumer(two.b)
        task = asyncio.create_task(intake_b.consumer.run())
        try:
            await intake_b.consumer.wait_ready()
            yield
        finally:
            await intake_b.consumer.stop()
            await task


def _management(service: Service) -> Management:
    return Management.from_settings(service.settings.amqp)


async def link_to_b(two: TwoBoroughs, uri: str | None = None) -> None:
    neighbour = neighbour_for(two.a.agreement, SLOUGH)
    await link(
        two.a.settings,
        neighbour,
        SecretStr(uri or two.link_user.uri(two.vhost_b)),
        management=_management(two.a),
    )


def unlink_b(two: TwoBoroughs) -> None:
    assert unlink(
        two.a.settings, neighbour_for(two.a.agreement, SLOUGH), management=_management(two.a)
    )


def alerts(service: Service) -> list[MashAlert]:
    with session_scope(service.sessions) as session:
        return list(session.execute(select(MashAlert).order_by(col(MashAlert.id))).scalars())


def audit(service: Service, kind: AuditKind) -> list[AuditEntry]:
    with session_scope(service.sessions) as session:
        statement = select(AuditEntry).where(col(AuditEntry.kind) == kind)
        return list(session.execute(statement.order_by(col(AuditEntry.seq))).scalars())


async def ready(vhost: str, queue: str) -> int:
    """Messages ready in ``queue``, from the broker itself (the management API's figures
    are refreshed only every few seconds)."""
    url = f"amqp://guest:guest@127.0.0.1:5672/{quoted(vhost)}"
    async with await aio_pika.connect(url) as connection:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, passive=True)
        count = declared.declaration_result.message_count
    return int(count or 0)


async def until(check: Callable[[], Awaitable[bool]], *, within: float = 15.0) -> None:
    """Wait until the async ``check()`` holds; fail the test when it never does."""
    deadline = asyncio.get_running_loop().time() + within
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {within} s")
        await asyncio.sleep(0.1)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def allowed_for_b(two: TwoBoroughs, raw: bytes) -> set[str]:
    """The fields A's agreement lets Slough's broker have of a police record's event."""
    [event] = get_adapter("police").parse(raw, AdapterContext("tvp-police"))
    return set(two.a.policy.evaluate(event, datetime.now(UTC)).require(PARTY_B).fields)


# --------------------------------------------------------------------------- scenarios


@pytest.mark.parametrize(
    "xborder_backend",
    ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)],
    indirect=True,
)
async def test_a_child_of_b_missing_and_found_in_a_reaches_both_mashes_minimised(
    two_boroughs: TwoBoroughs, borough_keys: BoroughKeys
) -> None:
    two = two_boroughs
    report, found = police_report(1), police_found(1)
    await link_to_b(two)
    async with running(two):
        await publish_native(
            two.a, [("police", report, "tvp-police"), ("police", found, "tvp-police")]
        )
        await eventually(
            lambda: (
                len(alerts(two.b)) == 2 and len(alerts(two.a)) == 2 and outbox_backlog(two.b) == 0
            ),
            within=60,
        )
        statuses = link_statuses(two.a.settings, two.a.agreement, management=_management(two.a))

    # A's MASH and B's MASH hold the same two events; B's came from A's broker.
    assert {a.event_id for a in alerts(two.a)} == {b.event_id for b in alerts(two.b)}
    assert {b.source_agency for b in alerts(two.b)} == {PARTY_A}
    assert {b.recipient for b in alerts(two.b)} == {"slough-mash"}

    # Only what A's agreement allows Slough's broker crossed the border.
    mash_b = PartyKeys.load(borough_keys.b, "slough-mash", two.b.registry)
    allowed = allowed_for_b(two, report) | allowed_for_b(two, found)
    for alert in alerts(two.b):
        claims = envelope.open(
            alert.token, recipient=mash_b, registry=two.b.registry, replay=MemoryReplayStore()
        )
        for path in filled_paths(claims.event):
            assert path in COMPLETED or is_allowed(path, allowed), path
        assert claims.event["metadata"]["source"]["reference"].startswith("tvp-police:")
    seen_by_b = {path for alert in alerts(two.b) for path in _paths(alert, mash_b, two.b)}
    withheld = ("body.circumstances", "body.last_seen.", "body.found_place.", "body.philomena")
    assert not [path for path in seen_by_b if path.startswith(withheld)]
    assert sorted(path for path in seen_by_b if path.startswith("subject.home_address.")) == [
        "subject.home_address.local_authority"
    ]

    # Both sides audit: A published to Slough's broker, B received exactly those tokens.
    published = {e.jti for e in audit(two.a, AuditKind.PUBLISHED) if e.recipient == PARTY_B}
    received = audit(two.b, AuditKind.RECEIVED)
    assert {e.jti for e in received} == published
    assert len(published) == 2
    assert {e.party for e in received} == {PARTY_A}
    shared = [e for e in audit(two.a, AuditKind.SHARED) if e.recipient == PARTY_B]
    assert {e.rule_id for e in shared} == {"cross-border-missing"}
    with session_scope(two.b.sessions) as session:
        assert verify(session, None).ok

    # Slough's panel subscribed to its own area: it got both, minimised again by B's rules.
    panel_rows = [r for r in _outbox(two.b) if r.recipient == "slough-panel"]
    assert len(panel_rows) == 2
    assert await ready(two.vhost_b, "partner.slough-panel") == 2

    slough = next(s for s in statuses if s.neighbour.borough == SLOUGH)
    assert slough.state == "running"
    assert slough.healthy
    assert slough.queued is not None
    assert slough.queued.total == 0
    assert two.link_user.password not in repr(statuses)


async def test_while_the_link_is_down_disclosures_wait_and_each_arrives_once(
    two_boroughs: TwoBoroughs,
) -> None:
    two = two_boroughs
    await link_to_b(two)
    async with running(two):
        await publish_native(two.a, [("police", police_report(10), "tvp-police")])
        await eventually(lambda: len(alerts(two.b)) == 1, within=60)

        unlink_b(two)  # the link goes down: the shovel is deleted
        await publish_native(
            two.a, [("police", police_report(n), "tvp-police") for n in (11, 12, 13)]
        )
        await until(lambda: _waiting_for_b(two, 3))
        slough = _status_of_slough(two)
        assert slough.state == "not linked"
        assert not slough.healthy
        assert len(alerts(two.b)) == 1

        await link_to_b(two)  # back up: everything that waited is delivered
        await eventually(lambda: len(alerts(two.b)) == 4, within=60)
        await asyncio.sleep(0.5)  # anything delivered twice would show up now
        assert await ready(two.vhost_a, "xborder.E06000039") == 0

    assert Counter(a.event_id for a in alerts(two.b)).most_common(1)[0][1] == 1
    assert len(audit(two.b, AuditKind.RECEIVED)) == 4
    assert {a.event_id for a in alerts(two.b)} <= {a.event_id for a in alerts(two.a)}
    assert await ready(two.vhost_b, "ingest.xborder.dlq") == 0


async def test_a_link_to_a_stopped_endpoint_holds_disclosures_until_it_points_right(
    two_boroughs: TwoBoroughs,
) -> None:
    two = two_boroughs
    await link_to_b(two, two.link_user.uri(two.vhost_b, port=closed_port()))
    async with running(two):
        await publish_native(two.a, [("police", police_report(n), "tvp-police") for n in (20, 21)])
        await until(lambda: _waiting_for_b(two, 2))
        # What an operator sees: the link is not running and the backlog grows.
        await eventually(lambda: _backlog_shown(two) == 2, within=12)
        slough = _status_of_slough(two)
        assert slough.state != "running", slough
        assert not slough.healthy
        assert two.link_user.password not in repr(slough)
        assert alerts(two.b) == []

        await link_to_b(two)  # the same shovel, now to the live endpoint
        await eventually(lambda: len(alerts(two.b)) == 2, within=60)
        await asyncio.sleep(0.5)

    assert len({a.event_id for a in alerts(two.b)}) == len(alerts(two.b)) == 2
    assert len(audit(two.b, AuditKind.RECEIVED)) == 2


async def test_a_third_borough_with_no_agreement_gets_nothing(
    two_boroughs: TwoBoroughs, make_vhost: Callable[[], str]
) -> None:
    two = two_boroughs
    vhost_c = make_vhost()  # Reading's broker, which A has no agreement with
    settings_c = AmqpSettings(url=SecretStr(f"amqp://guest:guest@127.0.0.1:5672/{quoted(vhost_c)}"))
    await ensure_topology(settings_c, receiving_topology(two.b.settings))
    with pytest.raises(NotANeighbour):
        neighbour_for(two.a.agreement, READING)
    await link_to_b(two)
    async with running(two):
        # A child who lives in Reading goes missing from Windsor and Maidenhead.
        await publish_native(
            two.a,
            [
                (
                    "police",
                    police_report(30, lives_in=READING, missing_from="E06000040"),
                    "tvp-police",
                )
            ],
        )
        await eventually(lambda: len(alerts(two.a)) == 1 and outbox_backlog(two.a) == 0, within=60)
        await asyncio.sleep(1.0)

    [event_id] = {a.event_id for a in alerts(two.a)}
    recipients = {r.recipient for r in _outbox(two.a) if r.event_id == event_id}
    assert "wam-mash" in recipients
    assert not recipients & {"slough-broker", "bracknell-broker"}
    assert await ready(two.vhost_a, "xborder.E06000039") == 0
    assert await ready(two.vhost_a, "xborder.E06000036") == 0
    assert await ready(vhost_c, "ingest.xborder") == 0
    assert alerts(two.b) == []
    assert audit(two.b, AuditKind.RECEIVED) == []


async def test_a_forged_message_on_the_link_is_refused_and_audited_by_the_receiver(
    two_boroughs: TwoBoroughs, borough_keys: BoroughKeys
) -> None:
    two = two_boroughs
    genuine_keys = PartyKeys.load(borough_keys.a, PARTY_A, two.a.registry)
    forger_registry = KeyRegistry(
        [*KeyRegistry.load(borough_keys.forger).records, *two.a.registry.keys_of(PARTY_B)]
    )
    forger = PartyKeys.load(borough_keys.forger, PARTY_A, forger_registry)
    assert forger.signing is not None
    real_kid = two.a.registry.current_key(PARTY_A, KeyUse.SIGNING)
    impostor = PartyKeys(PARTY_A, PrivateKey(real_kid, forger.signing.key), {})
    tokens = {
        "unknown-key": _sealed(forger, forger_registry),
        "wrong-signature": _sealed(impostor, two.a.registry),
        "genuine": _sealed(genuine_keys, two.a.registry),
    }
    await link_to_b(two)
    async with running(two):
        # Put straight onto A's outbound queue, so the shovel carries them over the link.
        await _publish_disclosures(two.a, tokens)
        await eventually(
            lambda: len(audit(two.b, AuditKind.REJECTED)) == 2 and len(alerts(two.b)) == 1,
            within=60,
        )

    rejected = {e.reason: e for e in audit(two.b, AuditKind.REJECTED)}
    assert set(rejected) == {"unknown_key", "signature_invalid"}
    assert "message_id=unknown-key" in (rejected["unknown_key"].detail or "")
    assert "message_id=wrong-signature" in (rejected["signature_invalid"].detail or "")
    [received] = audit(two.b, AuditKind.RECEIVED)
    assert received.party == PARTY_A
    assert await ready(two.vhost_b, "ingest.xborder.dlq") == 2
    assert await ready(two.vhost_a, "xborder.E06000039") == 0


# --------------------------------------------------------------------------- small helpers


def _outbox(service: Service) -> list[OutboxMessage]:
    with session_scope(service.sessions) as session:
        return list(session.execute(select(OutboxMessage)).scalars())


async def _waiting_for_b(two: TwoBoroughs, count: int) -> bool:
    """All of A's disclosures are published and ``count`` of them wait for Slough."""
    return outbox_backlog(two.a) == 0 and await ready(two.vhost_a, "xborder.E06000039") == count


def _backlog_shown(two: TwoBoroughs) -> int:
    queued = _status_of_slough(two).queued
    return -1 if queued is None else queued.total


def _status_of_slough(two: TwoBoroughs) -> LinkStatus:
    statuses = link_statuses(two.a.settings, two.a.agreement, management=_management(two.a))
    return next(s for s in statuses if s.neighbour.borough == SLOUGH)


def _paths(alert: MashAlert, keys: PartyKeys, service: Service) -> set[str]:
    claims = envelope.open(
        alert.token, recipient=keys, registry=service.registry, replay=MemoryReplayStore()
    )
    return filled_paths(claims.event)


def _sealed(sender: PartyKeys, registry: KeyRegistry) -> str:
    event = missing_found_event()
    minimised = disclosure_to_b(load_agreement(AGREEMENT_A), event)
    return seal_to_b(minimised, sender=sender, registry=registry, event_id=event.metadata.event_id)


async def _publish_disclosures(service: Service, tokens: dict[str, str]) -> None:
    connection = await aio_pika.connect(service.settings.amqp.url.get_secret_value())
    async with connection:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        exchange = await channel.get_exchange(DISCLOSURES_EXCHANGE)
        for message_id, token in tokens.items():
            await exchange.publish(
                aio_pika.Message(
                    token.encode(),
                    message_id=message_id,
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                ),
                routing_key=disclosure_routing_key(PARTY_B, "missing.found"),
                mandatory=True,
            )
