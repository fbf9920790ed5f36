"""``mash-broker audit verify | checkpoint | show`` against real databases."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)
from joserfc.jwk import OKPKey
from typer.testing import CliRunner

from broker.cli.audit_cmd import app
from broker.db import session_scope
from tests.broker.storage import tamper

runner = CliRunner()


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    """The service key as a PEM private key file and a PEM public key file."""
    key = Ed25519PrivateKey.generate()
    private = tmp_path / "audit.key.pem"
    public = tmp_path / "audit.pub.pem"
    private.write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    public.write_bytes(
        key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )
    return private, public


@pytest.fixture
def populated(db_engine, db_url: str) -> str:
    """A committed 12-entry log; returns its URL."""
    with session_scope(db_engine) as session:
        tamper.build_log(session, 12)
    return db_url


def test_checkpoint_then_verify_ok(populated: str, keys: tuple[Path, Path]) -> None:
    private, public = keys
    signed = runner.invoke(app, ["checkpoint", "--key", str(private), "--database-url", populated])
    assert signed.exit_code == 0, signed.output
    assert signed.output.startswith("checkpoint 1: 12 entries, head ")
    assert signed.output.splitlines()[-1].count(".") == 2  # the JWS, to keep elsewhere
    result = runner.invoke(
        app, ["verify", "--database-url", populated, "--public-key", str(public)]
    )
    assert result.exit_code == 0, result.output
    assert result.output.startswith("OK 12 entries, head 12 ")
    assert "1 checkpoints (signatures verified)" in result.output


def test_verify_reads_the_url_from_settings(populated: str, monkeypatch) -> None:
    monkeypatch.setenv("MASH_DATABASE__URL", populated)
    result = runner.invoke(app, ["verify"])
    assert result.exit_code == 0, result.output
    assert "signatures NOT checked" in result.output


def test_verify_names_the_first_bad_entry_and_exits_1(db_engine, populated: str) -> None:
    with session_scope(db_engine) as session:
        tamper.edit(session, 5, recipient="forged-recipient")
    result = runner.invoke(app, ["verify", "--database-url", populated])
    assert result.exit_code == 1
    assert result.output.startswith("BAD hash_mismatch at seq 5: ")


def test_a_jwk_key_file_carries_its_kid(populated: str, tmp_path: Path) -> None:
    key = OKPKey.generate_key("Ed25519")
    private, public = tmp_path / "k.jwk", tmp_path / "k.pub.jwk"
    private.write_text(json.dumps({**key.as_dict(private=True), "kid": "wam-audit-2026"}))
    public.write_text(json.dumps({**key.as_dict(private=False), "kid": "wam-audit-2026"}))
    signed = runner.invoke(app, ["checkpoint", "--key", str(private), "--database-url", populated])
    assert signed.exit_code == 0, signed.output
    assert signed.output.splitlines()[0].endswith("kid wam-audit-2026")
    result = runner.invoke(
        app, ["verify", "--database-url", populated, "--public-key", str(public)]
    )
    assert result.exit_code == 0, result.output


def test_verify_with_the_wrong_public_key_fails(populated: str, keys, tmp_path: Path) -> None:
    private, _ = keys
    runner.invoke(app, ["checkpoint", "--key", str(private), "--database-url", populated])
    other = tmp_path / "other.pub.pem"
    other.write_bytes(
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )
    result = runner.invoke(app, ["verify", "--database-url", populated, "--public-key", str(other)])
    assert result.exit_code == 1
    assert "BAD checkpoint_signature_invalid" in result.output


def test_checkpoint_refuses_a_broken_chain(db_engine, populated: str, keys) -> None:
    with session_scope(db_engine) as session:
        tamper.delete(session, 3)
    result = runner.invoke(app, ["checkpoint", "--key", str(keys[0]), "--database-url", populated])
    assert result.exit_code == 2
    assert "not signing" in result.output


def test_an_unusable_key_file_is_reported(populated: str, tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a key")
    result = runner.invoke(app, ["checkpoint", "--key", str(junk), "--database-url", populated])
    assert result.exit_code == 2
    assert "not an Ed25519 key" in result.output


def test_show_lists_an_events_entries(populated: str) -> None:
    result = runner.invoke(
        app, ["show", "--event-id", str(tamper.EVENT), "--database-url", populated]
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert len(lines) == 5  # of 12 sample entries, 3 shares and 2 refusals name the event
    assert "shared" in lines[0]
    assert "fields=body.risk_grade,subject.nhs_number" in lines[0]
    assert "reason=no_rule" in lines[1]


def test_show_an_unknown_event(populated: str) -> None:
    result = runner.invoke(
        app,
        ["show", "--event-id", "00000000-0000-4000-8000-000000000000", "--database-url", populated],
    )
    assert result.exit_code == 1
    assert "no audit entries" in result.output


def test_an_anchor_kept_elsewhere_catches_a_wiped_log(db_engine, populated: str, keys, tmp_path):
    private, public = keys
    signed = runner.invoke(app, ["checkpoint", "--key", str(private), "--database-url", populated])
    anchors = tmp_path / "anchors.jws"
    anchors.write_text(signed.output.splitlines()[-1] + "\n")
    with session_scope(db_engine) as session:
        session.connection().execute(sa.delete(tamper.CHECKPOINT))
        tamper.truncate(session, 0)
        tamper.set_head(session, 0)
    plain = runner.invoke(app, ["verify", "--database-url", populated, "--public-key", str(public)])
    assert plain.exit_code == 0  # the wiped log is consistent with itself
    anchored = runner.invoke(
        app,
        [
            "verify",
            "--database-url",
            populated,
            "--public-key",
            str(public),
            "--anchor",
            str(anchors),
        ],
    )
    assert anchored.exit_code == 1
    assert anchored.output.startswith("BAD truncated at seq 1: ")
