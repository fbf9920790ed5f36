"""Staff session and bearer tokens: short-lived JWTs signed with the service's Ed25519 key.

The service key is already loaded by every API process and rotated with the rest of the
registry, so tokens issued by one process verify in another without a shared secret.
A staff token cannot be mistaken for anything else the key signs: its ``typ`` is
``mash-staff+jwt`` and its ``aud`` is ``mash-broker/staff`` (checkpoints and disclosures
have their own types, and disclosures are encrypted besides).
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from broker.api.auth.accounts import AccountStore
from broker.api.auth.assertion import MAX_TOKEN_BYTES, b64url_decode
from broker.api.auth.errors import CredentialRefused
from broker.api.auth.identity import StaffIdentity
from broker.exceptions import ConfigurationError, UnknownKey
from broker.keys import SIGNING_ALG, KeyRegistry, KeyUse, PrivateKey

__all__ = ["STAFF_AUDIENCE", "STAFF_TOKEN_TYPE", "IssuedToken", "LocalStaffVerifier", "StaffTokens"]

STAFF_TOKEN_TYPE = "mash-staff+jwt"  # noqa: S105 - a JOSE typ, not a secret
STAFF_AUDIENCE = "mash-broker/staff"
_HEADER_MEMBERS = frozenset({"alg", "kid", "typ"})


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A staff token and when it stops working."""

    token: str
    expires_at: datetime
    lifetime_seconds: int


class StaffTokens:
    """Issues and checks staff tokens with the service party's signing keys."""

    def __init__(
        self,
        signing: PrivateKey | None,
        registry: KeyRegistry,
        service_party: str,
        *,
        lifetime: timedelta = timedelta(minutes=15),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """Sign with ``signing`` (the service's current key); verify with any of its keys."""
        self._signing = signing
        self._registry = registry
        self._party = service_party
        self._lifetime = lifetime
        self._clock = clock

    def issue(self, username: str, token_version: int) -> IssuedToken:
        """A new token for ``username`` at ``token_version``.

        Raises:
            ConfigurationError: the service has no signing key.
        """
        if self._signing is None:
            raise ConfigurationError("the service party has no signing key for staff tokens")
        now = self._clock()
        expires_at = now + self._lifetime
        header = {"alg": SIGNING_ALG, "kid": self._signing.kid, "typ": STAFF_TOKEN_TYPE}
        claims = {
            "iss": self._party,
            "aud": STAFF_AUDIENCE,
            "sub": username,
            "ver": token_version,
            "iat": int(now.timestamp()),
            "exp": int(expires_at.timestamp()),
            "jti": secrets.token_hex(16),
        }
        signing_input = f"{_b64(_json(header))}.{_b64(_json(claims))}"
        key = self._signing.key.private_key
        if not isinstance(key, Ed25519PrivateKey):  # pragma: no cover - registry checks curve
            raise ConfigurationError("the service signing key is not Ed25519")
        signature = key.sign(signing_input.encode("ascii"))
        return IssuedToken(
            token=f"{signing_input}.{_b64(signature)}",
            expires_at=expires_at,
            lifetime_seconds=int(self._lifetime.total_seconds()),
        )

    def check(self, token: str) -> tuple[str, int]:
        """Verify a token's form, signature and claims; return (user name, token version).

        Raises:
            CredentialRefused: anything wrong, with a reason code.
        """
        header, claims, signing_input, signature = _split(token)
        alg, kid = header.get("alg"), header.get("kid")
        if alg != SIGNING_ALG:
            raise CredentialRefused("alg_refused", "staff token algorithm refused")
        if set(header) - _HEADER_MEMBERS or header.get("typ") != STAFF_TOKEN_TYPE:
            raise CredentialRefused("header_refused", "staff token header refused")
        now = self._clock()
        try:
            record = self._registry.usable_key(
                str(kid), use=KeyUse.SIGNING, at=now, party=self._party
            )
        except UnknownKey:
            raise CredentialRefused("kid_unknown", "staff token kid is not a service key") from None
        public = record.public.public_key
        if not isinstance(public, Ed25519PublicKey):  # pragma: no cover - registry checks curve
            raise CredentialRefused("kid_unknown", "staff token key is not Ed25519")
        try:
            public.verify(signature, signing_input)
        except InvalidSignature:
            raise CredentialRefused(
                "signature_invalid", "staff token signature does not verify", kid=record.kid
            ) from None
        exp, sub, ver = claims.get("exp"), claims.get("sub"), claims.get("ver")
        if claims.get("iss") != self._party or claims.get("aud") != STAFF_AUDIENCE:
            raise CredentialRefused("audience", "staff token issuer or audience wrong")
        if not isinstance(exp, int) or exp <= now.timestamp():
            raise CredentialRefused("expired", "staff token expired")
        if not isinstance(sub, str) or not isinstance(ver, int):
            raise CredentialRefused("claims_invalid", "staff token claims incomplete")
        return sub, ver


class LocalStaffVerifier:
    """``StaffVerifier`` over the local account store and the service's own tokens."""

    provider = "local"

    def __init__(self, tokens: StaffTokens, accounts: AccountStore) -> None:
        """Check tokens with ``tokens`` and the account's state in ``accounts``."""
        self._tokens = tokens
        self._accounts = accounts

    def verify(self, token: str) -> StaffIdentity:
        """See ``StaffVerifier.verify``; the account must still be active and unchanged."""
        username, version = self._tokens.check(token)
        return self._accounts.current(username, version)


def _json(value: dict[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()


def _split(token: str) -> tuple[dict[str, Any], dict[str, Any], bytes, bytes]:
    malformed = CredentialRefused("malformed", "staff token is not a compact JWS")
    if len(token) > MAX_TOKEN_BYTES or not token.isascii():
        raise malformed
    parts = token.split(".")
    if len(parts) != 3:
        raise malformed
    try:
        header = json.loads(b64url_decode(parts[0]))
        claims = json.loads(b64url_decode(parts[1]))
        signature = b64url_decode(parts[2])
    except ValueError:
        raise malformed from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise malformed
    return header, claims, f"{parts[0]}.{parts[1]}".encode("ascii"), signature
