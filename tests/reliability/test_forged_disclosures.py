"""Forged and altered disclosures fed to the real MASH intake over RabbitMQ (item 9).

Every forgery is published to the MASH queue as the relay would publish a genuine one.
The real ``IntakeConsumer`` must refuse 100% of them: no alert is stored, each is
dead-lettered, and each refusal is audited (``dead_lettered`` with its reason code).
"""

from __future__ import annotations

import copy
import random
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from broker import envelope
from broker.exceptions import SecurityError
from broker.keys import KeyUse, PartyKeys
from broker.messaging import list_dead_letters
from broker.replay import MemoryReplayStore
from broker.runtime import Runtime
from broker.service import Service
from tests.reliability import forge
from tests.reliability.forge import EncryptOptions, b64
from tests.reliability.helpers import (
    MASH,
    alerts,
    audit_verifies,
    claims_of,
    dead_lettered,
    eventually,
    mash_event,
    publish_disclosures,
    seal_for,
)

pytestmark = [pytest.mark.rabbitmq]

#: Any refusal code the envelope may give for bytes that are not a well-formed token.
UNREADABLE = {"decryption_failed", "algorithm_refused", "unknown_key", "claims_invalid"}
SECURITY_CODES = {cls.code for cls in SecurityError.__subclasses__()} | {"security"}


_PLAIN = EncryptOptions()


@dataclass
class Forger:
    """The keys and claims an attacker's variations start from."""

    service: Service
    genuine: bytes
    claims: dict[str, Any]
    signer: Ed25519PrivateKey
    signer_kid: str
    mash_public: Any
    mash_kid: str
    counter: list[int] = field(default_factory=lambda: [0])

    @classmethod
    def make(cls, service: Service) -> Forger:
        event, disclosure = mash_event(service)
        sealed = seal_for(service, event, disclosure)
        signing = service.service_keys.signing
        assert signing is not None
        mash_key = service.registry.encryption_key(MASH)
        return cls(
            service=service,
            genuine=sealed.token.encode(),
            claims=claims_of(service, sealed.token),
            signer=forge.ed25519_private(signing.key),
            signer_kid=signing.kid,
            mash_public=forge.x25519_public(mash_key.public),
            mash_kid=mash_key.kid,
        )

    def fresh_claims(self, **changes: Any) -> dict[str, Any]:
        self.counter[0] += 1
        claims = {**self.claims, "jti": f"forged{self.counter[0]:06d}{random.getrandbits(64):016x}"}
        claims.update(changes)
        return {k: v for k, v in claims.items() if v is not _DROP}

    def signed(self, claims: dict[str, Any] | None = None, **header: Any) -> bytes:
        return forge.sign(
            claims or self.fresh_claims(),
            self.signer,
            {**forge.JWS_HEADER, "kid": self.signer_kid, **header},
        )

    def token(
        self,
        inner: bytes | None = None,
        options: EncryptOptions = _PLAIN,
        **header: Any,
    ) -> bytes:
        jwe_header = {**forge.JWE_HEADER, "kid": self.mash_kid, **header}
        jwe_header = {k: v for k, v in jwe_header.items() if v is not _DROP}
        return forge.encrypt(inner or self.signed(), self.mash_public, jwe_header, options)

    def party_signer(self, party: str) -> tuple[Ed25519PrivateKey, str]:
        keys = PartyKeys.load(self.service.keys_dir, party, self.service.registry)
        assert keys.signing is not None
        return forge.ed25519_private(keys.signing.key), keys.signing.kid

    def party_kid(self, party: str, use: KeyUse) -> str:
        return self.service.registry.current_key(party, use).kid


_DROP = object()


@dataclass(frozen=True)
class Case:
    name: str
    token: bytes
    codes: frozenset[str]


def _flip_bits(genuine: bytes, rng: random.Random, n: int) -> list[Case]:
    cases = []
    for i in range(n):
        data = bytearray(genuine)
        position = rng.randrange(len(data))
        data[position] ^= 1 << rng.randrange(8)
        cases.append(Case(f"bit-flip-{i}-at-{position}", bytes(data), frozenset(UNREADABLE)))
    return cases


def _substitute(genuine: bytes, rng: random.Random, n: int) -> list[Case]:
    """Changes that keep the token in the base64url alphabet, so they reach the crypto."""
    alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    cases = []
    segments = genuine.split(b".")
    for i in range(n):
        which = i % 5
        parts = [bytearray(s) for s in segments]
        target = parts[which]
        position = rng.randrange(len(target) - 1)  # not the last, whose low bits are padding
        target[position] = rng.choice([c for c in alphabet if c != target[position]])
        token = b".".join(bytes(p) for p in parts)
        cases.append(Case(f"substitution-{i}-segment-{which}", token, frozenset(UNREADABLE)))
    return cases


def forged_cases(f: Forger, seed: int = 9) -> list[Case]:
    rng = random.Random(seed)
    rogue = Ed25519PrivateKey.generate()
    police_signer, police_kid = f.party_signer("tvp-police")
    police_enc = f.party_kid("tvp-police", KeyUse.ENCRYPTION)
    mash_sig = f.party_kid(MASH, KeyUse.SIGNING)
    c = f.fresh_claims
    hs_key = forge.unb64(str(f.service.service_keys.signing.key.as_dict()["x"]))  # type: ignore[union-attr]

    def jws(
        key: Any,
        kid: str,
        claims: dict[str, Any] | None = None,
        *,
        signature: bytes | None = None,
        **header: Any,
    ) -> bytes:
        return forge.sign(
            claims or c(), key, {**forge.JWS_HEADER, "kid": kid, **header}, signature=signature
        )

    def case(name: str, token: bytes, *codes: str) -> Case:
        return Case(name, token, frozenset(codes))

    signed = f.signed()
    header_b64, payload_b64, _signature = signed.split(b".")
    cases = [
        *_flip_bits(f.genuine, rng, 40),
        *_substitute(f.genuine, rng, 40),
        # Re-signed with keys the registry does not hold, or holds for someone else.
        case("rogue-key-broker-kid", f.token(jws(rogue, f.signer_kid)), "signature_invalid"),
        case("rogue-key-unknown-kid", f.token(jws(rogue, "rogue-2026")), "unknown_key"),
        # A kid of a party the MASH does not take disclosures from is refused before the
        # signature is even checked.
        case("rogue-key-police-kid", f.token(jws(rogue, police_kid)), "claims_invalid"),
        case("police-key-as-broker", f.token(jws(police_signer, police_kid)), "claims_invalid"),
        case("broker-key-mash-kid", f.token(jws(f.signer, mash_sig)), "claims_invalid"),
        case("encryption-kid-as-signer", f.token(jws(f.signer, f.mash_kid)), "unknown_key"),
        # Stripped or altered signatures.
        case(
            "empty-signature", f.token(header_b64 + b"." + payload_b64 + b"."), "signature_invalid"
        ),
        case("no-signature-segment", f.token(header_b64 + b"." + payload_b64), "signature_invalid"),
        case(
            "zero-signature",
            f.token(jws(None, f.signer_kid, signature=bytes(64))),
            "signature_invalid",
        ),
        case("unsigned-jwt-inside", f.token(forge.b64(b'{"a":1}')), "signature_invalid"),
        case(
            "claims-swapped-under-signature",
            f.token(
                header_b64 + b"." + b64(b'{"iss":"wam-broker"}') + b"." + signed.split(b".")[2]
            ),
            "signature_invalid",
        ),
        # Swapped audience and key ids.
        case("aud-police", f.token(f.signed(c(aud="tvp-police"))), "claims_invalid"),
        case("aud-missing", f.token(f.signed(c(aud=_DROP))), "claims_invalid"),
        case("iss-police", f.token(f.signed(c(iss="tvp-police"))), "claims_invalid"),
        case("jwe-kid-of-police", f.token(kid=police_enc), "unknown_key"),
        case("jwe-kid-of-mash-signing-key", f.token(kid=mash_sig), "unknown_key"),
        case("jwe-kid-unknown", f.token(kid="mash-enc-forged"), "unknown_key"),
        case("jwe-kid-missing", f.token(kid=_DROP), "unknown_key"),
        case("jwe-kid-not-a-string", f.token(kid=["a"]), "unknown_key"),
        # Invalid-curve and malformed ephemeral keys.
        *[
            case(
                f"epk-low-order-{name}",
                f.token(
                    options=EncryptOptions(
                        epk={"kty": "OKP", "crv": "X25519", "x": b64(point).decode()}
                    )
                ),
                "decryption_failed",
            )
            for name, point in forge.LOW_ORDER_POINTS.items()
        ],
        case(
            "epk-short",
            f.token(
                options=EncryptOptions(
                    epk={"kty": "OKP", "crv": "X25519", "x": b64(bytes(31)).decode()}
                )
            ),
            "decryption_failed",
        ),
        case(
            "epk-ed25519-curve",
            f.token(
                options=EncryptOptions(
                    epk={
                        "kty": "OKP",
                        "crv": "Ed25519",
                        "x": b64(rogue.public_key().public_bytes_raw()).decode(),
                    }
                )
            ),
            "decryption_failed",
        ),
        case(
            "epk-p256",
            f.token(
                options=EncryptOptions(epk={"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"})
            ),
            "decryption_failed",
        ),
        case(
            "epk-other-x25519-key",
            f.token(
                options=EncryptOptions(
                    epk={
                        "kty": "OKP",
                        "crv": "X25519",
                        "x": b64(
                            X25519PrivateKey.generate().public_key().public_bytes_raw()
                        ).decode(),
                    }
                )
            ),
            "decryption_failed",
        ),
        # Compression, and headers that fetch or embed keys.
        case(
            "jwe-zip-deflate",
            f.token(options=EncryptOptions(deflate=True), zip="DEF"),
            "algorithm_refused",
        ),
        case("jws-zip", f.token(f.signed(zip="DEF")), "algorithm_refused"),
        case("jwe-crit", f.token(crit=["exp"], exp=1), "algorithm_refused"),
        case("jwe-jku", f.token(jku="http://127.0.0.1:9/jwks"), "algorithm_refused"),
        case("jwe-x5u", f.token(x5u="http://127.0.0.1:9/cert"), "algorithm_refused"),
        case(
            "jws-jwk-embedded",
            f.token(f.signed(jwk={"kty": "OKP", "crv": "Ed25519", "x": "AA"})),
            "algorithm_refused",
        ),
        case("jws-x5c", f.token(f.signed(x5c=["AA"])), "algorithm_refused"),
        case("jwe-unknown-member", f.token(p2s="AAAA"), "algorithm_refused"),
        # Algorithms outside the allow-list.
        *[
            case(f"jwe-alg-{alg}", f.token(alg=alg), "algorithm_refused")
            for alg in (
                "dir",
                "ECDH-ES",
                "ECDH-ES+A128KW",
                "A256KW",
                "RSA1_5",
                "RSA-OAEP",
                "PBES2-HS256+A128KW",
                "none",
            )
        ],
        *[
            case(f"jwe-enc-{enc}", f.token(enc=enc), "algorithm_refused")
            for enc in ("A128GCM", "A192GCM", "A128CBC-HS256", "A256CBC-HS512", "none")
        ],
        case("jws-alg-none", f.token(jws(None, f.signer_kid, alg="none")), "algorithm_refused"),
        case(
            "jws-alg-hs256-public-key",
            f.token(jws(hs_key, f.signer_kid, alg="HS256")),
            "algorithm_refused",
        ),
        *[
            case(
                f"jws-alg-{alg}", f.token(jws(f.signer, f.signer_kid, alg=alg)), "algorithm_refused"
            )
            for alg in ("EdDSA", "ES256", "RS256", "ES256K", "PS256")
        ],
        case("jwe-cty-not-jwt", f.token(cty="json"), "claims_invalid"),
        case("jws-typ-not-jwt", f.token(f.signed(typ="JOSE+JSON")), "claims_invalid"),
        # Claims out of time or bounds.
        case(
            "expired", f.token(f.signed(c(iat=1_600_000_000, exp=1_600_003_600))), "claims_invalid"
        ),
        case(
            "issued-in-the-future",
            f.token(f.signed(c(iat=int(time.time()) + 3600, exp=int(time.time()) + 7200))),
            "claims_invalid",
        ),
        case(
            "lifetime-too-long",
            f.token(f.signed(c(iat=int(time.time()), exp=int(time.time()) + 400 * 86400))),
            "claims_invalid",
        ),
        case("jti-missing", f.token(f.signed(c(jti=_DROP))), "claims_invalid"),
        case(
            "event-type-mismatch", f.token(f.signed(c(event_type="case.status"))), "claims_invalid"
        ),
        case(
            "claims-not-json",
            f.token(forge.sign(b"\xff\xfe", f.signer, {**forge.JWS_HEADER, "kid": f.signer_kid})),
            "claims_invalid",
        ),
        # Not a compact JWE at all.
        case("empty", b"", *UNREADABLE),
        case("truncated", f.genuine[: len(f.genuine) // 2], *UNREADABLE),
        case("four-segments", f.genuine.rsplit(b".", 1)[0], *UNREADABLE),
        case("six-segments", f.genuine + b".AAAA", *UNREADABLE),
        case("non-ascii", f.genuine[:-2] + "é".encode(), *UNREADABLE),
        case("json-serialisation", b'{"protected":"e30","ciphertext":"AA"}', *UNREADABLE),
        case("padded-base64", f.genuine.replace(b".", b"=.", 1), *UNREADABLE),
        case(
            "oversized",
            f.genuine + b"A" * (f.service.settings.crypto.max_envelope_bytes + 1),
            "too_large",
        ),
        case("sealed-for-the-police", _sealed_for_police(f), "unknown_key"),
    ]
    assert len({x.name for x in cases}) == len(cases)
    return cases


def _sealed_for_police(f: Forger) -> bytes:
    event, disclosure = mash_event(f.service)
    return seal_for(f.service, event, disclosure, recipient="tvp-police").token.encode()


def test_the_forge_is_faithful(service: Service) -> None:
    """A token the forge builds with the genuine keys opens: so each refusal below is caused
    by its one alteration, not by the forge."""
    f = Forger.make(service)
    keys = PartyKeys.load(service.keys_dir, MASH, service.registry)
    claims = envelope.open(
        f.token(), recipient=keys, registry=service.registry, replay=MemoryReplayStore()
    )
    assert claims.aud == MASH
    assert claims.iss == "wam-broker"


async def test_forged_disclosures_are_all_refused_and_audited(service: Service) -> None:
    f = Forger.make(service)
    cases = forged_cases(f)
    await publish_disclosures(service, [(f"forged-{x.name}", x.token) for x in cases])
    async with Runtime(service, ["intake"]) as runtime:
        consumer = runtime.consumers[0]
        await eventually(
            lambda: consumer.stats.rejected + consumer.stats.acked >= len(cases),
            within=60,
            what=f"all {len(cases)} forgeries handled ({consumer.stats})",
        )
        stats = copy.deepcopy(consumer.stats)
        assert alerts(service) == 0, "a forgery reached the alert table"
        # A genuine disclosure still gets through: the refusals are not a broken intake.
        await publish_disclosures(service, [("genuine-control", f.genuine)])
        await eventually(lambda: alerts(service) == 1, what="the genuine control stored")

    assert stats.acked == 0, "a forgery was acknowledged as stored"
    assert stats.rejected == len(cases)
    assert stats.retried == stats.errors == 0
    audited = dead_lettered(service)
    assert set(audited) == {f"forged-{x.name}" for x in cases}
    wrong = {
        x.name: audited[f"forged-{x.name}"]
        for x in cases
        if audited[f"forged-{x.name}"] not in x.codes
    }
    assert not wrong, wrong
    report = await list_dead_letters(service.settings.amqp, service.topology.recipient_queues[MASH])
    assert report.total == len(cases)
    assert {letter.message_id for letter in report.letters} == {f"forged-{x.name}" for x in cases}
    audit_verifies(service)


async def test_a_partner_cannot_sign_a_disclosure_to_the_mash_itself(service: Service) -> None:
    """A partner holds a registered signing key of its own. A disclosure it signs and
    addresses to the MASH (iss = the partner) bypasses the agreement, the broker's policy
    and its ``shared`` audit entry; the MASH must take disclosures only from its broker."""
    f = Forger.make(service)
    police_signer, police_kid = f.party_signer("tvp-police")
    token = f.token(
        forge.sign(
            f.fresh_claims(iss="tvp-police"),
            police_signer,
            {**forge.JWS_HEADER, "kid": police_kid},
        )
    )
    await publish_disclosures(service, [("partner-signed", token)])
    async with Runtime(service, ["intake"]) as runtime:
        consumer = runtime.consumers[0]
        await eventually(lambda: consumer.stats.rejected + consumer.stats.acked >= 1)
    assert alerts(service) == 0
    assert dead_lettered(service) == {"partner-signed": "claims_invalid"}
