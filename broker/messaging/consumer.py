"""Consuming one queue with manual acks, explicit outcomes, reconnection and a graceful stop.

The handler decides each message's fate by how it returns::

    returns normally        → ack (call it only once the effect is durable)
    raises RejectMessage    → dead-letter now, the reason in a header of the DLQ copy
    raises RetryLater       → requeue; the queue's delivery limit dead-letters poison
    raises RetryLater from a TransportError (an outage) → hold the message and retry it
                              here with back-off, so an outage uses up no deliveries
    raises anything else    → logged, then requeued as RetryLater
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aio_pika
import aiormq
from aio_pika.abc import AbstractChannel, AbstractConnection
from aiormq.abc import DeliveredMessage

from broker.exceptions import BrokerError, TransportError
from broker.logging import get_logger
from broker.messaging.connection import AMQP_ERRORS, Backoff, connect
from broker.messaging.outcomes import RejectMessage, RetryLater
from broker.messaging.publisher import AmqpPublish, Publisher
from broker.messaging.settlements import Settlements
from broker.settings import AmqpSettings
from broker.topology import dead_letter_exchange_name

__all__ = [
    "DEAD_LETTERED_AT_HEADER",
    "DEAD_LETTER_QUEUE_HEADER",
    "DEAD_LETTER_REASON_HEADER",
    "HOLD_MAX_WAIT",
    "Consumer",
    "ConsumerStats",
    "Handler",
    "ReceivedMessage",
]

_log = get_logger("messaging.consumer")

#: The longest a held message waits before its next try (seconds), unless a success first.
HOLD_MAX_WAIT = 5.0

#: Headers the consumer adds to the dead-lettered copy of a rejected message.
DEAD_LETTER_REASON_HEADER = "x-mash-dead-letter-reason"
DEAD_LETTER_QUEUE_HEADER = "x-mash-dead-letter-queue"
DEAD_LETTERED_AT_HEADER = "x-mash-dead-lettered-at"


@dataclass(frozen=True, slots=True)
class ReceivedMessage:
    """One delivery, as a handler sees it.

    Attributes:
        queue: the queue it came from.
        body: the payload bytes.
        message_id: the AMQP message id (the CloudEvents ``id`` for our own messages).
        routing_key: the routing key it was published with.
        exchange: the exchange it was published to.
        headers: the AMQP headers (CloudEvents attributes among them).
        content_type: the AMQP content type.
        correlation_id: the AMQP correlation id.
        redelivered: the broker delivered it before (to this or another consumer).
        delivery_count: earlier deliveries of it that were not acked.
        user_id: the AMQP ``user_id`` property, which RabbitMQ checks against the user
            that published the message (so it authenticates the sender).
        app_id: the AMQP ``app_id`` property (not authenticated).
    """

    queue: str
    body: bytes
    message_id: str | None
    routing_key: str
    exchange: str
    headers: Mapping[str, Any]
    content_type: str | None
    correlation_id: str | None
    redelivered: bool
    delivery_count: int
    user_id: str | None = None
    app_id: str | None = None

    @property
    def event_type(self) -> str | None:
        """The CloudEvents ``type`` header, if any."""
        value = self.headers.get("ce-type")
        return value if isinstance(value, str) else None

    @classmethod
    def from_delivery(cls, queue: str, message: DeliveredMessage) -> ReceivedMessage:
        """Wrap a delivery as the AMQP client gives it."""
        properties = message.header.properties
        headers = dict(properties.headers or {})
        count = headers.get("x-delivery-count")
        redelivered = bool(message.redelivered)
        return cls(
            queue=queue,
            body=message.body,
            message_id=properties.message_id,
            routing_key=message.routing_key or "",
            exchange=message.exchange or "",
            headers=headers,
            content_type=properties.content_type,
            correlation_id=properties.correlation_id,
            redelivered=redelivered,
            delivery_count=count if isinstance(count, int) else int(redelivered),
            user_id=properties.user_id,
            app_id=properties.app_id,
        )


#: A message handler: return to ack, raise RejectMessage or RetryLater to say otherwise.
Handler = Callable[[ReceivedMessage], Awaitable[None]]


@dataclass(slots=True)
class ConsumerStats:
    """Counts since the consumer was made, for tests, logs and metrics."""

    acked: int = 0
    rejected: int = 0
    retried: int = 0
    #: Retries in place while the handler's database or broker was unavailable.
    held: int = 0
    errors: int = 0
    reconnects: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)


class Consumer:
    """Consumes one queue over a connection of its own until stopped.

    Run it as a task: ``task = asyncio.create_task(consumer.run())``, then
    ``await consumer.wait_ready()``; ``await consumer.stop()`` lets handlers in progress
    finish, and anything not acked returns to the queue.
    """

    def __init__(
        self,
        settings: AmqpSettings,
        queue: str,
        handler: Handler,
        *,
        name: str | None = None,
        prefetch: int | None = None,
        backoff: Backoff | None = None,
        hold_backoff: Backoff | None = None,
        stop_timeout: float | None = None,
    ) -> None:
        """Prepare a consumer; nothing connects until ``run``.

        Args:
            settings: AMQP settings; ``prefetch`` and ``timeout_seconds`` apply.
            queue: the queue to consume (it must exist; see ``broker.topology``).
            handler: called once per delivery, concurrently up to the prefetch.
            name: the connection's name as RabbitMQ shows it; ``consumer <queue>`` if None.
            prefetch: unacked deliveries at once; ``settings.prefetch`` if None.
            backoff: the reconnection schedule.
            hold_backoff: the schedule of retries of a message held through an outage
                (at most ``HOLD_MAX_WAIT`` seconds apart if None); any handler's success
                cuts the wait short.
            stop_timeout: seconds ``stop`` waits for handlers; ``timeout_seconds`` if None.
        """
        self._settings = settings
        self._queue = queue
        self._handler = handler
        self._name = name or f"consumer {queue}"
        self._prefetch = prefetch or settings.prefetch
        self._backoff = backoff or Backoff()
        # Holding a message through an outage: short waits, and any success wakes them all.
        self._hold_backoff = hold_backoff or Backoff(maximum=HOLD_MAX_WAIT)
        self._resumed = asyncio.Event()
        self._timeout = settings.timeout_seconds
        self._stop_timeout = settings.timeout_seconds if stop_timeout is None else stop_timeout
        self._stopping = asyncio.Event()
        self._ready = asyncio.Event()
        self._finished = asyncio.Event()
        self._running = False
        self._in_flight: set[asyncio.Task[Any]] = set()
        self._dead_letters: Publisher | None = None
        self.stats = ConsumerStats()

    @property
    def queue(self) -> str:
        """The queue this consumer reads."""
        return self._queue

    @property
    def in_flight(self) -> int:
        """Deliveries whose handler is running now."""
        return len(self._in_flight)

    async def wait_ready(self, within: float | None = None) -> None:
        """Wait until the consumer is subscribed (again, after a reconnection).

        Args:
            within: seconds to wait; ``timeout_seconds`` if None.

        Raises:
            TransportError: not subscribed in time.
        """
        try:
            async with asyncio.timeout(self._timeout if within is None else within):
                await self._ready.wait()
        except TimeoutError:
            raise TransportError(f"consumer of {self._queue}: not subscribed in time") from None

    async def run(self) -> None:
        """Consume until ``stop``; reconnect with back-off whenever the connection fails.

        A consumer runs once: after ``stop`` make a new one.
        """
        if self._running:
            raise RuntimeError(f"consumer of {self._queue} is already running")
        self._running = True
        self._finished.clear()
        attempt = 0
        try:
            while not self._stopping.is_set():
                if await self._session():
                    attempt = 0
                if self._stopping.is_set():
                    break
                wait = self._backoff.delay(attempt)
                attempt += 1
                self.stats.reconnects += 1
                _log.warning(
                    "consumer_reconnecting", queue=self._queue, attempt=attempt, wait=round(wait, 3)
                )
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await self._stopping.wait()
        finally:
            if self._dead_letters is not None:
                await self._dead_letters.close()
                self._dead_letters = None
            self._running = False
            self._finished.set()

    async def stop(self) -> None:
        """Stop taking messages, let handlers in progress finish, and disconnect."""
        self._stopping.set()
        if self._running:
            await self._finished.wait()

    async def _session(self) -> bool:
        """One connection: subscribe, consume until lost or stopped. True if it subscribed."""
        try:
            connection = await connect(self._settings, name=self._name)
        except TransportError as exc:
            _log.warning("consumer_connect_failed", queue=self._queue, error=str(exc))
            return False
        lost = asyncio.Event()

        def on_close(*_: object) -> None:
            lost.set()

        connection.close_callbacks.add(on_close)
        subscribed = False
        underlay: aiormq.abc.AbstractChannel | None = None
        settlements: Settlements | None = None
        tag: str | None = None
        try:
            channel = await self._channel(connection, on_close)
            await channel.declare_queue(self._queue, passive=True, timeout=self._timeout)
            # Deliveries straight from the AMQP client's channel: aio-pika's message object
            # cost more to make than the rest of taking a delivery.
            underlay = await channel.get_underlay_channel()
            settlements = Settlements(underlay, queue=self._queue)
            consuming = await underlay.basic_consume(
                self._queue,
                functools.partial(self._deliver, settlements=settlements),
                timeout=self._timeout,
            )
            tag = consuming.consumer_tag
            subscribed = True
            self._ready.set()
            _log.info("consumer_started", queue=self._queue, prefetch=self._prefetch)
            await _either(lost, self._stopping)
        except AMQP_ERRORS as exc:
            _log.warning(
                "consumer_session_failed", queue=self._queue, error=f"{type(exc).__name__}: {exc}"
            )
        except Exception as exc:  # noqa: BLE001 - a library fault must not end the consumer
            _log.error("consumer_session_error", queue=self._queue, error=type(exc).__name__)
        finally:
            self._ready.clear()
            if self._stopping.is_set() and not lost.is_set() and underlay and tag:
                await self._drain(underlay, tag)
            await self._abandon_in_flight()
            if underlay is not None and settlements is not None and not lost.is_set():
                # Settlements wait in the connection's write queue (see ``Settlements``),
                # which closing the connection drops; the channel's Close travels behind
                # them and is answered only once the broker has read them.
                with contextlib.suppress(*AMQP_ERRORS):
                    async with asyncio.timeout(self._timeout):
                        await settlements.flush()
                        await underlay.close()
            with contextlib.suppress(*AMQP_ERRORS):
                async with asyncio.timeout(self._timeout):
                    await connection.close()
        if lost.is_set() and not self._stopping.is_set():
            _log.warning("consumer_connection_lost", queue=self._queue)
        return subscribed

    async def _channel(
        self, connection: AbstractConnection, on_close: Callable[..., None]
    ) -> AbstractChannel:
        async with asyncio.timeout(self._timeout):
            channel = await connection.channel(publisher_confirms=False)
        channel.close_callbacks.add(on_close)
        await channel.set_qos(prefetch_count=self._prefetch, timeout=self._timeout)
        return channel

    async def _drain(self, channel: aiormq.abc.AbstractChannel, tag: str) -> None:
        """Stop deliveries, then give handlers in progress time to finish and ack."""
        with contextlib.suppress(*AMQP_ERRORS):
            await channel.basic_cancel(tag, timeout=self._timeout)
        if self._in_flight:
            await asyncio.wait(set(self._in_flight), timeout=self._stop_timeout)

    async def _abandon_in_flight(self) -> None:
        """Cancel handlers still running: their messages return to the queue unacked."""
        pending = [task for task in self._in_flight if not task.done()]
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=self._timeout)

    async def _deliver(self, message: DeliveredMessage, *, settlements: Settlements) -> None:
        # First, before any await: the channel's deliveries are tracked in tag order.
        settlements.delivered(_tag(message))
        task = asyncio.current_task()
        if task is not None:
            self._in_flight.add(task)
        try:
            await self._process(message, settlements)
        finally:
            if task is not None:
                self._in_flight.discard(task)

    async def _process(self, message: DeliveredMessage, settlements: Settlements) -> None:
        received = ReceivedMessage.from_delivery(self._queue, message)
        held = 0
        while True:
            try:
                await self._handler(received)
            except RejectMessage as exc:
                self.stats.rejected += 1
                self.stats.by_reason[exc.reason] = self.stats.by_reason.get(exc.reason, 0) + 1
                await self._dead_letter(message, settlements, exc.reason)
            except RetryLater as exc:
                if isinstance(exc.__cause__, TransportError) and await self._hold(
                    message, held, exc.reason
                ):
                    held += 1
                    continue
                self.stats.retried += 1
                _log.info(
                    "message_retry",
                    queue=self._queue,
                    message_id=received.message_id,
                    deliveries=received.delivery_count + 1,
                    reason=exc.reason,
                )
                await self._settle(message, settlements.nack(_tag(message)))
            except Exception as exc:  # noqa: BLE001 - any other failure is treated as transient
                self.stats.errors += 1
                # Only our own errors are known to carry no personal data in their text.
                detail = str(exc) if isinstance(exc, BrokerError) else None
                _log.warning(
                    "handler_failed",
                    queue=self._queue,
                    message_id=received.message_id,
                    error=type(exc).__name__,
                    detail=detail,
                )
                await self._settle(message, settlements.nack(_tag(message)))
            else:
                self._succeeded()
                settlements.ack(_tag(message))
                self.stats.acked += 1
            return

    async def _hold(self, message: DeliveredMessage, held: int, reason: str) -> bool:
        """Keep a message whose handler met an outage (database or broker unavailable) and
        say whether to try it again here, after a back-off.

        Requeueing it instead would count a delivery each time, and an outage of a few
        seconds would use up the queue's delivery limit, which is for poison messages: the
        broker would dead-letter sound messages. Held, a message costs one delivery however
        long the outage lasts. Not while stopping, nor once its channel is gone (the broker
        has then requeued it already).
        """
        if self._stopping.is_set() or message.channel.is_closed:
            return False
        wait = self._hold_backoff.delay(held)
        self.stats.held += 1
        _log.info(
            "message_held",
            queue=self._queue,
            message_id=_message_id(message),
            attempt=held + 1,
            wait=round(wait, 3),
            reason=reason,
        )
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait):
                await _either(self._stopping, self._resumed)
        return not self._stopping.is_set()

    def _succeeded(self) -> None:
        """A handler's effect was stored: what it depends on is back, so every message held
        through the outage is tried again now rather than after its back-off."""
        resumed, self._resumed = self._resumed, asyncio.Event()
        resumed.set()

    async def _dead_letter(
        self, message: DeliveredMessage, settlements: Settlements, reason: str
    ) -> None:
        """Put a copy carrying the reason on the dead-letter exchange, then ack the original.

        If the copy is not confirmed (no such exchange, broker refused), reject the original
        instead: the broker dead-letters it without the reason header, and the log keeps
        the reason against the message id.
        """
        message_id = _message_id(message)
        _log.warning("message_rejected", queue=self._queue, message_id=message_id, reason=reason)
        copy = _dead_letter_copy(message, self._queue, reason)
        publisher = self._dead_letter_publisher()
        try:
            (result,) = await publisher.publish_amqp(
                [
                    AmqpPublish(
                        dead_letter_exchange_name(self._queue), message.routing_key or "", copy
                    )
                ]
            )
        except TransportError as exc:
            _log.warning(
                "dead_letter_copy_failed",
                queue=self._queue,
                message_id=message_id,
                error=str(exc),
            )
            await self._settle(message, settlements.reject(_tag(message)))
            return
        if result.confirmed:
            settlements.ack(_tag(message))
        else:
            _log.warning(
                "dead_letter_copy_failed",
                queue=self._queue,
                message_id=message_id,
                error=result.detail,
            )
            await self._settle(message, settlements.reject(_tag(message)))

    def _dead_letter_publisher(self) -> Publisher:
        if self._dead_letters is None:
            self._dead_letters = Publisher(
                self._settings, name=f"{self._name} dead-letters", backoff=self._backoff
            )
        return self._dead_letters

    async def _settle(self, message: DeliveredMessage, settling: Awaitable[None]) -> None:
        """Send an ack, nack or reject; if the channel is gone the broker requeues anyway."""
        try:
            async with asyncio.timeout(self._timeout):
                await settling
        except AMQP_ERRORS as exc:
            _log.warning(
                "settle_failed",
                queue=self._queue,
                message_id=_message_id(message),
                error=type(exc).__name__,
            )


def _message_id(message: DeliveredMessage) -> str | None:
    return message.header.properties.message_id


def _tag(message: DeliveredMessage) -> int:
    tag = message.delivery_tag
    if tag is None:  # pragma: no cover - a consumer's deliveries always carry one
        raise TransportError("a delivery without a delivery tag")
    return tag


def _dead_letter_copy(message: DeliveredMessage, queue: str, reason: str) -> aio_pika.Message:
    properties = message.header.properties
    headers = dict(properties.headers or {})
    # The count belongs to the queue it was delivered from; a re-drive starts afresh.
    headers.pop("x-delivery-count", None)
    headers[DEAD_LETTER_REASON_HEADER] = reason
    headers[DEAD_LETTER_QUEUE_HEADER] = queue
    headers[DEAD_LETTERED_AT_HEADER] = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    return aio_pika.Message(
        message.body,
        headers=headers,
        content_type=properties.content_type,
        content_encoding=properties.content_encoding,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        correlation_id=properties.correlation_id,
        message_id=properties.message_id or uuid.uuid4().hex,
        timestamp=properties.timestamp,
        type=properties.message_type,
        app_id=properties.app_id,
    )


async def _either(first: asyncio.Event, second: asyncio.Event) -> None:
    """Wait until either event is set."""
    waiters = [asyncio.ensure_future(first.wait()), asyncio.ensure_future(second.wait())]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
