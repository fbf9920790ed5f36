"""The tamper-evident audit log: a hash chain of decisions, signed checkpoints, verification.

Every entry's hash is SHA-256 over ``mash-broker/audit/v1`` + NUL + the canonical JSON of
the entry (sorted keys, no spaces, seq and prev_hash included), so each entry commits to
everything before it. The service signs checkpoints (entry count + head hash) as compact
JWS with its Ed25519 key; a checkpoint also commits to the one before it. ``verify``
recomputes it all and names the first bad entry. See ``docs/audit.md``.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import re
import secrets
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any

import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import OKPKey
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)
from sqlalchemy.engine import Connection
from sqlmodel import Session, SQLModel, col, select

from broker.exceptions import BrokerError, SecurityError
from broker.models import (
    GENESIS_HASH,
    AuditCheckpoint,
    AuditEntry,
    AuditHead,
    AuditKind,
    utc_now,
)
from broker.rowinsert import RowInsert
from schemas.common import is_valid_nhs_number

__all__ = [
    "CHECKPOINT_ALG",
    "CHECKPOINT_TYP",
    "DETAIL_KEYS",
    "HASH_DOMAIN",
    "AppendedEntry",
    "AuditEntryInvalid",
    "AuditIntegrityError",
    "AuditKind",
    "AuditLog",
    "AuditRecord",
    "EntryDraft",
    "Problem",
    "Signer",
    "VerifyReport",
    "canonical_bytes",
    "checkpoint",
    "checkpoint_if_due",
    "draft",
    "entries_for_event",
    "entry_hash",
    "verify",
]

#: Domain separation: this prefix (then a NUL byte) starts every hashed entry.
HASH_DOMAIN = b"mash-broker/audit/v1"
#: The only JWS algorithm checkpoints use or accept.
CHECKPOINT_ALG = "Ed25519"
#: The ``typ`` header of a checkpoint JWS.
CHECKPOINT_TYP = "mash-audit-checkpoint+jws"

#: Signs bytes with the service's Ed25519 key: a key, or a callable that returns the
#: 64-byte signature (e.g. one backed by an HSM or the key registry).
Signer = Ed25519PrivateKey | Callable[[bytes], bytes]

#: The keys a ``detail`` string may use: each names an identifier, never content. Extend
#: this set (checking that the new key can only ever hold an id) rather than the patterns.
DETAIL_KEYS = frozenset(
    {
        "adapter",
        "agreement_version",
        "alert_id",
        "attempt",
        "borough",
        "claimed_party",
        "consumer",
        "correlation_id",
        "delivery_count",
        "endpoint",
        "error",
        "exchange",
        "kid",
        "message_id",
        "outbox_id",
        "queue",
        "raw_id",
        "request_id",
        "role",
        "routing_key",
        "source_ref",
        "source_system",
    }
)

_ID = r"^[A-Za-z0-9][A-Za-z0-9._:|/+-]*$"
_PARTY = r"^[a-z0-9][a-z0-9-]{1,62}$"
_CODE = r"^[a-z0-9][a-z0-9_.:-]*$"
_DETAIL_PAIR = r"[a-z][a-z0-9_]*=[A-Za-z0-9][A-Za-z0-9._:|/+-]*"
_TEN_DIGITS = re.compile(r"(?<!\d)\d{10}(?!\d)")

PartyRef = Annotated[str, StringConstraints(pattern=_PARTY, max_length=64)]
IdRef = Annotated[str, StringConstraints(pattern=_ID, max_length=128)]
Code = Annotated[str, StringConstraints(pattern=_CODE, max_length=64)]
FieldName = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_.\[\]-]*$", max_length=128)
]
Detail = Annotated[
    str, StringConstraints(pattern=rf"^{_DETAIL_PAIR}( {_DETAIL_PAIR})*$", max_length=512)
]


class AuditEntryInvalid(BrokerError):
    """An audit entry was asked for with a missing or wrongly shaped value."""

    code = "audit_entry_invalid"


class AuditIntegrityError(SecurityError):
    """The chain does not verify, so the service refuses to sign a checkpoint over it."""

    code = "audit_integrity"


# --------------------------------------------------------------------------- entries

_REQUIRED: dict[AuditKind, tuple[str, ...]] = {
    AuditKind.RECEIVED: ("party",),
    AuditKind.REJECTED: ("reason",),
    AuditKind.SHARED: ("event_id", "recipient", "rule_id", "lawful_basis", "fields"),
    AuditKind.REFUSED: ("event_id", "reason"),
    AuditKind.PUBLISHED: ("recipient", "jti"),
    AuditKind.DELIVERED: ("recipient", "jti"),
    AuditKind.DEAD_LETTERED: ("recipient", "reason"),
    AuditKind.OPENED: ("actor",),
}


class AuditRecord(BaseModel):
    """What the caller says happened; ``AuditLog`` adds seq, time and the hashes.

    Every value is an id, a code or a field name, checked by shape, so that no personal
    data and no free text can enter the log.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    kind: AuditKind
    event_id: uuid.UUID | None = None
    party: PartyRef | None = None
    actor: IdRef | None = None
    recipient: PartyRef | None = None
    rule_id: IdRef | None = None
    lawful_basis: Code | None = None
    fields: tuple[FieldName, ...] = Field(default=(), max_length=256)
    reason: Code | None = None
    jti: IdRef | None = None
    detail: Detail | None = None

    @model_validator(mode="after")
    def _kind_needs(self) -> AuditRecord:
        missing = [name for name in _REQUIRED[self.kind] if not getattr(self, name)]
        if missing:
            raise ValueError(f"a {self.kind.value} entry needs {', '.join(missing)}")
        return self

    @model_validator(mode="after")
    def _ids_only(self) -> AuditRecord:
        for pair in (self.detail or "").split():
            key = pair.split("=", 1)[0]
            if key not in DETAIL_KEYS:
                raise ValueError(f"detail key {key!r} is not one of DETAIL_KEYS")
        # Belt and braces: a valid NHS number is personal data wherever it turns up.
        # One scan of all the values, a line each (a run cannot span two of them).
        texts = [self.party, self.actor, self.rule_id, self.jti, self.detail, *self.fields]
        joined = "\n".join(filter(None, texts))
        if any(is_valid_nhs_number(run) for run in _TEN_DIGITS.findall(joined)):
            raise ValueError("an NHS number cannot be written to the audit log")
        return self


@functools.lru_cache(maxsize=256)
def _iso(value: datetime) -> str:
    # Cached: every entry of a batch shares one time, and a check hashes them again.
    # Equal datetimes are the same instant, so they share one UTC text.
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _norm_at(value: Any) -> Any:
    if isinstance(value, datetime):
        return _iso(value if value.tzinfo else value.replace(tzinfo=UTC))
    if isinstance(value, str):
        try:
            return _norm_at(datetime.fromisoformat(value))
        except ValueError:
            return value
    return value


def _norm_uuid(value: Any) -> Any:
    if value is None or isinstance(value, uuid.UUID):
        return None if value is None else str(value)
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        return value


def _norm_fields(value: Any) -> Any:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return value
    if isinstance(value, list | tuple):
        return list(value)
    return value


def _norm_kind(value: Any) -> Any:
    return value.value if isinstance(value, AuditKind) else value


def _document(values: Mapping[Any, Any]) -> dict[str, Any]:
    """The canonical form of an entry; tolerant, so a tampered row hashes rather than crashes."""
    return {
        "seq": values["seq"],
        "at": _norm_at(values["at"]),
        "kind": _norm_kind(values["kind"]),
        "event_id": _norm_uuid(values["event_id"]),
        "party": values["party"],
        "actor": values["actor"],
        "recipient": values["recipient"],
        "rule_id": values["rule_id"],
        "lawful_basis": values["lawful_basis"],
        "fields": _norm_fields(values["fields"]),
        "reason": values["reason"],
        "jti": values["jti"],
        "detail": values["detail"],
        "prev_hash": values["prev_hash"],
    }


def canonical_bytes(values: Mapping[Any, Any]) -> bytes:
    """The exact bytes an entry's hash covers: domain, NUL, canonical JSON.

    Args:
        values: the entry's columns (``seq`` .. ``prev_hash``; ``hash`` is ignored).
    """
    text = json.dumps(
        _document(values), sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    )
    return HASH_DOMAIN + b"\x00" + text.encode("utf-8")


def entry_hash(entry: AuditEntry | Mapping[Any, Any]) -> str:
    """The hex SHA-256 an entry must carry in ``hash``."""
    values = entry.model_dump() if isinstance(entry, AuditEntry) else entry
    return hashlib.sha256(canonical_bytes(values)).hexdigest()


#: Stand-ins for the three values only the chain gives an entry, in a draft's canonical
#: text. Random per process, so that no recorded value can be mistaken for one.
_CHAIN_SLOTS = {name: f"\x00{name}-{secrets.token_hex(8)}" for name in ("at", "prev_hash", "seq")}
#: Each stand-in as the canonical text writes it.
_CHAIN_MARKERS = {name: json.dumps(slot, ensure_ascii=False) for name, slot in _CHAIN_SLOTS.items()}


@dataclass(frozen=True, slots=True)
class EntryDraft:
    """An ``AuditRecord`` made ready to be chained, before the chain's lock is taken.

    ``values`` are the entry's columns but ``seq``, ``at``, ``prev_hash`` and ``hash``;
    ``pieces`` are its canonical text (as ``canonical_bytes`` writes it) around those
    three values, which fill the ``slots`` in order. Appending one then costs a string
    join and a SHA-256 under the lock, not the record's serialising.
    """

    values: dict[str, Any]
    pieces: tuple[str, ...]
    slots: tuple[str, ...]


def draft(record: AuditRecord) -> EntryDraft:
    """``record`` as an ``EntryDraft`` (pure: make it before taking the write lock)."""
    values = record.model_dump()
    values["fields"] = sorted(set(record.fields))
    text = json.dumps(
        _document({**values, **_CHAIN_SLOTS}),
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=str,
    )
    found = sorted((text.index(marker), name) for name, marker in _CHAIN_MARKERS.items())
    pieces: list[str] = []
    start = 0
    for position, name in found:
        pieces.append(text[start:position])
        start = position + len(_CHAIN_MARKERS[name])
    pieces.append(text[start:])
    return EntryDraft(values=values, pieces=tuple(pieces), slots=tuple(n for _, n in found))


def _draft_hash(entry: EntryDraft, chain: Mapping[str, str]) -> str:
    """The entry's hash, ``chain`` holding the JSON text of ``at``, ``prev_hash``, ``seq``."""
    pieces, slots = entry.pieces, entry.slots
    text = pieces[0]
    for index, slot in enumerate(slots):
        text += chain[slot] + pieces[index + 1]
    return hashlib.sha256(HASH_DOMAIN + b"\x00" + text.encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------- appending

_HEAD = SQLModel.metadata.tables["audit_head"]
_ENTRY = SQLModel.metadata.tables["audit_entry"]


# Built once: on the ingest path the statements cost more to build than to run.
_LOCK_HEAD = (
    sa.update(_HEAD)
    .where(_HEAD.c.id == 1)
    .values(seq=_HEAD.c.seq + sa.bindparam("advance", type_=sa.BigInteger()))
    .returning(_HEAD.c.seq, _HEAD.c.hash)
)
_MOVE_HEAD = (
    sa.update(_HEAD)
    .where(_HEAD.c.id == 1)
    .values(
        hash=sa.bindparam("head_hash", type_=_HEAD.c.hash.type),
        updated_at=sa.bindparam("head_at", type_=_HEAD.c.updated_at.type),
    )
)
_INSERT_ENTRIES = RowInsert(_ENTRY)


def _lock_head(connection: Connection, advance: int) -> tuple[int, str]:
    """Lock the head row and move its seq on by ``advance``; returns (old seq, old hash).

    The UPDATE takes the row lock on PostgreSQL (held to commit) and the database write
    lock on SQLite, so appends from every process and thread queue here: the chain
    cannot fork.
    """
    row = connection.execute(_LOCK_HEAD, {"advance": advance}).one_or_none()
    if row is None:
        raise AuditIntegrityError(
            "audit_head row missing: the database is not migrated (broker.db.migrate)"
        )
    return int(row.seq) - advance, str(row.hash)


@dataclass(frozen=True, slots=True)
class AppendedEntry:
    """An entry as ``AuditLog`` stored it (the columns of ``AuditEntry``)."""

    seq: int
    at: datetime
    kind: AuditKind
    event_id: uuid.UUID | None
    party: str | None
    actor: str | None
    recipient: str | None
    rule_id: str | None
    lawful_basis: str | None
    fields: tuple[str, ...]
    reason: str | None
    jti: str | None
    detail: str | None
    prev_hash: str
    hash: str


class AuditLog:
    """Appends entries to the chain inside the caller's transaction.

    The outbox row and its audit entries therefore commit, or roll back, together. Keep the
    transaction short after appending: concurrent appenders wait for its commit.
    """

    def __init__(self, *, clock: Callable[[], datetime] = utc_now) -> None:
        """``clock`` gives the current UTC time (injected in tests)."""
        self._clock = clock

    def append(self, session: Session, **entry: Any) -> AppendedEntry:
        """Add one entry; keyword arguments are the fields of ``AuditRecord``.

        Returns:
            What was stored, with its seq and hash.

        Raises:
            AuditEntryInvalid: a value is missing for the kind, or is not an id/code shape.
        """
        return self.append_many(session, [self.record(**entry)])[0]

    @staticmethod
    def record(**entry: Any) -> AuditRecord:
        """Validate ``entry`` into an ``AuditRecord``, naming the bad fields (not values)."""
        try:
            return AuditRecord(**entry)
        except ValidationError as exc:
            where = ", ".join(
                ".".join(str(part) for part in error["loc"]) or error["msg"]
                for error in exc.errors()
            )
            raise AuditEntryInvalid(f"audit entry refused: {where}") from None

    def append_many(
        self, session: Session, records: Sequence[AuditRecord | EntryDraft]
    ) -> list[AppendedEntry]:
        """Add several entries under one lock, in order (e.g. a batch's shares and refusals).

        Three statements whatever the number of records: collect a transaction's records
        and append them in one call, just before commit. Records made before the write
        lock is taken are best passed as drafts (``draft``): what is left under the lock
        is then the chain's own work.

        Returns:
            What was stored, in the order given.
        """
        if not records:
            return []
        # Pure work first: the head's lock (a row lock on PostgreSQL) is held from here on.
        drafts = [r if isinstance(r, EntryDraft) else draft(r) for r in records]
        connection = session.connection()
        seq, prev_hash = _lock_head(connection, len(records))
        at = self._clock()
        if at.tzinfo is None:
            raise AuditEntryInvalid("audit clock returned a naive datetime")
        chain = {"at": json.dumps(_norm_at(at))}
        rows: list[dict[str, Any]] = []
        for entry in drafts:
            seq += 1
            chain["seq"] = str(seq)
            chain["prev_hash"] = json.dumps(prev_hash, ensure_ascii=False)
            values = {**entry.values, "seq": seq, "at": at, "prev_hash": prev_hash}
            values["hash"] = prev_hash = _draft_hash(entry, chain)
            rows.append(values)
        _INSERT_ENTRIES(connection, rows)
        connection.execute(_MOVE_HEAD, {"head_hash": prev_hash, "head_at": at})
        # Plain frozen values: building ORM objects here would cost more than the insert.
        return [AppendedEntry(**{**row, "fields": tuple(row["fields"])}) for row in rows]


def entries_for_event(session: Session, event_id: uuid.UUID) -> list[AuditEntry]:
    """Every entry about one event, in chain order."""
    statement = (
        select(AuditEntry).where(AuditEntry.event_id == event_id).order_by(col(AuditEntry.seq))
    )
    return list(session.exec(statement).all())


# --------------------------------------------------------------------------- checkpoints


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _sign_compact(header: dict[str, Any], payload: bytes, signer: Signer) -> str:
    if isinstance(signer, Ed25519PrivateKey):
        return jws.serialize_compact(
            header, payload, OKPKey.import_key(signer), algorithms=[CHECKPOINT_ALG]
        )
    # A bare signing callable (HSM, key registry): assemble RFC 7515 compact form ourselves.
    signing_input = f"{_b64(_json(header))}.{_b64(payload)}"
    signature = signer(signing_input.encode("ascii"))
    return f"{signing_input}.{_b64(signature)}"


def _json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode("utf-8")


def _link(signature: str | None) -> str:
    """What a checkpoint's ``prev`` claim holds: SHA-256 of the previous checkpoint's JWS."""
    if signature is None:
        return GENESIS_HASH
    return hashlib.sha256(signature.encode("ascii", "replace")).hexdigest()


def _last_checkpoint(session: Session) -> AuditCheckpoint | None:
    statement = select(AuditCheckpoint).order_by(col(AuditCheckpoint.seq).desc()).limit(1)
    return session.exec(statement).first()


def _recheck_since(
    connection: Connection, last: AuditCheckpoint | None, head: tuple[int, str]
) -> None:
    """Recompute the entries after ``last`` up to the head; raise if anything is off."""
    start, prev_hash = (0, GENESIS_HASH) if last is None else (last.entry_count, last.head_hash)
    if start:
        anchor = connection.execute(
            sa.select(_ENTRY.c.hash).where(_ENTRY.c.seq == start)
        ).scalar_one_or_none()
        if anchor != prev_hash:
            raise AuditIntegrityError(f"audit entry {start} no longer matches the last checkpoint")
    head_seq, head_hash = head
    expected = start
    for row in connection.execute(
        _entry_select().where(_ENTRY.c.seq > start).order_by(_ENTRY.c.seq)
    ).mappings():
        expected += 1
        intact = row["prev_hash"] == prev_hash and entry_hash(row) == row["hash"]
        if row["seq"] != expected or not intact:
            raise AuditIntegrityError(f"audit entry {expected} does not verify; not signing")
        prev_hash = row["hash"]
    if expected != head_seq or prev_hash != head_hash:
        raise AuditIntegrityError(
            f"audit log ends at {expected} but its head row says {head_seq}; not signing"
        )


def checkpoint(
    session: Session,
    signer: Signer,
    kid: str,
    *,
    issuer: str | None = None,
    clock: Callable[[], datetime] = utc_now,
) -> AuditCheckpoint:
    """Sign the chain's current length and head hash, in the caller's transaction.

    The entries since the previous checkpoint are recomputed first: the service never
    signs over a chain that does not verify. Appends wait while this runs.

    Args:
        session: the caller's session; commit it to keep the checkpoint.
        signer: the service's Ed25519 private key, or a callable signing bytes with it.
        kid: the key id verifiers will look the public key up by.
        issuer: the service's party id, put in the ``iss`` claim when given.
        clock: the current UTC time.

    Returns:
        The new checkpoint row (added to the session).

    Raises:
        AuditIntegrityError: the chain since the last checkpoint does not verify.
    """
    connection = session.connection()
    head = _lock_head(connection, 0)
    last = _last_checkpoint(session)
    _recheck_since(connection, last, head)
    number = 1 if last is None else last.seq + 1
    signed_at = clock().replace(microsecond=0)
    claims: dict[str, Any] = {
        "cp": number,
        "count": head[0],
        "head": head[1],
        "prev": _link(last.signature if last else None),
        "iat": int(signed_at.timestamp()),
    }
    if issuer:
        claims["iss"] = issuer
    header = {"alg": CHECKPOINT_ALG, "kid": kid, "typ": CHECKPOINT_TYP}
    token = _sign_compact(header, _json(claims), signer)
    row = AuditCheckpoint(
        seq=number,
        entry_count=head[0],
        head_hash=head[1],
        signed_at=signed_at,
        kid=kid,
        signature=token,
    )
    session.add(row)
    session.flush()
    return row


def checkpoint_if_due(
    session: Session,
    signer: Signer,
    kid: str,
    *,
    every_entries: int = 1000,
    every: timedelta = timedelta(minutes=5),
    issuer: str | None = None,
    clock: Callable[[], datetime] = utc_now,
) -> AuditCheckpoint | None:
    """Sign a checkpoint when ``every_entries`` entries or ``every`` time have passed.

    Nothing is signed while no entry was added since the last checkpoint.

    Returns:
        The new checkpoint, or None when none was due.
    """
    head = session.exec(select(AuditHead).where(AuditHead.id == 1)).one()
    last = _last_checkpoint(session)
    last_count = last.entry_count if last else 0
    if head.seq == last_count:
        return None
    stale = last is None or clock() - last.signed_at >= every
    if head.seq - last_count < every_entries and not stale:
        return None
    return checkpoint(session, signer, kid, issuer=issuer, clock=clock)


# --------------------------------------------------------------------------- verification


class Problem(StrEnum):
    """Why verification failed."""

    HASH_MISMATCH = "hash_mismatch"
    BROKEN_LINK = "broken_link"
    GAP = "gap"
    REORDERED = "reordered"
    INSERTED = "inserted"
    CHECKPOINT_SIGNATURE_INVALID = "checkpoint_signature_invalid"
    CHECKPOINT_MISSING = "checkpoint_missing"
    HEAD_MISMATCH = "head_mismatch"
    TRUNCATED = "truncated"
    HEAD_ROW_MISMATCH = "head_row_mismatch"


@dataclass(frozen=True)
class VerifyReport:
    """The outcome of ``verify``: counts, the head, and the first problem if any.

    Attributes:
        ok: the chain and every checkpoint verified.
        entries: entries checked in order before stopping (all of them when ok).
        head_seq: seq of the last entry checked.
        head_hash: hash of the last entry checked (the genesis hash when empty).
        checkpoints: checkpoints found.
        signatures_checked: False when no public keys were given.
        anchored: entries covered by the latest checkpoint; later ones could be truncated
            without detection until the next checkpoint.
        problem: the first problem found.
        first_bad_seq: the first entry that is missing, altered or out of place (for a
            checkpoint head mismatch, the first entry the checkpoint no longer vouches for).
        checkpoint_seq: the checkpoint involved, if any.
        message: one line for people (ids only).
    """

    ok: bool
    entries: int
    head_seq: int
    head_hash: str
    checkpoints: int
    signatures_checked: bool
    anchored: int
    problem: Problem | None = None
    first_bad_seq: int | None = None
    checkpoint_seq: int | None = None
    message: str = ""

    def summary(self) -> str:
        """``OK ...`` or ``BAD ...``, one line."""
        if self.ok:
            signatures = (
                "signatures verified"
                if self.signatures_checked
                else ("signatures NOT checked (no public key given)")
            )
            return (
                f"OK {self.entries} entries, head {self.head_seq} {self.head_hash}, "
                f"{self.checkpoints} checkpoints ({signatures}), anchored to entry {self.anchored}"
            )
        where = f" at seq {self.first_bad_seq}" if self.first_bad_seq is not None else ""
        problem = self.problem.value if self.problem else "unknown"
        return f"BAD {problem}{where}: {self.message}"


def _entry_select() -> sa.Select[Any]:
    """Entry columns read without type conversion, so tampered values cannot crash the read."""
    c = _ENTRY.c
    return sa.select(
        c.seq,
        sa.type_coerce(c.at, sa.String()).label("at"),
        sa.type_coerce(c.kind, sa.String()).label("kind"),
        sa.type_coerce(c.event_id, sa.String()).label("event_id"),
        c.party,
        c.actor,
        c.recipient,
        c.rule_id,
        c.lawful_basis,
        sa.type_coerce(c.fields, sa.Text()).label("fields"),
        c.reason,
        c.jti,
        c.detail,
        c.prev_hash,
        c.hash,
    )


@dataclass
class _CheckpointView:
    seq: int
    entry_count: int
    head_hash: str


def _check_checkpoints(
    rows: Sequence[AuditCheckpoint], public_keys: Mapping[str, Ed25519PublicKey] | None
) -> tuple[list[_CheckpointView], _Finding | None]:
    """Signatures, claims against columns, numbering and links of every checkpoint."""
    views: list[_CheckpointView] = []
    prev_signature: str | None = None
    for number, row in enumerate(rows, start=1):
        if row.seq != number:
            return views, _cp_finding(
                Problem.CHECKPOINT_MISSING, row.seq, f"checkpoint {number} is missing"
            )
        claims = _verified_claims(row.signature, row.kid, public_keys, f"checkpoint {row.seq}")
        if isinstance(claims, str):
            return views, _cp_finding(Problem.CHECKPOINT_SIGNATURE_INVALID, row.seq, claims)
        expected = {
            "cp": row.seq,
            "count": row.entry_count,
            "head": row.head_hash,
            "prev": _link(prev_signature),
        }
        for name, value in expected.items():
            if claims.get(name) != value:
                problem = (
                    Problem.CHECKPOINT_MISSING
                    if name == "prev"
                    else (Problem.CHECKPOINT_SIGNATURE_INVALID)
                )
                return views, _cp_finding(
                    problem, row.seq, f"checkpoint {row.seq}: signed {name} differs"
                )
        if views and row.entry_count < views[-1].entry_count:
            return views, _cp_finding(
                Problem.CHECKPOINT_SIGNATURE_INVALID,
                row.seq,
                f"checkpoint {row.seq} counts fewer entries than checkpoint {views[-1].seq}",
            )
        views.append(_CheckpointView(row.seq, row.entry_count, row.head_hash))
        prev_signature = row.signature
    return views, None


def _cp_finding(problem: Problem, cp_seq: int, message: str) -> _Finding:
    return _Finding(problem, 0, message, checkpoint_seq=cp_seq)


def _b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _header_problem(token: str, kid: str | None, label: str) -> str | None:
    """Why the JWS header cannot be right, if it cannot; ``kid`` None accepts any kid."""
    parts = token.split(".")
    if len(parts) != 3:
        return f"{label}: not a compact JWS"
    try:
        header = json.loads(_b64decode(parts[0]))
    except ValueError:
        return f"{label}: JWS header is not JSON"
    if not isinstance(header, dict) or not isinstance(header.get("kid"), str):
        return f"{label}: JWS header is not an object with a kid"
    if header.get("alg") != CHECKPOINT_ALG or (kid is not None and header["kid"] != kid):
        return f"{label}: alg or kid in the JWS header differs"
    return None


def _verified_claims(
    token: str,
    kid: str | None,
    public_keys: Mapping[str, Ed25519PublicKey] | None,
    label: str,
) -> dict[str, Any] | str:
    """A checkpoint JWS's claims, or why they cannot be trusted."""
    problem = _header_problem(token, kid, label)
    if problem is not None:
        return problem
    kid = kid or json.loads(_b64decode(token.split(".", maxsplit=1)[0]))["kid"]
    try:
        if public_keys is None:
            payload = _b64decode(token.split(".")[1])
        else:
            public_key = public_keys.get(str(kid))
            if public_key is None:
                return f"{label}: kid {kid} is not a trusted checkpoint key"
            verified = jws.deserialize_compact(
                token, OKPKey.import_key(public_key), algorithms=[CHECKPOINT_ALG]
            )
            payload = verified.payload
        claims = json.loads(payload)
    except (JoseError, ValueError) as exc:
        return f"{label}: signature does not verify ({type(exc).__name__})"
    if not isinstance(claims, dict):
        return f"{label}: claims are not an object"
    return claims


def _check_anchors(
    anchors: Sequence[str],
    public_keys: Mapping[str, Ed25519PublicKey] | None,
    stored: Mapping[int, AuditCheckpoint],
) -> tuple[list[_CheckpointView], _Finding | None]:
    """Checkpoints kept outside the database: each must verify and agree with the log."""
    views: list[_CheckpointView] = []
    for index, token in enumerate(anchors, start=1):
        label = f"anchor {index}"
        if public_keys is None:
            return views, _cp_finding(
                Problem.CHECKPOINT_SIGNATURE_INVALID, 0, f"{label}: no public key to check it"
            )
        claims = _verified_claims(token.strip(), None, public_keys, label)
        if isinstance(claims, str):
            return views, _cp_finding(Problem.CHECKPOINT_SIGNATURE_INVALID, 0, claims)
        number, count, head = claims.get("cp"), claims.get("count"), claims.get("head")
        if not (isinstance(number, int) and isinstance(count, int) and isinstance(head, str)):
            return views, _cp_finding(
                Problem.CHECKPOINT_SIGNATURE_INVALID, 0, f"{label}: claims incomplete"
            )
        row = stored.get(number)
        if row is not None and row.signature != token.strip():
            return views, _cp_finding(
                Problem.CHECKPOINT_MISSING,
                number,
                f"checkpoint {number} in the log is not the one kept as {label}",
            )
        views.append(_CheckpointView(number, count, head))
    return views, None


@dataclass(frozen=True)
class _Finding:
    problem: Problem
    first_bad_seq: int
    message: str
    checkpoint_seq: int | None = None
    #: Set when both the hash and the link fail: the entry may have been moved or pushed
    #: along by an insertion, which one more query tells apart.
    suspect_prev_hash: str | None = None
    #: For a checkpoint head mismatch: the head it signed, and the seq it signed it at.
    signed_head: str | None = None
    signed_at_seq: int = 0


class _Verifier:
    """One ordered pass over the entries, holding the state the checks need."""

    def __init__(self, checkpoints: Sequence[_CheckpointView]) -> None:
        self.checkpoints: dict[int, list[_CheckpointView]] = {}
        for cp in checkpoints:
            self.checkpoints.setdefault(cp.entry_count, []).append(cp)
        self.counts = sorted(self.checkpoints)
        self.count = 0
        self.prev_hash = GENESIS_HASH

    def anchor_before(self, seq: int) -> int:
        """The largest checkpointed count below ``seq`` (0 when none)."""
        return max((count for count in self.counts if count < seq), default=0)

    def step(self, row: Mapping[Any, Any]) -> _Finding | None:
        expected = self.count + 1
        seq = row["seq"]
        if seq != expected:
            return _Finding(Problem.GAP, expected, f"entries {expected}..{seq - 1} are missing")
        if entry_hash(row) != row["hash"]:
            return _Finding(
                Problem.HASH_MISMATCH,
                seq,
                f"entry {seq} does not match its hash",
                suspect_prev_hash=row["prev_hash"] if row["prev_hash"] != self.prev_hash else None,
            )
        if row["prev_hash"] != self.prev_hash:
            return _Finding(
                Problem.BROKEN_LINK, seq, f"entry {seq} does not link to entry {seq - 1}"
            )
        for cp in self.checkpoints.get(seq, ()):
            if row["hash"] == cp.head_hash:
                continue
            first = self.anchor_before(seq) + 1
            return _Finding(
                Problem.HEAD_MISMATCH,
                first,
                f"entries {first}..{seq} were rewritten: checkpoint {cp.seq} signed another head",
                cp.seq,
                signed_head=cp.head_hash,
                signed_at_seq=seq,
            )
        self.count = seq
        self.prev_hash = row["hash"]
        return None


def _seq_of_hash(connection: Connection, hash_: str) -> int | None:
    """Where an entry with this hash sits now (0 for the genesis hash), if anywhere."""
    if hash_ == GENESIS_HASH:
        return 0
    found = connection.execute(
        sa.select(_ENTRY.c.seq).where(_ENTRY.c.hash == hash_).order_by(_ENTRY.c.seq).limit(1)
    ).scalar_one_or_none()
    return None if found is None else int(found)


def _classify(connection: Connection, finding: _Finding) -> _Finding:
    """Sharpen a finding by asking where the hash it expected went (on failure only).

    An entry whose hash and link both fail either was moved (its predecessor now sits
    later) or was pushed along by an insertion (its predecessor sits further back). A
    checkpoint whose head hash turns up later in the log was pushed along the same way.
    """
    seq = finding.first_bad_seq
    if finding.suspect_prev_hash is not None:
        found = _seq_of_hash(connection, finding.suspect_prev_hash)
        if found is not None and found >= seq:
            return _Finding(
                Problem.REORDERED, seq, f"entry {seq} was moved: it follows entry {found}"
            )
        if found is not None and found < seq - 1:
            return _Finding(
                Problem.INSERTED,
                found + 1,
                f"entries {found + 1}..{seq - 1} were inserted after entry {found}",
            )
    if finding.problem is Problem.HEAD_MISMATCH and finding.signed_head is not None:
        at = finding.signed_at_seq
        found = _seq_of_hash(connection, finding.signed_head)
        if found is not None and found > at:
            first = max(2 * at - found + 1, seq)
            return _Finding(
                Problem.INSERTED,
                first,
                f"entries {first}..{at} were inserted: checkpoint {finding.checkpoint_seq} "
                f"signed the entry now at {found}",
                finding.checkpoint_seq,
            )
    return finding


def verify(
    session: Session,
    public_keys: Mapping[str, Ed25519PublicKey] | None,
    *,
    anchors: Sequence[str] = (),
) -> VerifyReport:
    """Recompute the whole chain and every checkpoint; report the first problem.

    Reads checkpoints, then the entries in one ordered statement, then the head row, so
    that appends running at the same time are not mistaken for tampering.

    Args:
        session: any session on the audit database (nothing is written).
        public_keys: the service's checkpoint public keys by kid; None skips signature
            checks (the report says so).
        anchors: checkpoint JWS kept outside the database (printed by ``audit
            checkpoint``); they catch truncation even if the stored checkpoints were
            deleted too. Need ``public_keys``.
    """
    checkpoint_rows = list(session.exec(select(AuditCheckpoint).order_by(col(AuditCheckpoint.seq))))
    views, cp_problem = _check_checkpoints(checkpoint_rows, public_keys)
    if cp_problem is None and anchors:
        stored = {row.seq: row for row in checkpoint_rows}
        external, cp_problem = _check_anchors(anchors, public_keys, stored)
        views = sorted([*views, *external], key=lambda view: view.entry_count)
    verifier = _Verifier(views)
    finding: _Finding | None = None
    if cp_problem is not None:
        finding = cp_problem
    else:
        connection = session.connection()
        # yield_per on the statement, not the connection: a connection-level option would
        # stick to the caller's connection and turn later statements into cursors too.
        result = connection.execute(
            _entry_select().order_by(_ENTRY.c.seq).execution_options(yield_per=2000)
        )
        with result:
            for row in result.mappings():
                finding = verifier.step(row)
                if finding is not None:
                    break
        if finding is not None:
            finding = _classify(connection, finding)
        if finding is None:
            finding = _tail_problem(connection, verifier, views)
    return VerifyReport(
        ok=finding is None,
        entries=verifier.count,
        head_seq=verifier.count,
        head_hash=verifier.prev_hash,
        checkpoints=len(checkpoint_rows),
        signatures_checked=public_keys is not None,
        anchored=max((cp.entry_count for cp in views), default=0),
        problem=finding.problem if finding else None,
        first_bad_seq=finding.first_bad_seq if finding and finding.first_bad_seq else None,
        checkpoint_seq=finding.checkpoint_seq if finding else None,
        message=finding.message if finding else "",
    )


def _tail_problem(
    connection: Connection, verifier: _Verifier, views: Sequence[_CheckpointView]
) -> _Finding | None:
    """Truncation against the checkpoints and the head row, after the entries checked out."""
    count = verifier.count
    beyond = [cp for cp in views if cp.entry_count > count]
    if beyond:
        cp = beyond[0]
        return _Finding(
            Problem.TRUNCATED,
            count + 1,
            f"checkpoint {cp.seq} signed {cp.entry_count} entries; the log holds {count}",
            cp.seq,
        )
    head = connection.execute(sa.select(_HEAD.c.seq, _HEAD.c.hash).where(_HEAD.c.id == 1)).one()
    if head.seq < count:
        return _Finding(
            Problem.HEAD_ROW_MISMATCH,
            head.seq + 1,
            f"entries {head.seq + 1}..{count} were added outside the audit log",
        )
    if head.seq == count and head.hash != verifier.prev_hash:
        return _Finding(
            Problem.HEAD_ROW_MISMATCH, count, f"entry {count} differs from the head row"
        )
    if head.seq > count:
        # Appends may have committed after the entries were read; only entries that are
        # still absent now mean truncation.
        latest = connection.execute(sa.select(sa.func.max(_ENTRY.c.seq))).scalar()
        if latest is None or latest < head.seq:
            return _Finding(
                Problem.TRUNCATED,
                count + 1,
                f"the head row records {head.seq} entries; the log holds {count}",
            )
    return None
