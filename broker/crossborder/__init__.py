"""Cross-border links: neighbouring boroughs' brokers joined by RabbitMQ shovels, both sides."""

from broker.crossborder.backlog import outbox_pending_by_recipient
from broker.crossborder.canonical import (
    SOURCE_SYSTEM,
    IncompleteEvent,
    ReceivedEvent,
    canonical_event,
)
from broker.crossborder.completeness import (
    INCOMPLETE_CODE,
    check_neighbour_rules,
    missing_for_receiver,
)
from broker.crossborder.keyexchange import (
    MAX_JWKS_BYTES,
    import_neighbour_keys,
    read_jwks_file,
)
from broker.crossborder.links import (
    NOT_LINKED,
    LinkStatus,
    check_neighbour,
    link,
    link_statuses,
    outbound_topology,
    shovel_definition,
    unlink,
)
from broker.crossborder.management import Management, QueueDepth, ShovelState, vhost_of
from broker.crossborder.neighbours import (
    RECEIVE_CHANNEL,
    RECEIVE_QUEUE,
    RECEIVE_ROUTING_KEY,
    Neighbour,
    NotANeighbour,
    neighbour_for,
    neighbours,
    receiving_topology,
    shovel_name,
)
from broker.crossborder.receiver import (
    NOT_A_NEIGHBOUR,
    UNAUDITABLE_JTI,
    CrossBorderReceiver,
    Receipt,
    ReceiptOutcome,
)
from broker.crossborder.secrets import describe_uri, link_uri, read_uri_file, validate_uri
from broker.crossborder.subscriptions import OWN_AREA_ROLES, Subscription, subscriptions_of

__all__ = [
    "INCOMPLETE_CODE",
    "MAX_JWKS_BYTES",
    "NOT_A_NEIGHBOUR",
    "NOT_LINKED",
    "OWN_AREA_ROLES",
    "RECEIVE_CHANNEL",
    "RECEIVE_QUEUE",
    "RECEIVE_ROUTING_KEY",
    "SOURCE_SYSTEM",
    "UNAUDITABLE_JTI",
    "CrossBorderReceiver",
    "IncompleteEvent",
    "LinkStatus",
    "Management",
    "Neighbour",
    "NotANeighbour",
    "QueueDepth",
    "Receipt",
    "ReceiptOutcome",
    "ReceivedEvent",
    "ShovelState",
    "Subscription",
    "canonical_event",
    "check_neighbour",
    "check_neighbour_rules",
    "describe_uri",
    "import_neighbour_keys",
    "link",
    "link_statuses",
    "link_uri",
    "missing_for_receiver",
    "neighbour_for",
    "neighbours",
    "outbound_topology",
    "outbox_pending_by_recipient",
    "read_jwks_file",
    "read_uri_file",
    "receiving_topology",
    "shovel_definition",
    "shovel_name",
    "subscriptions_of",
    "unlink",
    "validate_uri",
    "vhost_of",
]
