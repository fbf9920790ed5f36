"""The audit chain: appends, hashing, checkpoints, and every tampering caught at the right seq."""

from __future__ import annotations

import base64
import hashlib
import json
import pickle
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from joserfc import jws
from joserfc.jwk import OKPKey
from sqlmodel import Session

from broker.audit import (
    CHECKPOINT_ALG,
    HASH_DOMAIN,
    AuditEntryInvalid,
    AuditIntegrityError,
    AuditLog,
    Problem,
    VerifyReport,
    checkpoint,
    checkpoint_if_due,
    draft,
    entries_for_event,
    entry_hash,
    verify,
)
from broker.db import make_sessionmaker, session_scope
from broker.models import GENESIS_HASH, AuditCheckpoint, AuditEntry, AuditHead, AuditKind
from schemas.common import make_test_nhs_number
from tests.broker.storage import tamper
from tests.broker.storage.conftest import SERVICE_KID

N = 20


@pytest.fixture
def log20(db_session: Session, service_key: Ed25519PrivateKey) -> Session:
    """A 20-entry log with one checkpoint over all of it."""
    tamper.build_log(db_session, N)
    checkpoint(db_session, service_key, SERVICE_KID)
    return db_session


def bad(report, problem: Problem, seq: int | None) -> None:
    assert not report.ok, report.summary()
    assert report.problem is problem, report.summary()
    assert report.first_bad_seq == seq, report.summary()


# --------------------------------------------------------------------------- appending


def test_append_links_each_entry_to_the_previous_one(db_session: Session) -> None:
    log = AuditLog()
    first = log.append(db_session, kind="received", party="tvp-police", detail="adapter=police")
    second = log.append(
        db_session,
        kind="shared",
        event_id=tamper.EVENT,
        party="tvp-police",
        recipient="wam-mash",
        rule_id="missing-high-to-mash",
        lawful_basis="cda-1998-s115",
        fields=["subject.nhs_number", "body.risk_grade", "body.risk_grade"],
        jti="jti-1",
    )
    assert (first.seq, second.seq) == (1, 2)
    assert first.prev_hash == GENESIS_HASH
    assert second.prev_hash == first.hash
    assert second.fields == ("body.risk_grade", "subject.nhs_number")  # sorted, deduplicated
    stored = db_session.get(AuditEntry, 2)
    assert stored is not None
    assert stored.hash == second.hash == entry_hash(stored)
    assert stored.at.tzinfo is not None


def test_the_head_row_follows_each_append(db_session: Session) -> None:
    log = AuditLog()
    log.append(db_session, kind="received", party="tvp-police")
    entries = log.append_many(
        db_session,
        [AuditLog.record(kind="received", party="tvp-police") for _ in range(3)],
    )
    head = db_session.connection().execute(sa.select(tamper.HEAD)).one()
    assert (head.seq, head.hash) == (4, entries[-1].hash)
    assert head.updated_at == entries[-1].at
    assert head.updated_at.tzinfo is not None


def test_hash_is_sha256_over_the_documented_encoding(db_session: Session) -> None:
    at = datetime(2026, 3, 1, 9, 30, 15, 123456, tzinfo=UTC)
    entry = AuditLog(clock=lambda: at).append(
        db_session,
        kind="refused",
        event_id=tamper.EVENT,
        recipient="slough-panel",
        reason="no_rule",
    )
    document = {
        "seq": 1,
        "at": "2026-03-01T09:30:15.123456Z",
        "kind": "refused",
        "event_id": str(tamper.EVENT),
        "party": None,
        "actor": None,
        "recipient": "slough-panel",
        "rule_id": None,
        "lawful_basis": None,
        "fields": [],
        "reason": "no_rule",
        "jti": None,
        "detail": None,
        "prev_hash": GENESIS_HASH,
    }
    encoded = json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
    assert HASH_DOMAIN == b"mash-broker/audit/v1"
    assert entry.hash == hashlib.sha256(HASH_DOMAIN + b"\x00" + encoded).hexdigest()


def test_drafts_made_before_the_lock_chain_exactly_as_records_do(db_engine) -> None:
    # The same records appended as records and as drafts (made earlier, e.g. in a
    # prepare process and pickled back): the same rows and the same hashes, by the
    # documented encoding, whatever the values (None, several fields, each kind).
    at = datetime(2026, 3, 1, 9, 30, 15, 123456, tzinfo=UTC)
    records = [
        AuditLog.record(kind="received", event_id=tamper.EVENT, party="tvp-police"),
        AuditLog.record(
            kind="shared",
            event_id=tamper.EVENT,
            recipient="wam-mash",
            rule_id="missing-to-mash",
            lawful_basis="s115",
            fields=["subject.name", "episode.id", "subject.name", "episode.found_at"],
            detail="outbox_id=7 exchange=disclosures",
        ),
        AuditLog.record(
            kind="refused", event_id=tamper.EVENT, recipient="x-panel", reason="no_rule"
        ),
        AuditLog.record(kind="rejected", party="tvp-police", reason="schema", detail="raw_id=abc"),
        AuditLog.record(kind="published", recipient="wam-mash", jti="0" * 31 + "a"),
    ]
    # As a prepare process sends them back (our own bytes, not untrusted input).
    drafts = [pickle.loads(pickle.dumps(draft(record))) for record in records]  # noqa: S301
    appended = {}
    for name, items in (("records", records), ("drafts", drafts)):
        sessions = make_sessionmaker(db_engine)
        with session_scope(sessions) as session:
            session.execute(sa.delete(AuditEntry))
            session.execute(sa.update(AuditHead).values(seq=0, hash=GENESIS_HASH))
        with session_scope(sessions) as session:
            log = AuditLog(clock=lambda: at)
            appended[name] = log.append_many(session, items[:2]) + log.append_many(
                session, items[2:]
            )
        with session_scope(sessions) as session:
            assert verify(session, None).ok
    assert appended["drafts"] == appended["records"]
    for entry in appended["drafts"]:
        document = {
            "seq": entry.seq,
            "at": "2026-03-01T09:30:15.123456Z",
            "kind": entry.kind.value,
            "event_id": None if entry.event_id is None else str(entry.event_id),
            "party": entry.party,
            "actor": entry.actor,
            "recipient": entry.recipient,
            "rule_id": entry.rule_id,
            "lawful_basis": entry.lawful_basis,
            "fields": list(entry.fields),
            "reason": entry.reason,
            "jti": entry.jti,
            "detail": entry.detail,
            "prev_hash": entry.prev_hash,
        }
        encoded = json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
        assert entry.hash == hashlib.sha256(HASH_DOMAIN + b"\x00" + encoded).hexdigest()
    assert appended["drafts"][1].fields == ("episode.found_at", "episode.id", "subject.name")


@pytest.mark.parametrize(
    ("entry", "names"),
    [
        ({"kind": "shared", "recipient": "wam-mash"}, "event_id, rule_id, lawful_basis, fields"),
        ({"kind": "rejected"}, "reason"),
        ({"kind": "opened", "party": "wam-mash"}, "actor"),
        ({"kind": "received", "party": "Jane Smith"}, "party"),
        (
            {"kind": "received", "party": "tvp-police", "detail": "child was seen in Slough"},
            "detail",
        ),
        ({"kind": "received", "party": "tvp-police", "detail": "name=Jane"}, "detail key 'name'"),
        ({"kind": "received", "party": "tvp-police", "colour": "x"}, "colour"),
        ({"kind": "rejected", "reason": "Free text reason"}, "reason"),
        ({"kind": "shared", "fields": ["subject name"]}, "fields.0"),
    ],
)
def test_append_refuses_missing_values_and_anything_but_ids(
    db_session: Session, entry: dict[str, object], names: str
) -> None:
    with pytest.raises(AuditEntryInvalid) as caught:
        AuditLog().append(db_session, **entry)
    assert names in str(caught.value)
    assert "Jane" not in str(caught.value)  # the refused value is never echoed
    assert tamper.seqs(db_session) == []


def test_append_refuses_an_nhs_number_even_in_an_id_shaped_value(db_session: Session) -> None:
    nhs = make_test_nhs_number(7)
    for entry in (
        {"kind": "received", "party": "tvp-police", "detail": f"source_ref={nhs}"},
        {"kind": "published", "recipient": "wam-mash", "jti": f"tok-{nhs}"},
    ):
        with pytest.raises(AuditEntryInvalid, match="NHS number") as caught:
            AuditLog().append(db_session, **entry)
        assert nhs not in str(caught.value)


def test_append_refuses_a_naive_clock(db_session: Session) -> None:
    log = AuditLog(clock=lambda: datetime(2026, 3, 1))  # noqa: DTZ001 - the point of the test
    with pytest.raises(AuditEntryInvalid, match="naive"):
        log.append(db_session, kind="received", party="tvp-police")


def test_entries_roll_back_with_the_callers_transaction(db_engine) -> None:
    log = AuditLog()
    with session_scope(db_engine) as session:
        log.append(session, kind="received", party="tvp-police")

    def failing_transaction() -> None:
        with session_scope(db_engine) as session:
            log.append(session, kind="received", party="tvp-police")
            raise RuntimeError("the outbox insert failed")

    with pytest.raises(RuntimeError):
        failing_transaction()
    with session_scope(db_engine) as session:
        assert tamper.seqs(session) == [1]
        log.append(session, kind="received", party="tvp-police")
        assert tamper.seqs(session) == [1, 2]
        assert verify(session, None).ok


def test_entries_for_event_lists_one_events_trail(db_session: Session) -> None:
    other = uuid.uuid4()
    tamper.build_log(db_session, 10)
    AuditLog().append(db_session, kind="refused", event_id=other, reason="unknown_party")
    trail = entries_for_event(db_session, tamper.EVENT)
    assert [entry.kind for entry in trail] == [AuditKind.SHARED, AuditKind.REFUSED] * 2
    assert [entry.seq for entry in entries_for_event(db_session, other)] == [11]


# --------------------------------------------------------------------------- verification


def test_an_intact_log_verifies(log20: Session, trusted) -> None:
    report = verify(log20, trusted)
    assert report.ok, report.summary()
    assert (report.entries, report.head_seq, report.checkpoints, report.anchored) == (N, N, 1, N)
    assert report.head_hash == tamper.row(log20, N)["hash"]
    assert report.summary().startswith(f"OK {N} entries, head {N} ")


def test_an_empty_log_verifies(db_session: Session, trusted) -> None:
    report = verify(db_session, trusted)
    assert report.ok
    assert (report.entries, report.head_hash) == (0, GENESIS_HASH)


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("party", "wam-mash"),
        ("recipient", "slough-panel"),
        ("fields", ["subject.nhs_number", "subject.name"]),
        ("at", datetime(2026, 3, 1, 9, 0, 7, tzinfo=UTC)),
        ("kind", AuditKind.DELIVERED),
        ("prev_hash", "1" * 64),
        ("hash", "2" * 64),
    ],
)
def test_an_edited_entry_is_caught_at_its_seq(log20: Session, trusted, column, value) -> None:
    tamper.edit(log20, 7, **{column: value})
    bad(verify(log20, trusted), Problem.HASH_MISMATCH, 7)


def test_an_edited_and_rehashed_entry_breaks_the_next_link(log20: Session, trusted) -> None:
    tamper.rehash(log20, 7, recipient="slough-panel")
    bad(verify(log20, trusted), Problem.BROKEN_LINK, 8)


def test_a_consistently_rewritten_tail_is_caught_by_the_checkpoint(
    db_session: Session, service_key, trusted
) -> None:
    tamper.build_log(db_session, 10)
    checkpoint(db_session, service_key, SERVICE_KID)
    tamper.build_log(db_session, 10)
    checkpoint(db_session, service_key, SERVICE_KID)
    tamper.rewrite_from(db_session, 13, 20)
    tamper.set_head(db_session, 20)
    report = verify(db_session, trusted)
    bad(report, Problem.HEAD_MISMATCH, 11)  # checkpoint 1 still vouches for 1..10
    assert report.checkpoint_seq == 2
    assert "11..20" in report.message


def test_a_rewrite_after_the_last_checkpoint_is_caught_by_the_head_row(
    log20: Session, trusted
) -> None:
    tamper.build_log(log20, 5)
    tamper.rewrite_from(log20, 22, 25)
    bad(verify(log20, trusted), Problem.HEAD_ROW_MISMATCH, 25)


def test_limit_a_full_rewrite_after_the_last_checkpoint_is_not_detectable(
    log20: Session, trusted
) -> None:
    # Documented limit (docs/audit.md): an attacker who can write the tables can rewrite
    # what no checkpoint covers yet, head row included. Checkpoint often.
    tamper.build_log(log20, 5)
    tamper.rewrite_from(log20, 22, 25)
    tamper.set_head(log20, 25)
    report = verify(log20, trusted)
    assert report.ok
    assert report.anchored == N


@pytest.mark.parametrize("seq", [1, 7, N])
def test_a_deleted_entry_is_caught_at_its_seq(log20: Session, trusted, seq: int) -> None:
    tamper.delete(log20, seq)
    expected = (Problem.TRUNCATED, N) if seq == N else (Problem.GAP, seq)
    bad(verify(log20, trusted), *expected)


def test_a_deletion_closed_up_by_renumbering_is_caught(log20: Session, trusted) -> None:
    tamper.delete(log20, 7)
    tamper.shift(log20, 8, -1)
    tamper.set_head(log20, N - 1)
    bad(verify(log20, trusted), Problem.HASH_MISMATCH, 7)


@pytest.mark.parametrize(("a", "b"), [(7, 8), (3, 15), (1, N)])
def test_reordered_entries_are_caught_at_the_first_moved_seq(
    log20: Session, trusted, a: int, b: int
) -> None:
    tamper.swap(log20, a, b)
    bad(verify(log20, trusted), Problem.REORDERED, a)


def test_an_inserted_entry_is_caught_at_its_seq(log20: Session, trusted) -> None:
    tamper.insert(log20, 7)
    tamper.set_head(log20, N + 1)
    report = verify(log20, trusted)
    bad(report, Problem.INSERTED, 7)


def test_an_inserted_entry_with_a_bad_hash_is_caught_at_its_seq(log20: Session, trusted) -> None:
    tamper.insert(log20, 7, valid_hash=False)
    bad(verify(log20, trusted), Problem.HASH_MISMATCH, 7)


def test_an_entry_appended_behind_the_logs_back_is_caught(log20: Session, trusted) -> None:
    tamper.append_forged(log20, N + 1)
    bad(verify(log20, trusted), Problem.HEAD_ROW_MISMATCH, N + 1)


def test_truncation_below_a_checkpoint_is_caught(log20: Session, trusted) -> None:
    tamper.truncate(log20, 14)
    tamper.set_head(log20, 14)
    report = verify(log20, trusted)
    bad(report, Problem.TRUNCATED, 15)
    assert report.checkpoint_seq == 1


def test_truncation_after_the_last_checkpoint_is_caught_by_the_head_row(
    log20: Session, trusted
) -> None:
    tamper.build_log(log20, 10)
    tamper.truncate(log20, 25)
    bad(verify(log20, trusted), Problem.TRUNCATED, 26)


def test_limit_truncation_after_the_last_checkpoint_with_the_head_row_reset(
    log20: Session, trusted
) -> None:
    # Documented limit: only a checkpoint can prove the tail existed.
    tamper.build_log(log20, 10)
    tamper.truncate(log20, 25)
    tamper.set_head(log20, 25)
    report = verify(log20, trusted)
    assert report.ok
    assert report.entries == 25


# --------------------------------------------------------------------------- checkpoints


def test_checkpoint_is_a_compact_jws_any_ed25519_verifier_accepts(
    log20: Session, service_key: Ed25519PrivateKey
) -> None:
    row = log20.get(AuditCheckpoint, 1)
    assert row is not None
    header_b64, payload_b64, signature_b64 = row.signature.split(".")

    def b64(part: str) -> bytes:
        return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))

    # Plain RFC 7515 + RFC 8037 checks with the cryptography library alone:
    service_key.public_key().verify(b64(signature_b64), f"{header_b64}.{payload_b64}".encode())
    header, claims = json.loads(b64(header_b64)), json.loads(b64(payload_b64))
    assert header == {"alg": "Ed25519", "kid": SERVICE_KID, "typ": "mash-audit-checkpoint+jws"}
    assert claims["count"] == N
    assert claims["head"] == tamper.row(log20, N)["hash"]
    assert (claims["cp"], claims["prev"]) == (1, GENESIS_HASH)
    assert row.signed_at.tzinfo is not None


def test_checkpoint_accepts_a_signing_callable(db_session: Session, service_key, trusted) -> None:
    tamper.build_log(db_session, 3)
    row = checkpoint(db_session, service_key.sign, SERVICE_KID, issuer="wam-broker")
    token = jws.deserialize_compact(
        row.signature, OKPKey.import_key(service_key.public_key()), algorithms=[CHECKPOINT_ALG]
    )
    assert json.loads(token.payload)["iss"] == "wam-broker"
    assert verify(db_session, trusted).ok


def test_a_forged_checkpoint_is_refused(log20: Session, trusted) -> None:
    forger = Ed25519PrivateKey.generate()
    tamper.truncate(log20, 15)
    tamper.set_head(log20, 15)
    # Replace the checkpoint with one over the truncated log, signed by another key.
    log20.connection().execute(sa.delete(tamper.CHECKPOINT))
    checkpoint(log20, forger, SERVICE_KID)
    report = verify(log20, trusted)
    assert not report.ok
    assert report.problem is Problem.CHECKPOINT_SIGNATURE_INVALID
    assert report.checkpoint_seq == 1


@pytest.mark.parametrize(
    ("column", "value"),
    [("entry_count", 19), ("head_hash", "3" * 64), ("kid", "someone-else")],
)
def test_an_edited_checkpoint_row_is_refused(log20: Session, trusted, column, value) -> None:
    log20.connection().execute(sa.update(tamper.CHECKPOINT).values(**{column: value}))
    report = verify(log20, trusted)
    assert report.problem is Problem.CHECKPOINT_SIGNATURE_INVALID, report.summary()


def test_a_checkpoint_under_an_untrusted_kid_is_refused(log20: Session) -> None:
    other = {"another-kid": Ed25519PrivateKey.generate().public_key()}
    report = verify(log20, other)
    assert report.problem is Problem.CHECKPOINT_SIGNATURE_INVALID
    assert "not a trusted" in report.message


def test_a_deleted_checkpoint_is_caught(db_session: Session, service_key, trusted) -> None:
    for _ in range(3):
        tamper.build_log(db_session, 5)
        checkpoint(db_session, service_key, SERVICE_KID)
    db_session.connection().execute(
        sa.delete(tamper.CHECKPOINT).where(tamper.CHECKPOINT.c.seq == 2)
    )
    report = verify(db_session, trusted)
    assert report.problem is Problem.CHECKPOINT_MISSING
    assert report.checkpoint_seq == 3


def test_checkpoints_without_keys_are_read_but_reported_unchecked(log20: Session) -> None:
    report = verify(log20, None)
    assert report.ok
    assert not report.signatures_checked
    assert "NOT checked" in report.summary()


def test_checkpoint_refuses_to_sign_a_broken_chain(log20: Session, service_key) -> None:
    tamper.build_log(log20, 5)
    tamper.edit(log20, 23, party="wam-mash")
    with pytest.raises(AuditIntegrityError, match="23"):
        checkpoint(log20, service_key, SERVICE_KID)


def test_checkpoint_refuses_when_the_last_anchor_was_rewritten(log20: Session, service_key) -> None:
    tamper.build_log(log20, 5)
    tamper.rewrite_from(log20, 20, 25)
    tamper.set_head(log20, 25)
    with pytest.raises(AuditIntegrityError, match="entry 20"):
        checkpoint(log20, service_key, SERVICE_KID)


def test_checkpoint_if_due_by_count_and_by_age(db_session: Session, service_key) -> None:
    now = [datetime(2026, 3, 1, 9, 0, tzinfo=UTC)]

    def due() -> AuditCheckpoint | None:
        return checkpoint_if_due(
            db_session,
            service_key,
            SERVICE_KID,
            every_entries=10,
            every=timedelta(minutes=5),
            clock=lambda: now[0],
        )

    tamper.build_log(db_session, 3)
    first = due()  # no checkpoint yet: due as soon as there is anything to sign
    assert first is not None
    assert first.entry_count == 3
    tamper.build_log(db_session, 3)
    assert due() is None  # 3 new entries, 0 minutes
    now[0] += timedelta(minutes=6)
    aged = due()
    assert aged is not None
    assert aged.entry_count == 6
    now[0] += timedelta(minutes=60)
    assert due() is None  # nothing new to sign
    tamper.build_log(db_session, 10)
    counted = due()
    assert counted is not None
    assert counted.entry_count == 16


# --------------------------------------------------------------------------- concurrency


def test_concurrent_appends_never_fork_the_chain(db_engine) -> None:
    factory = make_sessionmaker(db_engine)
    log = AuditLog()
    errors: list[BaseException] = []
    per_thread = 60

    def worker(party: str) -> None:
        try:
            for _ in range(per_thread):
                with factory() as session, session.begin():
                    log.append(session, kind="received", party=party)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(f"party-{i}",)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with factory() as session:
        assert tamper.seqs(session) == list(range(1, 3 * per_thread + 1))
        report = verify(session, None)
    assert report.ok, report.summary()
    assert report.entries == 3 * per_thread


def test_verify_while_appending_reports_no_false_alarm(db_engine) -> None:
    factory = make_sessionmaker(db_engine)
    log = AuditLog()
    stop = threading.Event()

    def appender() -> None:
        while not stop.is_set():
            with factory() as session, session.begin():
                log.append_many(session, tamper.sample_records(5))

    thread = threading.Thread(target=appender)
    thread.start()
    try:
        reports: list[VerifyReport] = []
        deadline = time.monotonic() + 20

        def enough() -> bool:
            seen = [r.entries for r in reports if r.entries > 0]
            return len(seen) >= 10 and seen[-1] > seen[0]

        while not enough() and time.monotonic() < deadline:
            with factory() as session:
                reports.append(verify(session, None))
            time.sleep(0.01)  # let the appender take the write lock between reads
    finally:
        stop.set()
        thread.join()
    assert all(report.ok for report in reports), [r.summary() for r in reports if not r.ok]
    assert reports[-1].entries > reports[0].entries


# --------------------------------------------------------------------------- external anchors


def test_an_external_anchor_catches_a_wiped_log(log20: Session, trusted) -> None:
    token = log20.get(AuditCheckpoint, 1).signature  # type: ignore[union-attr]
    log20.connection().execute(sa.delete(tamper.CHECKPOINT))
    tamper.truncate(log20, 0)
    tamper.set_head(log20, 0)
    assert verify(log20, trusted).ok  # documented limit without an anchor
    bad(verify(log20, trusted, anchors=[token]), Problem.TRUNCATED, 1)


def test_an_external_anchor_catches_a_rewrite_after_the_stored_checkpoints(
    log20: Session, service_key, trusted
) -> None:
    tamper.build_log(log20, 10)
    token = checkpoint(log20, service_key, SERVICE_KID).signature
    log20.connection().execute(sa.delete(tamper.CHECKPOINT).where(tamper.CHECKPOINT.c.seq == 2))
    tamper.rewrite_from(log20, 25, 30)
    tamper.set_head(log20, 30)
    assert verify(log20, trusted).ok
    report = verify(log20, trusted, anchors=[token])
    bad(report, Problem.HEAD_MISMATCH, N + 1)
    assert report.checkpoint_seq == 2


def test_a_forged_anchor_is_refused(log20: Session, trusted) -> None:
    forged = checkpoint(log20, Ed25519PrivateKey.generate(), SERVICE_KID).signature
    report = verify(log20, trusted, anchors=[forged])
    assert report.problem is Problem.CHECKPOINT_SIGNATURE_INVALID


def test_a_replaced_checkpoint_disagrees_with_its_anchor(
    log20: Session, service_key, trusted
) -> None:
    original = log20.get(AuditCheckpoint, 1).signature  # type: ignore[union-attr]
    log20.connection().execute(sa.delete(tamper.CHECKPOINT))
    tamper.truncate(log20, 10)
    tamper.set_head(log20, 10)
    checkpoint(log20, service_key, SERVICE_KID)  # re-signed over the shorter log
    assert verify(log20, trusted).ok
    report = verify(log20, trusted, anchors=[original])
    assert report.problem is Problem.CHECKPOINT_MISSING
    assert report.checkpoint_seq == 1


def test_anchors_need_public_keys(log20: Session) -> None:
    token = log20.get(AuditCheckpoint, 1).signature  # type: ignore[union-attr]
    report = verify(log20, None, anchors=[token])
    assert report.problem is Problem.CHECKPOINT_SIGNATURE_INVALID
    assert "no public key" in report.message
