"""The key of the blinded child index, kept beside the at-rest data key (mode 0600)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from broker.exceptions import ConfigurationError

__all__ = ["LINK_KEY_BYTES", "LINK_KEY_FILE", "load_link_key"]

#: Relative to the key directory: ``private/<service-party>/link-key.bin``.
LINK_KEY_FILE = "link-key.bin"
#: HMAC-SHA256 key length.
LINK_KEY_BYTES = 32


def load_link_key(keys_dir: Path, service_party: str, *, create: bool) -> bytes:
    """The HMAC key that blinds children's identifiers in the intake store.

    It is a separate key from the at-rest data key: rotating the data key re-encrypts
    rows, while changing this key would unlink every child, so the two change apart.

    Raises:
        ConfigurationError: the key is missing (and not to be created), of the wrong size,
            or readable by group or others.
    """
    path = keys_dir / "private" / service_party / LINK_KEY_FILE
    if not path.exists():
        if not create:
            raise ConfigurationError(f"intake link key missing: {path}")
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another worker made it first; read theirs
        else:
            with os.fdopen(fd, "wb") as handle:
                handle.write(secrets.token_bytes(LINK_KEY_BYTES))
    if path.stat().st_mode & 0o077:
        raise ConfigurationError(f"intake link key {path} is readable by group or others")
    key = path.read_bytes()
    if len(key) != LINK_KEY_BYTES:
        raise ConfigurationError(f"intake link key {path} is not {LINK_KEY_BYTES} bytes")
    return key
