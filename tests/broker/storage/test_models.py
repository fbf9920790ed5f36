"""At-rest encryption of raw messages, and the models' public surface."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from datetime import UTC, date, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import Session, SQLModel, col

import broker.audit
import broker.db
import broker.models
from broker.exceptions import ConfigurationError, DecryptionFailed
from broker.intake.tables import IntakeClock, IntakeTracker
from broker.models import (
    AT_REST_KEY_BYTES,
    MashAlert,
    RawMessage,
    decrypt_at_rest,
    encrypt_at_rest,
    new_row,
)

RAW = b"MSH|^~\\&|ED-PAS|FHFT|||20260301093000||ADT^A04|MSG0001|P|2.4\rPID|1||9990000018^^^NHS"


@pytest.fixture
def data_key() -> bytes:
    return os.urandom(AT_REST_KEY_BYTES)


def test_round_trip(data_key: bytes) -> None:
    sealed = encrypt_at_rest(RAW, data_key, b"context")
    assert RAW not in sealed
    assert b"9990000018" not in sealed
    assert decrypt_at_rest(sealed, data_key, b"context") == RAW
    assert encrypt_at_rest(RAW, data_key, b"context") != sealed  # fresh nonce each time


@pytest.mark.parametrize("position", [0, 5, 20, -1])
def test_any_altered_byte_is_refused(data_key: bytes, position: int) -> None:
    sealed = bytearray(encrypt_at_rest(RAW, data_key))
    sealed[position] ^= 0x01
    with pytest.raises(DecryptionFailed):
        decrypt_at_rest(bytes(sealed), data_key)


def test_wrong_key_wrong_context_and_short_blobs_are_refused(data_key: bytes) -> None:
    sealed = encrypt_at_rest(RAW, data_key, b"row-1")
    with pytest.raises(DecryptionFailed, match="authentication failed"):
        decrypt_at_rest(sealed, os.urandom(AT_REST_KEY_BYTES), b"row-1")
    with pytest.raises(DecryptionFailed, match="authentication failed"):
        decrypt_at_rest(sealed, data_key, b"row-2")
    with pytest.raises(DecryptionFailed, match="format"):
        decrypt_at_rest(sealed[:20], data_key, b"row-1")


def test_a_key_of_the_wrong_length_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="32 bytes"):
        encrypt_at_rest(RAW, b"short")


def test_raw_message_is_stored_sealed_and_opens(db_session: Session, data_key: bytes) -> None:
    row = RawMessage.seal(
        RAW, adapter="health", source_party="fhft-hospital", key=data_key, key_id="data-2026"
    )
    db_session.add(row)
    db_session.flush()
    db_session.expire_all()
    stored = db_session.get(RawMessage, row.id)
    assert stored is not None
    assert b"9990000018" not in stored.ciphertext
    assert stored.open(data_key) == RAW
    assert stored.received_at.tzinfo is not None


def test_a_raw_message_moved_to_another_row_does_not_open(data_key: bytes) -> None:
    one = RawMessage.seal(
        RAW, adapter="health", source_party="fhft-hospital", key=data_key, key_id="k"
    )
    two = RawMessage.seal(
        b"other", adapter="police", source_party="tvp-police", key=data_key, key_id="k"
    )
    two.ciphertext = one.ciphertext
    with pytest.raises(DecryptionFailed, match=f"raw {two.id}"):
        two.open(data_key)


@pytest.mark.parametrize("module", [broker.models, broker.db, broker.audit])
def test_all_names_every_public_name(module) -> None:
    public = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_") and getattr(value, "__module__", None) == module.__name__
    }
    assert public <= set(module.__all__)
    assert all(hasattr(module, name) for name in module.__all__)


# --------------------------------------------------------------------------- new_row

_CLOCK: dict[str, Any] = {
    "clock_id": "mash-decision:17",
    "kind": "mash_decision",
    "subject": "alert 17",
    "child_key": "ch-0001",
    "started_at": datetime(2026, 3, 1, 9, 30, tzinfo=UTC),
    "due_at": datetime(2026, 3, 2, 9, 30, tzinfo=UTC),
    "authority": "E09000999",
    "alert_id": 17,
}


def _fields(row: SQLModel) -> dict[str, object]:
    return {name: getattr(row, name) for name in type(row).model_fields}


def test_new_row_holds_what_the_constructor_would() -> None:
    made, built = new_row(IntakeClock, **_CLOCK), IntakeClock(**_CLOCK)
    assert made.model_fields_set == built.model_fields_set == set(_CLOCK)
    # Defaults filled the same way: a factory's value is fresh, a plain default copied.
    assert made.updated_at is not None
    assert built.updated_at is not None
    made.updated_at = built.updated_at
    assert _fields(made) == _fields(built)
    child_a, child_b = new_row(IntakeTracker, **_TRACKER), new_row(IntakeTracker, **_TRACKER)
    assert child_a.history == []
    assert child_a.history is not child_b.history


_TRACKER: dict[str, Any] = {"child_key": "ch-0001", "identified_on": date(2026, 2, 1), "level": 2}


def test_a_new_row_reads_before_anything_mapped_it() -> None:
    """A fresh process whose first row is ``new_row``'s (the intake's alerts are, and are
    only ever written by Core statements): its attributes must read all the same."""
    script = (
        "import datetime\n"
        "from broker.intake.tables import IntakeClock\n"
        "from broker.models import new_row\n"
        f"row = new_row(IntakeClock, **{_CLOCK!r})\n"
        "print(row.clock_id, row.alert_id)\n"
    )
    done = subprocess.run(  # noqa: S603 - this interpreter, a script of the test
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["mash-decision:17", "17"]


def test_a_new_row_inserts_reads_back_and_updates(db_session: Session) -> None:
    row = new_row(IntakeClock, **_CLOCK)
    db_session.add(row)
    db_session.flush()
    db_session.expunge_all()
    stored = db_session.get(IntakeClock, _CLOCK["clock_id"])
    assert stored is not None
    assert _fields(stored) == _fields(row)
    # Changed after it was stored: the ORM sees the change as for any row.
    row = db_session.merge(stored)
    row.met_at = datetime(2026, 3, 1, 15, 0, tzinfo=UTC)
    db_session.flush()
    db_session.expunge_all()
    again = db_session.get(IntakeClock, _CLOCK["clock_id"])
    assert again is not None
    assert again.met_at == datetime(2026, 3, 1, 15, 0, tzinfo=UTC)


def test_a_new_row_with_an_autoincrement_key_gets_its_id(db_session: Session) -> None:
    rows = [
        new_row(
            MashAlert,
            recipient="wam-mash",
            event_id=uuid.uuid4(),
            jti=f"jti-{n}",
            event_type="missing.reported",
            source_agency="tvp-police",
            rule_id="r1",
            lawful_basis="s115",
            received_at=datetime(2026, 3, 1, 9, 30, tzinfo=UTC),
            token="x.y.z",
        )
        for n in range(3)
    ]
    db_session.add_all(rows)
    db_session.flush()
    ids = [row.id for row in rows]
    assert None not in ids
    assert len(set(ids)) == 3
    for row in rows:
        stored = db_session.execute(
            sa.select(col(MashAlert.jti)).where(col(MashAlert.id) == row.id)
        ).scalar_one()
        assert stored == row.jti


def test_new_row_refuses_unknown_and_missing_fields() -> None:
    with pytest.raises(TypeError, match="no field 'colour'"):
        new_row(IntakeClock, colour="red", **_CLOCK)
    missing = {k: v for k, v in _CLOCK.items() if k != "clock_id"}
    with pytest.raises(TypeError, match="field 'clock_id' has no value"):
        new_row(IntakeClock, **missing)
