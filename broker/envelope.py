"""The disclosure envelope: claims signed (JWS, Ed25519), then encrypted to one recipient (JWE).

A disclosure is a nested JWT (RFC 7519 section 5.2)::

    JWE compact  {"alg": "ECDH-ES+A256KW", "enc": "A256GCM", "cty": "JWT", "kid": <enc kid>}
      └── JWS compact  {"alg": "Ed25519", "typ": "JWT", "kid": <sender sig kid>}
            └── claims (schemas.disclosure.DisclosureClaims)

:func:`open` refuses, each with its own ``SecurityError``: input over the size limit (before
any parsing), anything that is not canonical base64url compact serialisation, a header
outside the allow-list (``zip``, ``crit``, ``jku``, ``x5u``, ``jwk`` and the rest), an
algorithm other than the ones above, a kid not in the registry or not usable, a bad
signature, and claims that are wrong for this recipient at this time or already seen.
Messages name kids, jtis and parties, never the content.
"""

from __future__ import annotations

import binascii
import functools
import hashlib
import json
import re
import secrets
import struct
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn

import pydantic_core
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.concatkdf import ConcatKDFHash
from cryptography.hazmat.primitives.keywrap import aes_key_wrap
from joserfc import jwe, jws
from joserfc.errors import (
    JoseError,
    UnsupportedAlgorithmError,
)
from joserfc.jwk import GuestProtocol, OKPKey
from joserfc.util import urlsafe_b64decode, urlsafe_b64encode
from pydantic import ValidationError

from broker.exceptions import (
    AlgorithmRefused,
    ClaimsInvalid,
    ConfigurationError,
    DecryptionFailed,
    PayloadInvalid,
    PayloadTooLarge,
    SignatureInvalid,
    UnknownKey,
)
from broker.keys import ENCRYPTION_ALG, SIGNING_ALG, KeyRegistry, KeyUse, PartyKeys
from broker.replay import ReplayStore
from broker.settings import CryptoSettings
from schemas.disclosure import DisclosureClaims, Provenance
from schemas.events import EventType, LawfulBasis

__all__ = [
    "CONTENT_ENC",
    "DEFAULT_LIMITS",
    "EnvelopeLimits",
    "Sealed",
    "digest_original",
    "open",
    "seal",
]

#: The JWE content-encryption algorithm.
CONTENT_ENC = "A256GCM"

# Header members each layer may carry; anything else (zip, crit, jku, x5u, jwk, x5c, x5t,
# b64, p2s, ...) is refused. epk/apu/apv are the ECDH-ES key-agreement inputs.
_JWE_HEADER_MEMBERS = frozenset({"alg", "enc", "cty", "kid", "typ", "epk", "apu", "apv"})
_JWS_HEADER_MEMBERS = frozenset({"alg", "kid", "typ", "cty"})
_REFUSED_HEADER_REASONS = {
    "zip": "compression is never accepted",
    "crit": "no critical extensions are understood",
    "jku": "keys come only from the registry",
    "x5u": "keys come only from the registry",
    "jwk": "keys come only from the registry",
    "x5c": "keys come only from the registry",
}

_COMPACT_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."
# In canonical base64url the unused low bits of the last character are zero; a decoder
# ignores them, so without this check flipping them would change the token but not its
# meaning, and a changed token must always be refused.
_CANONICAL_LAST = {2: frozenset(b"AQgw"), 3: frozenset(b"AEIMQUYcgkosw048")}
_URLSAFE_TO_STANDARD = bytes.maketrans(b"-_", b"+/")
_TEN_DIGITS_IN_A_ROW = re.compile(r"\d{10}")
#: Hex digits as letters that sort in the same order (a token id's time).
_AS_LETTERS = str.maketrans("0123456789abcdef", "abcdefghijklmnop")

# joserfc's own size limits (64 KB of ciphertext) are below ours; our limit is checked
# first, so theirs are raised out of the way. Header limits stay as joserfc sets them.
_LIBRARY_SIZE_CEILING = 1 << 30
_JWS_REGISTRY = jws.JWSRegistry(algorithms=[SIGNING_ALG])
_JWS_REGISTRY.max_payload_length = _LIBRARY_SIZE_CEILING
_JWE_REGISTRY = jwe.JWERegistry(algorithms=[ENCRYPTION_ALG, CONTENT_ENC])
_JWE_REGISTRY.max_ciphertext_length = _LIBRARY_SIZE_CEILING
#: joserfc's Ed25519 algorithm, taken through the allow-listed registry.
_SIGNER = _JWS_REGISTRY.get_alg(SIGNING_ALG)

#: Sizes of A256KW's key-encryption key, A256GCM's content key, its IV and its tag, in bytes.
_KEK_BYTES = 32
_CEK_BYTES = 32
_IV_BYTES = 12
_TAG_BYTES = 16
#: Concat KDF's OtherInfo for ECDH-ES+A256KW with no PartyUInfo or PartyVInfo (RFC 7518
#: section 4.6.2): the algorithm id, two empty data-length fields and the key's length in
#: bits. The same for every token, so built once.
_KDF_OTHER_INFO = (
    struct.pack(">I", len(ENCRYPTION_ALG))
    + ENCRYPTION_ALG.encode("ascii")
    + struct.pack(">II", 0, 0)
    + struct.pack(">I", _KEK_BYTES * 8)
)


@dataclass(frozen=True, slots=True)
class EnvelopeLimits:
    """Size and time limits applied by :func:`seal` and :func:`open`."""

    #: Largest compact JWE accepted or produced, in bytes.
    max_bytes: int = 256 * 1024
    #: Lifetime given to sealed tokens; also the longest ``exp - iat`` accepted.
    lifetime: timedelta = timedelta(days=7)
    #: Tolerated clock difference between sender and recipient.
    clock_skew: timedelta = timedelta(seconds=120)

    @classmethod
    def from_settings(cls, crypto: CryptoSettings) -> EnvelopeLimits:
        """The limits configured in ``Settings.crypto``."""
        return cls(
            max_bytes=crypto.max_envelope_bytes,
            lifetime=timedelta(seconds=crypto.token_lifetime_seconds),
            clock_skew=timedelta(seconds=crypto.clock_skew_seconds),
        )


DEFAULT_LIMITS = EnvelopeLimits()


@dataclass(frozen=True, slots=True)
class Sealed:
    """A sealed disclosure and the facts about it an audit entry records."""

    #: The compact JWE, ASCII.
    token: str
    jti: str
    recipient: str
    #: The recipient's encryption key the token is encrypted to.
    encryption_kid: str
    #: The sender's signing key.
    signing_kid: str
    issued_at: datetime
    expires_at: datetime


def digest_original(original: bytes) -> str:
    """The provenance digest of a source's signed original message: lower-case hex SHA-256."""
    return hashlib.sha256(original).hexdigest()


def seal(
    event: Mapping[str, Any],
    *,
    sender: PartyKeys,
    recipient: str,
    registry: KeyRegistry,
    rule_id: str,
    lawful_basis: LawfulBasis | str,
    purpose: str,
    provenance: Provenance,
    event_type: EventType | str | None = None,
    limits: EnvelopeLimits = DEFAULT_LIMITS,
    now: datetime | None = None,
    jti: str | None = None,
) -> Sealed:
    """Sign the disclosure claims as ``sender`` and encrypt them to ``recipient``.

    Args:
        event: The minimised canonical event as a JSON object (``Event.model_dump(mode=
            "json")`` with fields removed); it is carried unchanged. Values that are not
            JSON types are written as pydantic's JSON mode writes them (datetimes as ISO
            text); non-finite floats, which JSON cannot carry, become ``null``.
        sender: The sending party's private keys; its current signing key signs.
        recipient: The receiving party's id; its current encryption key is used.
        registry: The key registry.
        rule_id: The agreement rule that allows this disclosure.
        lawful_basis: The lawful basis of the disclosure.
        purpose: Why it is shared, in the agreement's words.
        provenance: The source agency, source event id and digest of the signed original.
        event_type: The event's type; taken from ``event["body"]["type"]`` when omitted.
        limits: Token lifetime and size limit.
        now: The issue time (default now); for tests and replays of history.
        jti: The token id (default 128 random bits, base64url); pass one to make sealing
            idempotent, e.g. the outbox row's id.

    Returns:
        The compact JWE and its jti, kids and times.

    Raises:
        PayloadInvalid: The event or a claim is not valid or not JSON-serialisable.
        UnknownKey: The sender has no valid signing key, or the recipient no valid
            encryption key.
        PayloadTooLarge: The sealed token would exceed ``limits.max_bytes``.
    """
    issued = _utc_now(now)
    signing = sender.signing
    if signing is None:
        raise UnknownKey(f"party {sender.party} has no valid signing key")
    # The registry, not the loaded snapshot, decides: a key revoked since load is refused.
    registry.usable_key(signing.kid, use=KeyUse.SIGNING, at=issued, party=sender.party)
    encryption = registry.encryption_key(recipient, issued)
    if event_type is None:
        body = event.get("body")
        event_type = body.get("type") if isinstance(body, dict) else None
        if not isinstance(event_type, str):
            raise PayloadInvalid("event has no body.type; pass event_type")
    iat = int(issued.timestamp())
    exp = iat + int(limits.lifetime.total_seconds())
    # Hex, so the id is a plain token wherever it goes (audit entries, AMQP message ids).
    token_id = jti if jti is not None else _new_token_id()
    claims = {
        "iss": sender.party,
        "aud": recipient,
        "iat": iat,
        "exp": exp,
        "jti": token_id,
        "event": event if isinstance(event, dict) else dict(event),
        "event_type": event_type,
        "rule_id": rule_id,
        "lawful_basis": lawful_basis,
        "purpose": purpose,
        "provenance": provenance.model_dump(mode="json"),
    }
    try:
        # Validate what we are about to sign, so a recipient never meets claims we could
        # have refused here; the JSON is then written from the caller's values, unchanged.
        DisclosureClaims.model_validate(claims)
        # pydantic-core's serialiser: compact JSON, a quarter of json.dumps' cost here.
        payload = pydantic_core.to_json(claims, inf_nan_mode="null")
    except ValidationError as exc:
        raise PayloadInvalid(f"disclosure claims invalid: {_locations(exc)}") from exc
    except pydantic_core.PydanticSerializationError as exc:
        raise PayloadInvalid("event is not JSON-serialisable") from exc
    try:
        signed = _sign(payload, signing.kid, signing.key)
        token = _encrypt(signed, encryption.kid, encryption.public)
    except JoseError as exc:  # pragma: no cover - keys and headers are ours and checked
        raise ConfigurationError(f"cannot seal with kids {signing.kid}/{encryption.kid}") from exc
    if len(token) > limits.max_bytes:
        raise PayloadTooLarge(
            f"sealed token jti={token_id} is {len(token)} bytes; the limit is {limits.max_bytes}"
        )
    return Sealed(
        token=token,
        jti=token_id,
        recipient=recipient,
        encryption_kid=encryption.kid,
        signing_kid=signing.kid,
        issued_at=datetime.fromtimestamp(iat, UTC),
        expires_at=datetime.fromtimestamp(exp, UTC),
    )


# Named as the issue names the envelope's verbs; callers write envelope.open(...).
def open(
    token: str | bytes,
    *,
    recipient: PartyKeys,
    registry: KeyRegistry,
    replay: ReplayStore,
    limits: EnvelopeLimits = DEFAULT_LIMITS,
    now: datetime | None = None,
    issuers: Collection[str] | None = None,
) -> DisclosureClaims:
    """Decrypt, verify and check a disclosure addressed to ``recipient``.

    Args:
        token: The compact JWE as received.
        recipient: The receiving party's private keys.
        registry: The key registry: every kid is resolved here and nowhere else.
        replay: Remembers jtis; a token is accepted once.
        limits: Size limit, longest accepted lifetime and clock skew.
        now: The current time (default now).
        issuers: The parties whose disclosures the recipient accepts (e.g. only its own
            broker); any registered signer when None.

    Returns:
        The verified claims.

    Raises:
        PayloadTooLarge: Over ``limits.max_bytes``, refused before parsing.
        AlgorithmRefused: An algorithm outside the allow-list or a refused header.
        UnknownKey: A kid not registered, for another party or use, or not valid.
        DecryptionFailed: Malformed, tampered or not decryptable with our key.
        SignatureInvalid: The sender's signature does not verify.
        ClaimsInvalid: A claim is missing or wrong (issuer, audience, times, content).
        ReplayDetected: The jti was accepted before.
    """
    if len(token) > limits.max_bytes:
        raise PayloadTooLarge(f"token is {len(token)} bytes; the limit is {limits.max_bytes}")
    data = _ascii(token)
    _check_compact_form(data)
    moment = _utc_now(now)
    chosen: list[str] = []

    def decryption_key(obj: GuestProtocol) -> OKPKey:
        # joserfc calls this with the protected header decoded and nothing else done yet,
        # so every header check and key look-up happens before any decryption.
        kid = _checked_jwe_header(obj.headers())
        chosen.append(kid)
        registry.usable_key(kid, use=KeyUse.ENCRYPTION, at=moment, party=recipient.party)
        private = recipient.decryption.get(kid)
        if private is None:
            raise UnknownKey(f"no private key of party {recipient.party} for kid={kid}")
        return private.key

    try:
        plaintext = jwe.decrypt_compact(data, decryption_key, registry=_JWE_REGISTRY).plaintext
    except UnsupportedAlgorithmError as exc:  # pragma: no cover - the header is pre-checked
        raise AlgorithmRefused(f"JWE for kid={_kid_of(chosen)}: {exc.description}") from exc
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        raise DecryptionFailed(f"JWE for kid={_kid_of(chosen)} does not decrypt") from exc
    if plaintext is None:  # pragma: no cover - joserfc always sets it on success
        raise DecryptionFailed(f"JWE for kid={_kid_of(chosen)} has no content")

    signed = _SignedParts.split(plaintext)
    signer_kid = signed.kid
    signer = registry.usable_key(signer_kid, use=KeyUse.SIGNING, at=moment)
    if issuers is not None and signer.party not in issuers:
        # A registered key of the wrong party: a partner cannot disclose to the MASH itself,
        # past the broker's agreement and audit.
        raise ClaimsInvalid(f"kid={signer_kid}: party {signer.party} is not an accepted issuer")
    signed.verify(signer.public)

    try:
        claims = DisclosureClaims.model_validate_json(signed.payload())
    except ValidationError as exc:
        raise ClaimsInvalid(f"claims of kid={signer_kid}: {_locations(exc)}") from exc
    _check_claims(claims, signer.party, recipient.party, moment, limits)
    if not signer.nbf <= claims.iat < signer.exp:
        # The key must also have been valid when the token says it was signed.
        signer.require_valid_at(datetime.fromtimestamp(claims.iat, UTC))
    # Last: a token refused for any other reason must not use up its jti.
    replay.check_and_remember(
        claims.jti, datetime.fromtimestamp(claims.exp, UTC) + limits.clock_skew
    )
    return claims


def _new_token_id() -> str:
    """A new token id: the time in milliseconds (48 bits), then 80 random bits; 32 characters.

    The time comes first, its hex digits written as the letters ``a``-``p``, so an id made
    in a later millisecond sorts later. Every table keyed by token id (the outbox, the
    audit entries, the MASH's alerts, inbox and replay store) then grows at its index's
    end; a random id lands anywhere in the index, so each insert dirties a page of its
    own, and more of them the larger the table (docs/performance.md, 2026-12-08). Eighty
    random bits keep ids unguessable and distinct within a millisecond.

    Never ten digits in a row: the audit log refuses any run of ten digits that is a valid
    NHS number, wherever it appears, and about one random hex id in 500 holds one. The
    time has no digits; the random part is drawn again when it holds such a run.
    """
    stamp = f"{time.time_ns() // 1_000_000:012x}".translate(_AS_LETTERS)
    while True:
        token_id = stamp + secrets.token_hex(10)
        if not _TEN_DIGITS_IN_A_ROW.search(token_id):
            return token_id


@functools.lru_cache(maxsize=256)
def _jws_header_segment(kid: str) -> bytes:
    """The encoded protected header for signing key ``kid``: the same for every token."""
    header = {"alg": SIGNING_ALG, "typ": "JWT", "kid": kid}
    return urlsafe_b64encode(json.dumps(header, separators=(",", ":")).encode())


def _sign(payload: bytes, kid: str, key: OKPKey) -> bytes:
    """The compact JWS of ``payload`` (RFC 7515 section 7.1) signed by ``key``.

    Equivalent to ``jws.serialize_compact`` with our fixed header, whose encoding is cached
    instead of being rebuilt and re-checked for every token: this is the seal hot path.
    """
    _SIGNER.check_key(key)
    signing_input = _jws_header_segment(kid) + b"." + urlsafe_b64encode(payload)
    return signing_input + b"." + urlsafe_b64encode(_SIGNER.sign(signing_input, key))


def _encrypt(signed: bytes, kid: str, recipient: OKPKey) -> str:
    """The compact JWE (RFC 7516 section 7.1) of ``signed`` for ``recipient``'s X25519 key.

    ECDH-ES+A256KW with A256GCM (RFC 7518 sections 4.6 and 5.3), each step done by
    ``cryptography``: a fresh ephemeral X25519 key agreed with the recipient's, Concat KDF
    (SHA-256) to the key-encryption key, AES key wrap (RFC 3394) of a random content key,
    AES-GCM over the content with the encoded protected header as additional data. The
    same token ``jwe.encrypt_compact`` makes, at about half its cost (its key objects,
    their export to JWK dictionaries and its header checks, for a header that is ours and
    fixed but the ephemeral key: 89 against 134-169 µs a token here). Opening still goes
    through joserfc, and tests open these tokens with joserfc and with jwcrypto.
    """
    public = recipient.public_key
    if not isinstance(public, X25519PublicKey):
        raise ConfigurationError(f"encryption key kid={kid} is not an X25519 key")
    ephemeral = X25519PrivateKey.generate()
    shared = ephemeral.exchange(public)
    header = {
        "alg": ENCRYPTION_ALG,
        "enc": CONTENT_ENC,
        "cty": "JWT",
        "kid": kid,
        "epk": {
            "crv": "X25519",
            "kty": "OKP",
            "x": urlsafe_b64encode(ephemeral.public_key().public_bytes_raw()).decode("ascii"),
        },
    }
    protected = urlsafe_b64encode(json.dumps(header, separators=(",", ":")).encode("ascii"))
    kek = ConcatKDFHash(hashes.SHA256(), _KEK_BYTES, _KDF_OTHER_INFO).derive(shared)
    cek = secrets.token_bytes(_CEK_BYTES)
    iv = secrets.token_bytes(_IV_BYTES)
    sealed = AESGCM(cek).encrypt(iv, signed, protected)
    return b".".join(
        (
            protected,
            urlsafe_b64encode(aes_key_wrap(kek, cek)),
            urlsafe_b64encode(iv),
            urlsafe_b64encode(sealed[:-_TAG_BYTES]),
            urlsafe_b64encode(sealed[-_TAG_BYTES:]),
        )
    ).decode("ascii")


def _utc_now(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return now


def _ascii(token: str | bytes) -> bytes:
    if isinstance(token, str):
        try:
            return token.encode("ascii")
        except UnicodeEncodeError:
            _malformed("contains non-ASCII characters")
    return token


def _malformed(reason: str) -> NoReturn:
    raise DecryptionFailed(f"not a compact JWE: {reason}")


def _check_compact_form(data: bytes) -> None:
    """Five non-empty segments of canonical base64url, or refuse."""
    if data.translate(None, _COMPACT_ALPHABET):
        _malformed("characters outside base64url")
    if data.count(b".") != 4:
        _malformed(f"{data.count(b'.') + 1} segments instead of 5")
    start = 0
    for name in ("header", "encrypted key", "iv", "ciphertext", "tag"):
        end = data.find(b".", start)
        if end < 0:
            end = len(data)
        tail = (end - start) % 4
        if end == start:
            _malformed(f"{name} is empty")
        if tail == 1 or (tail and data[end - 1] not in _CANONICAL_LAST[tail]):
            _malformed(f"{name} is not canonical base64url")
        start = end + 1


def _checked_jwe_header(header: Mapping[str, Any]) -> str:
    """Check the JWE protected header against the allow-lists; return its kid."""
    _check_members(header, _JWE_HEADER_MEMBERS, "JWE")
    if header.get("alg") != ENCRYPTION_ALG:
        raise AlgorithmRefused(f"JWE alg {_shown(header.get('alg'))} is not allowed")
    if header.get("enc") != CONTENT_ENC:
        raise AlgorithmRefused(f"JWE enc {_shown(header.get('enc'))} is not allowed")
    if header.get("cty") != "JWT":
        raise ClaimsInvalid("JWE cty must be 'JWT': the content is a signed JWT")
    kid = header.get("kid")
    if not isinstance(kid, str):
        raise UnknownKey("JWE header names no kid")
    return kid


def _kid_of(chosen: list[str]) -> str:
    return chosen[0] if chosen else "(none)"


@dataclass(frozen=True, slots=True)
class _SignedParts:
    """The inner compact JWS, split, with its header checked; verified on request."""

    header_segment: bytes
    payload_segment: bytes
    signature_segment: bytes
    kid: str

    @classmethod
    def split(cls, plaintext: bytes) -> _SignedParts:
        """Split ``plaintext`` as a compact JWS and check its header against the allow-lists."""
        parts = plaintext.split(b".")
        if len(parts) != 3:
            raise SignatureInvalid("content is not a compact JWS")
        try:
            header = json.loads(urlsafe_b64decode(parts[0]))
        except (ValueError, binascii.Error) as exc:
            raise SignatureInvalid("content is not a compact JWS: header is not JSON") from exc
        if not isinstance(header, dict):
            raise SignatureInvalid("content is not a compact JWS: header is not an object")
        _check_members(header, _JWS_HEADER_MEMBERS, "JWS")
        if header.get("alg") != SIGNING_ALG:
            raise AlgorithmRefused(f"JWS alg {_shown(header.get('alg'))} is not allowed")
        if header.get("typ", "JWT") != "JWT":
            raise ClaimsInvalid("JWS typ must be 'JWT'")
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise UnknownKey("JWS header names no kid")
        return cls(parts[0], parts[1], parts[2], kid)

    def verify(self, public: OKPKey) -> None:
        """Verify the signature with joserfc's Ed25519 (RFC 7515 section 5.2), or refuse."""
        try:
            signature = urlsafe_b64decode(self.signature_segment)
            _SIGNER.check_key(public)
            valid = _SIGNER.verify(
                self.header_segment + b"." + self.payload_segment, signature, public
            )
        except (JoseError, ValueError, binascii.Error) as exc:
            raise SignatureInvalid(f"JWS of kid={self.kid} cannot be verified") from exc
        if not valid:
            raise SignatureInvalid(f"signature of kid={self.kid} does not verify")

    def payload(self) -> bytes:
        """The signed content (call only after :meth:`verify`)."""
        segment = self.payload_segment
        try:
            # The segment is exactly what the signature covers, so a plain decoder is as
            # safe as a strict one here, and three times faster on a few kilobytes.
            return binascii.a2b_base64(
                segment.translate(_URLSAFE_TO_STANDARD) + b"=" * (-len(segment) % 4)
            )
        except (ValueError, binascii.Error) as exc:
            raise SignatureInvalid(f"JWS of kid={self.kid}: payload is not base64url") from exc


def _check_members(header: Mapping[str, Any], allowed: frozenset[str], layer: str) -> None:
    extra = header.keys() - allowed
    if not extra:
        return
    for name in sorted(extra):
        reason = _REFUSED_HEADER_REASONS.get(name)
        if reason is not None:
            raise AlgorithmRefused(f"{layer} header '{name}' refused: {reason}")
    raise AlgorithmRefused(f"{layer} header members not accepted: {_shown(sorted(extra))}")


def _check_claims(
    claims: DisclosureClaims,
    signer_party: str,
    recipient: str,
    moment: datetime,
    limits: EnvelopeLimits,
) -> None:
    jti = claims.jti
    if claims.iss != signer_party:
        raise ClaimsInvalid(
            f"token jti={jti}: iss is {claims.iss} but the signing key belongs to {signer_party}"
        )
    if claims.aud != recipient:
        raise ClaimsInvalid(f"token jti={jti}: aud is {claims.aud}, not {recipient}")
    now = moment.timestamp()
    skew = limits.clock_skew.total_seconds()
    if claims.iat > now + skew:
        raise ClaimsInvalid(f"token jti={jti}: iat is in the future")
    if claims.exp <= claims.iat:
        raise ClaimsInvalid(f"token jti={jti}: exp is not after iat")
    if claims.exp - claims.iat > limits.lifetime.total_seconds():
        raise ClaimsInvalid(f"token jti={jti}: lifetime exceeds {limits.lifetime}")
    if now >= claims.exp + skew:
        raise ClaimsInvalid(f"token jti={jti}: expired at {_iso(claims.exp)}")
    body = claims.event.get("body")
    if isinstance(body, dict) and "type" in body and body["type"] != claims.event_type.value:
        raise ClaimsInvalid(f"token jti={jti}: event_type does not match the event body")


def _locations(exc: ValidationError) -> str:
    # Field locations and error kinds only: input values may be personal data.
    text = "; ".join(
        f"{'.'.join(str(part) for part in error['loc']) or '(root)'}: {error['type']}"
        for error in exc.errors(include_url=False, include_input=False, include_context=False)
    )
    return text if len(text) <= 300 else text[:297] + "..."


def _shown(value: object) -> str:
    """An attacker-chosen header value, quoted and cut short for a message."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat()
