"""Interoperability with an independent JOSE implementation (jwcrypto), both ways.

Partners verify with off-the-shelf tools, so the envelope must be plain RFC 7516/7515/8037
JOSE: jwcrypto opens and verifies what the broker seals, with the JWS algorithm named
``Ed25519`` (RFC 9864), and the broker opens what jwcrypto seals.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from jwcrypto import jwe as jwcrypto_jwe
from jwcrypto import jwk as jwcrypto_jwk
from jwcrypto import jws as jwcrypto_jws

from broker.exceptions import AlgorithmRefused
from broker.keys import ENCRYPTION_ALG, SIGNING_ALG, private_key_path
from schemas import Event, EventType, example_event, example_types
from tests.broker.test_envelope import MASH, POLICE, World


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return World.create(tmp_path_factory.mktemp("keys"))


def _private(world: World, party: str, kid: str) -> jwcrypto_jwk.JWK:
    """A party's private key as jwcrypto reads it straight from the key file."""
    path = private_key_path(world.directory, party, kid)
    return jwcrypto_jwk.JWK.from_json(path.read_text())


def _public_keyset(directory: Path) -> jwcrypto_jwk.JWKSet:
    return jwcrypto_jwk.JWKSet.from_json((directory / "jwks.json").read_text())


@pytest.mark.parametrize("event_type", example_types(), ids=str)
def test_jwcrypto_opens_and_verifies_what_the_broker_seals(
    world: World, event_type: EventType
) -> None:
    event = example_event(event_type)
    sealed = world.seal(event)
    public = _public_keyset(world.directory)

    outer = jwcrypto_jwe.JWE()
    outer.allowed_algs = [ENCRYPTION_ALG, "A256GCM"]
    outer.deserialize(sealed.token, key=_private(world, MASH, sealed.encryption_kid))
    assert outer.jose_header["cty"] == "JWT"

    inner = jwcrypto_jws.JWS()
    inner.allowed_algs = [SIGNING_ALG]
    inner.deserialize(outer.payload.decode())
    assert inner.jose_header["alg"] == "Ed25519"
    signer = public.get_key(inner.jose_header["kid"])
    assert signer is not None
    assert signer["party"] == POLICE
    inner.verify(signer, alg="Ed25519")

    claims: dict[str, Any] = json.loads(inner.payload)
    assert claims["iss"] == POLICE
    assert claims["aud"] == MASH
    assert claims["jti"] == sealed.jti
    assert Event.model_validate(claims["event"]) == event


def test_jwcrypto_refuses_a_tampered_broker_token(world: World) -> None:
    # The independent library agrees on integrity too: a flipped ciphertext byte fails.
    token = world.seal(example_event(EventType.MISSING_FOUND)).token
    parts = token.split(".")
    parts[3] = ("B" if parts[3][0] == "A" else "A") + parts[3][1:]
    record = world.registry.encryption_key(MASH)
    outer = jwcrypto_jwe.JWE()
    outer.allowed_algs = [ENCRYPTION_ALG, "A256GCM"]
    with pytest.raises(jwcrypto_jwe.InvalidJWEData):
        outer.deserialize(".".join(parts), key=_private(world, MASH, record.kid))


def _jwcrypto_seal(world: World, claims: dict[str, Any], *, jws_alg: str = "Ed25519") -> str:
    """Sign as the police and encrypt to the MASH using jwcrypto alone."""
    assert world.police.signing is not None
    signing_kid = world.police.signing.kid
    inner = jwcrypto_jws.JWS(json.dumps(claims).encode())
    inner.allowed_algs = [jws_alg]
    inner.add_signature(
        _private(world, POLICE, signing_kid),
        alg=jws_alg,
        protected=json.dumps({"alg": jws_alg, "typ": "JWT", "kid": signing_kid}),
    )
    recipient = world.registry.encryption_key(MASH)
    public = _public_keyset(world.directory).get_key(recipient.kid)
    outer = jwcrypto_jwe.JWE(
        inner.serialize(compact=True).encode(),
        protected=json.dumps(
            {"alg": ENCRYPTION_ALG, "enc": "A256GCM", "cty": "JWT", "kid": recipient.kid}
        ),
    )
    outer.allowed_algs = [ENCRYPTION_ALG, "A256GCM"]
    outer.add_recipient(public)
    token: str = outer.serialize(compact=True)
    return token


def test_the_broker_opens_what_jwcrypto_seals(world: World) -> None:
    claims = world.claims(jti="jwcrypto-sealed-0000000001")
    opened = world.open(_jwcrypto_seal(world, claims))
    assert opened.model_dump(mode="json") == claims


def test_the_broker_refuses_jwcrypto_tokens_signed_with_the_eddsa_identifier(
    world: World,
) -> None:
    # We chose RFC 9864's "Ed25519"; the deprecated polymorphic "EdDSA" is refused.
    with pytest.raises(AlgorithmRefused, match="'EdDSA'"):
        world.open(_jwcrypto_seal(world, world.claims(), jws_alg="EdDSA"))
