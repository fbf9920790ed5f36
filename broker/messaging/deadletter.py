"""Dead-letter queues for operators: what is in one and why, and re-driving it to its queue.

Listing reads the messages without removing them (they are fetched unacknowledged and
returned when the channel closes) and reports ids, types and reasons, never bodies.
Re-driving moves messages from ``<queue>.dlq`` straight to ``<queue>`` through the default
exchange, not through the original topic exchange, so no other queue bound to that
exchange receives a second copy.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage, AbstractQueue
from aio_pika.exceptions import ChannelNotFoundEntity

from broker.exceptions import ConfigurationError, TransportError
from broker.logging import get_logger
from broker.messaging.connection import AMQP_ERRORS, connect
from broker.messaging.consumer import (
    DEAD_LETTER_QUEUE_HEADER,
    DEAD_LETTER_REASON_HEADER,
    DEAD_LETTERED_AT_HEADER,
)
from broker.messaging.publisher import AmqpPublish, Publisher
from broker.settings import AmqpSettings
from broker.topology import dead_letter_queue_name, queue_for_dead_letter_queue

__all__ = [
    "REDRIVE_COUNT_HEADER",
    "DeadLetter",
    "DeadLetterReport",
    "RedriveResult",
    "list_dead_letters",
    "redrive",
    "redrive_returned",
    "returned_by_the_broker",
]

_log = get_logger("messaging.deadletter")

#: How many times a message has been re-driven from its dead-letter queue.
REDRIVE_COUNT_HEADER = "x-mash-redrive-count"

# Dead-letter headers that describe the last death only; a re-driven message sheds them.
_LAST_DEATH_HEADERS = (
    DEAD_LETTER_REASON_HEADER,
    DEAD_LETTER_QUEUE_HEADER,
    DEAD_LETTERED_AT_HEADER,
    "x-delivery-count",
)
_REDRIVE_BATCH = 100


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One message in a dead-letter queue, described without its body.

    Attributes:
        message_id: the AMQP message id.
        event_type: the CloudEvents ``type`` header.
        reason: why it was dead-lettered last: the handler's reason for a rejected message,
            else the broker's (``delivery_limit``, ``rejected``, ``expired``, ``maxlen``).
        queue: the queue it was dead-lettered from.
        deaths: how many times it has been dead-lettered in all.
        redrives: how many times it has been re-driven before.
        dead_lettered_at: when it was last dead-lettered, if known.
        size: the body's length in bytes.
    """

    message_id: str | None
    event_type: str | None
    reason: str
    queue: str | None
    deaths: int
    redrives: int
    dead_lettered_at: datetime | None
    size: int

    @classmethod
    def from_headers(cls, message: AbstractIncomingMessage) -> DeadLetter:
        """Describe a dead-lettered message from its headers."""
        headers: Mapping[str, Any] = message.headers or {}
        deaths = _deaths(headers)
        latest = deaths[0] if deaths else {}
        own_reason = _text(headers.get(DEAD_LETTER_REASON_HEADER))
        death_count = sum(_int(d.get("count")) for d in deaths) + (1 if own_reason else 0)
        when = _when(headers.get(DEAD_LETTERED_AT_HEADER)) if own_reason else None
        return cls(
            message_id=message.message_id,
            event_type=_text(headers.get("ce-type")),
            reason=own_reason or _text(latest.get("reason")) or "unknown",
            queue=_text(headers.get(DEAD_LETTER_QUEUE_HEADER))
            if own_reason
            else _text(latest.get("queue")),
            deaths=death_count,
            redrives=_int(headers.get(REDRIVE_COUNT_HEADER)),
            dead_lettered_at=when or _when(latest.get("time")),
            size=len(message.body),
        )


@dataclass(frozen=True, slots=True)
class DeadLetterReport:
    """What a dead-letter queue holds.

    Attributes:
        queue: the work queue.
        dead_letter_queue: its dead-letter queue.
        total: messages in the dead-letter queue when it was read.
        letters: the messages read (at most the limit asked for), oldest first.
    """

    queue: str
    dead_letter_queue: str
    total: int
    letters: tuple[DeadLetter, ...]

    @property
    def by_reason(self) -> dict[str, int]:
        """How many of the messages read were dead-lettered for each reason."""
        return dict(Counter(letter.reason for letter in self.letters))


@dataclass(frozen=True, slots=True)
class RedriveResult:
    """What a re-drive did.

    Attributes:
        queue: the queue messages were moved back to.
        moved: messages confirmed on the queue and removed from the dead-letter queue.
        failed: messages not confirmed; they stay in the dead-letter queue.
        remaining: messages left in the dead-letter queue afterwards.
    """

    queue: str
    moved: int
    failed: int
    remaining: int


async def list_dead_letters(
    settings: AmqpSettings, queue: str, *, limit: int = 1000
) -> DeadLetterReport:
    """Read up to ``limit`` messages of a queue's dead-letter queue, leaving them there.

    Args:
        settings: AMQP settings.
        queue: the work queue, or its ``.dlq`` name.
        limit: the most messages to read.

    Raises:
        ConfigurationError: the dead-letter queue does not exist.
        TransportError: the broker is unreachable or too slow.
    """
    work_queue = queue_for_dead_letter_queue(queue)
    dlq_name = dead_letter_queue_name(work_queue)
    connection = await connect(settings, name="deadletter list")
    try:
        channel = await _open(connection, settings)
        dlq = await _existing_queue(channel, dlq_name, settings)
        total = _message_count(dlq)
        # Held unacknowledged, each get returns the next message; all are put back below.
        held = await _take(dlq, min(limit, total), settings)
        letters = tuple(DeadLetter.from_headers(message) for message in held)
        if held:
            with _translated(f"returning messages to {dlq_name}"):
                await held[-1].nack(multiple=True, requeue=True)
            await _settled(channel, dlq_name, total, settings)
    finally:
        await _close(connection)
    return DeadLetterReport(work_queue, dlq_name, total, letters)


async def redrive(
    settings: AmqpSettings,
    queue: str,
    *,
    limit: int | None = None,
    select: Callable[[DeadLetter], bool] | None = None,
) -> RedriveResult:
    """Move messages from a queue's dead-letter queue back onto the queue.

    Each message is published with confirms (on a publishing connection of its own) and
    removed from the dead-letter queue only once confirmed. Only the messages present
    when it starts are moved, so a message that dies again is not re-driven in a loop.

    Args:
        settings: AMQP settings.
        queue: the work queue, or its ``.dlq`` name.
        limit: the most messages to look at; all of them if None.
        select: which messages to move; the others stay in the dead-letter queue, in
            their order. All of them if None.

    Raises:
        ConfigurationError: the queue or its dead-letter queue does not exist.
        TransportError: the broker is unreachable or too slow.
    """
    work_queue = queue_for_dead_letter_queue(queue)
    dlq_name = dead_letter_queue_name(work_queue)
    moved = failed = 0
    kept: list[AbstractIncomingMessage] = []
    connection = await connect(settings, name="deadletter redrive")
    try:
        channel = await _open(connection, settings)
        dlq = await _existing_queue(channel, dlq_name, settings)
        await _existing_queue(channel, work_queue, settings)
        budget = _message_count(dlq) if limit is None else min(limit, _message_count(dlq))
        async with Publisher(settings, name="deadletter redrive publisher") as publisher:
            while moved + failed + len(kept) < budget and not failed:
                taken = await _take(dlq, min(_REDRIVE_BATCH, budget - moved - len(kept)), settings)
                if not taken:
                    break
                # Messages not chosen are held unacknowledged (so the next read passes
                # them) and returned to the dead-letter queue at the end.
                wanted = [select is None or select(DeadLetter.from_headers(m)) for m in taken]
                batch = [m for m, want in zip(taken, wanted, strict=True) if want]
                kept.extend(m for m, want in zip(taken, wanted, strict=True) if not want)
                if not batch:
                    continue
                results = await publisher.publish_amqp(
                    [AmqpPublish("", work_queue, _redriven(m)) for m in batch]
                )
                for message, result in zip(batch, results, strict=True):
                    with _translated(f"settling {dlq_name}"):
                        if result.confirmed:
                            await message.ack()
                            moved += 1
                        else:
                            await message.nack(requeue=True)
                            failed += 1
                            _log.warning(
                                "redrive_failed",
                                queue=work_queue,
                                message_id=result.message_id,
                                detail=result.detail,
                            )
        for message in kept:
            with _translated(f"returning messages to {dlq_name}"):
                await message.nack(requeue=True)
        if kept:
            await _settled(channel, dlq_name, len(kept), settings)
        remaining = _message_count(await _existing_queue(channel, dlq_name, settings))
    finally:
        await _close(connection)
    if moved or failed or select is None:
        _log.info("redrive_done", queue=work_queue, moved=moved, failed=failed, remaining=remaining)
    return RedriveResult(work_queue, moved, failed, remaining)


def returned_by_the_broker(max_redrives: int) -> Callable[[DeadLetter], bool]:
    """Chooses the letters RabbitMQ dead-lettered for their delivery count alone.

    RabbitMQ before 4.3 counts a delivery returned by a lost connection or a killed
    consumer towards a quorum queue's delivery limit, so sound messages reach the
    dead-letter queue (reason ``delivery_limit``) when consumers crash or links flap.
    Those may go round again, at most ``max_redrives`` times in all; a message our own
    consumer refused (any other reason) stays for an operator.
    """

    def chosen(letter: DeadLetter) -> bool:
        return letter.reason == "delivery_limit" and letter.redrives < max_redrives

    return chosen


async def redrive_returned(
    settings: AmqpSettings, queues: Iterable[str], *, max_redrives: int
) -> list[RedriveResult]:
    """Re-drive, in each queue's dead-letter queue, what the broker dead-lettered by count.

    See :func:`returned_by_the_broker`. A queue whose dead-letter queue is missing or
    empty is passed over (and has no result).

    Raises:
        TransportError: the broker is unreachable or too slow.
    """
    waiting: list[str] = []
    connection = await connect(settings, name="deadletter sweep")
    try:
        channel = await _open(connection, settings)
        for queue in queues:
            # One passive declare per queue on one connection; a re-drive (two connections
            # of its own) only where there are letters to look at.
            try:
                dlq = await _existing_queue(channel, dead_letter_queue_name(queue), settings)
            except ConfigurationError:
                channel = await _open(connection, settings)  # a failed declare closes it
                continue
            if _message_count(dlq):
                waiting.append(queue)
    finally:
        await _close(connection)
    chosen = returned_by_the_broker(max_redrives)
    results = []
    for queue in waiting:
        try:
            results.append(await redrive(settings, queue, select=chosen))
        except ConfigurationError:
            continue
    return results


async def _take(
    dlq: AbstractQueue, count: int, settings: AmqpSettings
) -> list[AbstractIncomingMessage]:
    taken: list[AbstractIncomingMessage] = []
    with _translated(f"reading {dlq.name}"):
        while len(taken) < count:
            message = await dlq.get(no_ack=False, fail=False, timeout=settings.timeout_seconds)
            if message is None:
                break
            taken.append(message)
    return taken


async def _settled(
    channel: AbstractChannel, name: str, expected: int, settings: AmqpSettings
) -> None:
    """Wait briefly until returned messages are ready again.

    A quorum queue applies returns asynchronously; waiting here means a ``redrive`` run
    straight after a ``list`` sees every message.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + min(2.0, settings.timeout_seconds)
    while loop.time() < deadline:
        if _message_count(await _existing_queue(channel, name, settings)) >= expected:
            return
        await asyncio.sleep(0.02)


def _redriven(message: AbstractIncomingMessage) -> aio_pika.Message:
    headers = {k: v for k, v in (message.headers or {}).items() if k not in _LAST_DEATH_HEADERS}
    headers[REDRIVE_COUNT_HEADER] = _int(headers.get(REDRIVE_COUNT_HEADER)) + 1
    return aio_pika.Message(
        message.body,
        headers=headers,
        content_type=message.content_type,
        content_encoding=message.content_encoding,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        correlation_id=message.correlation_id,
        message_id=message.message_id or uuid.uuid4().hex,
        timestamp=message.timestamp,
        type=message.type,
        app_id=message.app_id,
    )


async def _open(connection: AbstractConnection, settings: AmqpSettings) -> AbstractChannel:
    with _translated("opening a channel"):
        async with asyncio.timeout(settings.timeout_seconds):
            return await connection.channel(publisher_confirms=False)


async def _existing_queue(
    channel: AbstractChannel, name: str, settings: AmqpSettings
) -> AbstractQueue:
    try:
        return await channel.declare_queue(name, passive=True, timeout=settings.timeout_seconds)
    except ChannelNotFoundEntity:
        raise ConfigurationError(f"queue {name} does not exist") from None
    except AMQP_ERRORS as exc:
        raise TransportError(f"queue {name}: {type(exc).__name__}: {exc}") from exc


def _message_count(queue: AbstractQueue) -> int:
    result = queue.declaration_result
    return int(getattr(result, "message_count", 0) or 0)


async def _close(connection: AbstractConnection) -> None:
    try:
        async with asyncio.timeout(5):
            await connection.close()
    except AMQP_ERRORS:
        return


@contextmanager
def _translated(what: str) -> Iterator[None]:
    """Turn a library error while reading or settling into a located TransportError."""
    try:
        yield
    except AMQP_ERRORS as exc:
        raise TransportError(f"{what}: {type(exc).__name__}: {exc}") from exc


def _deaths(headers: Mapping[str, Any]) -> Sequence[Mapping[str, Any]]:
    value = headers.get("x-death")
    if not isinstance(value, list):
        return ()
    return [d for d in value if isinstance(d, Mapping)]


def _text(value: object) -> str | None:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value if isinstance(value, str) and value else None


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _when(value: object) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    return None
