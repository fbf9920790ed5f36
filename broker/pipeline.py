"""The ingest pipeline: native message → canonical events → decisions → sealed outbox rows.

Everything one message causes is written in one database transaction: the raw message
(encrypted at rest), the audit entries (received, shared, refused, or rejected) and one
outbox row per disclosure. Only after that commit may the caller acknowledge the message;
the relay publishes the outbox rows later (``broker.outbox``).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol
from uuid import UUID

from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, SQLModel

from adapters import AdapterContext, AdapterError, InputTooLarge, Problem, get_adapter
from broker import envelope
from broker.audit import AuditKind, AuditLog, AuditRecord, EntryDraft, draft
from broker.batching import together_else_each
from broker.db import (
    applied_among,
    gated_at_first_write,
    mark_applied,
    remember_jtis,
    session_scope,
    write_gate,
)
from broker.envelope import EnvelopeLimits
from broker.logging import get_logger
from broker.models import InboxEntry, OutboxMessage, OutboxStatus, RawMessage, SealedRaw
from broker.policy import Decision, evaluate
from broker.rowinsert import RowInsert
from broker.service import Service
from broker.topology import DISCLOSURES_EXCHANGE, disclosure_routing_key
from schemas import Event, Provenance
from schemas.common import is_valid_nhs_number

__all__ = [
    "IngestResult",
    "Ingestor",
    "OnStored",
    "PreparedMessage",
    "StoreHook",
    "kept_copy",
    "message_digest",
]

_log = get_logger("pipeline")

#: Told (on the event loop) the outbox rows a commit has just written, each a mapping of
#: the table's columns (``PreparedMessage.stored_outbox``): the relay in the same process
#: publishes them without selecting them (``OutboxRelay.hand``).
OnStored = Callable[[Sequence[Mapping[str, Any]]], None]


# A batch's rows by one INSERT a table, compiled once and handed to the driver (the ORM's
# bulk-insert path, and SQLAlchemy's execution, cost more than the inserts).
_INSERT_RAW = RowInsert(SQLModel.metadata.tables[RawMessage.__tablename__])
_INSERT_OUTBOX = RowInsert(SQLModel.metadata.tables[OutboxMessage.__tablename__])


def message_digest(raw: bytes) -> str:
    """Lower-case hex SHA-256 of a native message: its identity for dedup and provenance."""
    return hashlib.sha256(raw).hexdigest()


@dataclass(frozen=True)
class IngestResult:
    """What one native message caused."""

    raw_id: UUID | None
    event_ids: tuple[UUID, ...] = ()
    disclosures: int = 0
    refusals: int = 0
    problems: tuple[Problem, ...] = ()
    #: The same bytes were already processed from this source: nothing was done again.
    duplicate: bool = False
    #: The credential the message came with (``PreparedMessage.replay_token``) had been
    #: used before: nothing was stored, and the request is to be refused as a replay.
    replayed: bool = False
    #: The message's ``StoreHook`` said another request got there first (the same
    #: idempotency key, answered meanwhile): nothing was stored.
    held: bool = False

    @property
    def rejected(self) -> bool:
        """True when the adapter could not translate the message."""
        return bool(self.problems)


@dataclass
class _Batch:
    audit: list[AuditRecord] = field(default_factory=list)
    outbox: list[dict[str, Any]] = field(default_factory=list)
    refusals: int = 0


class StoreHook(Protocol):
    """More to read and write in the transaction that stores one prepared message.

    The HTTP API's ``Idempotency-Key``: the key's answer is written with the message's
    effect, in one commit, and a key answered meanwhile by another request is found under
    the same write lock.
    """

    def before(self, connection: Connection) -> bool:
        """Whether to store the message; False holds it back (its result says ``held``)."""
        ...

    def after(self, connection: Connection, result: IngestResult) -> None:
        """Record what storing the message gave (a duplicate too; not a replay)."""
        ...


@dataclass
class PreparedMessage:
    """A native message translated, decided, sealed and audited, not yet stored.

    Made by ``Ingestor.prepare``, stored by ``Ingestor.store_prepared``; its contents
    are the pipeline's own business.
    """

    channel: str
    source: str
    digest: str
    raw_row: SealedRaw
    #: (token id, remember until) of the credential the message came with, remembered in
    #: the transaction that stores the message; if it is already there (a replay), the
    #: message is not stored. None for a channel whose credential is not a one-time token.
    replay_token: tuple[str, datetime] | None = None
    error: AdapterError | None = None
    #: Its audit entries, made ready to be chained (``broker.audit.draft``) by the
    #: prepare step: less work while the write lock is held.
    drafts: list[EntryDraft] = field(default_factory=list)
    batch: _Batch = field(default_factory=_Batch)
    result: IngestResult = field(default_factory=lambda: IngestResult(raw_id=None))
    #: Set by the caller after preparing, in its own process (never pickled with it).
    hook: StoreHook | None = None

    @property
    def dedup_key(self) -> tuple[str, str]:
        """The inbox (consumer, message id) that marks these bytes from this source as seen."""
        return (_inbox_consumer(self.channel, self.source), self.digest)

    def stored_outbox(self, result: IngestResult) -> list[dict[str, Any]]:
        """The outbox rows committed, if ``result`` (storing this message) committed any.

        ``store_prepared`` answers a stored message with its own ``result``; a duplicate,
        a replay or a message held back gets another, and none of its rows were written.
        """
        return self.batch.outbox if result is self.result else []


class Ingestor:
    """Runs the pipeline for one message at a time; safe to share between threads."""

    def __init__(self, service: Service) -> None:
        self._service = service
        self._limits = EnvelopeLimits.from_settings(service.settings.crypto)
        self._issuer_party = service.settings.crypto.service_party

    def ingest(
        self,
        adapter_name: str,
        raw: bytes,
        source: str,
        *,
        received_at: datetime | None = None,
    ) -> IngestResult:
        """Translate, decide, seal and store everything ``raw`` causes, in one transaction.

        Args:
            adapter_name: the adapter for the message's format.
            raw: the native message bytes.
            source: the authenticated sender's party id.
            received_at: when it arrived; now if omitted.

        Returns:
            The event ids, how many disclosures and refusals, or the adapter's problems.

        Raises:
            TransportError: the database is unavailable; nothing was stored.
            AuditEntryInvalid, ConfigurationError: a fault of ours; nothing was stored.
        """
        now = received_at or datetime.now(UTC)
        digest = message_digest(raw)
        adapter = get_adapter(adapter_name)
        try:
            events = adapter.parse(raw, AdapterContext(source_agency=source, now=now))
        except AdapterError as exc:
            return self._reject(
                adapter_name, raw=raw, source=source, digest=digest, error=exc, now=now
            )
        return self.ingest_events(adapter_name, raw, source, events, received_at=now)

    def ingest_events(
        self,
        channel: str,
        raw: bytes,
        source: str,
        events: Sequence[Event],
        *,
        received_at: datetime | None = None,
        received_jti: str | None = None,
        received_detail: str | None = None,
        in_transaction: Callable[[Session], None] | None = None,
    ) -> IngestResult:
        """Decide, seal and store canonical events that already came out of ``raw``.

        The second half of :meth:`ingest`, for entry points that make canonical events
        without an adapter (a disclosure from a neighbouring borough's broker). The same
        transaction, dedup, audit and outbox apply.

        Args:
            channel: how the message came in: the adapter name, or e.g. ``xborder``. Names
                the raw message's origin and the dedup key (with ``source``).
            raw: the message bytes as received; kept encrypted at rest and digested for
                dedup and provenance.
            source: the authenticated sender's party id.
            events: the canonical events the message carries.
            received_at: when it arrived; now if omitted.
            received_jti: the token id the message arrived as, recorded on the received
                audit entries (links them to the sender's own audit).
            received_detail: further ``key=id`` pairs for the received audit entries.
            in_transaction: called inside the transaction once the message is known to be
                new, before anything else is written; raising rolls everything back.

        Returns:
            The event ids and how many disclosures and refusals, or ``duplicate``.

        Raises:
            TransportError: the database is unavailable; nothing was stored.
            AuditEntryInvalid, ConfigurationError: a fault of ours; nothing was stored.
        """
        now = received_at or datetime.now(UTC)
        digest = message_digest(raw)
        batch = _Batch()
        for event in events:
            self._decide(event, source, digest, now, batch)
        try:
            with gated_at_first_write(self._service.sessions) as session:
                raw_row = self._raw_row(channel, raw, source, now)
                if self._seen(session, channel, source, digest):
                    return IngestResult(raw_id=None, duplicate=True)
                _INSERT_RAW(session.connection(), [raw_row.values()])
                if in_transaction is not None:
                    in_transaction(session)
                detail = f"adapter={channel} raw_id={raw_row.id}"
                if received_detail:
                    detail = f"{detail} {received_detail}"
                received = [
                    AuditRecord(
                        kind=AuditKind.RECEIVED,
                        event_id=e.metadata.event_id,
                        party=source,
                        jti=received_jti,
                        detail=detail,
                    )
                    for e in events
                ]
                _INSERT_OUTBOX(session.connection(), batch.outbox)
                self._service.audit.append_many(session, [*received, *batch.audit])
        except IntegrityError:
            # Another worker committed the same message first (the inbox key is unique).
            return IngestResult(raw_id=None, duplicate=True)
        _log.info(
            "message_ingested",
            adapter=channel,
            source=source,
            raw_id=str(raw_row.id),
            events=len(events),
            disclosures=len(batch.outbox),
            refusals=batch.refusals,
        )
        return IngestResult(
            raw_id=raw_row.id,
            event_ids=tuple(e.metadata.event_id for e in events),
            disclosures=len(batch.outbox),
            refusals=batch.refusals,
        )

    def ingest_batch(
        self, items: Sequence[tuple[str, bytes, str]], *, received_at: datetime | None = None
    ) -> list[IngestResult | Exception]:
        """Ingest several native messages in ONE transaction (group commit).

        :meth:`prepare` for each message, then :meth:`store_prepared` for them all: the
        batch costs one commit (one disk flush) instead of one per message.

        Args:
            items: (adapter name, raw bytes, authenticated sender) per message.
            received_at: when they arrived; now if omitted.

        Returns:
            Per message, in order: its result as :meth:`ingest` gives it, or the exception
            :meth:`ingest` would have raised for it before storing anything (a fault of
            that message alone; the others are stored without it).

        Raises:
            As :meth:`store_prepared`; nothing was stored then.
        """
        now = received_at or datetime.now(UTC)
        outcomes: list[IngestResult | Exception] = []
        prepared: list[tuple[int, PreparedMessage]] = []
        for adapter, raw, source in items:
            try:
                item = self.prepare(adapter, raw, source, received_at=now)
            except Exception as exc:  # noqa: BLE001 - this message's own outcome
                outcomes.append(exc)
                continue
            prepared.append((len(outcomes), item))
            outcomes.append(item.result)
        results = self.store_prepared([item for _, item in prepared])
        for (index, _), result in zip(prepared, results, strict=True):
            outcomes[index] = result
        return outcomes

    def prepare(
        self,
        adapter_name: str,
        raw: bytes,
        source: str,
        *,
        received_at: datetime | None = None,
        replay_token: tuple[str, datetime] | None = None,
    ) -> PreparedMessage:
        """The first half of :meth:`ingest`, which needs no database: parse, decide, seal.

        Safe to run in many threads at once; :meth:`store_prepared` then stores what it
        made. A message the adapter cannot translate is prepared too (to be stored as
        rejected).

        Args:
            adapter_name: the adapter for the message's format.
            raw: the native message bytes.
            source: the authenticated sender's party id.
            received_at: when it arrived; now if omitted.
            replay_token: (token id, remember until) of the one-time credential the
                message came with, to be remembered in the transaction that stores it.

        Raises:
            Exception: as :meth:`ingest` would for this message; nothing is stored.
        """
        item = self._prepare(adapter_name, raw, source, received_at or datetime.now(UTC))
        item.replay_token = replay_token
        return item

    def store_prepared(self, items: Sequence[PreparedMessage]) -> list[IngestResult]:
        """The second half of :meth:`ingest` for several messages, in ONE transaction.

        Everything the messages cause (raw messages, inbox entries, outbox rows, audit
        entries) is written with a few statements and committed together. Dedup applies
        as in :meth:`ingest`, within the batch too.

        The messages' ``replay_token`` ids are remembered in the same transaction (one
        statement). A message whose id was already remembered, or that comes again within
        the batch, is not stored at all: its result says ``replayed``. Every other
        message's id is remembered, a duplicate's too. A message's ``hook`` reads and
        writes in the same transaction (``StoreHook``).

        Returns:
            One result per message, in order, as :meth:`ingest` gives it, or ``replayed``
            or ``held``.

        Raises:
            TransportError: the database is unavailable; nothing was stored.
            IntegrityError: another process stored one of the messages meanwhile; nothing
                was stored (store them one by one: that one is then a duplicate).
        """
        if not items:
            return []
        results: list[IngestResult] = []
        stored: list[PreparedMessage] = []
        sessions = self._service.sessions
        hooked: list[tuple[StoreHook, IngestResult]] = []
        with write_gate(sessions) as gate, session_scope(sessions) as session:
            seen = self._seen_among(session, items)
            gate.enter()
            tokens = [item.replay_token for item in items if item.replay_token is not None]
            # Ids remembered now; each is claimed by its first message below.
            fresh = remember_jtis(session, tokens) if tokens else set()
            connection = session.connection()
            for item in items:
                if item.replay_token is not None:
                    token_id = item.replay_token[0]
                    if token_id not in fresh:
                        results.append(IngestResult(raw_id=None, replayed=True))
                        continue
                    fresh.discard(token_id)
                if item.hook is not None and not item.hook.before(connection):
                    results.append(IngestResult(raw_id=None, held=True))
                    continue
                if item.dedup_key in seen:
                    problems = item.error.problems if item.error else ()
                    results.append(IngestResult(raw_id=None, problems=problems, duplicate=True))
                else:
                    seen.add(item.dedup_key)
                    stored.append(item)
                    results.append(item.result)
                if item.hook is not None:
                    hooked.append((item.hook, results[-1]))
            if stored:
                # A few statements for the whole batch, whatever its size; the audit chain's
                # head row is locked once per transaction.
                mark_applied(
                    connection,
                    [
                        {
                            "consumer": i.dedup_key[0],
                            "message_id": i.digest,
                            "processed_at": i.raw_row.received_at,
                        }
                        for i in stored
                    ],
                )
                _INSERT_RAW(connection, [i.raw_row.values() for i in stored])
                _INSERT_OUTBOX(connection, [row for i in stored for row in i.batch.outbox])
                self._service.audit.append_many(
                    session, [entry for i in stored for entry in i.drafts]
                )
            for hook, result in hooked:
                hook.after(connection, result)
        for item in stored:
            self._log_stored(item)
        return results

    def store_isolated(
        self, items: Sequence[PreparedMessage], *, label: str = "ingest"
    ) -> list[IngestResult | BaseException]:
        """:meth:`store_prepared` for the batch; if that fails, each message on its own.

        The work function of an ingest ``broker.batching.Batcher``. A failure of the batch
        (a dedup race with another process, a fault in one message) must not hold up the
        other messages, so they are retried one by one: each then succeeds or fails on
        its own account.

        Args:
            items: the prepared messages.
            label: names the batch in logs.

        Returns:
            Per message, in order: its result, or the exception that stopped it (nothing
            of that message was stored then, nor its ``replay_token`` remembered).
        """
        return together_else_each(items, self.store_prepared, self._store_alone, name=label)

    def _store_alone(self, item: PreparedMessage) -> IngestResult | BaseException:
        try:
            return self.store_prepared([item])[0]
        except IntegrityError:
            # Another worker committed the same message (the inbox key is unique) or answered
            # the same idempotency key first.
            if item.replay_token is None and item.hook is None:
                return IngestResult(raw_id=None, duplicate=True)
        except Exception as exc:  # noqa: BLE001 - this message's own outcome
            return exc
        # Its token id must still be remembered (and its hook told): now that the other
        # worker's commit is visible, the message is recognised as a duplicate (or held) and
        # only the id is written.
        try:
            return self.store_prepared([item])[0]
        except Exception as exc:  # noqa: BLE001 - this message's own outcome
            return exc

    def _prepare(
        self, adapter_name: str, raw: bytes, source: str, now: datetime
    ) -> PreparedMessage:
        """Everything about one message that needs no database: parse, decide, seal, audit.

        Raises:
            Exception: as :meth:`ingest` would for this message (nothing is stored).
        """
        digest = message_digest(raw)
        error: AdapterError | None = None
        events: Sequence[Event] = ()
        try:
            events = get_adapter(adapter_name).parse(
                raw, AdapterContext(source_agency=source, now=now)
            )
        except AdapterError as exc:
            error = exc
        kept = raw if error is None else kept_copy(raw, digest, error)
        raw_row = self._raw_row(adapter_name, kept, source, now)
        item = PreparedMessage(channel=adapter_name, source=source, digest=digest, raw_row=raw_row)
        detail = f"adapter={adapter_name} raw_id={raw_row.id}"
        if error is not None:
            item.error = error
            rejected = AuditLog.record(
                kind=AuditKind.REJECTED, party=source, reason=error.code, detail=detail
            )
            item.drafts = [draft(rejected)]
            item.result = IngestResult(raw_id=raw_row.id, problems=error.problems)
            return item
        for event in events:
            self._decide(event, source, digest, now, item.batch)
        received = [
            AuditLog.record(
                kind=AuditKind.RECEIVED, event_id=e.metadata.event_id, party=source, detail=detail
            )
            for e in events
        ]
        item.drafts = [draft(record) for record in (*received, *item.batch.audit)]
        item.result = IngestResult(
            raw_id=raw_row.id,
            event_ids=tuple(e.metadata.event_id for e in events),
            disclosures=len(item.batch.outbox),
            refusals=item.batch.refusals,
        )
        return item

    @staticmethod
    def _seen_among(session: Session, items: Sequence[PreparedMessage]) -> set[tuple[str, str]]:
        """Which (inbox consumer, digest) keys of these messages were processed before.

        One query per inbox consumer (a batch usually has one), each by the inbox's
        unique index: the digest alone is not its leading column, so a query by digests
        only would read the whole inbox for every batch.
        """
        by_consumer: dict[str, set[str]] = {}
        for item in items:
            consumer, digest = item.dedup_key
            by_consumer.setdefault(consumer, set()).add(digest)
        seen: set[tuple[str, str]] = set()
        for consumer, digests in by_consumer.items():
            seen.update((consumer, digest) for digest in applied_among(session, consumer, digests))
        return seen

    @staticmethod
    def _log_stored(item: PreparedMessage) -> None:
        result = item.result
        if item.error is not None:
            _log.warning(
                "message_rejected",
                adapter=item.channel,
                source=item.source,
                raw_id=str(result.raw_id),
                problems=len(result.problems),
            )
            return
        _log.info(
            "message_ingested",
            adapter=item.channel,
            source=item.source,
            raw_id=str(result.raw_id),
            events=len(result.event_ids),
            disclosures=result.disclosures,
            refusals=result.refusals,
        )

    def _decide(self, event: Event, source: str, digest: str, now: datetime, batch: _Batch) -> None:
        decision: Decision = evaluate(self._service.policy, event, now)
        for refusal in decision.refusals:
            batch.refusals += 1
            batch.audit.append(
                AuditRecord(
                    kind=AuditKind.REFUSED,
                    event_id=event.metadata.event_id,
                    recipient=refusal.recipient,
                    rule_id=refusal.rule_id,
                    reason=refusal.reason.value,
                    detail=f"agreement_version={decision.agreement_version or 'none'}",
                )
            )
        provenance = Provenance(
            source_agency=source,
            source_event_id=event.metadata.event_id,
            original_sha256=digest,
        )
        for disclosure in decision.disclosures:
            sealed = envelope.seal(
                disclosure.event,
                sender=self._service.service_keys,
                recipient=disclosure.recipient,
                registry=self._service.registry,
                rule_id=disclosure.rule_id,
                lawful_basis=disclosure.lawful_basis,
                purpose=disclosure.purpose,
                provenance=provenance,
                event_type=event.event_type,
                limits=self._limits,
                now=now,
            )
            batch.outbox.append(
                {
                    "event_id": event.metadata.event_id,
                    "recipient": disclosure.recipient,
                    "exchange": DISCLOSURES_EXCHANGE,
                    "routing_key": disclosure_routing_key(
                        disclosure.recipient, event.event_type.value
                    ),
                    "token": sealed.token,
                    "jti": sealed.jti,
                    "created_at": now,
                    "status": OutboxStatus.PENDING,
                    "attempts": 0,
                }
            )
            batch.audit.append(
                AuditRecord(
                    kind=AuditKind.SHARED,
                    event_id=event.metadata.event_id,
                    recipient=disclosure.recipient,
                    rule_id=disclosure.rule_id,
                    lawful_basis=disclosure.lawful_basis.value,
                    fields=disclosure.shared_fields(),
                    jti=sealed.jti,
                )
            )

    def _reject(
        self,
        adapter_name: str,
        *,
        raw: bytes,
        source: str,
        digest: str,
        error: AdapterError,
        now: datetime,
    ) -> IngestResult:
        with gated_at_first_write(self._service.sessions) as session:
            raw_row = self._raw_row(adapter_name, kept_copy(raw, digest, error), source, now)
            if self._seen(session, adapter_name, source, digest):
                return IngestResult(raw_id=None, problems=error.problems, duplicate=True)
            _INSERT_RAW(session.connection(), [raw_row.values()])
            self._service.audit.append(
                session,
                kind=AuditKind.REJECTED,
                party=source,
                reason=error.code,
                detail=f"adapter={adapter_name} raw_id={raw_row.id}",
            )
        _log.warning(
            "message_rejected",
            adapter=adapter_name,
            source=source,
            raw_id=str(raw_row.id),
            problems=len(error.problems),
        )
        return IngestResult(raw_id=raw_row.id, problems=error.problems)

    def _raw_row(self, adapter_name: str, raw: bytes, source: str, now: datetime) -> SealedRaw:
        while True:
            row = SealedRaw.seal(
                raw,
                adapter=adapter_name,
                source_party=source,
                key=self._service.data_key,
                key_id=self._service.data_key_id,
                received_at=now,
            )
            # Its id goes into audit entries, which refuse anything that reads as an NHS
            # number; a random UUID does about once in 1,800 (the message would then fail).
            if not _reads_as_nhs_number(str(row.id)):
                return row

    @staticmethod
    def _seen(session: Session, adapter_name: str, source: str, digest: str) -> bool:
        """Whether these bytes from this source were processed before; remember them if not."""
        consumer = _inbox_consumer(adapter_name, source)
        if applied_among(session, consumer, [digest]):
            return True
        session.add(InboxEntry(consumer=consumer, message_id=digest))
        session.flush()
        return False


def kept_copy(raw: bytes, digest: str, error: AdapterError) -> bytes:
    """What is kept at rest of a refused message: its bytes, as for any message, except
    for one refused as over the size limit, which was never parsed and could be up to the
    transport's own limit (RabbitMQ accepts 128 MB): of that only its size and digest,
    which prove what arrived without holding up to 128 MB of possibly personal data."""
    if not isinstance(error, InputTooLarge):
        return raw
    return json.dumps(
        {"omitted": error.code, "bytes": len(raw), "sha256": digest}, sort_keys=True
    ).encode()


_TEN_DIGITS = re.compile(r"(?<!\d)\d{10}(?!\d)")


def _reads_as_nhs_number(text: str) -> bool:
    """Whether ``text`` holds a run of ten digits that passes the NHS number check.

    The audit log refuses such values (``broker.audit.AuditRecord``), so ids generated
    here for audit entries must not contain one.
    """
    return any(is_valid_nhs_number(run) for run in _TEN_DIGITS.findall(text))


def _inbox_consumer(channel: str, source: str) -> str:
    """The inbox consumer name under which ingest remembers a source's messages."""
    return f"ingest.{channel}.{source}"


def ingest_many(ingestor: Ingestor, items: Sequence[tuple[str, bytes, str]]) -> list[IngestResult]:
    """Ingest several (adapter, raw, source) messages one after another (tests, demo)."""
    return [ingestor.ingest(adapter, raw, source) for adapter, raw, source in items]


__all__ += ["ingest_many"]
