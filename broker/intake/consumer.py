"""The MASH intake consumer: open each disclosure, store the alert once, then acknowledge."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, insert, select
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, SQLModel

from broker.audit import AuditKind, AuditLog, AuditRecord
from broker.batching import Batcher, together_else_each
from broker.db import (
    applied_among,
    gated_at_first_write,
    gated_session,
    mark_applied,
    remember_jti,
    remember_jtis,
    session_scope,
    write_gate,
)
from broker.exceptions import ReplayDetected, SecurityError, TransportError
from broker.intake.context import IntakeContext
from broker.intake.opening import DisclosureOpener, Opened
from broker.intake.store import IntakeStore, ParsedBatch, log_triaged, triage_batch
from broker.logging import get_logger
from broker.messaging import Consumer, ReceivedMessage, RejectMessage, RetryLater
from broker.models import MashAlert, new_row
from broker.preparers import PrepareProcessDied, PrepareProcesses
from broker.service import Service
from broker.topology import Recipient, RecipientKind, recipient_queue_name
from schemas import DisclosureClaims

__all__ = ["IntakeConsumer", "StoreOutcome"]

_log = get_logger("intake")
_ALERTS = SQLModel.metadata.tables["mash_alert"]
#: The alert's columns but its id (given by the database, read back by ``_INSERT_ALERTS``).
_ALERT_COLUMNS = tuple(c.name for c in _ALERTS.columns if c.name != "id")
#: A batch's alerts in one statement; ``sort_by_parameter_order`` gives their ids back in
#: the order of the rows given (matched by the alert's unique ``jti``, its sentinel).
_INSERT_ALERTS = insert(_ALERTS).returning(_ALERTS.c.id, sort_by_parameter_order=True)
#: Which of a batch's events have alerts for a party already (Core, built once: run on the
#: connection, a statement skips the ORM's layer, about 120 µs of it).
_STORED_EVENTS = select(_ALERTS.c.event_id).where(
    _ALERTS.c.recipient == bindparam("party"),
    _ALERTS.c.event_id.in_(bindparam("events", expanding=True)),
)
_AUDITABLE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:|/+-]{0,99}$")


#: A delivery as the batcher holds it: body, AMQP message id, and what opening it gave.
_Delivery = tuple[bytes, str | None, Opened | SecurityError | None]


class StoreOutcome:
    """What became of one delivery."""

    STORED = "stored"
    DUPLICATE = "duplicate"


class IntakeConsumer:
    """Consumes the borough's MASH queue on behalf of the MASH party."""

    def __init__(
        self,
        service: Service,
        party: str | None = None,
        *,
        preparers: PrepareProcesses | None = None,
    ) -> None:
        """Prepare the consumer; ``run`` its ``consumer`` to start.

        Args:
            service: the loaded service.
            party: the MASH party whose queue to consume; ``intake.mash_party`` if None.
            preparers: prepare processes (``amqp.prepare_processes``) to open deliveries
                in before they are stored; the storing thread opens them if None, or if
                none is ready.
        """
        self._service = service
        party = party or service.settings.intake.mash_party
        self._party = party
        self._opener = DisclosureOpener(service, party)
        self.intake_store = IntakeStore(IntakeContext.load(service))
        self._preparers = preparers
        self._consumer_name = f"intake.{party}"
        borough = service.settings.borough
        self.queue = recipient_queue_name(Recipient(party, RecipientKind.MASH, borough), borough)
        # Deliveries that arrive while one transaction commits are stored in the next, so
        # a burst costs one commit rather than one per alert (see broker.batching).
        self._batcher: Batcher[_Delivery, str] = Batcher(
            self._store_batch, max_size=service.settings.amqp.prefetch, name=f"intake {party}"
        )
        self.consumer = Consumer(
            service.settings.amqp, self.queue, self._handle, name=f"intake {party}"
        )

    async def _handle(self, message: ReceivedMessage) -> None:
        opened: Opened | SecurityError | None = None
        if self._preparers is not None:
            try:
                opened = await self._preparers.open(self._party, message.body)
            except SecurityError as exc:
                opened = exc  # refused, audited and dead-lettered by the batch as before
            except PrepareProcessDied:
                _log.warning("prepare_process_unavailable", consumer=self._consumer_name)
        try:
            await self._batcher.submit((message.body, message.message_id, opened))
        except TransportError as exc:
            raise RetryLater("database_unavailable") from exc

    def _store_batch(self, deliveries: Sequence[_Delivery]) -> list[str | BaseException]:
        """One transaction for the batch; if it fails, each delivery on its own."""
        return together_else_each(
            deliveries,
            lambda batch: self.store_many(
                [(body, message_id) for body, message_id, _ in batch],
                opened=[opened for *_, opened in batch],
            ),
            lambda delivery: self.store(delivery[0], delivery[1], opened=delivery[2]),
            name=self._consumer_name,
        )

    def store_many(
        self,
        deliveries: Sequence[tuple[bytes, str | None]],
        *,
        opened: Sequence[Opened | SecurityError | None] | None = None,
    ) -> list[str | RejectMessage]:
        """Open, verify and store several disclosures in ONE transaction (group commit).

        Each delivery meets the checks :meth:`store` applies, with the same outcome; the
        tokens are opened before anything is written, and everything is committed
        together, so the caller acks each delivery only after this returns.

        Args:
            deliveries: (body, AMQP message id) per delivery.
            opened: per delivery, what opening it already gave (in a prepare process,
                as of its arrival), or None to open it here.

        Returns:
            Per delivery, in order: ``StoreOutcome.STORED``, ``StoreOutcome.DUPLICATE``,
            or the ``RejectMessage`` to raise for a refused one (audited as dead-lettered
            in the same transaction).

        Raises:
            TransportError: the database is unavailable; nothing was stored.
            Exception: any other failure fails the whole batch and nothing is stored;
                store the deliveries one by one to isolate it.
        """
        now = datetime.now(UTC)
        outcomes: list[str | RejectMessage | None] = []
        accepted: list[tuple[int, DisclosureClaims, bytes, str | None, tuple[str, datetime]]] = []
        refused: list[AuditRecord] = []
        early = opened if opened is not None else [None] * len(deliveries)
        if len(early) != len(deliveries):
            raise ValueError("one opening per delivery")
        sessions = self._service.sessions
        with write_gate(sessions) as gate, session_scope(sessions) as session:
            applied = self._applied_among(session, [m for _, m in deliveries if m])
            for (body, message_id), ready in zip(deliveries, early, strict=True):
                key = message_id[:128] if message_id else None
                if key is not None and key in applied:
                    outcomes.append(StoreOutcome.DUPLICATE)
                    continue
                try:
                    result = self._open(body, ready, now)
                except SecurityError as exc:
                    refused.append(self._refusal_record(exc, message_id))
                    outcomes.append(RejectMessage(exc.code))
                    continue
                if key is not None:
                    # A second delivery of the same message in this batch is a redelivery.
                    applied.add(key)
                accepted.append((len(outcomes), result.claims, body, message_id, result.jti))
                outcomes.append(None)
            # Pure work and reads on the batch first: they would otherwise hold the write
            # lock. An alert of these events stored meanwhile (by another process of the
            # intake) breaks the alerts' unique key, failing the batch: it is then stored
            # one delivery at a time, where that alert is a duplicate.
            parsed = self._parse([claims for _, claims, *_ in accepted])
            stored_events = self._stored_events(session, [claims for _, claims, *_ in accepted])
            # Writes from here on: on SQLite the write lock is held only for these.
            gate.enter()
            remembered = remember_jtis(session, [jti for *_, jti in accepted])
            fresh: list[tuple[int, DisclosureClaims, bytes]] = []
            for index, claims, body, message_id, (jti, _) in accepted:
                if jti not in remembered:
                    error = ReplayDetected(f"token id {jti} was seen before")
                    refused.append(self._refusal_record(error, message_id))
                    outcomes[index] = RejectMessage(error.code)
                    continue
                remembered.discard(jti)  # a second copy in this batch is a replay too
                fresh.append((index, claims, body))
            stored: list[tuple[int | None, str]] = []
            triaged: list[dict[str, Any]] = []
            results = self._apply_many(
                session,
                [(c, b) for _, c, b in fresh],
                now,
                parsed,
                stored_events=stored_events,
                stored=stored,
                triaged=triaged,
            )
            for (index, _, _), outcome in zip(fresh, results, strict=True):
                outcomes[index] = outcome
            if refused:
                self._service.audit.append_many(session, refused)
        # Logged once committed: the write gate is not held for the log's writes.
        self._log_committed(stored, triaged)
        for record in refused:
            _log.warning("disclosure_refused", reason=record.reason, consumer=self._consumer_name)
        return [outcome for outcome in outcomes if outcome is not None]

    def _applied_among(self, session: Session, message_ids: list[str]) -> set[str]:
        """Which of these message ids this consumer has applied already."""
        return applied_among(
            session, self._consumer_name, (message_id[:128] for message_id in message_ids)
        )

    def store(
        self,
        body: bytes,
        message_id: str | None,
        *,
        opened: Opened | SecurityError | None = None,
    ) -> str:
        """Open, verify and store one disclosure; the caller acks only after this returns.

        Args:
            body: the disclosure token.
            message_id: its AMQP message id.
            opened: what opening it already gave (in a prepare process), or None to open
                it here.

        Returns:
            ``StoreOutcome.STORED``, or ``StoreOutcome.DUPLICATE`` for a redelivery.

        Raises:
            RejectMessage: the disclosure failed a security check (audited as refused).
            TransportError: the database is unavailable; nothing was stored.
        """
        now = datetime.now(UTC)
        stored: list[tuple[int | None, str]] = []
        triaged: list[dict[str, Any]] = []
        refusal: SecurityError | None = None
        with gated_at_first_write(self._service.sessions) as session:
            if message_id and self._applied_among(session, [message_id]):
                return StoreOutcome.DUPLICATE
            try:
                result = self._open(body, opened, now)
                # Remembered in the transaction that stores the alert: a replay is refused.
                remember_jti(session, *result.jti)
            except SecurityError as exc:
                refusal = exc
            else:
                (outcome,) = self._apply_many(
                    session,
                    [(result.claims, body)],
                    now,
                    None,
                    stored_events=self._stored_events(session, [result.claims]),
                    stored=stored,
                    triaged=triaged,
                )
        if refusal is not None:
            self._refuse(refusal, message_id)
            raise RejectMessage(refusal.code)
        self._log_committed(stored, triaged)
        return outcome

    def _open(self, body: bytes, ready: Opened | SecurityError | None, now: datetime) -> Opened:
        """What opening ``body`` gives: ``ready`` if it was opened already, else opened now.

        Raises:
            SecurityError: the token failed a check (now, or when it was opened).
        """
        if isinstance(ready, SecurityError):
            raise ready
        return ready if ready is not None else self._opener.open(body, now)

    def _parse(self, batch: Sequence[DisclosureClaims]) -> ParsedBatch | None:
        """The triage's parsing of ``batch``, or None if it fails: the triage then parses
        under its savepoint, where a fault costs only the alerts' triage, never their
        storing (see ``_triage_many``)."""
        try:
            return self.intake_store.parse_batch(batch)
        except Exception:  # noqa: BLE001 - met again, and logged by alert id, in the triage
            return None

    @staticmethod
    def _log_committed(stored: list[tuple[int | None, str]], triaged: list[dict[str, Any]]) -> None:
        """Log what a transaction stored, once it has committed (not under the write gate)."""
        for alert_id, event_type in stored:
            _log.info("alert_stored", alert_id=alert_id, event_type=event_type)
        log_triaged(triaged)

    def _apply_many(
        self,
        session: Session,
        opened: Sequence[tuple[DisclosureClaims, bytes]],
        now: datetime,
        parsed: ParsedBatch | None,
        *,
        stored_events: set[uuid.UUID],
        stored: list[tuple[int | None, str]],
        triaged: list[dict[str, Any]],
    ) -> list[str]:
        """Store opened disclosures: the inbox rows, the alerts, their audit entries and
        their triage, a few statements in all whatever their number.

        ``parsed`` is the triage's parsing of their claims and ``stored_events`` the ids of
        their events that have alerts already, both found before the write lock. The new
        alerts' (id, event type) are added to ``stored`` and their triage rows to
        ``triaged``, for the caller to log once the transaction has committed.
        """
        if not opened:
            return []
        connection = session.connection()
        mark_applied(
            connection,
            [
                {"consumer": self._consumer_name, "message_id": claims.jti, "processed_at": now}
                for claims, _ in opened
            ],
        )
        outcomes: list[str] = []
        alerts: list[tuple[MashAlert, DisclosureClaims]] = []
        for claims, token in opened:
            event_id = claims.provenance.source_event_id
            if event_id in stored_events:
                # The same event sealed again (a partner resent it): one alert, not two.
                outcomes.append(StoreOutcome.DUPLICATE)
                continue
            stored_events.add(event_id)
            alerts.append((self._alert_row(claims, token, now), claims))
            outcomes.append(StoreOutcome.STORED)
        if alerts:
            # One INSERT for the batch's alerts, their ids read back in order; the rows
            # stay plain objects (not the session's): nothing changes them afterwards, and
            # an ORM flush of them cost twice the statement.
            ids = connection.execute(
                _INSERT_ALERTS,
                [{name: getattr(alert, name) for name in _ALERT_COLUMNS} for alert, _ in alerts],
            ).scalars()
            for (alert, _), alert_id in zip(alerts, ids, strict=True):
                alert.id = alert_id
            self._service.audit.append_many(
                session, [self._delivered_record(alert) for alert, _ in alerts]
            )
        triaged.extend(self._triage_many(session, alerts, parsed))
        stored.extend((alert.id, alert.event_type) for alert, _ in alerts)
        return outcomes

    def _stored_events(self, session: Session, batch: Sequence[DisclosureClaims]) -> set[uuid.UUID]:
        """Which of these claims' events have an alert for this party already."""
        if not batch:
            return set()
        events = list({c.provenance.source_event_id for c in batch})
        found = session.connection().execute(
            _STORED_EVENTS, {"party": self._party, "events": events}
        )
        return set(found.scalars())

    def _alert_row(self, claims: DisclosureClaims, token: bytes, now: datetime) -> MashAlert:
        metadata = claims.event.get("metadata", {})
        return new_row(
            MashAlert,
            recipient=self._party,
            event_id=claims.provenance.source_event_id,
            jti=claims.jti,
            event_type=str(claims.event_type),
            source_agency=claims.provenance.source_agency,
            rule_id=claims.rule_id,
            lawful_basis=str(claims.lawful_basis),
            correlation_id=metadata.get("correlation_id"),
            received_at=now,
            token=token.decode("ascii"),
        )

    def _delivered_record(self, alert: MashAlert) -> AuditRecord:
        return AuditLog.record(
            kind=AuditKind.DELIVERED,
            event_id=alert.event_id,
            recipient=self._party,
            jti=alert.jti,
            detail=f"alert_id={alert.id} consumer={self._consumer_name}",
        )

    def _triage_many(
        self,
        session: Session,
        alerts: Sequence[tuple[MashAlert, DisclosureClaims]],
        parsed: ParsedBatch | None = None,
    ) -> list[dict[str, Any]]:
        """Triage a batch's alerts under one savepoint; if any fails, each under its own.

        A savepoint costs two statements and a flush; one for the batch instead of one per
        alert. When one alert's triage fails, the batch's triage is rolled back and redone
        alert by alert (:meth:`_triage`), so only the faulty alert is left untriaged.

        Returns:
            The triage rows written (for ``log_triaged`` once committed).
        """
        if len(alerts) > 1:
            try:
                with session.begin_nested(), triage_batch(session, parsed) as rows:
                    batch = [claims for _, claims in alerts]
                    self.intake_store.preload(session, batch, parsed)
                    for alert, claims in alerts:
                        self.intake_store.on_alert(session, alert, claims)
            except (TransportError, OperationalError):
                raise
            except Exception:  # noqa: BLE001 - redone alert by alert below, which logs it
                _log.warning("batch_triage_failed", alerts=len(alerts))
            else:
                return rows
        return [
            row for alert, claims in alerts for row in self._triage(session, alert, claims, parsed)
        ]

    def _triage(
        self,
        session: Session,
        alert: MashAlert,
        claims: DisclosureClaims,
        parsed: ParsedBatch | None = None,
    ) -> list[dict[str, Any]]:
        """Triage one alert under a savepoint of its own; its triage row, if written.

        ``parsed``: its batch's claims as parsed before the write lock, if they were."""
        # The alert is kept whatever happens here: a fault in linking, clocks or scoring
        # rolls back to this savepoint and the alert shows in the queue as not triaged,
        # rather than the delivery going round until it is dead-lettered.
        try:
            with session.begin_nested(), triage_batch(session, parsed) as rows:
                self.intake_store.on_alert(session, alert, claims)
        except (TransportError, OperationalError):
            raise
        except Exception:  # noqa: BLE001 - see above; logged with the alert id only
            _log.exception("alert_triage_failed", alert_id=alert.id)
            return []
        return rows

    def _refusal_record(self, error: SecurityError, message_id: str | None) -> AuditRecord:
        detail = f"consumer={self._consumer_name}"
        if message_id and _AUDITABLE_ID.match(message_id):
            detail += f" message_id={message_id}"
        # Nothing can be read of a refused disclosure (not even its event id): it is recorded
        # as dead-lettered, with the reason, and goes to the queue's dead-letter queue.
        return AuditLog.record(
            kind=AuditKind.DEAD_LETTERED, recipient=self._party, reason=error.code, detail=detail
        )

    def _refuse(self, error: SecurityError, message_id: str | None) -> None:
        record = self._refusal_record(error, message_id)
        with gated_session(self._service.sessions) as session:
            self._service.audit.append_many(session, [record])
        _log.warning("disclosure_refused", reason=error.code, consumer=self._consumer_name)
