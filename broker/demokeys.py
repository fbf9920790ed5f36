"""Demo key material: every party of the agreement plus the broker itself, made once."""

from __future__ import annotations

from pathlib import Path

from broker.keys import JWKS_FILE, KeyRegistry, generate_party_keys
from broker.policy import Agreement

__all__ = ["ensure_demo_keys"]


def ensure_demo_keys(directory: Path, agreement: Agreement, service_party: str) -> KeyRegistry:
    """Generate keys for each party that has none yet; return the loaded registry.

    Only for development and the demo: in production each party makes its own keys and
    registers only its public keys.
    """
    existing = set()
    if (directory / JWKS_FILE).exists():
        existing = set(KeyRegistry.load(directory).parties)
    for party in [service_party, *(p.id for p in agreement.parties)]:
        if party not in existing:
            generate_party_keys(directory, party)
            existing.add(party)
    return KeyRegistry.load(directory)
