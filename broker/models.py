"""The broker's own tables: outbox, inbox, audit chain, raw messages, replay ids; their types."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypeVar

import sqlalchemy as sa
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic_core import PydanticUndefined
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import configure_mappers, instrumentation
from sqlmodel import Field, SQLModel

from broker.exceptions import ConfigurationError, DecryptionFailed

__all__ = [
    "AT_REST_KEY_BYTES",
    "GENESIS_HASH",
    "AlertStatus",
    "AuditCheckpoint",
    "AuditEntry",
    "AuditHead",
    "AuditKind",
    "InboxEntry",
    "MashAlert",
    "OutboxMessage",
    "OutboxStatus",
    "RawMessage",
    "ReplaySeen",
    "SealedRaw",
    "UtcDateTime",
    "decrypt_at_rest",
    "encrypt_at_rest",
    "new_row",
    "utc_now",
]

# Named constraints, so that migrations (and SQLite's batch mode, which rebuilds tables)
# can refer to them by the same name on every backend.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: The ``prev_hash`` of the first audit entry: there is nothing before it.
GENESIS_HASH = "0" * 64


def utc_now() -> datetime:
    """The current instant, timezone-aware in UTC."""
    return datetime.now(UTC)


_Table = TypeVar("_Table", bound=SQLModel)


def new_row(model: type[_Table], /, **values: Any) -> _Table:
    """A new (transient) row of a table model, as ``model(**values)`` makes it, faster.

    A table model's constructor does not validate (SQLModel skips pydantic's validation
    for tables), but it sets every field through both SQLAlchemy's and pydantic's
    ``__setattr__`` and asks pydantic for each default, which inspects the default
    factory's signature on every call: about 90 µs a row, against 6 µs here. The row is
    made the way SQLAlchemy makes one it loads (its class's ``__new__`` and instance
    state), with the given values and the fields' defaults in its ``__dict__``; an INSERT
    reads them from there. Used where the intake makes rows for every alert.

    Raises:
        TypeError: a value names no field, or a field without a default has no value.
    """
    fields = model.model_fields
    unknown = values.keys() - fields.keys()
    if unknown:
        raise TypeError(f"{model.__name__}: no field {sorted(unknown)[0]!r}")
    state: dict[str, Any] = {}
    for name, info in fields.items():
        if name in values:
            state[name] = values[name]
        elif info.default_factory is not None:
            state[name] = info.default_factory()  # type: ignore[call-arg]
        elif info.default is PydanticUndefined:
            raise TypeError(f"{model.__name__}: field {name!r} has no value")
        else:
            state[name] = info.default
    # Mapped as a constructor or a query would map it, so that its attributes read (an
    # ORM statement configures the mappers too, but rows may be made before any runs).
    # Asked of this model's mapper: ``configure_mappers`` copies the set of every
    # registry under a lock at each call, even with nothing left to configure.
    manager = instrumentation.manager_of_class(model)
    if not manager.mapper.configured:
        configure_mappers()
    row: _Table = manager.new_instance()
    row.__dict__.update(state)
    object.__setattr__(row, "__pydantic_fields_set__", set(values))
    return row


def _aware_utc(value: datetime) -> datetime:
    """``value`` in UTC; a naive datetime is refused (its instant is unknown)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("naive datetime refused: store timezone-aware UTC instants only")
    return value.astimezone(UTC)


class UtcDateTime(sa.TypeDecorator[datetime]):
    """A timezone-aware UTC instant on every backend; naive datetimes are refused.

    PostgreSQL stores ``timestamptz``; SQLite has no time zone type, so the value is kept
    as naive UTC text and made aware again when read.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Refuse naive values and normalise to UTC before they reach the driver."""
        if value is None:
            return None
        value = _aware_utc(value)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any] | None:
        """On SQLite, one function from the aware instant to the text SQLite keeps.

        The decorator's own processor calls ``process_bind_param`` and then SQLite's
        ``DATETIME`` processor, which formats through a dictionary: about 3.7 µs a value
        against 2.5 here, and every row written holds several. The text is the one that
        processor writes (its default storage format, ``YYYY-MM-DD HH:MM:SS.ffffff``, in
        UTC), so stored values, comparisons and reads are unchanged; other databases keep
        the decorator's processor.
        """
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)

        def to_sqlite_text(value: datetime | None) -> str | None:
            if value is None:
                return None
            return _aware_utc(value).replace(tzinfo=None).isoformat(" ", "microseconds")

        return to_sqlite_text

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Hand back an aware UTC datetime whatever the driver returned."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


#: A 64-bit integer key; on SQLite plain INTEGER so that it stays the rowid alias (which is
#: 64-bit there anyway) and autoincrements.
BIG_KEY = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _str_enum(enum_class: type[StrEnum], name: str) -> sa.Enum:
    """A portable enum column: VARCHAR plus a CHECK constraint, storing the values."""
    return sa.Enum(
        enum_class,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=16,
        values_callable=lambda members: [member.value for member in members],
        validate_strings=True,
    )


# --------------------------------------------------------------------------- outbox / inbox


class OutboxStatus(StrEnum):
    """Where an outbox row is in its life."""

    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"


class OutboxMessage(SQLModel, table=True):
    """One sealed disclosure waiting to be published (transactional outbox).

    Written in the same transaction as the audit entries of the decision that produced it;
    the relay publishes pending rows with publisher confirms and marks them sent.
    """

    __tablename__ = "outbox"
    __table_args__ = (sa.Index("ix_outbox_status_id", "status", "id"),)

    id: int | None = Field(default=None, primary_key=True, sa_type=BIG_KEY)
    event_id: uuid.UUID = Field(sa_type=sa.Uuid(), index=True)
    recipient: str = Field(sa_type=sa.String(64))
    exchange: str = Field(sa_type=sa.String(255))
    routing_key: str = Field(sa_type=sa.String(255))
    #: The compact JWE exactly as the recipient will receive it.
    token: str = Field(sa_type=sa.Text())
    jti: str = Field(sa_type=sa.String(128), unique=True)
    created_at: datetime = Field(default_factory=utc_now, sa_type=UtcDateTime())
    status: OutboxStatus = Field(
        default=OutboxStatus.PENDING, sa_type=_str_enum(OutboxStatus, "outbox_status")
    )
    attempts: int = Field(default=0)
    #: Earliest time the relay should try again after a failure; None means now.
    next_attempt_at: datetime | None = Field(default=None, sa_type=UtcDateTime())
    #: An error code (``BrokerError.code`` or a transport reason), never message text.
    last_error: str | None = Field(default=None, sa_type=sa.String(64))
    sent_at: datetime | None = Field(default=None, sa_type=UtcDateTime())


class InboxEntry(SQLModel, table=True):
    """A message a consumer has already applied: redelivery of it must have no effect."""

    __tablename__ = "inbox"
    __table_args__ = (sa.UniqueConstraint("consumer", "message_id"),)

    id: int | None = Field(default=None, primary_key=True, sa_type=BIG_KEY)
    consumer: str = Field(sa_type=sa.String(128))
    #: The token's ``jti``, or the AMQP message id for messages without one.
    message_id: str = Field(sa_type=sa.String(128))
    processed_at: datetime = Field(default_factory=utc_now, sa_type=UtcDateTime())


# --------------------------------------------------------------------------- MASH intake


class AlertStatus(StrEnum):
    """Where an alert is in the MASH triage workflow."""

    NEW = "new"
    ACKNOWLEDGED = "acknowledged"
    ASSIGNED = "assigned"
    DECIDED = "decided"
    CLOSED = "closed"


class MashAlert(SQLModel, table=True):
    """One disclosure the MASH received: ids and codes in clear, the content only as the JWE.

    Personal data stays inside ``token``, the JWE exactly as the broker sealed it for the
    MASH; pages decrypt it with the MASH's key when a person opens the alert.
    """

    __tablename__ = "mash_alert"
    __table_args__ = (sa.UniqueConstraint("recipient", "event_id"),)

    id: int | None = Field(default=None, primary_key=True, sa_type=BIG_KEY)
    recipient: str = Field(sa_type=sa.String(64))
    event_id: uuid.UUID = Field(sa_type=sa.Uuid())
    #: Unique and always set by the intake, so it also tells SQLAlchemy which stored row
    #: is which when a batch's alerts are inserted by one statement (an insert sentinel).
    jti: str = Field(
        sa_type=sa.String(128), unique=True, sa_column_kwargs={"insert_sentinel": True}
    )
    event_type: str = Field(sa_type=sa.String(32))
    source_agency: str = Field(sa_type=sa.String(64))
    rule_id: str = Field(sa_type=sa.String(128))
    lawful_basis: str = Field(sa_type=sa.String(64))
    correlation_id: str | None = Field(default=None, sa_type=sa.String(64), index=True)
    received_at: datetime = Field(sa_type=UtcDateTime())
    status: AlertStatus = Field(
        default=AlertStatus.NEW, sa_type=_str_enum(AlertStatus, "alert_status")
    )
    token: str = Field(sa_type=sa.Text())


# --------------------------------------------------------------------------- audit chain


class AuditKind(StrEnum):
    """What an audit entry records."""

    RECEIVED = "received"
    REJECTED = "rejected"
    SHARED = "shared"
    REFUSED = "refused"
    PUBLISHED = "published"
    DELIVERED = "delivered"
    DEAD_LETTERED = "dead_lettered"
    OPENED = "opened"


class AuditEntry(SQLModel, table=True):
    """One link of the tamper-evident audit chain. Ids and codes only, never personal data.

    Rows are written only by ``broker.audit.AuditLog``, which validates every value's shape;
    the columns are bounded so that no free text fits.
    """

    __tablename__ = "audit_entry"
    __table_args__ = (
        sa.CheckConstraint("seq >= 1", name="seq_positive"),
        sa.CheckConstraint("length(detail) <= 512", name="detail_bounded"),
    )

    seq: int = Field(primary_key=True, sa_type=BIG_KEY, sa_column_kwargs={"autoincrement": False})
    at: datetime = Field(sa_type=UtcDateTime())
    kind: AuditKind = Field(sa_type=_str_enum(AuditKind, "audit_kind"))
    event_id: uuid.UUID | None = Field(default=None, sa_type=sa.Uuid(), index=True)
    #: The party acting or concerned (the source for received/shared, the consumer's party
    #: for delivered, the reader's organisation for opened).
    party: str | None = Field(default=None, sa_type=sa.String(64))
    #: A person's user id, for ``opened``.
    actor: str | None = Field(default=None, sa_type=sa.String(128))
    recipient: str | None = Field(default=None, sa_type=sa.String(64))
    rule_id: str | None = Field(default=None, sa_type=sa.String(128))
    lawful_basis: str | None = Field(default=None, sa_type=sa.String(64))
    #: Names of the fields disclosed (never their values), sorted.
    fields: list[str] = Field(default_factory=list, sa_type=sa.JSON())
    reason: str | None = Field(default=None, sa_type=sa.String(64))
    jti: str | None = Field(default=None, sa_type=sa.String(128), index=True)
    #: ``key=value`` pairs of ids, space separated, bounded.
    detail: str | None = Field(default=None, sa_type=sa.String(512))
    prev_hash: str = Field(sa_type=sa.String(64))
    hash: str = Field(sa_type=sa.String(64))


class AuditHead(SQLModel, table=True):
    """The single row naming the chain's last seq and hash; appends lock it to serialise.

    It is a lock and a cache, not evidence: ``verify`` recomputes everything from the
    entries and trusts only signed checkpoints.
    """

    __tablename__ = "audit_head"
    __table_args__ = (sa.CheckConstraint("id = 1", name="single_row"),)

    id: int = Field(default=1, primary_key=True, sa_column_kwargs={"autoincrement": False})
    seq: int = Field(default=0, sa_type=sa.BigInteger())
    hash: str = Field(default=GENESIS_HASH, sa_type=sa.String(64))
    updated_at: datetime | None = Field(default=None, sa_type=UtcDateTime())


class AuditCheckpoint(SQLModel, table=True):
    """The service's signature over the chain's length and head hash at one moment."""

    __tablename__ = "audit_checkpoint"

    #: Checkpoints are numbered 1, 2, 3...; the number is inside the signed claims.
    seq: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    entry_count: int = Field(sa_type=sa.BigInteger())
    head_hash: str = Field(sa_type=sa.String(64))
    signed_at: datetime = Field(sa_type=UtcDateTime())
    kid: str = Field(sa_type=sa.String(128))
    #: Compact JWS (alg ``Ed25519``) over the checkpoint's claims.
    signature: str = Field(sa_type=sa.Text())


# --------------------------------------------------------------------------- raw messages


class RawMessage(SQLModel, table=True):
    """A partner's native message exactly as received, encrypted at rest (AES-256-GCM)."""

    __tablename__ = "raw_message"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, sa_type=sa.Uuid(), primary_key=True)
    adapter: str = Field(sa_type=sa.String(32))
    source_party: str = Field(sa_type=sa.String(64))
    received_at: datetime = Field(default_factory=utc_now, sa_type=UtcDateTime())
    #: Which data key sealed ``ciphertext`` (so keys can rotate).
    key_id: str = Field(sa_type=sa.String(64))
    ciphertext: bytes = Field(sa_type=sa.LargeBinary())

    def associated_data(self) -> bytes:
        """The row's identity, bound into the ciphertext so it cannot be moved to another row."""
        return _raw_associated_data(self.id, self.adapter, self.source_party)

    @classmethod
    def seal(
        cls,
        raw: bytes,
        *,
        adapter: str,
        source_party: str,
        key: bytes,
        key_id: str,
        received_at: datetime | None = None,
    ) -> RawMessage:
        """A new row holding ``raw`` encrypted under ``key``.

        Args:
            raw: the native message bytes.
            adapter: the adapter name (``police``, ``health``, ``paris``).
            source_party: the authenticated sender's party id.
            key: a 32-byte AES-256 data key.
            key_id: the name of that key, stored beside the ciphertext.
            received_at: when it arrived; now if omitted.
        """
        sealed = SealedRaw.seal(
            raw,
            adapter=adapter,
            source_party=source_party,
            key=key,
            key_id=key_id,
            received_at=received_at or utc_now(),
        )
        return cls(**sealed.values())

    def open(self, key: bytes) -> bytes:
        """The original bytes; ``DecryptionFailed`` if the key is wrong or the row was altered."""
        return decrypt_at_rest(self.ciphertext, key, self.associated_data(), where=f"raw {self.id}")


class ReplaySeen(SQLModel, table=True):
    """A token id already accepted, remembered until the token itself expires."""

    __tablename__ = "replay_seen"

    jti: str = Field(sa_type=sa.String(128), primary_key=True)
    expires_at: datetime = Field(sa_type=UtcDateTime(), index=True)


# --------------------------------------------------------------------------- at-rest crypto

#: Length of an at-rest data key (AES-256).
AT_REST_KEY_BYTES = 32
_AT_REST_VERSION = b"\x01"
_NONCE_BYTES = 12


def _check_key(key: bytes) -> AESGCM:
    if len(key) != AT_REST_KEY_BYTES:
        raise ConfigurationError(
            f"at-rest data key must be {AT_REST_KEY_BYTES} bytes, got {len(key)}"
        )
    return AESGCM(key)


def _raw_associated_data(row_id: uuid.UUID, adapter: str, source_party: str) -> bytes:
    return f"mash-broker/raw/v1|{row_id}|{adapter}|{source_party}".encode()


@dataclass(frozen=True, slots=True)
class SealedRaw:
    """The values of a new ``raw_message`` row, sealed as ``RawMessage.seal`` seals them.

    Made without the ORM (a table model's constructor costs more than the encryption) for
    the ingest path, which inserts many rows with one statement.
    """

    id: uuid.UUID
    adapter: str
    source_party: str
    received_at: datetime
    key_id: str
    ciphertext: bytes

    @classmethod
    def seal(
        cls,
        raw: bytes,
        *,
        adapter: str,
        source_party: str,
        key: bytes,
        key_id: str,
        received_at: datetime,
    ) -> SealedRaw:
        """``raw`` encrypted under ``key`` for a row with a new id (see ``RawMessage.seal``)."""
        row_id = uuid.uuid4()
        ciphertext = encrypt_at_rest(raw, key, _raw_associated_data(row_id, adapter, source_party))
        return cls(row_id, adapter, source_party, received_at, key_id, ciphertext)

    def values(self) -> dict[str, Any]:
        """The row's column values, for ``insert(RawMessage)``."""
        return {
            "id": self.id,
            "adapter": self.adapter,
            "source_party": self.source_party,
            "received_at": self.received_at,
            "key_id": self.key_id,
            "ciphertext": self.ciphertext,
        }


def encrypt_at_rest(plaintext: bytes, key: bytes, associated_data: bytes = b"") -> bytes:
    """Seal bytes for storage: version byte, random 96-bit nonce, AES-256-GCM ciphertext.

    Args:
        plaintext: what to protect.
        key: a 32-byte data key.
        associated_data: context bound to the ciphertext (e.g. the row id); the same bytes
            must be given to decrypt.

    Returns:
        The sealed blob.
    """
    nonce = os.urandom(_NONCE_BYTES)
    sealed = _check_key(key).encrypt(nonce, plaintext, _AT_REST_VERSION + associated_data)
    return _AT_REST_VERSION + nonce + sealed


def decrypt_at_rest(
    blob: bytes, key: bytes, associated_data: bytes = b"", *, where: str = "at-rest blob"
) -> bytes:
    """Open a blob made by ``encrypt_at_rest``.

    Args:
        blob: the sealed bytes.
        key: the 32-byte data key it was sealed under.
        associated_data: the same context given when sealing.
        where: names the blob in the error message (an id, never content).

    Raises:
        DecryptionFailed: wrong key, wrong context, unknown format, or altered bytes.
    """
    aead = _check_key(key)
    if len(blob) < 1 + _NONCE_BYTES + 16 or blob[:1] != _AT_REST_VERSION:
        raise DecryptionFailed(f"{where}: not a sealed at-rest blob (format v1)")
    nonce, sealed = blob[1 : 1 + _NONCE_BYTES], blob[1 + _NONCE_BYTES :]
    try:
        return aead.decrypt(nonce, sealed, _AT_REST_VERSION + associated_data)
    except InvalidTag as exc:
        raise DecryptionFailed(f"{where}: authentication failed (wrong key or altered)") from exc
