"""The disclosure envelope: round trips for every body type, and one test per refusal."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from joserfc import jwe, jws
from joserfc.jwk import OctKey, OKPKey

from broker import envelope
from broker.exceptions import (
    AlgorithmRefused,
    ClaimsInvalid,
    ConfigurationError,
    DecryptionFailed,
    PayloadInvalid,
    PayloadTooLarge,
    ReplayDetected,
    SecurityError,
    SignatureInvalid,
    UnknownKey,
)
from broker.keys import (
    KeyRegistry,
    KeyUse,
    PartyKeys,
    generate_party_keys,
    revoke_key,
)
from broker.replay import MemoryReplayStore
from broker.settings import CryptoSettings
from schemas import Event, EventType, example_event, example_types
from schemas.disclosure import DisclosureClaims, Provenance

POLICE = "tvp-police"
MASH = "wam-mash"
SLOUGH = "slough-mash"
#: The keys are made an hour before the tests' "now", so they are valid throughout.
KEYS_MADE = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)


@dataclass
class World:
    """A key directory with three parties, and helpers to seal, open and forge."""

    directory: Path
    registry: KeyRegistry
    police: PartyKeys
    mash: PartyKeys

    @classmethod
    def create(cls, directory: Path, *, validity: timedelta = timedelta(days=365)) -> World:
        for party in (POLICE, MASH, SLOUGH):
            generate_party_keys(directory, party, now=KEYS_MADE, validity=validity)
        return cls.load(directory)

    @classmethod
    def load(cls, directory: Path) -> World:
        registry = KeyRegistry.load(directory)
        return cls(
            directory=directory,
            registry=registry,
            police=PartyKeys.load(directory, POLICE, registry),
            mash=PartyKeys.load(directory, MASH, registry),
        )

    def seal(self, event: Event | dict[str, Any], **overrides: Any) -> envelope.Sealed:
        document = event.model_dump(mode="json") if isinstance(event, Event) else event
        args: dict[str, Any] = {
            "sender": self.police,
            "recipient": MASH,
            "registry": self.registry,
            "rule_id": "missing-high-risk",
            "lawful_basis": "cda-1998-s115",
            "purpose": "Safeguarding a child reported missing at high risk",
        }
        args.update(overrides)
        if "provenance" not in args:
            args["provenance"] = provenance_of(document)
        return envelope.seal(document, **args)

    def open(self, token: str | bytes, **overrides: Any) -> DisclosureClaims:
        args: dict[str, Any] = {
            "recipient": self.mash,
            "registry": self.registry,
            "replay": MemoryReplayStore(),
        }
        args.update(overrides)
        return envelope.open(token, **args)

    def claims(self, **overrides: Any) -> dict[str, Any]:
        """Valid claims from police to the MASH, issued now, to forge tokens from."""
        event = example_event(EventType.MISSING_REPORTED).model_dump(mode="json")
        iat = int(datetime.now(UTC).timestamp())
        claims: dict[str, Any] = {
            "iss": POLICE,
            "aud": MASH,
            "iat": iat,
            "exp": iat + 3600,
            "jti": "forged-token-0000000001",
            "event": event,
            "event_type": "missing.reported",
            "rule_id": "missing-high-risk",
            "lawful_basis": "cda-1998-s115",
            "purpose": "Safeguarding",
            "provenance": provenance_of(event).model_dump(mode="json"),
        }
        claims.update(overrides)
        return claims

    def sign(
        self,
        claims: dict[str, Any] | bytes,
        *,
        header: dict[str, Any] | None = None,
        key: OKPKey | None = None,
    ) -> bytes:
        """A compact JWS made by hand, so that any header and key can be tried."""
        assert self.police.signing is not None
        protected = {"alg": "Ed25519", "typ": "JWT", "kid": self.police.signing.kid}
        if header is not None:
            protected = header
        payload = claims if isinstance(claims, bytes) else json.dumps(claims).encode()
        signing_input = b64(json.dumps(protected).encode()) + b"." + b64(payload)
        private = key if key is not None else self.police.signing.key
        op_key = private.get_op_key("sign")
        assert isinstance(op_key, Ed25519PrivateKey)
        return signing_input + b"." + b64(op_key.sign(signing_input))

    def encrypt(
        self,
        content: bytes,
        *,
        header: dict[str, Any] | None = None,
        party: str = MASH,
        algorithms: list[str] | None = None,
    ) -> str:
        """A compact JWE to ``party``'s current key, with any header joserfc will write."""
        record = self.registry.encryption_key(party)
        protected = {"alg": "ECDH-ES+A256KW", "enc": "A256GCM", "cty": "JWT", "kid": record.kid}
        if header is not None:
            protected.update(header)
        return jwe.encrypt_compact(
            protected,
            content,
            record.public,
            algorithms=algorithms or ["ECDH-ES+A256KW", "A256GCM"],
        )


def b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def provenance_of(event: dict[str, Any]) -> Provenance:
    return Provenance(
        source_agency=event["metadata"]["source"]["agency"],
        source_event_id=event["metadata"]["event_id"],
        original_sha256=envelope.digest_original(json.dumps(event).encode()),
    )


def with_header(token: str, header: dict[str, Any]) -> str:
    """``token`` with its protected header replaced (the tag no longer matches)."""
    rest = token.split(".", 1)[1]
    return b64(json.dumps(header).encode()).decode() + "." + rest


def header_of(token: str) -> dict[str, Any]:
    segment = token.split(".", 1)[0]
    decoded: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    )
    return decoded


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return World.create(tmp_path_factory.mktemp("keys"))


@pytest.fixture
def fresh_world(tmp_path: Path) -> World:
    """A world of its own, for tests that change keys."""
    return World.create(tmp_path)


# --- round trips -----------------------------------------------------------------------


@pytest.mark.parametrize("event_type", example_types(), ids=str)
def test_every_body_type_survives_seal_and_open(world: World, event_type: EventType) -> None:
    event = example_event(event_type)
    sealed = world.seal(event)
    claims = world.open(sealed.token)
    assert claims.event == event.model_dump(mode="json")
    assert Event.model_validate(claims.event) == event
    assert claims.event_type is event_type
    assert (claims.iss, claims.aud, claims.jti) == (POLICE, MASH, sealed.jti)
    assert claims.provenance == provenance_of(event.model_dump(mode="json"))
    assert claims.rule_id == "missing-high-risk"
    assert claims.exp - claims.iat == int(envelope.DEFAULT_LIMITS.lifetime.total_seconds())


def test_a_minimised_partial_event_is_carried_unchanged(world: World) -> None:
    full = example_event(EventType.MISSING_REPORTED).model_dump(mode="json")
    partial = {
        "metadata": {
            "event_id": full["metadata"]["event_id"],
            "source": full["metadata"]["source"],
        },
        "body": {"type": "missing.reported", "risk_grade": "high"},
    }
    sealed = world.seal(partial, provenance=provenance_of(full))
    assert world.open(sealed.token).event == partial


def test_the_token_is_a_nested_jwt_with_the_documented_headers(world: World) -> None:
    sealed = world.seal(example_event(EventType.CSE_SCREENING))
    outer = header_of(sealed.token)
    assert outer["alg"] == "ECDH-ES+A256KW"
    assert outer["enc"] == "A256GCM"
    assert outer["cty"] == "JWT"
    assert outer["kid"] == sealed.encryption_kid == world.registry.encryption_key(MASH).kid
    assert outer["epk"]["crv"] == "X25519"
    assert "zip" not in outer
    assert world.police.signing is not None
    assert sealed.signing_kid == world.police.signing.kid
    assert sealed.expires_at - sealed.issued_at == envelope.DEFAULT_LIMITS.lifetime


def test_each_token_has_a_fresh_ephemeral_key_content_key_and_iv(world: World) -> None:
    # The same claims sealed twice share nothing secret: a reused ephemeral key would give
    # the same key-encryption key, a reused content key and IV the same GCM key stream.
    event = example_event(EventType.MISSING_FOUND)
    first = world.seal(event, jti="same-jti-0000000001")
    second = world.seal(event, jti="same-jti-0000000001")
    header_one, header_two = header_of(first.token), header_of(second.token)
    assert set(header_one) == {"alg", "enc", "cty", "kid", "epk"}
    assert header_one["epk"]["kty"] == "OKP"
    assert header_one["epk"]["x"] != header_two["epk"]["x"]
    one, two = first.token.split("."), second.token.split(".")
    assert one[1] != two[1]  # the wrapped content key
    assert one[2] != two[2]  # the IV
    assert len(base64.urlsafe_b64decode(one[2] + "==")) == 12
    assert len(base64.urlsafe_b64decode(one[4] + "==")) == 16
    # joserfc's own decryption (not the broker's checks) opens both; the inner JWS holds
    # the same claims, so it differs only if the two seals fell in different seconds.
    private = world.mash.decryption[first.encryption_kid].key
    opened = [jwe.decrypt_compact(t.token, private).plaintext for t in (first, second)]
    assert (opened[0] == opened[1]) is (first.issued_at == second.issued_at)


def test_sealing_to_a_key_that_is_not_x25519_is_a_configuration_error() -> None:
    not_x25519 = OKPKey.generate_key("Ed25519")
    with pytest.raises(ConfigurationError, match="kid=k-1 is not an X25519 key"):
        envelope._encrypt(b"a.b.c", "k-1", not_x25519)


def test_bytes_and_str_tokens_both_open(world: World) -> None:
    sealed = world.seal(example_event(EventType.ATTENDANCE))
    assert world.open(sealed.token.encode()).jti == sealed.jti


def test_limits_come_from_settings() -> None:
    limits = envelope.EnvelopeLimits.from_settings(
        CryptoSettings(max_envelope_bytes=4096, token_lifetime_seconds=600, clock_skew_seconds=5)
    )
    assert limits == envelope.EnvelopeLimits(
        max_bytes=4096, lifetime=timedelta(minutes=10), clock_skew=timedelta(seconds=5)
    )


# --- seal refuses bad input ------------------------------------------------------------


def test_seal_refuses_claims_the_recipient_would_refuse(world: World) -> None:
    with pytest.raises(PayloadInvalid, match="rule_id"):
        world.seal(example_event(EventType.MISSING_FOUND), rule_id="no spaces allowed")


def test_seal_needs_an_event_type(world: World) -> None:
    with pytest.raises(PayloadInvalid, match=r"body\.type"):
        world.seal(
            {"metadata": {}},
            provenance=provenance_of(
                example_event(EventType.MISSING_FOUND).model_dump(mode="json")
            ),
        )


def test_seal_refuses_values_json_cannot_carry(world: World) -> None:
    event = example_event(EventType.MISSING_FOUND).model_dump(mode="json")
    provenance = provenance_of(event)
    event["body"]["extra"] = object()
    with pytest.raises(PayloadInvalid, match="JSON"):
        world.seal(event, provenance=provenance)


def test_seal_to_a_party_without_keys_is_refused(world: World) -> None:
    with pytest.raises(UnknownKey, match="nobody-here"):
        world.seal(example_event(EventType.MISSING_FOUND), recipient="nobody-here")


def test_seal_refuses_a_token_over_the_size_limit(world: World) -> None:
    with pytest.raises(PayloadTooLarge):
        world.seal(
            example_event(EventType.MISSING_REPORTED),
            limits=envelope.EnvelopeLimits(max_bytes=2048),
        )


def test_seal_refuses_a_signing_key_revoked_since_it_was_loaded(fresh_world: World) -> None:
    assert fresh_world.police.signing is not None
    revoke_key(fresh_world.directory, fresh_world.police.signing.kid)
    registry = KeyRegistry.load(fresh_world.directory)
    with pytest.raises(UnknownKey, match="revoked"):
        fresh_world.seal(example_event(EventType.MISSING_FOUND), registry=registry)


# --- open refuses: algorithms and headers ----------------------------------------------


@pytest.mark.parametrize(
    ("member", "value"),
    [
        ("alg", "none"),
        ("alg", "RSA1_5"),
        ("alg", "dir"),
        ("alg", "A256KW"),
        ("alg", "ECDH-ES"),
        ("alg", "HS256"),
        ("enc", "A128CBC-HS256"),
        ("enc", "A128GCM"),
    ],
)
def test_jwe_algorithms_outside_the_allow_list_are_refused(
    world: World, member: str, value: str
) -> None:
    token = world.seal(example_event(EventType.MISSING_FOUND)).token
    header = header_of(token) | {member: value}
    with pytest.raises(AlgorithmRefused, match=f"JWE {member}"):
        world.open(with_header(token, header))


def test_a_zip_header_is_refused(world: World) -> None:
    inner = world.sign(world.claims())
    token = world.encrypt(
        inner, header={"zip": "DEF"}, algorithms=["ECDH-ES+A256KW", "A256GCM", "DEF"]
    )
    with pytest.raises(AlgorithmRefused, match="'zip'"):
        world.open(token)


@pytest.mark.parametrize(
    ("member", "value"),
    [
        ("crit", ["exp"]),
        ("jku", "https://keys.example.invalid/jwks.json"),
        ("x5u", "https://keys.example.invalid/cert.pem"),
        ("jwk", {"kty": "OKP", "crv": "X25519", "x": "AAAA"}),
        ("x5c", ["MIIB"]),
        ("p2s", "c2FsdA"),
    ],
)
def test_jwe_headers_outside_the_allow_list_are_refused(
    world: World, member: str, value: object
) -> None:
    token = world.seal(example_event(EventType.MISSING_FOUND)).token
    with pytest.raises(AlgorithmRefused, match=member):
        world.open(with_header(token, header_of(token) | {member: value}))


@pytest.mark.parametrize("alg", ["none", "HS256", "EdDSA", "ES256", "RS256"])
def test_jws_algorithms_outside_the_allow_list_are_refused(world: World, alg: str) -> None:
    assert world.police.signing is not None
    header = {"alg": alg, "typ": "JWT", "kid": world.police.signing.kid}
    inner = world.sign(world.claims(), header=header)
    if alg == "none":
        inner = inner.rsplit(b".", 1)[0] + b"."
    with pytest.raises(AlgorithmRefused, match=f"JWS alg '{alg}'"):
        world.open(world.encrypt(inner))


def test_an_hs256_jws_keyed_with_the_public_key_is_refused(world: World) -> None:
    # The classic confusion: an HMAC "signature" keyed with the sender's public key bytes.
    assert world.police.signing is not None
    public_x = str(world.police.signing.record.public.as_dict()["x"])
    inner = jws.serialize_compact(
        {"alg": "HS256", "kid": world.police.signing.kid},
        json.dumps(world.claims()),
        OctKey.import_key(public_x),
        algorithms=["HS256"],
    ).encode()
    with pytest.raises(AlgorithmRefused):
        world.open(world.encrypt(inner))


@pytest.mark.parametrize(
    ("member", "value"),
    [
        ("crit", ["b64"]),
        ("b64", False),
        ("jku", "https://keys.example.invalid/jwks.json"),
        ("x5u", "https://keys.example.invalid/cert.pem"),
        ("jwk", {"kty": "OKP", "crv": "Ed25519", "x": "AAAA"}),
        ("zip", "DEF"),
    ],
)
def test_jws_headers_outside_the_allow_list_are_refused(
    world: World, member: str, value: object
) -> None:
    assert world.police.signing is not None
    header = {"alg": "Ed25519", "kid": world.police.signing.kid, member: value}
    with pytest.raises(AlgorithmRefused, match=member):
        world.open(world.encrypt(world.sign(world.claims(), header=header)))


def test_a_jwe_without_cty_jwt_is_refused(world: World) -> None:
    token = world.seal(example_event(EventType.MISSING_FOUND)).token
    header = {k: v for k, v in header_of(token).items() if k != "cty"}
    with pytest.raises(ClaimsInvalid, match="cty"):
        world.open(with_header(token, header))


# --- open refuses: keys ----------------------------------------------------------------


def test_a_jwe_kid_not_in_the_registry_is_refused(world: World) -> None:
    token = world.seal(example_event(EventType.MISSING_FOUND)).token
    with pytest.raises(UnknownKey, match="not in the key registry"):
        world.open(with_header(token, header_of(token) | {"kid": "wam-mash.enc.19700101.deadbeef"}))


def test_a_jwe_without_kid_is_refused(world: World) -> None:
    token = world.seal(example_event(EventType.MISSING_FOUND)).token
    header = {k: v for k, v in header_of(token).items() if k != "kid"}
    with pytest.raises(UnknownKey, match="no kid"):
        world.open(with_header(token, header))


def test_a_jws_kid_not_in_the_registry_is_refused(world: World) -> None:
    stranger = OKPKey.generate_key("Ed25519")
    inner = world.sign(world.claims(), header={"alg": "Ed25519", "kid": "ghost-key"}, key=stranger)
    with pytest.raises(UnknownKey, match="'ghost-key' is not in the key registry"):
        world.open(world.encrypt(inner))


def test_a_disclosure_encrypted_to_another_party_is_refused(world: World) -> None:
    token = world.seal(example_event(EventType.MISSING_FOUND), recipient=SLOUGH).token
    with pytest.raises(UnknownKey, match=f"belongs to party {SLOUGH}, not {MASH}"):
        world.open(token)


def test_a_signature_by_an_encryption_kid_is_refused(world: World) -> None:
    enc_kid = world.registry.encryption_key(POLICE).kid
    inner = world.sign(world.claims(), header={"alg": "Ed25519", "kid": enc_kid})
    with pytest.raises(UnknownKey, match="'enc' key, not 'sig'"):
        world.open(world.encrypt(inner))


def test_a_registered_kid_without_our_private_key_is_refused(world: World) -> None:
    token = world.seal(example_event(EventType.MISSING_FOUND)).token
    without = PartyKeys(party=MASH, signing=world.mash.signing, decryption={})
    with pytest.raises(UnknownKey, match="no private key"):
        world.open(token, recipient=without)


def test_an_expired_encryption_key_is_refused(tmp_path: Path) -> None:
    short = World.create(tmp_path, validity=timedelta(days=1))
    token = short.seal(example_event(EventType.MISSING_FOUND)).token
    # Two days on, the token (seven-day lifetime) is alive but the keys have expired;
    # the MASH's own encryption key is the first to be checked.
    enc_kid = short.registry.encryption_key(MASH).kid
    with pytest.raises(UnknownKey, match=f"kid={enc_kid} .* is expired"):
        short.open(token, now=KEYS_MADE + timedelta(days=2))


def test_an_expired_sender_key_is_refused_even_when_ours_is_valid(tmp_path: Path) -> None:
    generate_party_keys(tmp_path, POLICE, now=KEYS_MADE, validity=timedelta(days=1))
    generate_party_keys(tmp_path, MASH, now=KEYS_MADE)
    world = World.load(tmp_path)
    token = world.seal(example_event(EventType.MISSING_FOUND)).token
    assert world.police.signing is not None
    with pytest.raises(UnknownKey, match=f"kid={world.police.signing.kid} .* is expired"):
        world.open(token, now=KEYS_MADE + timedelta(days=2))


def test_a_not_yet_valid_signing_key_is_refused(tmp_path: Path) -> None:
    later = KEYS_MADE + timedelta(days=30)
    generate_party_keys(tmp_path, POLICE, now=later)
    generate_party_keys(tmp_path, MASH, now=KEYS_MADE)
    registry = KeyRegistry.load(tmp_path)
    world = World(
        directory=tmp_path,
        registry=registry,
        police=PartyKeys.load(tmp_path, POLICE, registry, at=later),
        mash=PartyKeys.load(tmp_path, MASH, registry),
    )
    token = world.seal(example_event(EventType.MISSING_FOUND), now=later).token
    with pytest.raises(UnknownKey, match="not yet valid"):
        world.open(token)


def test_a_revoked_signing_key_is_refused(fresh_world: World) -> None:
    token = fresh_world.seal(example_event(EventType.MISSING_FOUND)).token
    assert fresh_world.police.signing is not None
    revoke_key(fresh_world.directory, fresh_world.police.signing.kid)
    with pytest.raises(UnknownKey, match="revoked"):
        fresh_world.open(token, registry=KeyRegistry.load(fresh_world.directory))


def test_a_revoked_encryption_key_is_refused(fresh_world: World) -> None:
    token = fresh_world.seal(example_event(EventType.MISSING_FOUND)).token
    revoke_key(fresh_world.directory, fresh_world.registry.encryption_key(MASH).kid)
    with pytest.raises(UnknownKey, match="revoked"):
        fresh_world.open(token, registry=KeyRegistry.load(fresh_world.directory))


def test_a_signing_key_must_have_been_valid_when_the_token_was_issued(tmp_path: Path) -> None:
    # Keys valid from KEYS_MADE; a token claiming to be issued before that is refused,
    # even though the key is valid now.
    world = World.create(tmp_path)
    iat = int((KEYS_MADE - timedelta(hours=2)).timestamp())
    inner = world.sign(world.claims(iat=iat, exp=iat + 6 * 3600))
    with pytest.raises(UnknownKey, match="not yet valid"):
        world.open(world.encrypt(inner))


# --- open refuses: signature and claims ------------------------------------------------


def test_a_signature_by_another_key_under_the_senders_kid_is_refused(world: World) -> None:
    impostor = OKPKey.generate_key("Ed25519")
    with pytest.raises(SignatureInvalid, match="does not verify"):
        world.open(world.encrypt(world.sign(world.claims(), key=impostor)))


def test_a_sender_claiming_another_issuer_is_refused(world: World) -> None:
    inner = world.sign(world.claims(iss=SLOUGH))
    with pytest.raises(ClaimsInvalid, match=f"iss is {SLOUGH} but the signing key belongs to"):
        world.open(world.encrypt(inner))


def test_the_wrong_audience_is_refused(world: World) -> None:
    inner = world.sign(world.claims(aud=SLOUGH))
    with pytest.raises(ClaimsInvalid, match=f"aud is {SLOUGH}, not {MASH}"):
        world.open(world.encrypt(inner))


def test_an_expired_token_is_refused(world: World) -> None:
    sealed = world.seal(example_event(EventType.MISSING_FOUND))
    late = sealed.expires_at + envelope.DEFAULT_LIMITS.clock_skew
    with pytest.raises(ClaimsInvalid, match="expired"):
        world.open(sealed.token, now=late)
    # Within the clock skew it is still accepted.
    assert world.open(sealed.token, now=late - timedelta(seconds=1)).jti == sealed.jti


def test_a_token_issued_in_the_future_is_refused(world: World) -> None:
    iat = int((datetime.now(UTC) + timedelta(minutes=10)).timestamp())
    inner = world.sign(world.claims(iat=iat, exp=iat + 3600))
    with pytest.raises(ClaimsInvalid, match="iat is in the future"):
        world.open(world.encrypt(inner))


def test_a_token_living_longer_than_allowed_is_refused(world: World) -> None:
    iat = int(datetime.now(UTC).timestamp())
    inner = world.sign(world.claims(iat=iat, exp=iat + 30 * 24 * 3600))
    with pytest.raises(ClaimsInvalid, match="lifetime"):
        world.open(world.encrypt(inner))


def test_exp_before_iat_is_refused(world: World) -> None:
    iat = int(datetime.now(UTC).timestamp())
    with pytest.raises(ClaimsInvalid, match="exp is not after iat"):
        world.open(world.encrypt(world.sign(world.claims(iat=iat, exp=iat))))


@pytest.mark.parametrize("claim", ["iss", "aud", "iat", "exp", "jti", "event", "provenance"])
def test_a_missing_claim_is_refused(world: World, claim: str) -> None:
    claims = world.claims()
    del claims[claim]
    with pytest.raises(ClaimsInvalid, match=f"{claim}: missing"):
        world.open(world.encrypt(world.sign(claims)))


def test_an_unknown_claim_is_refused(world: World) -> None:
    with pytest.raises(ClaimsInvalid, match="nbf: extra_forbidden"):
        world.open(world.encrypt(world.sign(world.claims(nbf=0))))


def test_an_event_type_that_contradicts_the_body_is_refused(world: World) -> None:
    inner = world.sign(world.claims(event_type="missing.found"))
    with pytest.raises(ClaimsInvalid, match="event_type"):
        world.open(world.encrypt(inner))


def test_content_that_is_not_a_jws_is_refused(world: World) -> None:
    with pytest.raises(SignatureInvalid, match="not a compact JWS"):
        world.open(world.encrypt(b"just some text"))


def test_a_replayed_jti_is_refused(world: World) -> None:
    sealed = world.seal(example_event(EventType.MISSING_FOUND))
    replay = MemoryReplayStore()
    world.open(sealed.token, replay=replay)
    with pytest.raises(ReplayDetected, match=sealed.jti):
        world.open(sealed.token, replay=replay)


def test_a_refused_token_does_not_use_up_its_jti(world: World) -> None:
    sealed = world.seal(example_event(EventType.MISSING_FOUND))
    replay = MemoryReplayStore()
    with pytest.raises(ClaimsInvalid):
        world.open(sealed.token, replay=replay, now=sealed.expires_at + timedelta(hours=1))
    assert len(replay) == 0
    assert world.open(sealed.token, replay=replay).jti == sealed.jti


# --- open refuses: size and tampering --------------------------------------------------


def test_input_over_the_size_limit_is_refused_before_parsing(world: World) -> None:
    limits = envelope.EnvelopeLimits(max_bytes=4096)
    # Not even JOSE: a parser would call it malformed; the size check must come first.
    with pytest.raises(PayloadTooLarge, match="4097 bytes"):
        world.open("x" * 4097, limits=limits)
    with pytest.raises(PayloadTooLarge):
        world.open(b"\xff" * 4097, limits=limits)


@pytest.mark.parametrize("segment", [0, 1, 2, 3, 4])
def test_a_changed_byte_in_any_segment_is_refused(world: World, segment: int) -> None:
    token = world.seal(example_event(EventType.MISSING_FOUND)).token
    parts = token.split(".")
    middle = len(parts[segment]) // 2
    flipped = "A" if parts[segment][middle] != "A" else "B"
    parts[segment] = parts[segment][:middle] + flipped + parts[segment][middle + 1 :]
    with pytest.raises(SecurityError):
        world.open(".".join(parts))


def test_ciphertext_tampering_is_a_decryption_failure(world: World) -> None:
    token = world.seal(example_event(EventType.MISSING_FOUND)).token
    parts = token.split(".")
    parts[3] = ("B" if parts[3][0] == "A" else "A") + parts[3][1:]
    with pytest.raises(DecryptionFailed, match="does not decrypt"):
        world.open(".".join(parts))


def test_non_canonical_base64_is_refused_though_it_decodes_the_same(world: World) -> None:
    token = world.seal(example_event(EventType.MISSING_FOUND)).token
    parts = token.split(".")
    # The 16-byte tag is 22 characters; the last one carries 4 unused bits.
    last = parts[4][-1]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    parts[4] = parts[4][:-1] + alphabet[alphabet.index(last) | 1]
    tampered = ".".join(parts)
    assert tampered != token
    # A lenient decoder (Python's own) reads both as the same tag bytes.
    assert base64.urlsafe_b64decode(parts[4] + "==") == base64.urlsafe_b64decode(
        token.split(".")[4] + "=="
    )
    with pytest.raises(DecryptionFailed, match="canonical"):
        world.open(tampered)


@pytest.mark.parametrize(
    "token",
    ["", "a.b.c.d", "a.b.c.d.e.f", "....", "a b.c.d.e.f", "é.b.c.d.e", "a.b.c.d.e\n"],
    ids=["empty", "4 parts", "6 parts", "empty parts", "space", "non-ascii", "newline"],
)
def test_malformed_compact_forms_are_refused(world: World, token: str) -> None:
    with pytest.raises(DecryptionFailed, match="not a compact JWE"):
        world.open(token)


def test_a_header_that_is_not_json_is_refused(world: World) -> None:
    token = world.seal(example_event(EventType.MISSING_FOUND)).token
    rest = token.split(".", 1)[1]
    with pytest.raises(DecryptionFailed):
        world.open(b64(b"{not json").decode() + "." + rest)


# --- messages --------------------------------------------------------------------------


def test_refusal_messages_carry_ids_never_personal_data(world: World) -> None:
    event = example_event(EventType.MISSING_REPORTED)
    assert event.subject is not None
    secrets_in_event = [
        event.subject.given_name,
        event.subject.family_name,
        event.subject.nhs_number,
        "Larkspur",
    ]
    attempts = [
        world.claims(nbf=0),
        world.claims(aud=SLOUGH),
        world.claims(event_type="missing.found"),
        world.claims(event="not an object"),
        world.claims(purpose=f"About {event.subject.family_name}\x00"),
    ]
    for claims in attempts:
        with pytest.raises(SecurityError) as refused:
            world.open(world.encrypt(world.sign(claims)))
        for secret in secrets_in_event:
            assert secret is not None
            assert secret not in str(refused.value)


def test_registry_usable_key_is_exercised_for_both_uses(world: World) -> None:
    # A sanity check on the fixture itself, so the refusal tests above mean something.
    assert world.police.signing is not None
    world.registry.usable_key(
        world.police.signing.kid, use=KeyUse.SIGNING, at=datetime.now(UTC), party=POLICE
    )
    assert world.open(world.encrypt(world.sign(world.claims()))).iss == POLICE


def test_a_signer_outside_the_accepted_issuers_is_refused(world: World) -> None:
    sealed = world.seal(example_event(EventType.MISSING_FOUND))
    with pytest.raises(ClaimsInvalid, match=f"party {POLICE} is not an accepted issuer"):
        world.open(sealed.token, issuers={"wam-broker"})
    assert world.open(sealed.token, issuers={POLICE}).iss == POLICE
