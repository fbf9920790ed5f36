"""Who this broker is linked to: the agreement's neighbouring brokers, and the names of a link."""

from __future__ import annotations

from dataclasses import dataclass

from broker.exceptions import ConfigurationError
from broker.policy import Agreement, PartyKind
from broker.settings import Settings
from broker.topology import (
    CROSS_BORDER_INGEST,
    Recipient,
    RecipientKind,
    Topology,
    build_topology,
    ingest_queue_name,
    ingest_routing_key,
    recipient_queue_name,
)

__all__ = [
    "RECEIVE_CHANNEL",
    "RECEIVE_QUEUE",
    "RECEIVE_ROUTING_KEY",
    "Neighbour",
    "NotANeighbour",
    "neighbour_for",
    "neighbours",
    "receiving_topology",
    "shovel_name",
]

#: The ingest channel disclosures from neighbouring brokers arrive on. It is not an adapter:
#: nothing is parsed, the envelope is opened and its event completed (``canonical``).
RECEIVE_CHANNEL = CROSS_BORDER_INGEST
#: The queue on this broker that neighbours' shovels fill: ``ingest.xborder``.
RECEIVE_QUEUE = ingest_queue_name(RECEIVE_CHANNEL)
#: The routing key neighbours' shovels publish with on this broker's ``ingest`` exchange.
RECEIVE_ROUTING_KEY = ingest_routing_key(RECEIVE_CHANNEL)


class NotANeighbour(ConfigurationError):
    """The borough or party named is not a neighbouring broker in this broker's agreement."""

    code = "not_a_neighbour"


@dataclass(frozen=True, slots=True)
class Neighbour:
    """A neighbouring borough's broker as this broker's agreement names it."""

    #: Its party id in the agreement, e.g. ``slough-broker``: the audience of what we seal.
    party_id: str
    #: Its borough's ONS code, e.g. ``E06000039``.
    borough: str
    name: str
    #: The queue its disclosures wait on here: ``xborder.<ons>``.
    queue: str

    @property
    def shovel(self) -> str:
        """The name of the shovel that links ``queue`` to the neighbour."""
        return shovel_name(self.borough)


def shovel_name(borough: str) -> str:
    """The shovel moving ``xborder.<borough>`` to that borough: ``mash-xborder-<borough>``."""
    return f"mash-xborder-{borough}"


def neighbours(agreement: Agreement) -> tuple[Neighbour, ...]:
    """Every neighbouring broker of the agreement, in the agreement's order.

    Raises:
        ConfigurationError: a neighbouring broker has no borough, or two share one (a
            queue and a shovel are named by the borough, so each needs its own).
    """
    found: list[Neighbour] = []
    seen: dict[str, str] = {}
    for party in agreement.parties:
        if party.kind is not PartyKind.NEIGHBOURING_BROKER:
            continue
        if party.borough is None:
            raise ConfigurationError(
                f"party {party.id}: a neighbouring broker needs the borough it serves"
            )
        if party.borough in seen:
            raise ConfigurationError(
                f"parties {seen[party.borough]} and {party.id}: two neighbouring brokers "
                f"for borough {party.borough}"
            )
        seen[party.borough] = party.id
        recipient = Recipient(party.id, RecipientKind.CROSS_BORDER, party.borough)
        found.append(
            Neighbour(
                party_id=party.id,
                borough=party.borough,
                name=party.name,
                queue=recipient_queue_name(recipient, party.borough),
            )
        )
    return tuple(found)


def neighbour_for(agreement: Agreement, borough_or_party: str) -> Neighbour:
    """The neighbouring broker named by its borough's ONS code or its party id.

    Raises:
        NotANeighbour: the agreement has no neighbouring broker by that code or id.
    """
    for neighbour in neighbours(agreement):
        if borough_or_party in (neighbour.borough, neighbour.party_id):
            return neighbour
    known = ", ".join(f"{n.borough} ({n.party_id})" for n in neighbours(agreement)) or "none"
    raise NotANeighbour(
        f"{borough_or_party!r} is not a neighbouring broker in agreement version "
        f"{agreement.version} (neighbours: {known})"
    )


def receiving_topology(settings: Settings) -> Topology:
    """The queue neighbours deliver to here: ``ingest.xborder``, its dead-letter queue and
    binding, with the two exchanges they hang from. Declaring it is idempotent."""
    return build_topology(
        settings.borough,
        adapters=(RECEIVE_CHANNEL,),
        delivery_limit=settings.amqp.delivery_limit,
    )
