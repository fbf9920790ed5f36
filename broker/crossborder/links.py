"""Links to neighbours: a RabbitMQ dynamic shovel per neighbour, set up, removed and watched.

A link moves ``xborder.<ons>`` on this broker to the neighbour's ``ingest`` exchange with
routing key ``xborder``. The shovel acknowledges a message here only after the neighbour's
RabbitMQ confirmed it (``ack-mode: on-confirm``), so a message is on one side or the other,
never on neither, provided the neighbour's ``ingest.xborder`` is bound (a shovel does not
publish as mandatory: see :func:`check_neighbour`). A link that is down leaves messages
waiting in the queue.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aio_pika
from pydantic import SecretStr

from broker.crossborder.management import Management, QueueDepth, vhost_of
from broker.crossborder.neighbours import (
    RECEIVE_QUEUE,
    RECEIVE_ROUTING_KEY,
    Neighbour,
    neighbours,
)
from broker.crossborder.secrets import describe_uri
from broker.exceptions import ConfigurationError, TransportError
from broker.logging import get_logger
from broker.messaging.connection import AMQP_ERRORS, connect
from broker.policy import Agreement
from broker.settings import AmqpSettings, Settings
from broker.topology import (
    INGEST_EXCHANGE,
    Recipient,
    RecipientKind,
    Topology,
    build_topology,
    dead_letter_queue_name,
    ensure_topology,
)

__all__ = [
    "NOT_LINKED",
    "LinkStatus",
    "check_neighbour",
    "link",
    "link_statuses",
    "outbound_topology",
    "shovel_definition",
    "unlink",
]

_log = get_logger("crossborder")

#: The state reported for a neighbour with no shovel defined.
NOT_LINKED = "not linked"


def shovel_definition(settings: Settings, neighbour: Neighbour, uri: SecretStr) -> dict[str, Any]:
    """The dynamic shovel's definition (the parameter's ``value``) for one neighbour.

    The source is this broker's own virtual host through RabbitMQ's direct connection
    (``amqp:///<vhost>``: no credentials of ours are stored); the destination is the
    neighbour's ``ingest`` exchange, reached with the URI it issued.
    """
    return {
        "src-protocol": "amqp091",
        "src-uri": f"amqp:///{quote(vhost_of(settings.amqp), safe='')}",
        "src-queue": neighbour.queue,
        "src-prefetch-count": settings.crossborder.prefetch,
        "src-delete-after": "never",
        "dest-protocol": "amqp091",
        "dest-uri": uri.get_secret_value(),
        "dest-exchange": INGEST_EXCHANGE,
        "dest-exchange-key": RECEIVE_ROUTING_KEY,
        # Acknowledge here only what the neighbour's broker has confirmed.
        "ack-mode": "on-confirm",
        "reconnect-delay": settings.crossborder.reconnect_delay_seconds,
    }


async def link(
    settings: Settings, neighbour: Neighbour, uri: SecretStr, *, management: Management
) -> str:
    """Create or replace the shovel that links ``neighbour``; returns where it points.

    The neighbour's queue is declared first, as the topology declares it: a shovel whose
    source queue is missing declares it itself (RabbitMQ 3.10 has no ``src-predeclared``),
    as a classic queue without the dead-letter arguments, which the topology could then
    never declare.

    Raises:
        ConfigurationError: RabbitMQ refused the definition or the credentials, or the
            queue exists with other arguments.
        TransportError: RabbitMQ or its management API is unreachable.
    """
    await ensure_topology(settings.amqp, outbound_topology(settings, neighbour))
    value = shovel_definition(settings, neighbour, uri)
    await asyncio.to_thread(management.put_shovel, vhost_of(settings.amqp), neighbour.shovel, value)
    destination = describe_uri(uri)
    _log.info(
        "crossborder_linked",
        borough=neighbour.borough,
        party=neighbour.party_id,
        queue=neighbour.queue,
        destination=destination,
    )
    return destination


async def check_neighbour(uri: SecretStr, *, within: float) -> None:
    """Connect as the link will and check that the neighbour can receive.

    The neighbour's ``ingest`` exchange and ``ingest.xborder`` queue must exist: a shovel
    does not publish as mandatory, so what it delivers to an exchange with no queue bound is
    dropped by the neighbour's RabbitMQ. (The binding itself cannot be seen with the link's
    write-only permissions; ``crossborder declare`` makes queue and binding together.)

    Raises:
        ConfigurationError: the exchange or queue is missing, or the login is refused.
        TransportError: the neighbour is unreachable or too slow.
    """
    settings = AmqpSettings(url=uri, timeout_seconds=within)
    where = describe_uri(uri)
    try:
        connection = await connect(settings, name="crossborder check")
    except TransportError as exc:
        if "ACCESS_REFUSED" in str(exc) or "Authentication" in str(exc):
            raise ConfigurationError(f"{where}: the neighbour refused the link's login") from None
        raise
    try:
        for kind, name in (("exchange", INGEST_EXCHANGE), ("queue", RECEIVE_QUEUE)):
            channel = await connection.channel(publisher_confirms=False)
            try:
                if kind == "exchange":
                    await channel.declare_exchange(name, passive=True, timeout=within)
                else:
                    await channel.declare_queue(name, passive=True, timeout=within)
            except aio_pika.exceptions.ChannelNotFoundEntity:
                raise ConfigurationError(
                    f"{where}: no {kind} {name}; the neighbour declares it with "
                    f"`mash-broker crossborder declare` (or runs the xborder part)"
                ) from None
            except AMQP_ERRORS as exc:
                raise TransportError(
                    f"{where}: {kind} {name} not checked ({type(exc).__name__})"
                ) from None
            finally:
                if not channel.is_closed:
                    await channel.close()
    finally:
        await connection.close()


def outbound_topology(settings: Settings, neighbour: Neighbour) -> Topology:
    """The neighbour's outbound queue ``xborder.<ons>`` as the broker's topology declares it."""
    recipient = Recipient(neighbour.party_id, RecipientKind.CROSS_BORDER, neighbour.borough)
    return build_topology(
        settings.borough,
        [recipient],
        adapters=(),
        delivery_limit=settings.amqp.delivery_limit,
    )


def unlink(settings: Settings, neighbour: Neighbour, *, management: Management) -> bool:
    """Delete the neighbour's shovel; messages for it then wait in its queue.

    Returns:
        False when there was no link to remove.
    """
    removed = management.delete_shovel(vhost_of(settings.amqp), neighbour.shovel)
    _log.info(
        "crossborder_unlinked", borough=neighbour.borough, party=neighbour.party_id, was=removed
    )
    return removed


@dataclass(frozen=True, slots=True)
class LinkStatus:
    """One neighbour's link as an operator watches it."""

    neighbour: Neighbour
    #: ``running``, ``starting``, ``terminated``, or ``not linked``.
    state: str
    reason: str | None
    #: Where the shovel delivers, without credentials; None when not linked.
    destination: str | None
    #: Messages waiting in (or in flight from) ``xborder.<ons>``; None if it is not declared.
    queued: QueueDepth | None
    #: Messages the link gave up on (delivery limit), in ``xborder.<ons>.dlq``.
    dead_letters: int | None
    #: Disclosures for the neighbour not yet published from the outbox.
    outbox_pending: int

    @property
    def healthy(self) -> bool:
        """Linked, running, and nothing dead-lettered."""
        return self.state == "running" and not self.dead_letters

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form for ``crossborder status --json``."""
        return {
            "borough": self.neighbour.borough,
            "party": self.neighbour.party_id,
            "queue": self.neighbour.queue,
            "shovel": self.neighbour.shovel,
            "state": self.state,
            "reason": self.reason,
            "destination": self.destination,
            "ready": None if self.queued is None else self.queued.ready,
            "unacked": None if self.queued is None else self.queued.unacked,
            "dead_letters": self.dead_letters,
            "outbox_pending": self.outbox_pending,
            "healthy": self.healthy,
        }


def link_statuses(
    settings: Settings,
    agreement: Agreement,
    *,
    management: Management,
    outbox_pending: Mapping[str, int] | None = None,
) -> list[LinkStatus]:
    """The state and backlog of the link to every neighbour of the agreement.

    Args:
        settings: this broker's settings (its virtual host).
        agreement: this broker's agreement (its neighbouring brokers).
        management: the management API client.
        outbox_pending: unpublished outbox rows by recipient party, if known.

    Raises:
        TransportError: the management API is unreachable.
    """
    vhost = vhost_of(settings.amqp)
    defined = management.shovel_names(vhost)
    running = management.shovel_states(vhost)
    pending = outbox_pending or {}
    statuses = []
    for neighbour in neighbours(agreement):
        shovel = running.get(neighbour.shovel)
        if shovel is not None:
            state, reason, destination = shovel.state, shovel.reason, shovel.destination
        elif neighbour.shovel in defined:
            state, reason, destination = "starting", None, None
        else:
            state, reason, destination = NOT_LINKED, None, None
        dlq = management.queue_depth(vhost, dead_letter_queue_name(neighbour.queue))
        statuses.append(
            LinkStatus(
                neighbour=neighbour,
                state=state,
                reason=reason,
                destination=destination,
                queued=management.queue_depth(vhost, neighbour.queue),
                dead_letters=None if dlq is None else dlq.total,
                outbox_pending=pending.get(neighbour.party_id, 0),
            )
        )
    return statuses
