"""Fixtures for the storage tests: an audit signing key (database fixtures are suite-wide)."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

SERVICE_KID = "wam-broker-audit-1"


@pytest.fixture
def service_key() -> Ed25519PrivateKey:
    """A fresh Ed25519 key standing in for the service's checkpoint key."""
    return Ed25519PrivateKey.generate()


@pytest.fixture
def trusted(service_key: Ed25519PrivateKey) -> dict[str, object]:
    """The verifier's trusted keys: the service key under its kid."""
    return {SERVICE_KID: service_key.public_key()}
