"""Importing a neighbouring broker's public keys into this broker's key registry.

Each broker makes its own keys and never sends a private key anywhere. Two linked brokers
swap their service party's public JWKS (``mash-broker keys export --party <own party>``);
each imports the other's with :func:`import_neighbour_keys`, which accepts only public keys,
only of the one party named, never replaces a key this broker holds privately, and never
un-revokes a key. Importing again after the neighbour rotates or revokes keys brings the
registry up to date.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from broker.exceptions import ConfigurationError

# The registry's own lock, reader and atomic writer, so that an import and a ``keys``
# command never interleave their writes (candidates for a public ``keys`` function).
from broker.keys import KeyRecord, import_public_keys

__all__ = ["MAX_JWKS_BYTES", "import_neighbour_keys", "read_jwks_file"]

#: The largest JWKS file read for an import.
MAX_JWKS_BYTES = 256 * 1024


def read_jwks_file(path: Path) -> dict[str, Any]:
    """A JWKS document from a file a neighbour sent.

    Raises:
        ConfigurationError: unreadable, too large, or not a JSON object.
    """
    try:
        data = path.read_bytes()[: MAX_JWKS_BYTES + 1]
    except OSError as exc:
        raise ConfigurationError(f"{path}: cannot read ({exc.strerror})") from exc
    if len(data) > MAX_JWKS_BYTES:
        raise ConfigurationError(f"{path}: over {MAX_JWKS_BYTES} bytes; not a key set")
    try:
        document = json.loads(data)
    except ValueError as exc:
        raise ConfigurationError(f"{path}: not JSON") from exc
    if not isinstance(document, dict):
        raise ConfigurationError(f"{path}: not a JWKS (an object with a 'keys' array)")
    return document


def import_neighbour_keys(
    directory: Path, jwks: Mapping[str, Any], *, party: str
) -> tuple[KeyRecord, ...]:
    """Add ``party``'s public keys from ``jwks`` to the registry in ``directory``.

    A kid already registered is updated (a new expiry, a revocation) when its key material
    is the same; a revoked key stays revoked.

    Args:
        directory: this broker's key directory.
        jwks: the neighbour's public JWKS (``{"keys": [...]}``).
        party: the neighbouring broker's party id; every key must be this party's.

    Returns:
        The imported records, as now registered.

    Raises:
        ConfigurationError: a key is private, malformed or another party's; a kid is
            registered with different key material; or this broker holds private keys of
            ``party`` (it is our own party, not a neighbour's).
    """
    keys = jwks.get("keys")
    if not isinstance(keys, list) or not keys or not all(isinstance(k, dict) for k in keys):
        raise ConfigurationError("not a JWKS: expected an object with a non-empty 'keys' array")
    incoming = [KeyRecord.from_jwk(k) for k in keys]
    strangers = sorted({r.party for r in incoming if r.party != party})
    if strangers:
        raise ConfigurationError(
            f"the key set holds keys of {', '.join(strangers)}; only {party}'s are imported"
        )
    if (directory / "private" / party).exists():
        raise ConfigurationError(
            f"this key directory holds private keys of {party}: it is ours, not a neighbour's"
        )
    return import_public_keys(directory, incoming)
