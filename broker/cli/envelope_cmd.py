"""``mash-broker envelope``: seal an event for a recipient, open a disclosure addressed to us."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from broker import envelope
from broker.cli.keys_cmd import one_line_errors
from broker.exceptions import PayloadInvalid, PayloadTooLarge
from broker.keys import KeyRegistry, PartyKeys
from broker.replay import SqliteReplayStore
from schemas.disclosure import Provenance
from schemas.events import Event, LawfulBasis

__all__ = ["app"]

app = typer.Typer(
    help="The disclosure envelope: a signed JWT (Ed25519) inside a JWE (X25519, A256GCM).",
    no_args_is_help=True,
)

_BASES = ", ".join(b.value for b in LawfulBasis)

_KeysDir = Annotated[
    Path,
    typer.Option(
        "--keys",
        envvar="MASH_CRYPTO__KEYS_DIR",
        help="The key directory (jwks.json and private/).",
    ),
]


def _read_stdin(limit: int) -> bytes:
    """Read standard input, refusing more than ``limit`` bytes without reading it all."""
    data = sys.stdin.buffer.read(limit + 1)
    if len(data) > limit:
        raise PayloadTooLarge(f"standard input is over the {limit}-byte limit")
    return data


@app.command("seal")
def seal(
    *,
    sender: Annotated[str, typer.Option(help="The sending party (its keys sign).")],
    recipient: Annotated[str, typer.Option(help="The receiving party (its key encrypts).")],
    keys: _KeysDir = Path("var/keys"),
    rule: Annotated[str, typer.Option(help="The agreement rule id.")] = "manual",
    basis: Annotated[
        str | None,
        typer.Option(help=f"Lawful basis (default: the event's own). One of: {_BASES}."),
    ] = None,
    purpose: Annotated[
        str, typer.Option(help="Why it is shared.")
    ] = "Safeguarding: disclosure sealed by an operator",
) -> None:
    """Read a canonical event (JSON) on stdin; print the sealed disclosure (compact JWE).

    The provenance digest is the SHA-256 of the bytes read, as the source signed them.
    """
    limits = envelope.DEFAULT_LIMITS
    with one_line_errors():
        raw = _read_stdin(limits.max_bytes)
        try:
            event = Event.model_validate_json(raw)
        except ValidationError as exc:
            where = ", ".join(".".join(map(str, e["loc"])) for e in exc.errors()[:5])
            raise PayloadInvalid(
                f"standard input is not a valid canonical event ({where})"
            ) from None
        registry = KeyRegistry.load(keys)
        sealed = envelope.seal(
            event.model_dump(mode="json"),
            sender=PartyKeys.load(keys, sender, registry),
            recipient=recipient,
            registry=registry,
            rule_id=rule,
            lawful_basis=basis if basis is not None else event.metadata.lawful_basis,
            purpose=purpose,
            provenance=Provenance(
                source_agency=event.metadata.source.agency,
                source_event_id=event.metadata.event_id,
                original_sha256=envelope.digest_original(raw),
            ),
            limits=limits,
        )
        typer.echo(sealed.token)


@app.command("open")
def open_(
    *,
    recipient: Annotated[str, typer.Option(help="The receiving party: us.")],
    keys: _KeysDir = Path("var/keys"),
    replay_db: Annotated[
        Path | None,
        typer.Option(help="Where seen token ids are kept (default DIR/replay/RECIPIENT.sqlite3)."),
    ] = None,
) -> None:
    """Read a disclosure (compact JWE) on stdin; print its verified claims as JSON.

    Any failure exits 1 with one line on stderr. A disclosure opens once: its jti is
    remembered in the replay database until the token expires.
    """
    limits = envelope.DEFAULT_LIMITS
    with one_line_errors():
        # A trailing newline (from a file or `echo`) is not part of the token.
        token = _read_stdin(limits.max_bytes + 2).strip()
        registry = KeyRegistry.load(keys)
        parties_keys = PartyKeys.load(keys, recipient, registry)
        store = SqliteReplayStore(replay_db or keys / "replay" / f"{recipient}.sqlite3")
        try:
            claims = envelope.open(
                token, recipient=parties_keys, registry=registry, replay=store, limits=limits
            )
        finally:
            store.close()
        typer.echo(claims.model_dump_json(indent=2))
