"""``mash-broker keys`` and ``mash-broker envelope``: files, output, and one-line failures."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from broker.cli import app
from broker.keys import KeyRegistry, private_key_path
from schemas import Event, EventType, example_event

POLICE = "tvp-police"
MASH = "wam-mash"
runner = CliRunner()


def _run(*args: str, stdin: str | bytes | None = None) -> Result:
    return runner.invoke(app, list(args), input=stdin)


def _one_line_failure(result: Result, code: str) -> None:
    assert result.exit_code == 1, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: {code}: "), lines[0]
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


@pytest.fixture
def keys_dir(tmp_path: Path) -> Path:
    for party in (POLICE, MASH):
        assert _run("keys", "generate", party, "--dir", str(tmp_path)).exit_code == 0
    return tmp_path


def _seal(keys_dir: Path, event: Event, *extra: str) -> Result:
    return _run(
        "envelope",
        "seal",
        "--sender",
        POLICE,
        "--recipient",
        MASH,
        "--keys",
        str(keys_dir),
        *extra,
        stdin=event.model_dump_json(),
    )


def _open(keys_dir: Path, token: str, *extra: str) -> Result:
    return _run(
        "envelope", "open", "--recipient", MASH, "--keys", str(keys_dir), *extra, stdin=token
    )


# --- keys ------------------------------------------------------------------------------


def test_keys_generate_prints_the_kids_and_writes_0600_files(tmp_path: Path) -> None:
    result = _run("keys", "generate", POLICE, "--dir", str(tmp_path), "--valid-days", "30")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    kids = [line.split()[0] for line in lines]
    assert "sig Ed25519" in lines[0]
    assert "enc ECDH-ES+A256KW" in lines[1]
    for kid in kids:
        path = private_key_path(tmp_path, POLICE, kid)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    registry = KeyRegistry.load(tmp_path)
    assert {r.kid for r in registry.records} == set(kids)
    record = registry.get(kids[0])
    assert (record.expires_at - record.not_before).days == 30


def test_keys_generate_twice_fails_in_one_line(keys_dir: Path) -> None:
    _one_line_failure(_run("keys", "generate", POLICE, "--dir", str(keys_dir)), "configuration")


def test_keys_rotate_keeps_the_old_public_keys(keys_dir: Path) -> None:
    before = {r.kid for r in KeyRegistry.load(keys_dir).keys_of(POLICE)}
    result = _run("keys", "rotate", POLICE, "--dir", str(keys_dir), "--grace-days", "2")
    assert result.exit_code == 0, result.output
    registry = KeyRegistry.load(keys_dir)
    after = {r.kid for r in registry.keys_of(POLICE)}
    assert before < after
    assert len(after) == 4
    for kid in before:
        assert (registry.get(kid).expires_at - registry.get(kid).not_before).days <= 3


def test_keys_revoke_marks_the_key(keys_dir: Path) -> None:
    kid = KeyRegistry.load(keys_dir).keys_of(POLICE)[0].kid
    result = _run("keys", "revoke", kid, "--dir", str(keys_dir))
    assert result.exit_code == 0, result.output
    assert "revoked" in result.stdout
    assert KeyRegistry.load(keys_dir).get(kid).revoked


def test_keys_revoke_of_an_unknown_kid_fails_in_one_line(keys_dir: Path) -> None:
    _one_line_failure(_run("keys", "revoke", "nobody", "--dir", str(keys_dir)), "unknown_key")


def test_keys_export_prints_public_keys_only(keys_dir: Path) -> None:
    everything = json.loads(_run("keys", "export", "--dir", str(keys_dir)).stdout)
    assert len(everything["keys"]) == 4
    assert all("d" not in key for key in everything["keys"])
    only = _run("keys", "export", "--party", MASH, "--dir", str(keys_dir))
    assert {key["party"] for key in json.loads(only.stdout)["keys"]} == {MASH}
    # Private key material must not appear anywhere in the output.
    private = json.loads(next((keys_dir / "private" / MASH).glob("*.jwk")).read_text())
    assert private["d"] not in only.stdout


def test_keys_export_without_a_registry_fails_in_one_line(tmp_path: Path) -> None:
    _one_line_failure(_run("keys", "export", "--dir", str(tmp_path)), "configuration")


# --- envelope --------------------------------------------------------------------------


def test_envelope_seal_then_open_prints_the_verified_claims(keys_dir: Path) -> None:
    event = example_event(EventType.MISSING_REPORTED)
    sealed = _seal(keys_dir, event, "--rule", "missing-high-risk", "--basis", "ca-1989-s47")
    assert sealed.exit_code == 0, sealed.output
    token = sealed.stdout.strip()
    assert token.count(".") == 4
    opened = _open(keys_dir, sealed.stdout)
    assert opened.exit_code == 0, opened.output
    claims = json.loads(opened.stdout)
    assert claims["iss"] == POLICE
    assert claims["aud"] == MASH
    assert claims["rule_id"] == "missing-high-risk"
    assert claims["lawful_basis"] == "ca-1989-s47"
    assert Event.model_validate(claims["event"]) == event
    assert claims["provenance"]["source_agency"] == "tvp-police"


def test_envelope_seal_defaults_the_basis_to_the_events_own(keys_dir: Path) -> None:
    event = example_event(EventType.CASE_STATUS)
    opened = _open(keys_dir, _seal(keys_dir, event).stdout)
    assert json.loads(opened.stdout)["lawful_basis"] == event.metadata.lawful_basis.value


def test_envelope_open_twice_fails_in_one_line(keys_dir: Path) -> None:
    token = _seal(keys_dir, example_event(EventType.MISSING_FOUND)).stdout
    assert _open(keys_dir, token).exit_code == 0
    _one_line_failure(_open(keys_dir, token), "replay")


def test_envelope_open_of_a_tampered_token_fails_in_one_line(keys_dir: Path) -> None:
    token = _seal(keys_dir, example_event(EventType.MISSING_FOUND)).stdout.strip()
    parts = token.split(".")
    parts[3] = ("B" if parts[3][0] == "A" else "A") + parts[3][1:]
    _one_line_failure(_open(keys_dir, ".".join(parts)), "decryption_failed")


def test_envelope_open_by_the_wrong_party_fails_in_one_line(keys_dir: Path) -> None:
    token = _seal(keys_dir, example_event(EventType.MISSING_FOUND)).stdout
    result = _run("envelope", "open", "--recipient", POLICE, "--keys", str(keys_dir), stdin=token)
    _one_line_failure(result, "unknown_key")


def test_envelope_open_of_garbage_fails_in_one_line(keys_dir: Path) -> None:
    _one_line_failure(_open(keys_dir, "not a token at all"), "decryption_failed")


def test_envelope_open_of_oversized_input_fails_in_one_line(keys_dir: Path) -> None:
    _one_line_failure(_open(keys_dir, "A" * (300 * 1024)), "too_large")


def test_envelope_seal_of_an_invalid_event_names_fields_not_values(keys_dir: Path) -> None:
    document = example_event(EventType.MISSING_FOUND).model_dump(mode="json")
    document["subject"]["nhs_number"] = "9990000000"  # fails the check digit
    result = _run(
        "envelope",
        "seal",
        "--sender",
        POLICE,
        "--recipient",
        MASH,
        "--keys",
        str(keys_dir),
        stdin=json.dumps(document),
    )
    _one_line_failure(result, "payload_invalid")
    assert "subject.nhs_number" in result.stderr
    assert "9990000000" not in result.stderr


def test_envelope_seal_to_an_unknown_party_fails_in_one_line(keys_dir: Path) -> None:
    result = _run(
        "envelope",
        "seal",
        "--sender",
        POLICE,
        "--recipient",
        "nobody-here",
        "--keys",
        str(keys_dir),
        stdin=example_event(EventType.MISSING_FOUND).model_dump_json(),
    )
    _one_line_failure(result, "unknown_key")


def test_the_installed_command_fails_in_one_line_without_traceback(keys_dir: Path) -> None:
    completed = subprocess.run(  # noqa: S603 - our own interpreter and module
        [
            sys.executable,
            "-m",
            "broker",
            "envelope",
            "open",
            "--recipient",
            MASH,
            "--keys",
            str(keys_dir),
        ],
        input=b"eyJhbGciOiJub25lIn0.e30.",
        capture_output=True,
        check=False,
        timeout=60,
    )
    assert completed.returncode == 1
    assert completed.stdout == b""
    lines = completed.stderr.decode().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: decryption_failed: ")
