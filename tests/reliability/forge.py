"""An attacker's JOSE toolkit: build nested JWS-in-JWE tokens with any header, key or claim.

Written from RFC 7515/7516/7518 with nothing but ``cryptography``, independently of the
broker's envelope, so forged tokens differ from genuine ones only where a case says. A
token built here with the genuine keys and claims is accepted (``test_the_forge_is_faithful``),
so every refusal elsewhere is caused by the one alteration under test.
"""

from __future__ import annotations

import base64
import json
import os
import struct
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.concatkdf import ConcatKDFHash
from cryptography.hazmat.primitives.keywrap import aes_key_wrap
from joserfc.jwk import OKPKey

#: X25519 public values of small order (RFC 7748 section 6.1, and the literature on
#: invalid-curve attacks): each gives an all-zero or predictable shared secret.
LOW_ORDER_POINTS = {
    "zero": bytes(32),
    "one": (1).to_bytes(32, "little"),
    "order-8-a": bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
    "order-8-b": bytes.fromhex("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157"),
    "p-minus-one": ((1 << 255) - 20).to_bytes(32, "little"),
    "p": ((1 << 255) - 19).to_bytes(32, "little"),
}


def b64(data: bytes) -> bytes:
    """Unpadded base64url."""
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def unb64(data: bytes | str) -> bytes:
    raw = data.encode() if isinstance(data, str) else data
    return base64.urlsafe_b64decode(raw + b"=" * (-len(raw) % 4))


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def ed25519_private(key: OKPKey) -> Ed25519PrivateKey:
    """The cryptography object of a joserfc Ed25519 private key."""
    return Ed25519PrivateKey.from_private_bytes(unb64(str(key.as_dict(private=True)["d"])))


def x25519_public(key: OKPKey) -> X25519PublicKey:
    """The cryptography object of a joserfc X25519 (public or private) key."""
    return X25519PublicKey.from_public_bytes(unb64(str(key.as_dict(private=False)["x"])))


def sign(
    claims: Mapping[str, Any] | bytes,
    key: Ed25519PrivateKey | bytes | None,
    header: Mapping[str, Any],
    *,
    signature: bytes | None = None,
) -> bytes:
    """A compact JWS: Ed25519 when ``key`` is a private key, HMAC-SHA256 when it is bytes,
    no signature when it is None (or exactly ``signature`` when given)."""
    payload = claims if isinstance(claims, bytes) else _json(dict(claims))
    signing_input = b64(_json(dict(header))) + b"." + b64(payload)
    if signature is None:
        if isinstance(key, Ed25519PrivateKey):
            signature = key.sign(signing_input)
        elif isinstance(key, bytes):
            mac = hmac.HMAC(key, hashes.SHA256())
            mac.update(signing_input)
            signature = mac.finalize()
        else:
            signature = b""
    return signing_input + b"." + b64(signature)


@dataclass(frozen=True)
class EncryptOptions:
    """Deviations from a well-formed ECDH-ES+A256KW / A256GCM JWE."""

    #: Replace the ephemeral public key in the header (the key agreement still uses a
    #: genuine ephemeral key, as an attacker probing the recipient's key would).
    epk: Mapping[str, Any] | None = None
    #: Deflate the plaintext (RFC 7516 ``zip: DEF``).
    deflate: bool = False


def encrypt(
    plaintext: bytes,
    recipient: X25519PublicKey,
    header: Mapping[str, Any],
    options: EncryptOptions = EncryptOptions(),
) -> bytes:
    """A compact JWE of ``plaintext`` to ``recipient`` with the protected ``header``."""
    ephemeral = X25519PrivateKey.generate()
    shared = ephemeral.exchange(recipient)
    epk = options.epk or {
        "kty": "OKP",
        "crv": "X25519",
        "x": b64(ephemeral.public_key().public_bytes_raw()).decode(),
    }
    protected = {**header, "epk": dict(epk)}
    alg = str(protected.get("alg", "ECDH-ES+A256KW"))
    other = (
        struct.pack(">I", len(alg))
        + alg.encode()
        + struct.pack(">I", 0)
        + struct.pack(">I", 0)
        + struct.pack(">I", 256)
    )
    kek = ConcatKDFHash(algorithm=hashes.SHA256(), length=32, otherinfo=other).derive(shared)
    cek = os.urandom(32)
    wrapped = aes_key_wrap(kek, cek)
    if options.deflate:
        compressor = zlib.compressobj(wbits=-15)
        plaintext = compressor.compress(plaintext) + compressor.flush()
    encoded_header = b64(_json(protected))
    iv = os.urandom(12)
    sealed = AESGCM(cek).encrypt(iv, plaintext, encoded_header)
    ciphertext, tag = sealed[:-16], sealed[-16:]
    return b".".join([encoded_header, b64(wrapped), b64(iv), b64(ciphertext), b64(tag)])


JWE_HEADER = {"alg": "ECDH-ES+A256KW", "enc": "A256GCM", "cty": "JWT"}
JWS_HEADER = {"alg": "Ed25519", "typ": "JWT"}
