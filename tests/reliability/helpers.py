"""Helpers of the reliability suite: genuine disclosures, publishing, counting effects."""

from __future__ import annotations

import asyncio
import inspect
import re
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlmodel import col

from adapters import AdapterContext, get_adapter
from broker import envelope
from broker.audit import verify
from broker.db import session_scope
from broker.envelope import EnvelopeLimits, Sealed
from broker.keys import PartyKeys
from broker.messaging import OutgoingMessage, Publisher
from broker.models import AuditEntry, AuditKind, MashAlert
from broker.policy import evaluate
from broker.replay import MemoryReplayStore
from broker.runtime import audit_public_keys
from broker.samples import render_all
from broker.samples.catalogue import adapter_for, sender_for
from broker.service import Service
from broker.topology import DISCLOSURES_EXCHANGE, disclosure_routing_key, ensure_topology
from schemas import Event, Provenance

MASH = "wam-mash"
_MESSAGE_ID = re.compile(r"message_id=(\S+)")


def sample_events(seed: int = 1) -> list[tuple[str, bytes, str, list[Event]]]:
    """(adapter, raw, sender, events) for every sample file of ``seed``."""
    now = datetime.now(UTC)
    out = []
    for name, raw in sorted(render_all(seed).items()):
        adapter = adapter_for(name)
        sender = sender_for(adapter)
        out.append(
            (adapter, raw, sender, get_adapter(adapter).parse(raw, AdapterContext(sender, now=now)))
        )
    return out


def mash_event(service: Service) -> tuple[Event, Any]:
    """A sample event the agreement discloses to the MASH, and that disclosure."""
    now = datetime.now(UTC)
    for _adapter, _raw, _sender, events in sample_events():
        for event in events:
            for disclosure in evaluate(service.policy, event, now).disclosures:
                if disclosure.recipient == MASH:
                    return event, disclosure
    raise AssertionError("no sample event is disclosed to the MASH")


def seal_for(
    service: Service,
    event: Event,
    disclosure: Any,
    *,
    recipient: str = MASH,
    now: datetime | None = None,
    limits: EnvelopeLimits | None = None,
) -> Sealed:
    """Seal ``disclosure`` of ``event`` as the broker does (to ``recipient``)."""
    return envelope.seal(
        disclosure.event,
        sender=service.service_keys,
        recipient=recipient,
        registry=service.registry,
        rule_id=disclosure.rule_id,
        lawful_basis=disclosure.lawful_basis,
        purpose=disclosure.purpose,
        provenance=Provenance(
            source_agency=event.metadata.source.agency,
            source_event_id=event.metadata.event_id,
            original_sha256="0" * 64,
        ),
        event_type=event.event_type,
        limits=limits or EnvelopeLimits.from_settings(service.settings.crypto),
        now=now,
    )


def claims_of(service: Service, token: str, party: str = MASH) -> dict[str, Any]:
    """The claims of a genuine token, as JSON values (to forge variations of)."""
    keys = PartyKeys.load(service.keys_dir, party, service.registry)
    claims = envelope.open(
        token, recipient=keys, registry=service.registry, replay=MemoryReplayStore()
    )
    return claims.model_dump(mode="json")


async def publish_disclosures(
    service: Service, items: Sequence[tuple[str, bytes]], *, recipient: str = MASH
) -> None:
    """Publish (message id, body) to the recipient's queue as the relay would, confirmed."""
    await ensure_topology(service.settings.amqp, service.topology)
    async with Publisher(service.settings.amqp, name="test forger") as publisher:
        results = await publisher.publish_batch(
            [
                OutgoingMessage(
                    exchange=DISCLOSURES_EXCHANGE,
                    routing_key=disclosure_routing_key(recipient, "missing.reported"),
                    body=body,
                    message_id=message_id,
                    event_type="missing.reported",
                    source="urn:mash:party:wam-broker",
                )
                for message_id, body in items
            ]
        )
    assert all(r.confirmed for r in results), [r for r in results if not r.confirmed][:3]


def count(service: Service, model: Any, *where: Any) -> int:
    with session_scope(service.sessions) as session:
        return int(
            session.execute(select(func.count()).select_from(model).where(*where)).scalar_one()
        )


def alerts(service: Service) -> int:
    return count(service, MashAlert)


def audit_kinds(service: Service) -> Counter[str]:
    with session_scope(service.sessions) as session:
        return Counter(str(row[0]) for row in session.execute(select(col(AuditEntry.kind))))


def dead_lettered(service: Service) -> dict[str, str]:
    """message id → reason of every DEAD_LETTERED audit entry that names its message."""
    found: dict[str, str] = {}
    with session_scope(service.sessions) as session:
        rows = session.execute(
            select(col(AuditEntry.detail), col(AuditEntry.reason)).where(
                col(AuditEntry.kind) == AuditKind.DEAD_LETTERED
            )
        )
        for detail, reason in rows:
            match = _MESSAGE_ID.search(detail or "")
            assert match, f"a dead-letter entry without its message id: {detail}"
            assert match.group(1) not in found, f"{match.group(1)} audited twice"
            found[match.group(1)] = str(reason)
    return found


def audit_verifies(service: Service) -> None:
    with session_scope(service.sessions) as session:
        report = verify(session, audit_public_keys(service))
    assert report.ok, report.summary()


async def eventually(
    check: Callable[[], Any], *, within: float = 30.0, what: str | Callable[[], str] = ""
) -> None:
    """Wait until ``check()`` (plain or async) is truthy; fail with ``what`` otherwise
    (a callable ``what`` is asked at the time of failure)."""
    deadline = time.monotonic() + within
    while True:
        outcome = check()
        if inspect.isawaitable(outcome):
            outcome = await outcome
        if outcome:
            return
        if time.monotonic() > deadline:
            told = what() if callable(what) else what
            raise AssertionError(f"not within {within} s: {told or check}")
        await asyncio.sleep(0.1)


def mash_events(service: Service, seeds: Sequence[int] = (1,)) -> list[tuple[Event, Any]]:
    """Every sample event of ``seeds`` the agreement discloses to the MASH, with that disclosure."""
    now = datetime.now(UTC)
    found: dict[Any, tuple[Event, Any]] = {}
    for seed in seeds:
        for _adapter, _raw, _sender, events in sample_events(seed):
            for event in events:
                for disclosure in evaluate(service.policy, event, now).disclosures:
                    if disclosure.recipient == MASH:
                        found.setdefault(event.metadata.event_id, (event, disclosure))
    return list(found.values())


def native_items(seed: int) -> list[tuple[str, bytes, str]]:
    """(adapter, raw, sender) of every sample file of ``seed``, for the AMQP ingest."""
    return [(adapter, raw, sender) for adapter, raw, sender, _ in sample_events(seed)]


def expected_mash_alerts(service: Service, seeds: Sequence[int]) -> set[Any]:
    """The event ids the agreement sends to the MASH for the samples of ``seeds``."""
    return {event.metadata.event_id for event, _ in mash_events(service, seeds)}


def stored_event_ids(service: Service) -> list[Any]:
    with session_scope(service.sessions) as session:
        return [row[0] for row in session.execute(select(col(MashAlert.event_id)))]
