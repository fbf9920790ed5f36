"""``mash-broker crossborder``: link to neighbouring boroughs' brokers, watch and unlink.

The link's AMQP URI holds the credentials the neighbour issued, so it is read from a file
(``--uri-file``, mode 0600), an environment variable named by ``--uri-env``, or settings
(``crossborder.links`` / ``crossborder.secrets_dir``): never from the command line itself,
which shells keep in their history and ``ps`` shows to every user. Output and logs name the
neighbour's host, port and virtual host only.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Annotated

import typer

from broker.cli.keys_cmd import one_line_errors
from broker.crossborder import (
    NOT_LINKED,
    LinkStatus,
    Management,
    Neighbour,
    check_neighbour,
    check_neighbour_rules,
    import_neighbour_keys,
    link,
    link_statuses,
    link_uri,
    neighbour_for,
    neighbours,
    outbox_pending_by_recipient,
    read_jwks_file,
    receiving_topology,
    subscriptions_of,
    unlink,
    vhost_of,
)
from broker.db import engine_from_settings
from broker.logging import configure_logging
from broker.policy import Agreement, load_agreement, read_agreement_file
from broker.settings import Settings
from broker.topology import ensure_topology

__all__ = ["app"]

app = typer.Typer(
    help="Links to neighbouring boroughs' brokers (RabbitMQ shovels), both directions.",
    no_args_is_help=True,
)

_Borough = Annotated[
    str, typer.Argument(help="The neighbour's ONS code (e.g. E06000039) or party id.")
]
_AsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]


@app.command("link")
def link_command(
    borough: _Borough,
    uri_file: Annotated[
        Path | None,
        typer.Option(
            help="A file (mode 0600) holding the neighbour's AMQP URI with its credentials."
        ),
    ] = None,
    uri_env: Annotated[
        str | None,
        typer.Option(help="The name of an environment variable holding the AMQP URI."),
    ] = None,
    wait: Annotated[
        float, typer.Option(min=0, help="Seconds to wait for the link to run (0: don't).")
    ] = 10.0,
    check: Annotated[
        bool,
        typer.Option(
            help="First connect as the link will and check the neighbour's receiving queue."
        ),
    ] = True,
) -> None:
    """Link BOROUGH: a shovel moves xborder.<ons> to its broker's ingest exchange.

    Confirms and acks: a message leaves our queue only once the neighbour's RabbitMQ has
    confirmed it. Linking again replaces the shovel (a new URI, new credentials). Use
    --no-check to link to a neighbour that is down now (messages wait until it is back).
    """
    if uri_file is not None and uri_env is not None:
        typer.echo("error: give --uri-file or --uri-env, not both", err=True)
        raise typer.Exit(2)
    settings = _settings()
    with one_line_errors():
        agreement = _agreement(settings)
        neighbour = neighbour_for(agreement, borough)
        uri = link_uri(settings, neighbour.borough, uri_file=uri_file, uri_env=uri_env)
        if check:
            asyncio.run(check_neighbour(uri, within=settings.amqp.timeout_seconds))
        management = Management.from_settings(settings.amqp)
        destination = asyncio.run(link(settings, neighbour, uri, management=management))
        typer.echo(
            f"linked {neighbour.borough} ({neighbour.party_id}): {neighbour.queue} -> "
            f"{destination} exchange ingest, key xborder"
        )
        if wait > 0:
            status = _wait_running(settings, agreement, neighbour, management, wait)
            typer.echo(_status_line(status))
            if status.state != "running":
                raise typer.Exit(1)


@app.command("unlink")
def unlink_command(borough: _Borough) -> None:
    """Remove BOROUGH's link; its disclosures wait in xborder.<ons> until linked again."""
    settings = _settings()
    with one_line_errors():
        neighbour = neighbour_for(_agreement(settings), borough)
        removed = unlink(settings, neighbour, management=Management.from_settings(settings.amqp))
    if removed:
        typer.echo(f"unlinked {neighbour.borough} ({neighbour.party_id}); {neighbour.queue} keeps")
    else:
        typer.echo(f"{neighbour.borough} ({neighbour.party_id}) was not linked")


@app.command("status")
def status_command(as_json: _AsJson = False) -> None:
    """Each neighbour's link: state, where it delivers, and what waits for it.

    Exits 1 when a link is not running or has dead-lettered messages.
    """
    settings = _settings()
    with one_line_errors():
        agreement = _agreement(settings)
        engine = engine_from_settings(settings)
        try:
            pending = outbox_pending_by_recipient(
                engine, [n.party_id for n in neighbours(agreement)]
            )
        finally:
            engine.dispose()
        statuses = link_statuses(
            settings,
            agreement,
            management=Management.from_settings(settings.amqp),
            outbox_pending=pending,
        )
    if as_json:
        typer.echo(json.dumps([s.to_dict() for s in statuses], indent=2))
    else:
        for status in statuses:
            typer.echo(_status_line(status))
        if not statuses:
            typer.echo("no neighbouring brokers in the agreement")
    if not all(s.healthy for s in statuses):
        raise typer.Exit(1)


@app.command("declare")
def declare_command() -> None:
    """Declare this broker's receiving queue ingest.xborder (and its dead-letter queue)."""
    settings = _settings()
    with one_line_errors():
        topology = receiving_topology(settings)
        asyncio.run(ensure_topology(settings.amqp, topology))
    typer.echo(
        f"declared ingest.xborder, bound to exchange ingest with key xborder, in vhost "
        f"{vhost_of(settings.amqp)}"
    )


@app.command("check")
def check_command(
    agreement: Annotated[
        Path | None, typer.Argument(help="The agreement file (default: settings').")
    ] = None,
) -> None:
    """Check that every rule sharing with a neighbouring broker sends enough to be used.

    A receiving broker refuses an event that lacks a field the canonical schema requires.
    """
    with one_line_errors():
        path = agreement or _settings().agreement_path
        parsed = read_agreement_file(path)
        if parsed.agreement is None:
            for finding in parsed.findings:
                typer.echo(finding.format(parsed.source), err=True)
            raise typer.Exit(1)
        findings = check_neighbour_rules(parsed.agreement, parsed.lines)
    for finding in findings:
        typer.echo(finding.format(parsed.source))
    if findings:
        raise typer.Exit(1)
    typer.echo(f"{parsed.source}: every rule to a neighbouring broker sends a complete event")


@app.command("subscriptions")
def subscriptions_command(
    party: Annotated[str, typer.Argument(help="A party, e.g. slough-panel or slough-broker.")],
    agreement: Annotated[
        Path | None, typer.Option(help="The agreement file (default: settings').")
    ] = None,
    as_json: _AsJson = False,
) -> None:
    """What the agreement sends PARTY: each rule, its events, how they link to its area."""
    with one_line_errors():
        loaded = load_agreement(agreement or _settings().agreement_path)
        found = subscriptions_of(loaded, party)
    if as_json:
        typer.echo(json.dumps([s.to_dict() for s in found], indent=2))
        return
    if not found:
        typer.echo(f"{party} receives nothing under agreement version {loaded.version}")
    for subscription in found:
        typer.echo(subscription.describe())


@app.command("import-keys")
def import_keys_command(
    party: Annotated[str, typer.Argument(help="The neighbouring broker's party id.")],
    jwks_file: Annotated[Path, typer.Argument(help="Its public JWKS (from `keys export`).")],
) -> None:
    """Add a neighbouring broker's public keys to this broker's key registry."""
    settings = _settings()
    with one_line_errors():
        neighbour_for(_agreement(settings), party)
        records = import_neighbour_keys(
            settings.crypto.keys_dir, read_jwks_file(jwks_file), party=party
        )
    for record in records:
        state = "revoked" if record.revoked else "valid"
        typer.echo(
            f"{record.kid}  {record.use.value}  {state} until {record.expires_at.isoformat()}"
        )


def _settings() -> Settings:
    settings = Settings()
    configure_logging(settings.log_level, json=settings.log_json)
    return settings


def _agreement(settings: Settings) -> Agreement:
    return load_agreement(settings.agreement_path)


def _wait_running(
    settings: Settings,
    agreement: Agreement,
    neighbour: Neighbour,
    management: Management,
    within: float,
) -> LinkStatus:
    """Poll the link until it runs or ``within`` seconds pass; its last status."""
    deadline = time.monotonic() + within
    while True:
        status = next(
            s
            for s in link_statuses(settings, agreement, management=management)
            if s.neighbour == neighbour
        )
        if status.state == "running" or time.monotonic() >= deadline:
            return status
        time.sleep(0.5)


def _status_line(status: LinkStatus) -> str:
    n = status.neighbour
    parts = [f"{n.borough} ({n.party_id}): {status.state}"]
    if status.destination:
        parts.append(f"-> {status.destination}")
    if status.reason:
        parts.append(f"reason: {status.reason}")
    queued = (
        "queue missing"
        if status.queued is None
        else (f"{status.queued.ready} waiting, {status.queued.unacked} in flight")
    )
    parts.append(f"{n.queue}: {queued}")
    if status.dead_letters:
        parts.append(f"{status.dead_letters} dead-lettered")
    if status.outbox_pending:
        parts.append(f"{status.outbox_pending} in the outbox")
    if status.state == NOT_LINKED:
        parts.append("(mash-broker crossborder link)")
    return "; ".join(parts)
