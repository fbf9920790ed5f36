"""A link's AMQP URI: read from a secret file, the environment or settings; never shown whole.

The URI carries the credentials the neighbouring borough issued to this broker, so it never
comes from the command line (shell history, ``ps``) and is never logged: :func:`describe_uri`
gives the host, port and virtual host only.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from urllib.parse import unquote, urlsplit

from pydantic import SecretStr

from broker.exceptions import ConfigurationError
from broker.settings import DEMO_SECRETS, Settings

__all__ = ["describe_uri", "link_uri", "read_uri_file", "validate_uri"]

#: The largest secret file read: a URI, not a document.
_MAX_URI_BYTES = 4096
_SCHEMES = frozenset({"amqp", "amqps"})


def link_uri(
    settings: Settings,
    borough: str,
    *,
    uri_file: Path | None = None,
    uri_env: str | None = None,
) -> SecretStr:
    """The AMQP URI of the neighbour serving ``borough``, checked.

    Looked up in order: ``uri_file``; the environment variable ``uri_env``;
    ``crossborder.links[borough]``; the file ``<crossborder.secrets_dir>/<borough>.uri``.

    Raises:
        ConfigurationError: no URI is configured, a file is unreadable or readable by
            others, or the URI is not usable (see :func:`validate_uri`).
    """
    if uri_file is not None:
        uri = read_uri_file(uri_file)
    elif uri_env is not None:
        value = os.environ.get(uri_env)
        if not value or not value.strip():
            raise ConfigurationError(f"environment variable {uri_env} is not set or empty")
        uri = SecretStr(value.strip())
    elif borough in settings.crossborder.links:
        uri = settings.crossborder.links[borough]
    elif settings.crossborder.secrets_dir is not None:
        uri = read_uri_file(settings.crossborder.secrets_dir / f"{borough}.uri")
    else:
        raise ConfigurationError(
            f"no AMQP URI for the link to {borough}: give --uri-file or --uri-env, or set "
            f"crossborder.links or crossborder.secrets_dir"
        )
    validate_uri(uri, production=settings.environment == "production")
    return uri


def read_uri_file(path: Path) -> SecretStr:
    """The URI in a secret file: one line, readable by its owner only.

    Raises:
        ConfigurationError: missing, too large, not text, or accessible to group or others.
    """
    try:
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigurationError(
                f"{path}: the link's credentials are accessible to others "
                f"(mode {stat.S_IMODE(mode):04o}); it must be 0600 or 0400"
            )
        data = path.read_bytes()[: _MAX_URI_BYTES + 1]
    except OSError as exc:
        raise ConfigurationError(f"{path}: cannot read ({exc.strerror})") from exc
    if len(data) > _MAX_URI_BYTES:
        raise ConfigurationError(f"{path}: over {_MAX_URI_BYTES} bytes; it holds one URI")
    try:
        text = data.decode("utf-8").strip()
    except UnicodeDecodeError as exc:
        raise ConfigurationError(f"{path}: not UTF-8 text") from exc
    if not text or "\n" in text:
        raise ConfigurationError(f"{path}: must hold exactly one line, the AMQP URI")
    return SecretStr(text)


def validate_uri(uri: SecretStr, *, production: bool) -> None:
    """Check a link URI's shape without ever echoing it.

    Raises:
        ConfigurationError: not ``amqp://`` or ``amqps://``, no host, no credentials, or
            (in production) plain ``amqp://`` or a demo password.
    """
    parts = urlsplit(uri.get_secret_value())
    where = describe_uri(uri)
    if parts.scheme not in _SCHEMES:
        raise ConfigurationError(f"link URI {where}: must start amqp:// or amqps://")
    if not parts.hostname:
        raise ConfigurationError(f"link URI {where}: names no host")
    if not parts.username or parts.password is None:
        raise ConfigurationError(
            f"link URI {where}: needs the user name and password the neighbour issued"
        )
    if production:
        if parts.scheme != "amqps":
            raise ConfigurationError(f"link URI {where}: use amqps:// (TLS) in production")
        if unquote(parts.password) in DEMO_SECRETS:
            raise ConfigurationError(f"link URI {where}: a demo password is not allowed")


def describe_uri(uri: SecretStr | str) -> str:
    """``scheme://host:port vhost=NAME`` of a URI, without user name or password: safe to show."""
    text = uri.get_secret_value() if isinstance(uri, SecretStr) else uri
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        return "(malformed URI)"
    scheme = parts.scheme or "?"
    default = 5671 if scheme == "amqps" else 5672
    vhost = unquote(parts.path[1:]) if len(parts.path) > 1 else "/"
    return f"{scheme}://{parts.hostname or '?'}:{port or default} vhost={vhost}"
