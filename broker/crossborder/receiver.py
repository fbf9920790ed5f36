"""The receiving side of a link: open what a neighbour's broker sent, check it, route it here.

For each message on ``ingest.xborder``, in order:

1. open the envelope with this broker's own keys (its service party), verifying the sender's
   signature against the key registry; a refusal of any kind is audited and dead-lettered;
2. refuse a sender that is not a neighbouring broker in this broker's agreement;
3. complete the event's metadata from the envelope and validate it (``canonical``);
4. decide, seal and store it through the ingest pipeline under this broker's agreement,
   with the token id remembered in the same transaction (replay protection).

The same token delivered twice (a shovel redelivers after a lost confirm) is recognised by
its digest and acknowledged without doing anything again.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from uuid import UUID

from sqlmodel import Session

from broker import envelope
from broker.audit import AuditKind
from broker.crossborder.canonical import IncompleteEvent, canonical_event
from broker.crossborder.neighbours import (
    RECEIVE_CHANNEL,
    RECEIVE_QUEUE,
    neighbours,
    receiving_topology,
)
from broker.db import gated_session, remember_jti
from broker.envelope import EnvelopeLimits
from broker.exceptions import ReplayDetected, SecurityError, TransportError
from broker.logging import get_logger
from broker.messaging import Consumer, ReceivedMessage, RejectMessage, RetryLater
from broker.pipeline import Ingestor
from broker.policy import PartyKind
from broker.service import Service
from broker.topology import ensure_topology

__all__ = [
    "NOT_A_NEIGHBOUR",
    "UNAUDITABLE_JTI",
    "CrossBorderReceiver",
    "Receipt",
    "ReceiptOutcome",
]

_log = get_logger("crossborder")
_AUDITABLE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:|/+-]{0,99}$")
# The audit log refuses a run of ten digits that could be an NHS number; our own brokers
# never make such token ids (broker.envelope), so one from a neighbour is refused.
_TEN_DIGITS = re.compile(r"\d{10}")

#: The refusal reason for a sender that is not a neighbouring broker of the agreement.
NOT_A_NEIGHBOUR = "not_a_neighbouring_broker"
#: The refusal reason for a token id the audit log cannot record (ten digits in a row).
UNAUDITABLE_JTI = "unauditable_jti"


class ReceiptOutcome(StrEnum):
    """What became of one message from a neighbour."""

    #: Opened, verified and routed under this broker's agreement.
    ACCEPTED = "accepted"
    #: The same message was processed before; nothing was done again.
    DUPLICATE = "duplicate"


@dataclass(frozen=True, slots=True)
class Receipt:
    """One message received from a neighbouring broker."""

    outcome: ReceiptOutcome
    sender: str
    event_id: UUID
    jti: str
    disclosures: int = 0
    refusals: int = 0


@dataclass(slots=True)
class _PendingJti:
    """Holds the token id ``envelope.open`` checks, to remember it in the ingest transaction."""

    jti: str | None = None
    expires_at: datetime | None = field(default=None)

    def check_and_remember(self, jti: str, expires_at: datetime) -> None:
        self.jti, self.expires_at = jti, expires_at

    def remember(self, session: Session) -> None:
        if self.jti is not None and self.expires_at is not None:
            remember_jti(session, self.jti, self.expires_at)


class CrossBorderReceiver:
    """Consumes ``ingest.xborder``: disclosures from neighbouring brokers, into this one's path."""

    def __init__(self, service: Service) -> None:
        self._service = service
        self._ingestor = Ingestor(service)
        self._limits = EnvelopeLimits.from_settings(service.settings.crypto)
        self.consumer = Consumer(
            service.settings.amqp, RECEIVE_QUEUE, self._handle, name="xborder receive"
        )

    @classmethod
    async def prepare(cls, service: Service) -> CrossBorderReceiver | None:
        """Declare the receiving queue and return a receiver, or None without neighbours.

        Raises:
            ConfigurationError, TransportError: the queue cannot be declared.
        """
        if not neighbours(service.agreement):
            _log.info("crossborder_receiver_skipped", reason="no neighbouring brokers")
            return None
        await ensure_topology(service.settings.amqp, receiving_topology(service.settings))
        return cls(service)

    async def _handle(self, message: ReceivedMessage) -> None:
        try:
            await asyncio.to_thread(self.receive, message.body, message.message_id)
        except TransportError as exc:
            _log.warning("crossborder_deferred", error=exc.code)
            raise RetryLater("database_unavailable") from exc

    def receive(
        self, body: bytes, message_id: str | None = None, *, now: datetime | None = None
    ) -> Receipt:
        """Open, check, complete and route one message; the caller acks after it returns.

        Args:
            body: the compact JWE as it arrived.
            message_id: the AMQP message id (the sender's jti), for the audit of a refusal.
            now: the time of receipt (default now).

        Returns:
            What was done: accepted (with the disclosures and refusals it caused here), or
            nothing because it was a duplicate.

        Raises:
            RejectMessage: refused (security check, sender not a neighbour, incomplete
                event, replayed token); audited as ``rejected`` with the reason.
            TransportError: the database is unavailable; nothing was stored.
        """
        moment = now or datetime.now(UTC)
        pending = _PendingJti()
        try:
            claims = envelope.open(
                body,
                recipient=self._service.service_keys,
                registry=self._service.registry,
                replay=pending,
                limits=self._limits,
                now=moment,
            )
        except SecurityError as exc:
            self._refuse(exc.code, message_id=message_id)
            raise RejectMessage(exc.code) from None
        event_id = claims.provenance.source_event_id
        if _TEN_DIGITS.search(claims.jti):
            self._refuse(UNAUDITABLE_JTI, message_id=None, party=claims.iss, event_id=event_id)
            raise RejectMessage(UNAUDITABLE_JTI)
        sender = self._service.agreement.party(claims.iss)
        if sender is None or sender.kind is not PartyKind.NEIGHBOURING_BROKER:
            self._refuse(
                NOT_A_NEIGHBOUR,
                message_id=message_id,
                party=claims.iss,
                event_id=event_id,
                jti=claims.jti,
            )
            raise RejectMessage(NOT_A_NEIGHBOUR)
        try:
            event = canonical_event(claims)
        except IncompleteEvent as exc:
            self._refuse(
                exc.code, message_id=message_id, party=claims.iss, event_id=event_id, jti=claims.jti
            )
            raise RejectMessage(exc.code) from None
        try:
            result = self._ingestor.ingest_events(
                RECEIVE_CHANNEL,
                body,
                claims.iss,
                [event],
                received_at=moment,
                received_jti=claims.jti,
                received_detail=f"queue={RECEIVE_QUEUE}",
                in_transaction=pending.remember,
            )
        except ReplayDetected as exc:
            self._refuse(
                exc.code, message_id=message_id, party=claims.iss, event_id=event_id, jti=claims.jti
            )
            raise RejectMessage(exc.code) from None
        outcome = ReceiptOutcome.DUPLICATE if result.duplicate else ReceiptOutcome.ACCEPTED
        _log.info(
            "crossborder_received",
            sender=claims.iss,
            event_id=str(event.metadata.event_id),
            jti=claims.jti,
            outcome=outcome.value,
            disclosures=result.disclosures,
            refusals=result.refusals,
        )
        return Receipt(
            outcome=outcome,
            sender=claims.iss,
            event_id=event.metadata.event_id,
            jti=claims.jti,
            disclosures=result.disclosures,
            refusals=result.refusals,
        )

    def _refuse(
        self,
        reason: str,
        *,
        message_id: str | None,
        party: str | None = None,
        event_id: UUID | None = None,
        jti: str | None = None,
    ) -> None:
        detail = f"adapter={RECEIVE_CHANNEL} queue={RECEIVE_QUEUE}"
        if message_id and _AUDITABLE_ID.match(message_id) and not _TEN_DIGITS.search(message_id):
            detail += f" message_id={message_id}"
        with gated_session(self._service.sessions) as session:
            self._service.audit.append(
                session,
                kind=AuditKind.REJECTED,
                party=party,
                event_id=event_id,
                jti=jti,
                reason=reason,
                detail=detail,
            )
        _log.warning("crossborder_refused", reason=reason, sender=party, message_id=message_id)
