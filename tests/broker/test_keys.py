"""Party keys: files and modes, the registry's answers, rotation, revocation and expiry."""

from __future__ import annotations

import json
import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from jwcrypto import jwk as jwcrypto_jwk

from broker.envelope import DEFAULT_LIMITS
from broker.exceptions import ConfigurationError, UnknownKey
from broker.keys import (
    DEFAULT_ROTATION_GRACE,
    ENCRYPTION_ALG,
    JWKS_FILE,
    SIGNING_ALG,
    KeyRecord,
    KeyRegistry,
    KeyUse,
    PartyKeys,
    generate_party_keys,
    private_key_path,
    revoke_key,
    rotate_party_keys,
)
from schemas import EventType, example_event
from tests.broker.test_envelope import KEYS_MADE, MASH, POLICE, World

T0 = KEYS_MADE


def _jwks(directory: Path) -> list[dict[str, Any]]:
    keys: list[dict[str, Any]] = json.loads((directory / JWKS_FILE).read_text())["keys"]
    return keys


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --- generate: files and registry ------------------------------------------------------


def test_generate_writes_private_keys_0600_and_public_keys_to_the_registry(
    tmp_path: Path,
) -> None:
    signing, encryption = generate_party_keys(tmp_path, POLICE, now=T0)
    for record in (signing, encryption):
        path = private_key_path(tmp_path, POLICE, record.kid)
        assert path == tmp_path / "private" / POLICE / f"{record.kid}.jwk"
        assert _mode(path) == 0o600
        private = json.loads(path.read_text())
        assert "d" in private
        assert private["kid"] == record.kid
    assert _mode(tmp_path / "private") == 0o700
    assert _mode(tmp_path / "private" / POLICE) == 0o700

    entries = {entry["kid"]: entry for entry in _jwks(tmp_path)}
    assert entries[signing.kid] == {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": entries[signing.kid]["x"],
        "kid": signing.kid,
        "use": "sig",
        "alg": SIGNING_ALG,
        "party": POLICE,
        "nbf": int(T0.timestamp()),
        "exp": int((T0 + timedelta(days=365)).timestamp()),
        "revoked": False,
    }
    assert entries[encryption.kid]["crv"] == "X25519"
    assert entries[encryption.kid]["use"] == "enc"
    assert entries[encryption.kid]["alg"] == ENCRYPTION_ALG
    assert all("d" not in entry for entry in entries.values())


def test_private_keys_are_0600_even_under_a_permissive_umask(tmp_path: Path) -> None:
    previous = os.umask(0)
    try:
        signing, _ = generate_party_keys(tmp_path, POLICE)
    finally:
        os.umask(previous)
    assert _mode(private_key_path(tmp_path, POLICE, signing.kid)) == 0o600


def test_the_kid_names_party_use_and_date(tmp_path: Path) -> None:
    signing, encryption = generate_party_keys(tmp_path, POLICE, now=T0)
    assert signing.kid.startswith(f"{POLICE}.sig.{T0:%Y%m%d}.")
    assert encryption.kid.startswith(f"{POLICE}.enc.{T0:%Y%m%d}.")


def test_generate_twice_for_one_party_is_refused(tmp_path: Path) -> None:
    generate_party_keys(tmp_path, POLICE)
    with pytest.raises(ConfigurationError, match="already has keys"):
        generate_party_keys(tmp_path, POLICE)


@pytest.mark.parametrize("party", ["", "X", "Upper-Case", "../escape", "a/b", "-leading"])
def test_generate_refuses_a_bad_party_id(tmp_path: Path, party: str) -> None:
    with pytest.raises(ConfigurationError):
        generate_party_keys(tmp_path, party)
    assert not (tmp_path / "private").exists()
    assert not (tmp_path / JWKS_FILE).exists()


def test_generate_keeps_other_parties_keys(tmp_path: Path) -> None:
    generate_party_keys(tmp_path, POLICE)
    generate_party_keys(tmp_path, MASH)
    registry = KeyRegistry.load(tmp_path)
    assert registry.parties == tuple(sorted((POLICE, MASH)))
    assert len(registry) == 4


# --- the registry's answers ------------------------------------------------------------


def test_verification_key_answers_for_a_valid_signing_key(tmp_path: Path) -> None:
    signing, _ = generate_party_keys(tmp_path, POLICE, now=T0)
    registry = KeyRegistry.load(tmp_path)
    record = registry.verification_key(signing.kid, T0 + timedelta(days=1))
    assert record.party == POLICE
    assert record.alg == SIGNING_ALG
    assert record.public.as_dict()["x"] == signing.public.as_dict()["x"]


def test_verification_key_refuses_unknown_kids_and_encryption_keys(tmp_path: Path) -> None:
    _, encryption = generate_party_keys(tmp_path, POLICE, now=T0)
    registry = KeyRegistry.load(tmp_path)
    with pytest.raises(UnknownKey, match="not in the key registry"):
        registry.verification_key("nobody.sig.20260101.00000000", T0)
    with pytest.raises(UnknownKey, match="'enc' key, not 'sig'"):
        registry.verification_key(encryption.kid, T0)


def test_validity_window_includes_nbf_and_excludes_exp(tmp_path: Path) -> None:
    signing, _ = generate_party_keys(tmp_path, POLICE, now=T0, validity=timedelta(days=2))
    registry = KeyRegistry.load(tmp_path)
    registry.verification_key(signing.kid, T0)
    registry.verification_key(signing.kid, T0 + timedelta(days=2, seconds=-1))
    with pytest.raises(UnknownKey, match="not yet valid"):
        registry.verification_key(signing.kid, T0 - timedelta(seconds=1))
    with pytest.raises(UnknownKey, match="expired"):
        registry.verification_key(signing.kid, T0 + timedelta(days=2))


def test_encryption_key_is_the_newest_valid_one(tmp_path: Path) -> None:
    _, first = generate_party_keys(tmp_path, MASH, now=T0)
    _, second = rotate_party_keys(tmp_path, MASH, now=T0 + timedelta(days=10))
    registry = KeyRegistry.load(tmp_path)
    assert registry.encryption_key(MASH, T0 + timedelta(days=1)).kid == first.kid
    assert registry.encryption_key(MASH, T0 + timedelta(days=11)).kid == second.kid
    with pytest.raises(UnknownKey, match=f"party {POLICE} has no valid 'enc' key"):
        registry.encryption_key(POLICE, T0)


def test_usable_key_checks_the_party(tmp_path: Path) -> None:
    signing, _ = generate_party_keys(tmp_path, POLICE, now=T0)
    registry = KeyRegistry.load(tmp_path)
    with pytest.raises(UnknownKey, match=f"belongs to party {POLICE}, not {MASH}"):
        registry.usable_key(signing.kid, use=KeyUse.SIGNING, at=T0, party=MASH)


def test_a_key_id_from_a_header_is_shown_cut_short(tmp_path: Path) -> None:
    generate_party_keys(tmp_path, POLICE)
    registry = KeyRegistry.load(tmp_path)
    with pytest.raises(UnknownKey) as refused:
        registry.get("k" * 5000)
    assert len(str(refused.value)) < 200


# --- rotation, revocation, expiry -------------------------------------------------------


def test_rotate_adds_new_keys_and_keeps_old_ones_verifiable_for_the_grace(
    tmp_path: Path,
) -> None:
    old_sig, old_enc = generate_party_keys(tmp_path, POLICE, now=T0)
    rotated_at = T0 + timedelta(days=30)
    new_sig, new_enc = rotate_party_keys(tmp_path, POLICE, now=rotated_at, grace=timedelta(days=3))
    registry = KeyRegistry.load(tmp_path)
    assert {r.kid for r in registry.keys_of(POLICE)} == {
        old_sig.kid,
        old_enc.kid,
        new_sig.kid,
        new_enc.kid,
    }
    assert registry.current_key(POLICE, KeyUse.SIGNING, rotated_at).kid == new_sig.kid
    assert registry.encryption_key(POLICE, rotated_at).kid == new_enc.kid
    # The old signing key still verifies during the grace period, not after.
    registry.verification_key(old_sig.kid, rotated_at + timedelta(days=2))
    assert registry.get(old_sig.kid).expires_at == rotated_at + timedelta(days=3)
    with pytest.raises(UnknownKey, match="expired"):
        registry.verification_key(old_sig.kid, rotated_at + timedelta(days=3))


def test_rotate_default_grace_covers_the_default_token_lifetime() -> None:
    assert DEFAULT_LIMITS.lifetime <= DEFAULT_ROTATION_GRACE


def test_a_token_sealed_before_the_senders_rotation_still_opens(tmp_path: Path) -> None:
    world = World.create(tmp_path)
    token = world.seal(example_event(EventType.MISSING_FOUND)).token
    rotate_party_keys(tmp_path, POLICE)
    after = World.load(tmp_path)
    assert after.police.signing is not None
    assert world.police.signing is not None
    assert after.police.signing.kid != world.police.signing.kid
    assert after.open(token).iss == POLICE
    # New disclosures are signed with the new key.
    fresh = after.seal(example_event(EventType.MISSING_FOUND))
    assert fresh.signing_kid == after.police.signing.kid


def test_a_token_sealed_to_the_recipients_old_key_still_opens(tmp_path: Path) -> None:
    world = World.create(tmp_path)
    sealed = world.seal(example_event(EventType.MISSING_FOUND))
    rotate_party_keys(tmp_path, MASH)
    after = World.load(tmp_path)
    assert sealed.encryption_kid in after.mash.decryption
    assert after.registry.encryption_key(MASH).kid != sealed.encryption_kid
    assert after.open(sealed.token).jti == sealed.jti


def test_rotating_a_party_without_keys_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="generate them first"):
        rotate_party_keys(tmp_path, POLICE)


def test_revoke_marks_the_key_and_refuses_it(tmp_path: Path) -> None:
    signing, _ = generate_party_keys(tmp_path, POLICE, now=T0)
    revoked = revoke_key(tmp_path, signing.kid, now=T0 + timedelta(days=1))
    assert revoked.revoked
    assert revoked.revoked_at == int((T0 + timedelta(days=1)).timestamp())
    entry = next(e for e in _jwks(tmp_path) if e["kid"] == signing.kid)
    assert entry["revoked"] is True
    registry = KeyRegistry.load(tmp_path)
    with pytest.raises(UnknownKey, match="revoked"):
        registry.verification_key(signing.kid, T0 + timedelta(hours=1))
    # A revoked party cannot sign any more.
    assert PartyKeys.load(tmp_path, POLICE, registry).signing is None


def test_revoke_is_idempotent_and_refuses_unknown_kids(tmp_path: Path) -> None:
    signing, _ = generate_party_keys(tmp_path, POLICE)
    first = revoke_key(tmp_path, signing.kid)
    assert revoke_key(tmp_path, signing.kid) == first
    with pytest.raises(UnknownKey):
        revoke_key(tmp_path, "nobody.sig.20260101.00000000")


def test_rotation_does_not_revive_a_revoked_key(tmp_path: Path) -> None:
    signing, _ = generate_party_keys(tmp_path, POLICE, now=T0)
    revoke_key(tmp_path, signing.kid)
    rotate_party_keys(tmp_path, POLICE, now=T0 + timedelta(days=1))
    assert KeyRegistry.load(tmp_path).get(signing.kid).revoked


# --- loading: the registry and the private keys -----------------------------------------


def test_a_missing_registry_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="keys generate"):
        KeyRegistry.load(tmp_path)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"d": "AAAA"}, "private member"),
        ({"crv": "X25519"}, "kty/crv"),
        ({"alg": "EdDSA"}, "bad alg"),
        ({"use": "both"}, "missing or bad member"),
        ({"nbf": "yesterday"}, "nbf/exp"),
        ({"kid": "../../etc/passwd"}, "bad kid"),
        ({"party": "Not A Party"}, "bad party"),
        ({"x": "not-a-key"}, "not a valid OKP public key"),
    ],
)
def test_a_malformed_registry_entry_is_refused(
    tmp_path: Path, change: dict[str, Any], message: str
) -> None:
    generate_party_keys(tmp_path, POLICE)
    entries = _jwks(tmp_path)
    entries[0].update(change)
    (tmp_path / JWKS_FILE).write_text(json.dumps({"keys": entries}))
    with pytest.raises(ConfigurationError, match=message):
        KeyRegistry.load(tmp_path)


def test_a_registry_that_is_not_a_jwks_is_refused(tmp_path: Path) -> None:
    (tmp_path / JWKS_FILE).write_text("[1, 2, 3]")
    with pytest.raises(ConfigurationError, match="not a JWKS"):
        KeyRegistry.load(tmp_path)
    (tmp_path / JWKS_FILE).write_text("{")
    with pytest.raises(ConfigurationError, match="not JSON"):
        KeyRegistry.load(tmp_path)


def test_a_kid_registered_twice_is_refused(tmp_path: Path) -> None:
    generate_party_keys(tmp_path, POLICE)
    entries = _jwks(tmp_path)
    (tmp_path / JWKS_FILE).write_text(json.dumps({"keys": [*entries, entries[0]]}))
    with pytest.raises(ConfigurationError, match="registered twice"):
        KeyRegistry.load(tmp_path)


def test_a_private_key_readable_by_others_is_refused(tmp_path: Path) -> None:
    signing, _ = generate_party_keys(tmp_path, POLICE)
    path = private_key_path(tmp_path, POLICE, signing.kid)
    path.chmod(0o644)
    with pytest.raises(ConfigurationError, match="must be 0600"):
        PartyKeys.load(tmp_path, POLICE)


def test_a_private_key_that_does_not_match_the_registry_is_refused(tmp_path: Path) -> None:
    signing, _ = generate_party_keys(tmp_path, POLICE)
    generate_party_keys(tmp_path, MASH)
    mash_signing = KeyRegistry.load(tmp_path).current_key(MASH, KeyUse.SIGNING)
    # Put the MASH's private key where the police's should be.
    theirs = json.loads(private_key_path(tmp_path, MASH, mash_signing.kid).read_text())
    theirs["kid"] = signing.kid
    path = private_key_path(tmp_path, POLICE, signing.kid)
    path.write_text(json.dumps(theirs))
    with pytest.raises(ConfigurationError, match="does not match"):
        PartyKeys.load(tmp_path, POLICE)


def test_a_missing_current_private_key_is_refused(tmp_path: Path) -> None:
    signing, _ = generate_party_keys(tmp_path, POLICE)
    private_key_path(tmp_path, POLICE, signing.kid).unlink()
    with pytest.raises(ConfigurationError, match="missing"):
        PartyKeys.load(tmp_path, POLICE)


def test_a_retired_private_key_may_be_deleted(tmp_path: Path) -> None:
    _, old_enc = generate_party_keys(tmp_path, POLICE, now=T0 - timedelta(days=40))
    rotate_party_keys(tmp_path, POLICE, now=T0 - timedelta(days=20), grace=timedelta(days=1))
    private_key_path(tmp_path, POLICE, old_enc.kid).unlink()
    keys = PartyKeys.load(tmp_path, POLICE)
    assert old_enc.kid not in keys.decryption
    assert len(keys.decryption) == 1


def test_party_keys_of_an_unknown_party_is_refused(tmp_path: Path) -> None:
    generate_party_keys(tmp_path, POLICE)
    with pytest.raises(UnknownKey, match=f"party {MASH} has no keys"):
        PartyKeys.load(tmp_path, MASH)


def test_key_times_must_be_timezone_aware(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        generate_party_keys(tmp_path, POLICE, now=datetime(2026, 1, 1))  # noqa: DTZ001


# --- export -----------------------------------------------------------------------------


def test_export_has_every_public_key_and_no_private_member(tmp_path: Path) -> None:
    generate_party_keys(tmp_path, POLICE)
    generate_party_keys(tmp_path, MASH)
    registry = KeyRegistry.load(tmp_path)
    everything = registry.to_jwks()
    assert len(everything["keys"]) == 4
    assert not any("d" in key for key in everything["keys"])
    only_mash = registry.to_jwks(MASH)
    assert {key["party"] for key in only_mash["keys"]} == {MASH}
    with pytest.raises(UnknownKey):
        registry.to_jwks("nobody-here")


def test_the_exported_jwks_is_read_by_an_independent_library(tmp_path: Path) -> None:
    generate_party_keys(tmp_path, POLICE)
    registry = KeyRegistry.load(tmp_path)
    keyset = jwcrypto_jwk.JWKSet.from_json(json.dumps(registry.to_jwks()))
    for record in registry.records:
        key = keyset.get_key(record.kid)
        assert key is not None
        assert not key.has_private
        assert key["crv"] == record.use.curve


def test_records_round_trip_through_their_jwk(tmp_path: Path) -> None:
    signing, _ = generate_party_keys(tmp_path, POLICE, now=T0)
    again = KeyRecord.from_jwk(signing.to_jwk())
    assert again == signing
    assert again.not_before == T0.replace(tzinfo=UTC)
