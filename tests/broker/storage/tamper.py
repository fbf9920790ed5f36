"""An attacker with write access to the audit tables (but not the signing key), for tests."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, SQLModel

from broker.audit import AuditLog, AuditRecord, entry_hash
from broker.models import AuditKind

ENTRY = SQLModel.metadata.tables["audit_entry"]
HEAD = SQLModel.metadata.tables["audit_head"]
CHECKPOINT = SQLModel.metadata.tables["audit_checkpoint"]
#: Temporary seq offset, above any test log, used to move rows without key clashes.
PARK = 1_000_000_000

EVENT = uuid.UUID("7b0d7c1e-0000-4000-8000-000000000001")


def sample_records(count: int, start: int = 0) -> list[AuditRecord]:
    """A plausible mix of entries (synthetic ids only)."""
    kinds = [
        AuditRecord(kind=AuditKind.RECEIVED, party="tvp-police", detail="adapter=police"),
        AuditRecord(
            kind=AuditKind.SHARED,
            event_id=EVENT,
            party="tvp-police",
            recipient="wam-mash",
            rule_id="missing-high-to-mash",
            lawful_basis="cda-1998-s115",
            fields=("subject.nhs_number", "body.risk_grade"),
        ),
        AuditRecord(
            kind=AuditKind.REFUSED, event_id=EVENT, recipient="slough-panel", reason="no_rule"
        ),
        AuditRecord(kind=AuditKind.PUBLISHED, recipient="wam-mash", jti="jti-0"),
        AuditRecord(kind=AuditKind.OPENED, actor="user-0042", party="wam-childrens-services"),
    ]
    out = []
    for i in range(start, start + count):
        record = kinds[i % len(kinds)]
        if record.jti:
            record = record.model_copy(update={"jti": f"jti-{i}"})
        out.append(record)
    return out


def build_log(session: Session, count: int, *, batch: int = 500) -> AuditLog:
    """Append ``count`` entries with one-second steps of a fake clock."""
    moment = [datetime(2026, 3, 1, 9, 0, tzinfo=UTC)]

    def clock() -> datetime:
        moment[0] += timedelta(seconds=1, microseconds=7)
        return moment[0]

    log = AuditLog(clock=clock)
    done = 0
    while done < count:
        size = min(batch, count - done)
        log.append_many(session, sample_records(size, done))
        done += size
    return log


def row(session: Session, seq: int) -> dict[str, object]:
    """The stored entry at ``seq`` as column values."""
    found = session.connection().execute(sa.select(ENTRY).where(ENTRY.c.seq == seq)).mappings()
    return dict(found.one())


def edit(session: Session, seq: int, **values: object) -> None:
    """Change columns of one entry, leaving its hash as it was."""
    session.connection().execute(sa.update(ENTRY).where(ENTRY.c.seq == seq).values(**values))


def rehash(session: Session, seq: int, **values: object) -> None:
    """Change columns of one entry and give it a hash that matches its new content."""
    current = row(session, seq)
    current.update(values)
    current["hash"] = entry_hash(current)
    session.connection().execute(
        sa.update(ENTRY).where(ENTRY.c.seq == seq).values(**{**values, "hash": current["hash"]})
    )


def rewrite_from(session: Session, seq: int, last: int, *, party: str = "forged-party") -> None:
    """Rewrite entries seq..last consistently (content, links and hashes), as a clever attacker."""
    prev_hash = row(session, seq - 1)["hash"] if seq > 1 else "0" * 64
    for n in range(seq, last + 1):
        current = row(session, n)
        current.update(prev_hash=prev_hash)
        if n == seq:
            current["party"] = party
        current["hash"] = entry_hash(current)
        session.connection().execute(
            sa.update(ENTRY)
            .where(ENTRY.c.seq == n)
            .values(party=current["party"], prev_hash=prev_hash, hash=current["hash"])
        )
        prev_hash = current["hash"]


def delete(session: Session, *seqs: int) -> None:
    """Remove entries."""
    session.connection().execute(sa.delete(ENTRY).where(ENTRY.c.seq.in_(seqs)))


def truncate(session: Session, keep: int) -> None:
    """Remove every entry after ``keep``."""
    session.connection().execute(sa.delete(ENTRY).where(ENTRY.c.seq > keep))


def set_head(session: Session, seq: int) -> None:
    """Make the head row agree with a tampered log ending at ``seq``."""
    hash_ = row(session, seq)["hash"] if seq else "0" * 64
    session.connection().execute(sa.update(HEAD).values(seq=seq, hash=hash_))


def shift(session: Session, from_seq: int, by: int) -> None:
    """Renumber entries from ``from_seq`` on by ``by`` (without rehashing them)."""
    connection = session.connection()
    connection.execute(
        sa.update(ENTRY).where(ENTRY.c.seq >= from_seq).values(seq=ENTRY.c.seq + PARK)
    )
    connection.execute(
        sa.update(ENTRY).where(ENTRY.c.seq >= PARK).values(seq=ENTRY.c.seq - PARK + by)
    )


def swap(session: Session, a: int, b: int) -> None:
    """Exchange the positions of two entries (their seq values)."""
    connection = session.connection()
    connection.execute(sa.update(ENTRY).where(ENTRY.c.seq == a).values(seq=PARK))
    connection.execute(sa.update(ENTRY).where(ENTRY.c.seq == b).values(seq=a))
    connection.execute(sa.update(ENTRY).where(ENTRY.c.seq == PARK).values(seq=b))


def insert(session: Session, seq: int, *, valid_hash: bool = True) -> None:
    """Insert a forged entry at ``seq``, pushing the later entries along by one."""
    shift(session, seq, 1)
    prev_hash = row(session, seq - 1)["hash"] if seq > 1 else "0" * 64
    values: dict[str, object] = {
        "seq": seq,
        "at": datetime(2026, 3, 1, 12, 0, tzinfo=UTC),
        "kind": AuditKind.SHARED,
        "event_id": EVENT,
        "party": "tvp-police",
        "actor": None,
        "recipient": "forged-recipient",
        "rule_id": "forged-rule",
        "lawful_basis": "cda-1998-s115",
        "fields": ["subject"],
        "reason": None,
        "jti": None,
        "detail": None,
        "prev_hash": prev_hash,
    }
    values["hash"] = entry_hash(values) if valid_hash else "f" * 64
    session.connection().execute(sa.insert(ENTRY).values(**values))


def append_forged(session: Session, seq: int) -> None:
    """Add a correctly chained entry after ``seq - 1`` without touching the head row."""
    prev_hash = row(session, seq - 1)["hash"]
    values = dict(row(session, seq - 1))
    values.update(seq=seq, prev_hash=prev_hash, recipient="forged-recipient")
    values["hash"] = entry_hash(values)
    session.connection().execute(sa.insert(ENTRY).values(**values))


def seqs(session: Session) -> Sequence[int]:
    """Every seq present, ascending."""
    return list(
        session.connection().execute(sa.select(ENTRY.c.seq).order_by(ENTRY.c.seq)).scalars()
    )
