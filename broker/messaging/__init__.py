"""RabbitMQ messaging: confirmed publishing, consuming with explicit outcomes, dead letters."""

from __future__ import annotations

from broker.messaging.connection import (
    AMQP_ERRORS,
    Backoff,
    connect,
    connect_with_backoff,
    describe_url,
    retry_while_unavailable,
)
from broker.messaging.consumer import (
    DEAD_LETTER_QUEUE_HEADER,
    DEAD_LETTER_REASON_HEADER,
    DEAD_LETTERED_AT_HEADER,
    HOLD_MAX_WAIT,
    Consumer,
    ConsumerStats,
    Handler,
    ReceivedMessage,
)
from broker.messaging.deadletter import (
    REDRIVE_COUNT_HEADER,
    DeadLetter,
    DeadLetterReport,
    RedriveResult,
    list_dead_letters,
    redrive,
    redrive_returned,
    returned_by_the_broker,
)
from broker.messaging.outcomes import RejectMessage, RetryLater
from broker.messaging.publisher import (
    CE_HEADERS,
    AmqpPublish,
    OutgoingMessage,
    Publisher,
    PublishResult,
    PublishStatus,
)

__all__ = [
    "AMQP_ERRORS",
    "CE_HEADERS",
    "DEAD_LETTERED_AT_HEADER",
    "DEAD_LETTER_QUEUE_HEADER",
    "DEAD_LETTER_REASON_HEADER",
    "HOLD_MAX_WAIT",
    "REDRIVE_COUNT_HEADER",
    "AmqpPublish",
    "Backoff",
    "Consumer",
    "ConsumerStats",
    "DeadLetter",
    "DeadLetterReport",
    "Handler",
    "OutgoingMessage",
    "PublishResult",
    "PublishStatus",
    "Publisher",
    "ReceivedMessage",
    "RedriveResult",
    "RejectMessage",
    "RetryLater",
    "connect",
    "connect_with_backoff",
    "describe_url",
    "list_dead_letters",
    "redrive",
    "redrive_returned",
    "retry_while_unavailable",
    "returned_by_the_broker",
]
