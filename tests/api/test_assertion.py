"""The client assertion verifier on its own: each rule, with tokens made by hand."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from broker.api.auth import ClientAssertionVerifier, CredentialRefused
from broker.keys import KeyRegistry, revoke_key
from broker.replay import MemoryReplayStore
from tests.api.conftest import BASE_URL, signing_key
from tests.api.forge import Forger, compact

PATH = "/v1/ingest/police"
AUDIENCE = BASE_URL + PATH


@pytest.fixture
def verifier(api_keys: Path) -> ClientAssertionVerifier:
    return ClientAssertionVerifier(
        KeyRegistry.load(api_keys),
        ["tvp-police", "fhft-hospital", "wam-mash"],
        MemoryReplayStore(),
    )


def _reason(verifier: ClientAssertionVerifier, token: str, audience: str = AUDIENCE) -> str:
    with pytest.raises(CredentialRefused) as caught:
        verifier.verify(token, audience)
    return caught.value.reason


def test_a_good_assertion_names_its_party(verifier, api_keys: Path) -> None:
    token = Forger(api_keys).partner("tvp-police", PATH)
    identity = verifier.verify(token, AUDIENCE)
    assert identity.party == "tvp-police"
    assert identity.kid.startswith("tvp-police.sig.")
    assert _reason(verifier, token) == "replay"


def test_both_names_of_ed25519_are_accepted(verifier, api_keys: Path) -> None:
    forger = Forger(api_keys)
    for alg in ("EdDSA", "Ed25519"):
        verifier.verify(forger.partner("tvp-police", PATH, header={"alg": alg}), AUDIENCE)


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ({"alg": "none"}, "alg_refused"),
        ({"alg": "RS256"}, "alg_refused"),
        ({"alg": "HS256"}, "alg_refused"),
        ({"alg": 5}, "alg_refused"),
        ({"jku": "https://attacker.example/keys"}, "header_refused"),
        ({"x5u": "https://attacker.example/cert"}, "header_refused"),
        ({"jwk": {"kty": "OKP", "crv": "Ed25519", "x": "AAAA"}}, "header_refused"),
        ({"crit": ["exp"]}, "header_refused"),
        ({"typ": "at+jwt"}, "header_refused"),
        ({"kid": "no-such-kid"}, "kid_unknown"),
    ],
)
def test_headers_refused(verifier, api_keys: Path, header: dict[str, Any], reason: str) -> None:
    assert _reason(verifier, Forger(api_keys).partner("tvp-police", PATH, header=header)) == reason


def test_a_kid_of_another_party_is_refused(verifier, api_keys: Path) -> None:
    other_kid, _ = signing_key(api_keys, "fhft-hospital")
    token = Forger(api_keys).partner("tvp-police", PATH, header={"kid": other_kid})
    assert _reason(verifier, token) == "key_unusable"


def test_an_encryption_kid_is_refused(verifier, api_keys: Path) -> None:
    registry = KeyRegistry.load(api_keys)
    enc = next(r.kid for r in registry.keys_of("tvp-police") if r.use.value == "enc")
    token = Forger(api_keys).partner("tvp-police", PATH, header={"kid": enc})
    assert _reason(verifier, token) == "key_unusable"


def test_a_party_outside_the_agreement_is_refused(api_keys: Path) -> None:
    verifier = ClientAssertionVerifier(
        KeyRegistry.load(api_keys), ["wam-mash"], MemoryReplayStore()
    )
    assert _reason(verifier, Forger(api_keys).partner("tvp-police", PATH)) == "issuer_unknown"


def test_a_revoked_key_is_refused(tmp_path: Path, api_keys: Path) -> None:
    import shutil  # noqa: PLC0415

    keys = tmp_path / "keys"
    shutil.copytree(api_keys, keys)
    kid, _ = signing_key(keys, "tvp-police")
    token = Forger(keys).partner("tvp-police", PATH)
    revoke_key(keys, kid)
    verifier = ClientAssertionVerifier(KeyRegistry.load(keys), ["tvp-police"], MemoryReplayStore())
    assert _reason(verifier, token) == "key_unusable"


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"sub": "wam-mash"}, "claims_invalid"),
        ({"aud": BASE_URL + "/v1/ingest/fhir"}, "audience"),
        ({"aud": [BASE_URL + "/v1/agreement"]}, "audience"),
        ({"exp": int(time.time()) - 120}, "expired"),
        ({"exp": int(time.time()) + 3600}, "lifetime"),
        ({"exp": "soon"}, "claims_invalid"),
        ({"exp": None}, "claims_invalid"),
        ({"iat": int(time.time()) + 3600}, "claims_invalid"),
        ({"nbf": int(time.time()) + 3600}, "claims_invalid"),
        ({"jti": ""}, "claims_invalid"),
        ({"jti": 7}, "claims_invalid"),
        ({"jti": "x" * 129}, "claims_invalid"),
    ],
)
def test_claims_refused(verifier, api_keys: Path, claims: dict[str, Any], reason: str) -> None:
    assert _reason(verifier, Forger(api_keys).partner("tvp-police", PATH, **claims)) == reason


def test_audience_may_be_a_list(verifier, api_keys: Path) -> None:
    token = Forger(api_keys).partner("tvp-police", PATH, aud=["other", AUDIENCE])
    assert verifier.verify(token, AUDIENCE).party == "tvp-police"


def test_a_tampered_token_is_refused(verifier, api_keys: Path) -> None:
    token = Forger(api_keys).partner("tvp-police", PATH)
    head, body, signature = token.split(".")
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    assert _reason(verifier, f"{head}.{body}.{flipped}") == "signature_invalid"
    kid, key = signing_key(api_keys, "tvp-police")
    other = Forger(api_keys).partner_claims("fhft-hospital", PATH)
    forged = compact({"alg": "EdDSA", "kid": kid}, other, key)
    assert _reason(verifier, forged) == "key_unusable"  # signed by police, claims hospital


@pytest.mark.parametrize(
    "token", ["", "abc", "a.b", "a.b.c.d", "!!.??.**", "é.é.é", "x" * 5000, "e30.W10.AA"]
)
def test_malformed_tokens(verifier, token: str) -> None:
    assert _reason(verifier, token) == "malformed"


def test_clock_skew_tolerates_a_little(api_keys: Path) -> None:
    now = datetime.now(UTC)
    verifier = ClientAssertionVerifier(
        KeyRegistry.load(api_keys),
        ["tvp-police"],
        MemoryReplayStore(),
        clock_skew=timedelta(seconds=30),
        clock=lambda: now,
    )
    forger = Forger(api_keys)
    just_expired = forger.partner("tvp-police", PATH, exp=int(now.timestamp()) - 10)
    assert verifier.verify(just_expired, AUDIENCE).party == "tvp-police"
    too_late = forger.partner("tvp-police", PATH, exp=int(now.timestamp()) - 40)
    assert _reason(verifier, too_late) == "expired"
