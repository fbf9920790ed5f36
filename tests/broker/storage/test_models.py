"""At-rest encryption of raw messages, and the models' public surface."""

from __future__ import annotations

import os

import pytest
from sqlmodel import Session

import broker.audit
import broker.db
import broker.models
from broker.exceptions import ConfigurationError, DecryptionFailed
from broker.models import AT_REST_KEY_BYTES, RawMessage, decrypt_at_rest, encrypt_at_rest

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
