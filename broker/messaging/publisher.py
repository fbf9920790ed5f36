"""Confirmed, mandatory, pipelined publishing on a connection of its own.

Every message in a batch is written before any confirm is awaited; the confirms are
then gathered, so a batch costs about one round trip rather than one per message. Each
message's outcome is reported on its own: confirmed, nacked by the broker, returned as
unroutable, or failed (timed out or connection lost: the broker may or may not hold it,
so a retry may duplicate it and consumers must deduplicate by message id).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from types import TracebackType
from typing import Any, NamedTuple, Self

import aio_pika
import aiormq
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractMessage
from aio_pika.exceptions import ChannelNotFoundEntity, DeliveryError
from pamqp import commands
from pamqp.commands import Basic

from broker.exceptions import TransportError
from broker.logging import get_logger
from broker.messaging.connection import AMQP_ERRORS, Backoff, connect_with_backoff
from broker.settings import AmqpSettings

__all__ = [
    "CE_HEADERS",
    "AmqpPublish",
    "OutgoingMessage",
    "PublishResult",
    "PublishStatus",
    "Publisher",
]

_log = get_logger("messaging.publisher")

#: The AMQP ``app_id`` of the messages this service publishes.
_APP_ID = "mash-broker"
#: AMQP delivery mode 2: the broker writes the message to disk.
_PERSISTENT = int(aio_pika.DeliveryMode.PERSISTENT)

#: The CloudEvents attributes carried as AMQP headers. Ids, types and times only.
CE_HEADERS = ("ce-specversion", "ce-id", "ce-type", "ce-source", "ce-time")

# Header names the publisher sets itself or the broker owns.
_RESERVED_HEADER = re.compile(r"^(ce-|x-)", re.IGNORECASE)
_SHORTSTR = 255


class PublishStatus(StrEnum):
    """What became of one published message."""

    #: The broker took responsibility for it (persisted to the queues it routed to).
    CONFIRMED = "confirmed"
    #: The broker refused it, e.g. a queue at its length limit with reject-publish.
    NACKED = "nacked"
    #: No queue matched its exchange and routing key, or the exchange does not exist.
    UNROUTABLE = "unroutable"
    #: No answer in time or the connection failed: outcome unknown, safe to retry.
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class PublishResult:
    """The outcome of one message, in the order the messages were given."""

    message_id: str
    status: PublishStatus
    #: Why it was not confirmed (broker reply text or error), never message content.
    detail: str | None = None

    @property
    def confirmed(self) -> bool:
        """True only when the broker confirmed the message."""
        return self.status is PublishStatus.CONFIRMED


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """A message to publish, with the CloudEvents attributes that describe it.

    The body is opaque (typically a JWE). Attributes and ``headers`` travel in clear AMQP
    headers, so they must hold ids and codes only, never personal data.

    Attributes:
        exchange: the exchange to publish to (``""`` is the default exchange).
        routing_key: e.g. ``topology.disclosure_routing_key(party, event_type)``.
        body: the payload bytes.
        message_id: unique per message; the AMQP message id and CloudEvents ``id``.
        event_type: the CloudEvents ``type``, e.g. ``missing.reported``.
        source: the CloudEvents ``source``, e.g. ``urn:mash:party:wam-broker``.
        time: the CloudEvents ``time``; now when None. Must be timezone-aware.
        content_type: the AMQP content type (CloudEvents ``datacontenttype``).
        correlation_id: an id linking related messages, e.g. a missing episode id.
        headers: further id-only headers; names starting ``ce-`` or ``x-`` are reserved.
    """

    exchange: str
    routing_key: str
    body: bytes
    message_id: str
    event_type: str
    source: str
    time: datetime | None = None
    content_type: str = "application/jose"
    correlation_id: str | None = None
    headers: Mapping[str, str | int | bool] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 0 < len(self.message_id) <= _SHORTSTR or not self.message_id.isascii():
            raise ValueError("message_id: must be 1-255 ASCII characters")
        if len(self.routing_key) > _SHORTSTR:
            raise ValueError(f"message {self.message_id}: routing key over 255 characters")
        if self.time is not None and self.time.utcoffset() is None:
            raise ValueError(f"message {self.message_id}: time must be timezone-aware")
        for name in self.headers:
            if _RESERVED_HEADER.match(name):
                raise ValueError(f"message {self.message_id}: header {name!r} is reserved")

    def to_amqp(self) -> aio_pika.Message:
        """The AMQP message: persistent, with the CloudEvents attributes as headers."""
        when = self._when()
        return aio_pika.Message(
            self.body,
            headers=self._headers(when),
            content_type=self.content_type,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=self.message_id,
            correlation_id=self.correlation_id,
            timestamp=when,
            type=self.event_type,
            app_id=_APP_ID,
        )

    def properties(self) -> Basic.Properties:
        """The AMQP properties ``to_amqp`` gives, made directly (no ``aio_pika.Message``)."""
        when = self._when()
        return Basic.Properties(
            headers=self._headers(when),
            content_type=self.content_type,
            delivery_mode=_PERSISTENT,
            message_id=self.message_id,
            correlation_id=self.correlation_id,
            message_type=self.event_type,
            priority=0,
            timestamp=when,
            app_id=_APP_ID,
        )

    def _when(self) -> datetime:
        return (self.time or datetime.now(UTC)).astimezone(UTC)

    def _headers(self, when: datetime) -> dict[str, Any]:
        headers: dict[str, Any] = dict(self.headers)
        headers.update(
            {
                "ce-specversion": "1.0",
                "ce-id": self.message_id,
                "ce-type": self.event_type,
                "ce-source": self.source,
                "ce-time": when.isoformat().replace("+00:00", "Z"),
            }
        )
        return headers


class AmqpPublish(NamedTuple):
    """A message that already carries all its AMQP properties (e.g. a dead letter)."""

    exchange: str
    routing_key: str
    message: AbstractMessage


class _Frame(NamedTuple):
    """One message as it is written: where to, its body and its AMQP properties."""

    exchange: str
    routing_key: str
    body: bytes
    properties: Basic.Properties

    @property
    def message_id(self) -> str:
        return self.properties.message_id or ""


class Publisher:
    """Publishes batches with confirms over one connection used for nothing else.

    Use as ``async with Publisher(settings) as publisher:``. Batches are sent one at a
    time (concurrent callers wait their turn), because the broker's returns of unroutable
    messages are matched to the batch by message id.
    """

    def __init__(
        self,
        settings: AmqpSettings,
        *,
        name: str = "publisher",
        backoff: Backoff | None = None,
        max_in_flight: int = 4096,
    ) -> None:
        """Prepare a publisher; nothing connects until ``start`` or the first publish.

        Args:
            settings: AMQP settings; ``timeout_seconds`` bounds each message's confirm
                and each (re)connection.
            name: the connection's name as RabbitMQ shows it.
            backoff: retry schedule when (re)connecting.
            max_in_flight: unconfirmed messages allowed at once within a batch.
        """
        self._settings = settings
        self._name = name
        self._backoff = backoff or Backoff()
        self._timeout = settings.timeout_seconds
        self._window = max_in_flight
        self._connection: AbstractConnection | None = None
        self._channel: AbstractChannel | None = None
        #: Exchanges found to exist on this channel (checked once, not per batch).
        self._exchanges: set[str] = set()
        self._batch_lock = asyncio.Lock()
        self._closed = False

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def start(self) -> None:
        """Connect now rather than on the first publish.

        Raises:
            TransportError: no connection could be opened within the timeout.
        """
        async with self._batch_lock:
            if self._closed:
                raise TransportError(f"publisher {self._name!r} is closed")
            await self._ready_channel()

    async def close(self) -> None:
        """Close the connection; messages not yet confirmed report ``FAILED``."""
        self._closed = True
        await self._drop_connection()

    async def publish(self, message: OutgoingMessage) -> PublishResult:
        """Publish one message and wait for its confirm. See ``publish_batch``."""
        (result,) = await self.publish_batch([message])
        return result

    async def publish_batch(self, messages: Sequence[OutgoingMessage]) -> list[PublishResult]:
        """Publish every message, pipelined, and report each one's outcome.

        Args:
            messages: the messages, each with a message id unique within the batch.

        Returns:
            One result per message, in the same order.

        Raises:
            TransportError: no connection could be opened: nothing was sent.
            ValueError: two messages share a message id.
        """
        return await self._publish(
            [_Frame(m.exchange, m.routing_key, m.body, m.properties()) for m in messages]
        )

    async def publish_amqp(self, items: Sequence[AmqpPublish]) -> list[PublishResult]:
        """Publish messages that carry their own AMQP properties; as ``publish_batch``.

        Raises:
            TransportError: no connection could be opened: nothing was sent.
            ValueError: a message has no message id, or two share one.
        """
        return await self._publish(
            [_Frame(i.exchange, i.routing_key, i.message.body, i.message.properties) for i in items]
        )

    async def _publish(self, items: Sequence[_Frame]) -> list[PublishResult]:
        if not items:
            return []
        _check_unique_ids(items)
        async with self._batch_lock:
            if self._closed:
                raise TransportError(f"publisher {self._name!r} is closed")
            channel = await self._ready_channel()
            missing = await self._missing_exchanges({item.exchange for item in items})
            try:
                underlay = await channel.get_underlay_channel()
            except AMQP_ERRORS as exc:
                await self._drop_connection()
                raise TransportError(f"publisher {self._name!r}: channel unusable") from exc
            if not isinstance(underlay, aiormq.Channel):  # pragma: no cover - aio-pika's own
                raise TransportError(f"publisher {self._name!r}: not an aiormq channel")
            window = asyncio.Semaphore(self._window)
            results = await asyncio.gather(
                *(self._publish_one(underlay, item, missing, window) for item in items)
            )
        failed = sum(1 for r in results if not r.confirmed)
        if failed:
            _log.warning(
                "publish_not_confirmed", connection=self._name, failed=failed, total=len(results)
            )
        return list(results)

    async def _publish_one(
        self,
        channel: aiormq.Channel,
        item: _Frame,
        missing: set[str],
        window: asyncio.Semaphore,
    ) -> PublishResult:
        message_id = item.message_id
        if item.exchange in missing:
            return PublishResult(
                message_id, PublishStatus.UNROUTABLE, f"exchange {item.exchange!r} does not exist"
            )
        async with window:
            try:
                # On the AMQP client's channel itself: aio-pika's layer above it made an
                # object and a task of every message, and waited for each frame to be
                # written before the next could be (``wait=False``), for nothing more.
                outcome = await channel.basic_publish(
                    item.body,
                    exchange=item.exchange,
                    routing_key=item.routing_key,
                    properties=item.properties,
                    mandatory=True,
                    timeout=self._timeout,
                    wait=False,
                )
            except DeliveryError as exc:
                refused = isinstance(exc.frame, commands.Basic.Nack | commands.Basic.Reject)
                status = PublishStatus.NACKED if refused else PublishStatus.FAILED
                return PublishResult(message_id, status, "the broker refused the message")
            except TimeoutError:
                detail = f"no confirm within {self._timeout}s"
                return PublishResult(message_id, PublishStatus.FAILED, detail)
            except AMQP_ERRORS as exc:
                detail = f"{type(exc).__name__}: {exc}"
                return PublishResult(message_id, PublishStatus.FAILED, detail)
        return _result_of(message_id, item, outcome)

    async def _ready_channel(self) -> AbstractChannel:
        """The publishing channel, reconnecting and reopening as needed."""
        connection = self._connection if self._usable() else None
        if connection is not None and self._channel is not None and not self._channel.is_closed:
            return self._channel
        if connection is None:
            await self._drop_connection()
            connection = await connect_with_backoff(
                self._settings,
                name=self._name,
                backoff=self._backoff,
                give_up_after=self._timeout,
            )
            self._connection = connection
            _log.info("publisher_connected", connection=self._name)
        try:
            async with asyncio.timeout(self._timeout):
                channel = await connection.channel(publisher_confirms=True)
        except AMQP_ERRORS as exc:
            await self._drop_connection()
            raise TransportError(f"publisher {self._name!r}: cannot open a channel") from exc
        self._channel = channel
        self._exchanges.clear()
        return channel

    async def _missing_exchanges(self, names: Iterable[str]) -> set[str]:
        """Which named exchanges do not exist.

        Publishing to a missing exchange makes the broker close the channel, failing every
        message in flight on it; a passive check on a side channel keeps that one message's
        fault from spilling onto the rest of the batch.
        """
        unknown = [n for n in names if n and n not in self._exchanges]
        if not unknown:
            return set()
        missing: set[str] = set()
        connection = self._connection
        if connection is None:
            raise TransportError(f"publisher {self._name!r}: not connected")
        probe: AbstractChannel | None = None
        try:
            for name in unknown:
                if probe is None or probe.is_closed:
                    probe = await connection.channel(publisher_confirms=False)
                try:
                    await probe.declare_exchange(name, passive=True, timeout=self._timeout)
                except ChannelNotFoundEntity:
                    missing.add(name)
                else:
                    self._exchanges.add(name)
        except AMQP_ERRORS as exc:
            raise TransportError(f"publisher {self._name!r}: exchange check failed") from exc
        finally:
            if probe is not None and not probe.is_closed:
                await _quietly(probe.close())
        return missing

    def _usable(self) -> bool:
        connection = self._connection
        if connection is None or connection.is_closed:
            return False
        transport = connection.transport
        return transport is not None and not transport.connection.is_closed

    async def _drop_connection(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        self._exchanges.clear()
        if connection is not None:
            await _quietly(connection.close())


def _result_of(message_id: str, item: _Frame, outcome: object) -> PublishResult:
    """Classify what a confirmed publish came back with: an ack, or the returned message."""
    if isinstance(outcome, aiormq.abc.DeliveredMessage):
        reply = getattr(outcome.delivery, "reply_text", "returned")
        detail = f"{reply}: no queue bound to {item.exchange!r} for {item.routing_key!r}"
        return PublishResult(message_id, PublishStatus.UNROUTABLE, detail)
    if isinstance(outcome, commands.Basic.Ack):
        return PublishResult(message_id, PublishStatus.CONFIRMED)
    return PublishResult(message_id, PublishStatus.FAILED, "no confirmation received")


def _check_unique_ids(items: Sequence[_Frame]) -> None:
    seen: set[str] = set()
    for item in items:
        message_id = item.properties.message_id
        if not message_id:
            raise ValueError(f"a message to {item.exchange!r} has no message id")
        if message_id in seen:
            raise ValueError(f"message id {message_id} appears twice in one batch")
        seen.add(message_id)


async def _quietly(closing: Awaitable[object]) -> None:
    """Await a close, ignoring a connection that is already gone."""
    try:
        async with asyncio.timeout(5):
            await closing
    except AMQP_ERRORS:
        return
