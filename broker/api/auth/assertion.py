"""Partner authentication: a signed JWT client assertion, verified against the key registry.

The pattern NHS England uses for application-restricted APIs (RFC 7523 client assertions):
the partner signs a short-lived JWT with its registered Ed25519 key and sends it as a
bearer token with every request::

    header  {"alg": "EdDSA" | "Ed25519", "kid": <the party's sig kid>, "typ": "JWT"}
    claims  {"iss": <party id>, "sub": <party id>, "aud": <public base URL + request path>,
             "exp": <at most 5 minutes ahead>, "jti": <unique>, "iat": <optional>}

Everything else is refused, each with its own reason code: another algorithm (``none``,
HMAC, RSA ...), a header member other than ``alg``/``kid``/``typ`` (``jku``, ``x5u``,
``jwk``, ``crit`` ...), a kid that is not a registered, valid signing key of the issuing
party, a bad signature, an issuer that is not a party of the agreement, a wrong audience,
an expired token or one that lives too long, and a token id seen before.
"""

from __future__ import annotations

import binascii
import hashlib
import json
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from broker.api.auth.errors import CredentialRefused
from broker.exceptions import ReplayDetected, UnknownKey
from broker.keys import KeyRegistry, KeyUse
from broker.replay import ReplayStore

__all__ = [
    "ALLOWED_ALGS",
    "MAX_TOKEN_BYTES",
    "CheckedAssertion",
    "ClientAssertionVerifier",
    "PartnerIdentity",
    "b64url_decode",
    "parse_unverified_header",
]

#: The only signature algorithms accepted: Ed25519, under its old and its new name.
ALLOWED_ALGS = frozenset({"EdDSA", "Ed25519"})
#: Header members a client assertion may carry.
_HEADER_MEMBERS = frozenset({"alg", "kid", "typ"})
_TYPES = frozenset({"jwt", "client-authentication+jwt"})
#: A client assertion is a few hundred bytes; anything far bigger is refused unread.
MAX_TOKEN_BYTES = 4096
_B64URL = re.compile(r"^[A-Za-z0-9_-]*$")
_JTI = re.compile(r"^[\x21-\x7e]{1,128}$")
_PADDING = ("", "", "==", "=")
_TO_STANDARD = str.maketrans("-_", "+/")


def b64url_decode(text: str) -> bytes:
    """Decode unpadded base64url, refusing other alphabets and padding.

    Raises:
        ValueError: not unpadded base64url.
    """
    if not _B64URL.match(text) or len(text) % 4 == 1:
        raise ValueError("not base64url")
    try:
        return binascii.a2b_base64((text + _PADDING[len(text) % 4]).translate(_TO_STANDARD))
    except binascii.Error as exc:
        raise ValueError("not base64url") from exc


@dataclass(frozen=True, slots=True)
class PartnerIdentity:
    """A partner system whose client assertion verified."""

    party: str
    kid: str
    jti: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class CheckedAssertion:
    """A client assertion that passed every check but the replay check, not yet remembered.

    ``ClientAssertionVerifier.check`` makes one; the caller must then have its
    ``replay_id`` remembered until ``remember_until`` exactly once, either with
    ``ClientAssertionVerifier.remember`` (a transaction of its own) or inside a
    transaction of its own work (``broker.db.remember_jtis``), and refuse the request
    as a replay if the id was already there.
    """

    identity: PartnerIdentity
    #: The id under which the token is remembered (namespaced and hashed, never the jti).
    replay_id: str
    #: Until when it must be remembered: the token's expiry plus the tolerated clock skew.
    remember_until: datetime

    @property
    def replay_token(self) -> tuple[str, datetime]:
        """(replay id, remember until), as ``broker.db.remember_jtis`` takes it."""
        return (self.replay_id, self.remember_until)

    def replay_refusal(self) -> CredentialRefused:
        """The refusal for a request whose token id was already remembered."""
        party = self.identity.party
        return CredentialRefused(
            "replay",
            f"client assertion id reused by party {party}",
            kid=self.identity.kid,
            claimed_party=party,
        )


@dataclass(frozen=True, slots=True)
class _Parsed:
    header: dict[str, Any]
    claims: dict[str, Any]
    signing_input: bytes
    signature: bytes


class ClientAssertionVerifier:
    """Verifies client assertions; one per process, safe to share between threads."""

    def __init__(
        self,
        registry: KeyRegistry,
        parties: Collection[str],
        replay: ReplayStore,
        *,
        max_lifetime: timedelta = timedelta(minutes=5),
        clock_skew: timedelta = timedelta(seconds=60),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """Verify against ``registry``, for issuers in ``parties``, remembering jtis in ``replay``.

        Args:
            registry: the key registry; the only place a kid is resolved.
            parties: the party ids of the agreement in force.
            replay: where accepted token ids are remembered until they expire.
            max_lifetime: how far ahead ``exp`` may be (five minutes at most).
            clock_skew: tolerated difference between the partner's clock and ours.
            clock: the current UTC time (injected in tests).
        """
        self._registry = registry
        self._parties = frozenset(parties)
        self._replay = replay
        self._max_lifetime = max_lifetime
        self._skew = clock_skew
        self._clock = clock

    def verify(self, token: str, audience: str) -> PartnerIdentity:
        """Check ``token`` completely and remember its id; return who sent it.

        Args:
            token: the compact JWS from the ``Authorization: Bearer`` header.
            audience: the URL the request was made to (public base URL + path).

        Raises:
            CredentialRefused: with a reason code, whatever is wrong.
            TransportError: the replay store is unavailable.
        """
        checked = self.check(token, audience)
        self.remember(checked)
        return checked.identity

    def check(self, token: str, audience: str) -> CheckedAssertion:
        """Check ``token`` completely except whether its id was used before; remember nothing.

        For a caller that remembers the id inside its own transaction (one commit for the
        request). The token is accepted only once its id has been remembered: the caller
        must do that exactly once, with :meth:`remember` or ``broker.db.remember_jtis``.

        Args:
            token: the compact JWS from the ``Authorization: Bearer`` header.
            audience: the URL the request was made to (public base URL + path).

        Raises:
            CredentialRefused: with a reason code, whatever is wrong (never ``replay``).
        """
        now = self._clock()
        parsed = _parse(token)
        kid, party = self._check_header(parsed.header, parsed.claims)
        public = self._key(kid, party, now)
        try:
            public.verify(parsed.signature, parsed.signing_input)
        except InvalidSignature:
            raise CredentialRefused(
                "signature_invalid",
                f"client assertion signature does not verify (kid={kid})",
                kid=kid,
                claimed_party=party,
            ) from None
        expires_at = self._check_claims(parsed.claims, party, kid, audience, now)
        jti = parsed.claims["jti"]
        # Namespaced and hashed: partner ids share the store with disclosure ids, and a
        # partner's jti can be up to 128 characters of its own choosing.
        replay_id = "ca:" + hashlib.sha256(f"{party}\x00{jti}".encode()).hexdigest()
        return CheckedAssertion(
            identity=PartnerIdentity(party=party, kid=kid, jti=jti, expires_at=expires_at),
            replay_id=replay_id,
            remember_until=expires_at + self._skew,
        )

    def remember(self, checked: CheckedAssertion) -> None:
        """Remember a checked assertion's id in the replay store (its own transaction).

        Raises:
            CredentialRefused: ``replay``, the id was remembered before and is still live.
            TransportError: the replay store is unavailable.
        """
        try:
            self._replay.check_and_remember(checked.replay_id, checked.remember_until)
        except ReplayDetected:
            raise checked.replay_refusal() from None

    def _check_header(self, header: dict[str, Any], claims: dict[str, Any]) -> tuple[str, str]:
        iss = claims.get("iss")
        claimed = iss if isinstance(iss, str) and iss in self._parties else None
        raw_kid = header.get("kid")
        kid = raw_kid if isinstance(raw_kid, str) and raw_kid in self._registry else None
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in ALLOWED_ALGS:
            raise CredentialRefused(
                "alg_refused",
                "client assertion algorithm outside the allow-list",
                kid=kid,
                claimed_party=claimed,
            )
        extra = set(header) - _HEADER_MEMBERS
        if extra:
            names = ",".join(sorted(n for n in extra if n.isalnum())[:5]) or "unnamed"
            raise CredentialRefused(
                "header_refused",
                f"client assertion header members refused: {names}",
                kid=kid,
                claimed_party=claimed,
            )
        typ = header.get("typ")
        if typ is not None and (not isinstance(typ, str) or typ.lower() not in _TYPES):
            raise CredentialRefused(
                "header_refused", "client assertion typ is not JWT", kid=kid, claimed_party=claimed
            )
        if kid is None:
            raise CredentialRefused(
                "kid_unknown",
                "client assertion kid is not in the key registry",
                claimed_party=claimed,
            )
        if claimed is None:
            raise CredentialRefused(
                "issuer_unknown",
                "client assertion issuer is not a party of the agreement",
                kid=kid,
            )
        return kid, claimed

    def _key(self, kid: str, party: str, now: datetime) -> Ed25519PublicKey:
        try:
            record = self._registry.usable_key(kid, use=KeyUse.SIGNING, at=now, party=party)
        except UnknownKey as exc:
            raise CredentialRefused(
                "key_unusable",
                f"client assertion key unusable: {exc}",
                kid=kid,
                claimed_party=party,
            ) from None
        public = record.public.public_key
        if not isinstance(public, Ed25519PublicKey):  # pragma: no cover - registry checks curve
            raise CredentialRefused("key_unusable", f"kid={kid} is not an Ed25519 key", kid=kid)
        return public

    def _check_claims(
        self, claims: dict[str, Any], party: str, kid: str, audience: str, now: datetime
    ) -> datetime:
        def refuse(reason: str, what: str) -> CredentialRefused:
            return CredentialRefused(
                reason, f"client assertion from {party}: {what}", kid=kid, claimed_party=party
            )

        if claims.get("sub") != party:
            raise refuse("claims_invalid", "sub must equal iss")
        aud = claims.get("aud")
        audiences = aud if isinstance(aud, list) else [aud]
        if audience not in audiences:
            raise refuse("audience", "aud is not this URL")
        jti = claims.get("jti")
        if not isinstance(jti, str) or not _JTI.match(jti):
            raise refuse("claims_invalid", "jti missing or not 1-128 printable characters")
        exp = _instant(claims.get("exp"))
        if exp is None:
            raise refuse("claims_invalid", "exp missing or not a number")
        if exp <= now - self._skew:
            raise refuse("expired", "token expired")
        if exp > now + self._max_lifetime + self._skew:
            raise refuse("lifetime", "exp further ahead than allowed")
        for name in ("iat", "nbf"):
            if name in claims:
                value = _instant(claims[name])
                if value is None:
                    raise refuse("claims_invalid", f"{name} is not a number")
                if value > now + self._skew:
                    raise refuse("claims_invalid", f"{name} is in the future")
        return exp


def _instant(value: object) -> datetime | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _parse(token: str) -> _Parsed:
    """Split and decode a compact JWS without trusting any of it yet."""

    def malformed() -> CredentialRefused:
        return CredentialRefused("malformed", "bearer token is not a compact JWS")

    if len(token) > MAX_TOKEN_BYTES or not token.isascii():
        raise malformed()
    parts = token.split(".")
    if len(parts) != 3:
        raise malformed()
    try:
        header = json.loads(b64url_decode(parts[0]))
        claims = json.loads(b64url_decode(parts[1]))
        signature = b64url_decode(parts[2])
    except ValueError:
        raise malformed() from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise malformed()
    return _Parsed(
        header=header,
        claims=claims,
        signing_input=f"{parts[0]}.{parts[1]}".encode("ascii"),
        signature=signature,
    )


def parse_unverified_header(token: str) -> dict[str, Any] | None:
    """The JOSE header of a compact token, unverified, or None; only to route a token."""
    first = token.split(".", 1)[0]
    if len(token) > MAX_TOKEN_BYTES or not first:
        return None
    try:
        header = json.loads(b64url_decode(first))
    except ValueError:
        return None
    return header if isinstance(header, dict) else None
