"""The data key that encrypts raw partner messages at rest, kept beside the party keys."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from broker.exceptions import ConfigurationError
from broker.models import AT_REST_KEY_BYTES

__all__ = ["DATA_KEY_FILE", "load_data_key"]

#: Relative to the key directory: ``private/<service-party>/data-key.bin`` (mode 0600).
DATA_KEY_FILE = "data-key.bin"


def load_data_key(keys_dir: Path, service_party: str, *, create: bool) -> tuple[str, bytes]:
    """The service's at-rest data key and its id; made on first use when ``create``.

    Raises:
        ConfigurationError: the key is missing (and not to be created), of the wrong
            size, or readable by group or others.
    """
    path = keys_dir / "private" / service_party / DATA_KEY_FILE
    key_id = f"{service_party}.data.1"
    if not path.exists():
        if not create:
            raise ConfigurationError(f"at-rest data key missing: {path}")
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(secrets.token_bytes(AT_REST_KEY_BYTES))
    if path.stat().st_mode & 0o077:
        raise ConfigurationError(f"at-rest data key {path} is readable by group or others")
    key = path.read_bytes()
    if len(key) != AT_REST_KEY_BYTES:
        raise ConfigurationError(f"at-rest data key {path} is not {AT_REST_KEY_BYTES} bytes")
    return key_id, key
