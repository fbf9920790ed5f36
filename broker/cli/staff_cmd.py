"""``mash-broker staff``: the local staff account store (argon2id hashes, roles)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer

from broker.api.auth import AccountStore, Role
from broker.db import make_engine, migrate
from broker.exceptions import BrokerError
from broker.settings import Settings

__all__ = ["app"]

app = typer.Typer(
    help="Local staff accounts for a single-site install (passwords never on the command line).",
    no_args_is_help=True,
)

_ROLES = ", ".join(r.value for r in Role)

Roles = Annotated[
    list[Role],
    typer.Option("--role", "-r", help=f"A role (repeatable): {_ROLES}.", show_default=False),
]
PasswordStdin = Annotated[
    bool,
    typer.Option(
        "--password-stdin", help="Read the password from the first line of standard input."
    ),
]
DatabaseUrl = Annotated[
    str | None,
    typer.Option("--database-url", help="Defaults to MASH_DATABASE__URL.", show_default=False),
]


@contextmanager
def _store(database_url: str | None) -> Iterator[AccountStore]:
    """The account store on the database, its connections closed afterwards."""
    engine = make_engine(database_url or Settings().database.url.get_secret_value())
    try:
        migrate(engine)
        yield AccountStore(engine)
    finally:
        engine.dispose()


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    # A prompt that does not echo, asked twice: argv would put it in shell history and `ps`.
    entered: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return entered


def _fail(exc: BrokerError) -> typer.Exit:
    typer.echo(f"error: {exc}", err=True)
    return typer.Exit(2)


@app.command("add")
def add(
    username: str,
    role: Roles,
    password_stdin: PasswordStdin = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Create an account with one or more roles."""
    try:
        with _store(database_url) as store:
            store.add(username, _password(password_stdin), role)
    except BrokerError as exc:
        raise _fail(exc) from None
    typer.echo(f"added {username} ({', '.join(sorted(r.value for r in role))})")


@app.command("passwd")
def passwd(
    username: str, password_stdin: PasswordStdin = False, database_url: DatabaseUrl = None
) -> None:
    """Set a new password; the account's sessions end."""
    try:
        with _store(database_url) as store:
            store.set_password(username, _password(password_stdin))
    except BrokerError as exc:
        raise _fail(exc) from None
    typer.echo(f"password changed for {username}")


@app.command("roles")
def roles(username: str, role: Roles, database_url: DatabaseUrl = None) -> None:
    """Replace an account's roles; its sessions end."""
    try:
        with _store(database_url) as store:
            store.set_roles(username, role)
    except BrokerError as exc:
        raise _fail(exc) from None
    typer.echo(f"roles of {username}: {', '.join(sorted(r.value for r in role))}")


@app.command("disable")
def disable(username: str, database_url: DatabaseUrl = None) -> None:
    """Disable an account at once (its tokens stop working)."""
    try:
        with _store(database_url) as store:
            store.set_active(username, False)
    except BrokerError as exc:
        raise _fail(exc) from None
    typer.echo(f"disabled {username}")


@app.command("enable")
def enable(username: str, database_url: DatabaseUrl = None) -> None:
    """Re-enable a disabled account."""
    try:
        with _store(database_url) as store:
            store.set_active(username, True)
    except BrokerError as exc:
        raise _fail(exc) from None
    typer.echo(f"enabled {username}")


@app.command("list")
def list_accounts(database_url: DatabaseUrl = None) -> None:
    """Every account, its roles and whether it is active."""
    with _store(database_url) as store:
        accounts = store.list()
    for username, held, active in accounts:
        state = "active" if active else "disabled"
        typer.echo(f"{username}\t{','.join(held)}\t{state}")
