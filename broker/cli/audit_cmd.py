"""``mash-broker audit``: verify the audit chain, sign a checkpoint, show an event's entries."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Annotated

import typer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key, load_pem_public_key
from joserfc.errors import JoseError
from joserfc.jwk import OKPKey
from sqlalchemy.engine import Engine

from broker.audit import checkpoint, entries_for_event, verify
from broker.db import gated_session, make_engine, session_scope
from broker.exceptions import BrokerError, ConfigurationError
from broker.settings import Settings

__all__ = ["app", "load_private_key", "load_public_key"]

app = typer.Typer(
    help="The tamper-evident audit log: verify, checkpoint, show.", no_args_is_help=True
)

DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help="Database URL; defaults to MASH_DATABASE__URL (settings).",
        show_default=False,
    ),
]


def _engine(database_url: str | None) -> Engine:
    url = database_url or Settings().database.url.get_secret_value()
    return make_engine(url)


def _fail(exc: BrokerError) -> typer.Exit:
    typer.echo(f"error: {exc}", err=True)
    return typer.Exit(2)


def _parse_key(data: bytes, *, private: bool) -> tuple[OKPKey, str | None] | None:
    """Key and JWK kid from PEM or JWK bytes; None when they hold no Ed25519 key."""
    if data.lstrip().startswith(b"{"):
        jwk = json.loads(data)
        kid = jwk.get("kid") if isinstance(jwk, dict) else None
        return OKPKey.import_key(jwk), kid if isinstance(kid, str) else None
    loaded = load_pem_private_key(data, None) if private else load_pem_public_key(data)
    if not isinstance(loaded, Ed25519PrivateKey | Ed25519PublicKey):
        return None
    return OKPKey.import_key(loaded), None


def _okp_from_file(path: Path, *, private: bool) -> tuple[OKPKey, str | None]:
    """An Ed25519 key from a PEM file or a JWK (JSON) file, and the JWK's kid if it has one."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"{path}: cannot read key file") from exc
    try:
        parsed = _parse_key(data, private=private)
    except (ValueError, TypeError, JoseError) as exc:
        raise ConfigurationError(f"{path}: not an Ed25519 key in PEM or JWK form") from exc
    wanted = "private key" if private else "key"
    if (
        parsed is None
        or parsed[0].curve_name != "Ed25519"
        or (private and not parsed[0].is_private)
    ):
        raise ConfigurationError(f"{path}: not an Ed25519 {wanted}")
    return parsed


def load_private_key(path: Path, kid: str | None = None) -> tuple[Ed25519PrivateKey, str]:
    """The checkpoint signing key and its kid (given, from the JWK, or the RFC 7638 thumbprint).

    Raises:
        ConfigurationError: the file is missing or not an Ed25519 private key.
    """
    key, jwk_kid = _okp_from_file(path, private=True)
    private = key.private_key
    if not isinstance(private, Ed25519PrivateKey):
        raise ConfigurationError(f"{path}: not an Ed25519 private key")
    return private, kid or jwk_kid or key.thumbprint()


def load_public_key(path: Path) -> tuple[Ed25519PublicKey, str]:
    """A checkpoint verification key and its kid (from the JWK, else the RFC 7638 thumbprint).

    Raises:
        ConfigurationError: the file is missing or not an Ed25519 key.
    """
    key, jwk_kid = _okp_from_file(path, private=False)
    public = key.public_key
    if not isinstance(public, Ed25519PublicKey):
        raise ConfigurationError(f"{path}: not an Ed25519 public key")
    return public, jwk_kid or key.thumbprint()


def _read_anchors(path: Path) -> list[str]:
    try:
        return [line.strip() for line in path.read_text().splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"{path}: cannot read anchor file") from exc


@app.command("verify")
def verify_cmd(
    database_url: DatabaseUrl = None,
    public_key: Annotated[
        list[Path] | None,
        typer.Option(
            "--public-key",
            help="Trusted checkpoint key (PEM or JWK); repeat for rotated keys. "
            "Without one, checkpoint signatures are not checked.",
        ),
    ] = None,
    anchor: Annotated[
        list[Path] | None,
        typer.Option(
            "--anchor",
            help="File of checkpoint JWS kept outside the database (one per line, as "
            "printed by `audit checkpoint`); needs --public-key.",
        ),
    ] = None,
) -> None:
    """Recompute the chain and checkpoints; print OK or the first bad entry (exit 1)."""
    try:
        keys = {kid: key for key, kid in map(load_public_key, public_key or [])}
        tokens = [token for path in anchor or [] for token in _read_anchors(path)]
        engine = _engine(database_url)
        try:
            with session_scope(engine) as session:
                report = verify(session, keys if public_key else None, anchors=tokens)
        finally:
            engine.dispose()
    except BrokerError as exc:
        raise _fail(exc) from None
    typer.echo(report.summary())
    if not report.ok:
        raise typer.Exit(1)


@app.command("checkpoint")
def checkpoint_cmd(
    key: Annotated[
        Path, typer.Option("--key", help="The service's Ed25519 private key (PEM or JWK).")
    ],
    kid: Annotated[
        str | None, typer.Option("--kid", help="Key id; default the JWK kid or its thumbprint.")
    ] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Sign the chain's current length and head hash (refused if the chain does not verify)."""
    try:
        private, key_id = load_private_key(key, kid)
        settings_issuer = Settings().crypto.service_party
        engine = _engine(database_url)
        try:
            with gated_session(engine) as session:
                row = checkpoint(session, private, key_id, issuer=settings_issuer)
        finally:
            engine.dispose()
    except BrokerError as exc:
        raise _fail(exc) from None
    typer.echo(
        f"checkpoint {row.seq}: {row.entry_count} entries, head {row.head_hash}, kid {row.kid}"
    )
    # The JWS itself, last, so that `| tail -n 1 >> anchors.jws` keeps a copy elsewhere.
    typer.echo(row.signature)


@app.command("show")
def show_cmd(
    event_id: Annotated[uuid.UUID, typer.Option("--event-id", help="The canonical event id.")],
    database_url: DatabaseUrl = None,
) -> None:
    """Print every audit entry about one event, in chain order (ids and codes only)."""
    try:
        engine = _engine(database_url)
        try:
            with session_scope(engine) as session:
                entries = entries_for_event(session, event_id)
        finally:
            engine.dispose()
    except BrokerError as exc:
        raise _fail(exc) from None
    if not entries:
        typer.echo(f"no audit entries for event {event_id}")
        raise typer.Exit(1)
    for entry in entries:
        parts = [
            f"{entry.seq:>8}",
            entry.at.isoformat(timespec="seconds"),
            entry.kind.value,
            *(
                f"{name}={value}"
                for name in ("party", "actor", "recipient", "rule_id", "lawful_basis", "reason")
                if (value := getattr(entry, name))
            ),
        ]
        if entry.fields:
            parts.append("fields=" + ",".join(entry.fields))
        if entry.jti:
            parts.append(f"jti={entry.jti}")
        if entry.detail:
            parts.append(entry.detail)
        typer.echo("  ".join(parts))
