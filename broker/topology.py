"""The RabbitMQ topology: names, a declarative description, and its idempotent declaration.

What gets declared (``build_topology``)::

    ingest (topic) ──<adapter>──► ingest.<adapter>            one per adapter, partners publish here
    disclosures (topic) ──<party>.#──► mash.<borough-ons>     the MASH of a borough
                        ──<party>.#──► partner.<party>        a partner agency
                        ──<party>.#──► xborder.<ons|party>    outbound to a neighbour (shovelled)

    every queue Q above: quorum, durable, x-delivery-limit, at-least-once dead-lettering
    Q ──dead-letter──► Q.dlx (fanout) ──► Q.dlq (quorum, durable)

A disclosure's routing key is ``<recipient-party>.<event-type>`` (``disclosure_routing_key``),
so a recipient's queue binds ``<party>.#`` and a misspelt party is unroutable, which the
publisher reports because it publishes with ``mandatory``. Names are pure functions of the
parameters; nothing here reads settings except the entry points that pass them in.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

import aiormq
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue

from adapters import ADAPTER_NAMES
from broker.exceptions import ConfigurationError, TransportError
from broker.settings import AmqpSettings

__all__ = [
    "CROSS_BORDER_INGEST",
    "DEAD_LETTER_EXCHANGE_SUFFIX",
    "DEAD_LETTER_QUEUE_SUFFIX",
    "DISCLOSURES_EXCHANGE",
    "INGEST_EXCHANGE",
    "BindingSpec",
    "ExchangeKind",
    "ExchangeSpec",
    "QueueArguments",
    "QueueSpec",
    "Recipient",
    "RecipientKind",
    "Topology",
    "build_topology",
    "dead_letter_exchange_name",
    "dead_letter_queue_name",
    "declare_topology",
    "disclosure_binding_key",
    "disclosure_routing_key",
    "ensure_topology",
    "ingest_queue_name",
    "ingest_routing_key",
    "parse_recipient",
    "queue_for_dead_letter_queue",
    "recipient_queue_name",
]

INGEST_EXCHANGE = "ingest"
#: The ingest channel neighbouring brokers' shovels deliver to: queue ``ingest.xborder``.
CROSS_BORDER_INGEST = "xborder"
DISCLOSURES_EXCHANGE = "disclosures"
DEAD_LETTER_EXCHANGE_SUFFIX = ".dlx"
DEAD_LETTER_QUEUE_SUFFIX = ".dlq"

# The same shapes the canonical schema gives party ids and ONS codes (schemas/common.py);
# neither may contain a dot, so each is exactly one word of a topic routing key.
_PARTY_ID = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")
_ONS_CODE = re.compile(r"^[EWSN]\d{8}$")
_ADAPTER = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")
_EVENT_TYPE = re.compile(r"^[a-z0-9_-]+(\.[a-z0-9_-]+)*$")

#: The exchange types the topology uses.
ExchangeKind = Literal["topic", "fanout", "direct"]
#: The ``x-`` arguments a queue is declared with.
QueueArguments = Mapping[str, str | int]


class RecipientKind(StrEnum):
    """What a recipient is, which decides the name of its queue."""

    MASH = "mash"
    PARTNER = "partner"
    CROSS_BORDER = "xborder"


@dataclass(frozen=True, slots=True)
class Recipient:
    """A party that receives disclosures on a queue of its own.

    Attributes:
        party_id: the party's id in the agreement, e.g. ``tvp-police``; the first word of
            every routing key addressed to it.
        kind: MASH, partner agency, or outbound cross-border link.
        borough: the party's borough ONS code; names the queue of a MASH (defaulting to the
            topology's borough) and of a cross-border link (defaulting to the party id).
    """

    party_id: str
    kind: RecipientKind
    borough: str | None = None

    def __post_init__(self) -> None:
        _check_party(self.party_id)
        if self.borough is not None:
            _check_ons(self.borough, where=f"recipient {self.party_id}")


@dataclass(frozen=True, slots=True)
class ExchangeSpec:
    """One durable exchange."""

    name: str
    type: ExchangeKind


@dataclass(frozen=True, slots=True)
class QueueSpec:
    """One durable quorum queue and the arguments it is declared with."""

    name: str
    arguments: QueueArguments
    #: The dead-letter queue that catches this queue's rejects and poison messages.
    dead_letter_queue: str | None = None


@dataclass(frozen=True, slots=True)
class BindingSpec:
    """A queue bound to an exchange by a routing-key pattern."""

    exchange: str
    queue: str
    routing_key: str


@dataclass(frozen=True, slots=True)
class Topology:
    """Everything the broker needs declared, in declaration order."""

    borough: str
    exchanges: tuple[ExchangeSpec, ...]
    queues: tuple[QueueSpec, ...]
    bindings: tuple[BindingSpec, ...]
    #: Party id → the queue its disclosures land in.
    recipient_queues: Mapping[str, str] = field(default_factory=dict)

    def queue(self, name: str) -> QueueSpec:
        """The queue called ``name``.

        Raises:
            KeyError: the topology has no such queue.
        """
        for spec in self.queues:
            if spec.name == name:
                return spec
        raise KeyError(name)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready description, for ``topology show --json`` and the docs."""
        return {
            "borough": self.borough,
            "exchanges": [{"name": e.name, "type": e.type} for e in self.exchanges],
            "queues": [
                {"name": q.name, "arguments": dict(q.arguments), "dlq": q.dead_letter_queue}
                for q in self.queues
            ],
            "bindings": [
                {"exchange": b.exchange, "queue": b.queue, "routing_key": b.routing_key}
                for b in self.bindings
            ],
            "recipients": dict(self.recipient_queues),
        }


def ingest_queue_name(adapter: str) -> str:
    """The ingest queue of an adapter: ``ingest.<adapter>``."""
    _check_adapter(adapter)
    return f"{INGEST_EXCHANGE}.{adapter}"


def ingest_routing_key(adapter: str) -> str:
    """The routing key a partner publishes with to reach an adapter's ingest queue."""
    _check_adapter(adapter)
    return adapter


def recipient_queue_name(recipient: Recipient, borough: str) -> str:
    """The queue a recipient's disclosures land in.

    Args:
        recipient: the receiving party.
        borough: this broker's borough ONS code, used for a MASH without a borough.
    """
    match recipient.kind:
        case RecipientKind.MASH:
            return f"mash.{recipient.borough or borough}"
        case RecipientKind.PARTNER:
            return f"partner.{recipient.party_id}"
        case RecipientKind.CROSS_BORDER:
            return f"xborder.{recipient.borough or recipient.party_id}"


def disclosure_routing_key(party_id: str, event_type: str) -> str:
    """The routing key of a disclosure: ``<recipient-party>.<event-type>``.

    Raises:
        ConfigurationError: the party id or event type cannot be a routing key.
    """
    _check_party(party_id)
    if not _EVENT_TYPE.fullmatch(event_type):
        raise ConfigurationError(f"event type {event_type!r}: not usable in a routing key")
    return f"{party_id}.{event_type}"


def disclosure_binding_key(party_id: str) -> str:
    """The pattern binding a recipient's queue: every event type addressed to the party."""
    _check_party(party_id)
    return f"{party_id}.#"


def dead_letter_exchange_name(queue: str) -> str:
    """The dead-letter exchange of a queue: ``<queue>.dlx``."""
    return f"{queue}{DEAD_LETTER_EXCHANGE_SUFFIX}"


def dead_letter_queue_name(queue: str) -> str:
    """The dead-letter queue of a queue: ``<queue>.dlq``."""
    return f"{queue}{DEAD_LETTER_QUEUE_SUFFIX}"


def queue_for_dead_letter_queue(name: str) -> str:
    """The queue a name refers to, given either the queue or its ``.dlq``."""
    return name.removesuffix(DEAD_LETTER_QUEUE_SUFFIX)


def parse_recipient(text: str) -> Recipient:
    """A recipient from ``PARTY:KIND[:BOROUGH]``, e.g. ``slough-broker:xborder:E06000039``.

    Raises:
        ConfigurationError: the text is not in that form, or a part is invalid.
    """
    parts = text.split(":")
    if len(parts) not in (2, 3):
        raise ConfigurationError(f"recipient {text!r}: expected PARTY:KIND[:BOROUGH]")
    kinds = ", ".join(k.value for k in RecipientKind)
    try:
        kind = RecipientKind(parts[1])
    except ValueError:
        raise ConfigurationError(f"recipient {text!r}: kind must be one of {kinds}") from None
    return Recipient(parts[0], kind, parts[2] if len(parts) == 3 else None)


def build_topology(
    borough: str,
    recipients: Iterable[Recipient] = (),
    *,
    adapters: Sequence[str] = ADAPTER_NAMES,
    neighbours: Iterable[str] = (),
    delivery_limit: int = 5,
) -> Topology:
    """Describe the whole topology from its parameters. Pure; nothing is declared.

    Args:
        borough: this broker's borough ONS code.
        recipients: the parties that receive disclosures.
        adapters: the adapters partners publish to natively.
        neighbours: ONS codes of neighbouring boroughs with no party id of their own
            in ``recipients``; each gets ``xborder.<ons>`` with the ONS code as party id.
        delivery_limit: deliveries before a message is dead-lettered as poison.

    Raises:
        ConfigurationError: a name is invalid, or two recipients share a party id.
    """
    _check_ons(borough, where="borough")
    if delivery_limit < 1:
        raise ConfigurationError(f"delivery_limit {delivery_limit}: must be at least 1")
    everyone = list(recipients)
    for ons in neighbours:
        _check_ons(ons, where="neighbour")
        everyone.append(Recipient(ons.lower(), RecipientKind.CROSS_BORDER, ons))
    exchanges = [
        ExchangeSpec(INGEST_EXCHANGE, "topic"),
        ExchangeSpec(DISCLOSURES_EXCHANGE, "topic"),
    ]
    routed: list[tuple[str, str, str]] = [
        (INGEST_EXCHANGE, ingest_queue_name(a), ingest_routing_key(a)) for a in adapters
    ]
    recipient_queues: dict[str, str] = {}
    for recipient in everyone:
        if recipient.party_id in recipient_queues:
            raise ConfigurationError(f"recipient {recipient.party_id}: listed twice")
        queue = recipient_queue_name(recipient, borough)
        recipient_queues[recipient.party_id] = queue
        routed.append((DISCLOSURES_EXCHANGE, queue, disclosure_binding_key(recipient.party_id)))
    queues: dict[str, QueueSpec] = {}
    bindings: list[BindingSpec] = []
    for exchange, queue, key in routed:
        if queue not in queues:
            dlq = dead_letter_queue_name(queue)
            queues[queue] = QueueSpec(queue, _work_queue_arguments(queue, delivery_limit), dlq)
            queues[dlq] = QueueSpec(dlq, _dead_letter_queue_arguments())
            exchanges.append(ExchangeSpec(dead_letter_exchange_name(queue), "fanout"))
            bindings.append(BindingSpec(dead_letter_exchange_name(queue), dlq, ""))
        bindings.append(BindingSpec(exchange, queue, key))
    return Topology(
        borough=borough,
        exchanges=tuple(exchanges),
        queues=tuple(queues.values()),
        bindings=tuple(bindings),
        recipient_queues=recipient_queues,
    )


async def declare_topology(
    channel: AbstractChannel, topology: Topology, *, call_timeout: float = 10.0
) -> None:
    """Declare every exchange, queue and binding; declaring again changes nothing.

    Args:
        channel: an open channel; it is closed by the broker if a declaration conflicts.
        topology: what to declare (``build_topology``).
        call_timeout: seconds allowed for each broker call.

    Raises:
        ConfigurationError: an exchange or queue exists with other arguments (the broker
            cannot change a queue's arguments; use a policy or delete and re-declare).
        TransportError: the broker did not answer in time or the connection failed.
    """
    exchanges: dict[str, AbstractExchange] = {}
    for ex in topology.exchanges:
        with _translated(f"exchange {ex.name}"):
            exchanges[ex.name] = await channel.declare_exchange(
                ex.name, ex.type, durable=True, timeout=call_timeout
            )
    queues: dict[str, AbstractQueue] = {}
    for q in topology.queues:
        with _translated(f"queue {q.name}"):
            queues[q.name] = await channel.declare_queue(
                q.name, durable=True, arguments=dict(q.arguments), timeout=call_timeout
            )
    for b in topology.bindings:
        with _translated(f"binding {b.exchange} -> {b.queue} ({b.routing_key!r})"):
            await queues[b.queue].bind(exchanges[b.exchange], b.routing_key, timeout=call_timeout)


async def ensure_topology(settings: AmqpSettings, topology: Topology) -> None:
    """Connect with ``settings``, declare ``topology``, and disconnect.

    Raises:
        ConfigurationError: a declaration conflicts with what the broker already has.
        TransportError: the broker is unreachable or did not answer in time.
    """
    # Imported here: the messaging package imports this module for its names.
    from broker.messaging.connection import connect  # noqa: PLC0415

    connection = await connect(settings, name="topology")
    try:
        with _translated("channel"):
            channel = await connection.channel(publisher_confirms=False)
        await declare_topology(channel, topology, call_timeout=settings.timeout_seconds)
    finally:
        await connection.close()


def _work_queue_arguments(queue: str, delivery_limit: int) -> dict[str, str | int]:
    return {
        "x-queue-type": "quorum",
        "x-delivery-limit": delivery_limit,
        "x-dead-letter-exchange": dead_letter_exchange_name(queue),
        # At-least-once dead-lettering keeps a message until the DLQ confirms it; the
        # broker only allows it with reject-publish overflow.
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }


def _dead_letter_queue_arguments() -> dict[str, str | int]:
    # reject-publish here too: a full DLQ makes the broker retry dead-lettering rather
    # than drop the oldest dead letter when an operator adds a length-limit policy.
    return {"x-queue-type": "quorum", "x-overflow": "reject-publish"}


@contextmanager
def _translated(what: str) -> Iterator[None]:
    """Turn a library error during one declaration into a located broker error."""
    try:
        yield
    except aiormq.exceptions.ChannelPreconditionFailed as exc:
        raise ConfigurationError(f"{what}: exists with different arguments ({exc})") from exc
    except TimeoutError as exc:
        raise TransportError(f"{what}: no answer from RabbitMQ in time") from exc
    except (aiormq.exceptions.AMQPError, ConnectionError, RuntimeError) as exc:
        raise TransportError(f"{what}: declaration failed ({exc})") from exc


def _check_party(party_id: str) -> None:
    if not _PARTY_ID.fullmatch(party_id):
        raise ConfigurationError(
            f"party id {party_id!r}: expected lower-case letters, digits and hyphens"
        )


def _check_ons(code: str, *, where: str) -> None:
    if not _ONS_CODE.fullmatch(code):
        raise ConfigurationError(f"{where}: {code!r} is not an ONS code such as E06000040")


def _check_adapter(adapter: str) -> None:
    if not _ADAPTER.fullmatch(adapter):
        raise ConfigurationError(f"adapter {adapter!r}: not a valid adapter name")
