"""``mash-broker keys``: generate, rotate, revoke and export parties' keys."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer

from broker.exceptions import BrokerError
from broker.keys import (
    KeyRecord,
    KeyRegistry,
    generate_party_keys,
    revoke_key,
    rotate_party_keys,
)

__all__ = ["app", "one_line_errors"]

app = typer.Typer(
    help="Party keys: Ed25519 signing and X25519 encryption keys in a key directory.",
    no_args_is_help=True,
)

_KeysDir = Annotated[
    Path,
    typer.Option(
        "--dir",
        envvar="MASH_CRYPTO__KEYS_DIR",
        help="The key directory (jwks.json and private/).",
    ),
]
_Party = Annotated[str, typer.Argument(help="The party id, e.g. tvp-police.")]
_ValidDays = Annotated[int, typer.Option(min=1, help="How long the new keys are valid, in days.")]


@contextlib.contextmanager
def one_line_errors() -> Iterator[None]:
    """Turn any failure into one line on stderr and exit status 1, never a traceback."""
    try:
        yield
    except BrokerError as exc:
        typer.echo(f"error: {exc.code}: {exc}", err=True)
        raise typer.Exit(1) from None
    except OSError as exc:
        typer.echo(f"error: {exc.filename or 'i/o'}: {exc.strerror or exc}", err=True)
        raise typer.Exit(1) from None
    except Exception as exc:  # noqa: BLE001 - the promise is one line for any failure
        # Only the type: an unexpected error's text could quote the input.
        typer.echo(f"error: unexpected {type(exc).__name__}", err=True)
        raise typer.Exit(1) from None


def _describe(record: KeyRecord) -> str:
    state = "revoked" if record.revoked else "valid"
    return (
        f"{record.kid}  {record.use.value} {record.alg}  {state} "
        f"{record.not_before.isoformat()} .. {record.expires_at.isoformat()}"
    )


@app.command("generate")
def generate(
    party: _Party, directory: _KeysDir = Path("var/keys"), valid_days: _ValidDays = 365
) -> None:
    """Create PARTY's first signing and encryption keys.

    Private keys go to DIR/private/PARTY/<kid>.jwk (mode 0600); public keys are added to
    DIR/jwks.json.
    """
    with one_line_errors():
        for record in generate_party_keys(directory, party, validity=timedelta(days=valid_days)):
            typer.echo(_describe(record))


@app.command("rotate")
def rotate(
    party: _Party,
    directory: _KeysDir = Path("var/keys"),
    valid_days: _ValidDays = 365,
    grace_days: Annotated[
        int,
        typer.Option(
            min=0,
            help="How long the old keys stay valid; keep it at least the token lifetime.",
        ),
    ] = 7,
) -> None:
    """Give PARTY new keys; its old public keys stay registered and valid for the grace."""
    with one_line_errors():
        new = rotate_party_keys(
            directory,
            party,
            validity=timedelta(days=valid_days),
            grace=timedelta(days=grace_days),
        )
        for record in new:
            typer.echo(_describe(record))


@app.command("revoke")
def revoke(
    kid: Annotated[str, typer.Argument(help="The key id to revoke.")],
    directory: _KeysDir = Path("var/keys"),
) -> None:
    """Revoke key KID: it no longer verifies, encrypts or decrypts anything."""
    with one_line_errors():
        typer.echo(_describe(revoke_key(directory, kid)))


@app.command("export")
def export(
    directory: _KeysDir = Path("var/keys"),
    party: Annotated[str | None, typer.Option(help="Only this party's keys.")] = None,
) -> None:
    """Print the public JWKS (never a private member) for partners to import."""
    with one_line_errors():
        jwks = KeyRegistry.load(directory).to_jwks(party)
        typer.echo(json.dumps(jwks, indent=2))
