"""Hand-made tokens, good and bad, for partner and staff credentials (no project code signs)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from tests.api.conftest import BASE_URL, signing_key


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def compact(header: dict[str, Any], claims: dict[str, Any], key: Ed25519PrivateKey | None) -> str:
    """A compact JWS signed with Ed25519 by ``key``, or unsigned when ``key`` is None."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    signature = key.sign(signing_input.encode()) if key is not None else b""
    return f"{signing_input}.{b64(signature)}"


def hs256_with_public_key(
    header: dict[str, Any], claims: dict[str, Any], key: Ed25519PrivateKey
) -> str:
    """The classic confusion attack: HMAC keyed with the (public) verification key's bytes."""
    header = {**header, "alg": "HS256"}
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    mac = hmac.new(public, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"


class Forger:
    """Makes every kind of credential the attack matrix needs, for partners and staff."""

    def __init__(self, keys: Path, base_url: str = BASE_URL) -> None:
        self.keys = keys
        self.base_url = base_url

    # ------------------------------------------------------------------ partners

    def partner_claims(self, party: str, path: str, **override: Any) -> dict[str, Any]:
        now = int(time.time())
        claims = {
            "iss": party,
            "sub": party,
            "aud": self.base_url + path,
            "iat": now,
            "exp": now + 120,
            "jti": str(uuid.uuid4()),
        }
        claims.update(override)
        return claims

    def partner(
        self, party: str, path: str, *, header: dict[str, Any] | None = None, **claims: Any
    ) -> str:
        kid, key = signing_key(self.keys, party)
        return compact(
            {"alg": "EdDSA", "kid": kid, "typ": "JWT", **(header or {})},
            self.partner_claims(party, path, **claims),
            key,
        )

    # ------------------------------------------------------------------ staff

    def staff_claims(self, username: str, **override: Any) -> dict[str, Any]:
        now = int(time.time())
        claims = {
            "iss": "wam-broker",
            "aud": "mash-broker/staff",
            "sub": username,
            "ver": 1,
            "iat": now,
            "exp": now + 300,
            "jti": uuid.uuid4().hex,
        }
        claims.update(override)
        return claims

    def staff(self, username: str, *, header: dict[str, Any] | None = None, **claims: Any) -> str:
        kid, key = signing_key(self.keys, "wam-broker")
        return compact(
            {"alg": "Ed25519", "kid": kid, "typ": "mash-staff+jwt", **(header or {})},
            self.staff_claims(username, **claims),
            key,
        )

    def attack(self, kind: str, attack: str, path: str, subject: str) -> str:
        """A bad credential of ``kind`` (``partner``/``staff``) for ``path``.

        ``subject`` is the party (partner) or user name (staff) the token pretends to be.
        """
        party = subject if kind == "partner" else "wam-broker"
        kid, key = signing_key(self.keys, party)
        if kind == "partner":
            header = {"alg": "EdDSA", "kid": kid, "typ": "JWT"}
            claims = self.partner_claims(subject, path)
            audience = {"aud": BASE_URL + "/v1/somewhere-else"}
        else:
            header = {"alg": "Ed25519", "kid": kid, "typ": "mash-staff+jwt"}
            claims = self.staff_claims(subject)
            audience = {"aud": "another-service"}
        now = int(time.time())
        match attack:
            case "expired":
                return compact(header, {**claims, "iat": now - 900, "exp": now - 600}, key)
            case "wrong_audience":
                return compact(header, {**claims, **audience}, key)
            case "alg_none":
                return compact({**header, "alg": "none"}, claims, None)
            case "hs256_public_key":
                return hs256_with_public_key(header, claims, key)
            case "unknown_kid":
                return compact({**header, "kid": f"{party}.sig.20200101.deadbeef"}, claims, key)
            case "jku_header":
                return compact({**header, "jku": "https://attacker.example/jwks.json"}, claims, key)
        raise ValueError(attack)
