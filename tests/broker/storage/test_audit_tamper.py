"""Random tampering of a checkpointed log: every change is caught, at the right seq and reason.

A property test (hypothesis, a 30-entry log) runs in the default suite; the soak test
tampers 1,000 times with a 10,000-entry log (``-m soak``).
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import Session

from broker.audit import Problem, checkpoint, verify
from broker.models import AuditKind
from tests.broker.storage import tamper
from tests.broker.storage.conftest import SERVICE_KID

EDITABLE = (
    "party",
    "actor",
    "recipient",
    "rule_id",
    "lawful_basis",
    "fields",
    "reason",
    "jti",
    "detail",
    "at",
    "kind",
    "event_id",
    "hash",
    "prev_hash",
)
OPS = ("edit", "rehash", "delete", "swap", "truncate", "insert", "insert_bad", "append", "rewrite")


@dataclass(frozen=True)
class Tampering:
    """One attack: what, where, and (for edits) which column."""

    op: str
    seq: int
    other: int = 0
    column: str = "party"


@dataclass(frozen=True)
class Log:
    """The shape of the log under attack: its length and where checkpoints were signed."""

    size: int
    checkpoints: tuple[int, ...]

    def anchor_before(self, seq: int) -> int:
        return max((c for c in self.checkpoints if c < seq), default=0)

    def checkpoint_at_or_after(self, seq: int) -> int:
        return min(c for c in self.checkpoints if c >= seq)


def build(session: Session, key: Ed25519PrivateKey, size: int, every: int) -> Log:
    """Append ``size`` entries, signing a checkpoint every ``every`` entries."""
    for done in range(0, size, every):
        tamper.build_log(session, min(every, size - done))
        checkpoint(session, key, SERVICE_KID)
    return Log(size, tuple(range(every, size + 1, every)))


def _new_value(session: Session, seq: int, column: str) -> object:
    current = tamper.row(session, seq)[column]
    replacements: dict[str, object] = {
        "party": "forged-party",
        "actor": "user-9999",
        "recipient": "forged-recipient",
        "rule_id": "forged-rule",
        "lawful_basis": "dpa-2018-sch8",
        "reason": "forged_reason",
        "jti": "forged-jti",
        "detail": "adapter=forged",
        "event_id": uuid.uuid4(),
        "hash": uuid.uuid4().hex * 2,
        "prev_hash": uuid.uuid4().hex * 2,
    }
    if column == "fields":
        return [*current, "forged.field"]  # type: ignore[misc]
    if column == "at":
        return current + timedelta(microseconds=1)  # type: ignore[operator]
    if column == "kind":
        return next(kind for kind in AuditKind if kind != current)
    return replacements[column]


def apply(session: Session, log: Log, attack: Tampering) -> None:
    """Carry out the attack on the stored log."""
    n = log.size
    match attack.op:
        case "edit":
            tamper.edit(
                session,
                attack.seq,
                **{attack.column: _new_value(session, attack.seq, attack.column)},
            )
        case "rehash":
            tamper.rehash(session, attack.seq, party="forged-party")
        case "delete":
            tamper.delete(session, attack.seq)
        case "swap":
            tamper.swap(session, attack.seq, attack.other)
        case "truncate":
            tamper.truncate(session, attack.seq)
            tamper.set_head(session, attack.seq)
        case "insert" | "insert_bad":
            tamper.insert(session, attack.seq, valid_hash=attack.op == "insert")
            tamper.set_head(session, n + 1)
        case "append":
            tamper.append_forged(session, n + 1)
        case "rewrite":
            last = log.checkpoint_at_or_after(attack.seq)
            tamper.rewrite_from(session, attack.seq, last)
            if last == n:
                tamper.set_head(session, n)


def expected(log: Log, attack: Tampering) -> tuple[Problem, int]:  # noqa: PLR0911 - a table
    """What verify must report first for this attack."""
    seq, n = attack.seq, log.size
    match attack.op:
        case "edit":
            return Problem.HASH_MISMATCH, seq
        case "rehash":
            if seq in log.checkpoints:
                return Problem.HEAD_MISMATCH, log.anchor_before(seq) + 1
            return Problem.BROKEN_LINK, seq + 1
        case "delete":
            return (Problem.TRUNCATED, n) if seq == n else (Problem.GAP, seq)
        case "swap":
            return Problem.REORDERED, seq
        case "truncate":
            return Problem.TRUNCATED, seq + 1
        case "insert":
            return Problem.INSERTED, seq
        case "insert_bad":
            return Problem.HASH_MISMATCH, seq
        case "append":
            return Problem.HEAD_ROW_MISMATCH, n + 1
        case "rewrite":
            return Problem.HEAD_MISMATCH, log.anchor_before(log.checkpoint_at_or_after(seq)) + 1
    raise AssertionError(attack.op)


def random_attack(rng: random.Random, n: int) -> Tampering:
    """A uniformly chosen attack on a log of ``n`` entries."""
    op = rng.choice(OPS)
    seq = rng.randint(1, n)
    if op == "swap":
        a, b = sorted(rng.sample(range(1, n + 1), 2))
        return Tampering(op, a, b)
    if op == "truncate":
        return Tampering(op, rng.randint(0, n - 1))
    return Tampering(op, seq, column=rng.choice(EDITABLE))


def check(session: Session, log: Log, trusted: dict[str, object], attack: Tampering) -> None:
    """Attack inside a savepoint, verify, and undo."""
    savepoint = session.begin_nested()
    try:
        apply(session, log, attack)
        report = verify(session, trusted)  # type: ignore[arg-type]
    finally:
        savepoint.rollback()
    assert not report.ok, f"{attack} went unnoticed"
    assert (report.problem, report.first_bad_seq) == expected(log, attack), (
        f"{attack}: {report.summary()}"
    )


@settings(
    max_examples=60,
    deadline=None,
    # Each example undoes its attack with a savepoint rollback, so sharing the
    # function-scoped session (and its 30-entry log) between examples is sound.
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(seed=st.randoms(use_true_random=False))
def test_random_tampering_is_caught_at_the_right_seq(
    db_session: Session, service_key: Ed25519PrivateKey, trusted, seed: random.Random
) -> None:
    if not tamper.seqs(db_session):
        build(db_session, service_key, 30, 15)
    log = Log(30, (15, 30))
    check(db_session, log, trusted, random_attack(seed, log.size))


@pytest.mark.parametrize(
    "attack",
    [Tampering(op, seq) for op in ("insert", "rehash", "rewrite") for seq in (1, 15, 16, 30)]
    + [Tampering("swap", 15, 30), Tampering("truncate", 0), Tampering("delete", 30)],
    ids=repr,
)
def test_attacks_at_the_edges(db_session: Session, service_key, trusted, attack) -> None:
    log = build(db_session, service_key, 30, 15)
    check(db_session, log, trusted, attack)


@pytest.mark.soak
def test_soak_a_thousand_tamperings_of_a_ten_thousand_entry_log(
    request: pytest.FixtureRequest, db_session: Session, service_key: Ed25519PrivateKey, trusted
) -> None:
    if "soak" not in (request.config.option.markexpr or ""):
        pytest.skip("soak: run with -m soak")
    log = build(db_session, service_key, 10_000, 1_000)
    assert verify(db_session, trusted).ok
    rng = random.Random(20260301)
    for _ in range(1_000):
        check(db_session, log, trusted, random_attack(rng, log.size))
