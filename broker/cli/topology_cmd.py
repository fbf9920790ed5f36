"""``mash-broker topology``: declare the RabbitMQ topology idempotently, or show it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from typing import Annotated

import typer

from adapters import ADAPTER_NAMES
from broker.exceptions import BrokerError
from broker.logging import configure_logging
from broker.messaging.connection import describe_url
from broker.settings import Settings
from broker.topology import Recipient, Topology, build_topology, ensure_topology, parse_recipient

__all__ = ["app", "set_recipient_source", "topology_from"]

app = typer.Typer(help="Declare and show the RabbitMQ topology.", no_args_is_help=True)

#: Where recipients come from when none are named on the command line (the agreement).
RecipientSource = Callable[[Settings], Sequence[Recipient]]
_recipient_source: RecipientSource | None = None

RecipientsOption = Annotated[
    list[str] | None,
    typer.Option(
        "--recipient",
        "-r",
        metavar="PARTY:KIND[:BOROUGH]",
        help="A receiving party; KIND is mash, partner or xborder. Repeatable.",
    ),
]
NeighboursOption = Annotated[
    list[str] | None,
    typer.Option("--neighbour", metavar="ONS", help="A neighbouring borough. Repeatable."),
]
AdaptersOption = Annotated[
    list[str] | None,
    typer.Option("--adapter", help=f"An ingest adapter (default: {' '.join(ADAPTER_NAMES)})."),
]


def set_recipient_source(source: RecipientSource | None) -> None:
    """Name where recipients come from when ``--recipient`` is not given."""
    global _recipient_source  # noqa: PLW0603 - one wiring point, set at start-up
    _recipient_source = source


def topology_from(
    settings: Settings,
    recipients: Sequence[str] | None = None,
    neighbours: Sequence[str] | None = None,
    adapters: Sequence[str] | None = None,
) -> Topology:
    """The topology for these settings and command-line options.

    Raises:
        ConfigurationError: an option is malformed.
    """
    if recipients:
        parties = [parse_recipient(text) for text in recipients]
    elif _recipient_source is not None:
        parties = list(_recipient_source(settings))
    else:
        parties = []
    return build_topology(
        settings.borough,
        parties,
        adapters=tuple(adapters) if adapters else ADAPTER_NAMES,
        neighbours=neighbours or (),
        delivery_limit=settings.amqp.delivery_limit,
    )


@app.command("declare")
def declare(
    recipient: RecipientsOption = None,
    neighbour: NeighboursOption = None,
    adapter: AdaptersOption = None,
) -> None:
    """Declare exchanges, quorum queues, dead-letter queues and bindings; safe to repeat."""
    settings = _settings()
    try:
        topology = topology_from(settings, recipient, neighbour, adapter)
        asyncio.run(ensure_topology(settings.amqp, topology))
    except BrokerError as exc:
        typer.echo(f"topology declare: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(
        f"declared {len(topology.exchanges)} exchanges, {len(topology.queues)} queues and "
        f"{len(topology.bindings)} bindings on {describe_url(settings.amqp)}"
    )


@app.command("show")
def show(
    recipient: RecipientsOption = None,
    neighbour: NeighboursOption = None,
    adapter: AdaptersOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Print the topology that ``declare`` would declare, without touching the broker."""
    settings = _settings()
    try:
        topology = topology_from(settings, recipient, neighbour, adapter)
    except BrokerError as exc:
        typer.echo(f"topology show: {exc}", err=True)
        raise typer.Exit(1) from None
    if as_json:
        typer.echo(json.dumps(topology.as_dict(), indent=2))
        return
    typer.echo(f"borough {topology.borough}")
    typer.echo("exchanges:")
    for exchange in topology.exchanges:
        typer.echo(f"  {exchange.name} ({exchange.type})")
    typer.echo("queues:")
    for queue in topology.queues:
        limit = queue.arguments.get("x-delivery-limit")
        extra = f" delivery-limit={limit} dlq={queue.dead_letter_queue}" if limit else ""
        typer.echo(f"  {queue.name} (quorum){extra}")
    typer.echo("bindings:")
    for binding in topology.bindings:
        typer.echo(f"  {binding.exchange} --{binding.routing_key or '(any)'}--> {binding.queue}")


def _settings() -> Settings:
    """Settings for one command, with logs sent to standard error, away from the output."""
    settings = Settings()
    configure_logging(settings.log_level, json=settings.log_json)
    return settings
