"""AMQP connections: one attempt with a timeout, or attempts with capped exponential back-off."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

import aio_pika
import aiormq
from aio_pika.abc import AbstractConnection
from yarl import URL

from broker.exceptions import TransportError
from broker.logging import get_logger
from broker.settings import AmqpSettings

__all__ = [
    "AMQP_ERRORS",
    "Backoff",
    "connect",
    "connect_with_backoff",
    "describe_url",
    "retry_while_unavailable",
]

_log = get_logger("messaging.connection")

_T = TypeVar("_T")

#: What a broker call can fail with when the broker or the network lets it down.
AMQP_ERRORS: tuple[type[BaseException], ...] = (
    aiormq.exceptions.AMQPError,
    ConnectionError,
    OSError,
    TimeoutError,
    aio_pika.exceptions.ChannelInvalidStateError,
)

# System randomness keeps the jitter of many workers restarting together uncorrelated.
_RANDOM = random.SystemRandom()


@dataclass(frozen=True, slots=True)
class Backoff:
    """Capped exponential back-off with jitter between reconnection attempts.

    Attributes:
        initial: seconds before the first retry.
        maximum: the longest wait between attempts.
        factor: growth of the wait per failed attempt.
        jitter: fraction of each wait drawn at random, so restarts spread out.
    """

    initial: float = 0.2
    maximum: float = 30.0
    factor: float = 2.0
    jitter: float = 0.5

    def delay(self, attempt: int) -> float:
        """Seconds to wait after ``attempt`` failed attempts (0 for the first retry)."""
        ceiling = min(self.maximum, self.initial * self.factor ** min(attempt, 64))
        return ceiling * (1 - self.jitter) + _RANDOM.uniform(0, ceiling * self.jitter)


def describe_url(settings: AmqpSettings) -> str:
    """Host, port and virtual host of the broker, never the credentials: safe to log."""
    url = URL(settings.url.get_secret_value())
    vhost = url.path[1:] if len(url.path) > 1 else "/"
    return f"{url.host}:{url.port or 5672} vhost={vhost}"


async def connect(
    settings: AmqpSettings, *, name: str, within: float | None = None
) -> AbstractConnection:
    """Open one connection, once, within the timeout.

    Args:
        settings: the AMQP settings (URL, timeout).
        name: the connection's name as RabbitMQ shows it (``mash-broker <name>``).
        within: seconds allowed; defaults to ``settings.timeout_seconds``.

    Raises:
        TransportError: the broker is unreachable, refused the login, or was too slow.
    """
    limit = settings.timeout_seconds if within is None else within
    connection = aio_pika.Connection(
        aio_pika.connection.make_url(settings.url.get_secret_value()),
        client_properties={"connection_name": f"mash-broker {name}"},
    )
    try:
        async with asyncio.timeout(limit):
            await connection.connect(timeout=limit)
    except BaseException as exc:
        # Closed here, on this loop: a connection that failed to open and is left to the
        # garbage collector schedules its close from wherever that runs (another thread,
        # a closed loop), where it cannot run.
        await _close_quietly(connection)
        if isinstance(exc, AMQP_ERRORS):
            # The message names the endpoint without the URL, which carries the password.
            raise TransportError(
                f"AMQP connection {name!r} to {describe_url(settings)} failed: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        raise
    return connection


async def _close_quietly(connection: aio_pika.Connection) -> None:
    # It never opened: whatever closing it raises, there is nothing more to close.
    with contextlib.suppress(Exception):
        await asyncio.shield(connection.close())


async def connect_with_backoff(
    settings: AmqpSettings,
    *,
    name: str,
    backoff: Backoff | None = None,
    give_up_after: float | None = None,
    stop: asyncio.Event | None = None,
) -> AbstractConnection:
    """Open a connection, retrying with back-off until it opens or time runs out.

    Args:
        settings: the AMQP settings.
        name: the connection's name as RabbitMQ shows it.
        backoff: the retry schedule; the default when None.
        give_up_after: seconds after which the last failure is raised; None retries forever.
        stop: when set, stop retrying and raise the last failure.

    Raises:
        TransportError: every attempt failed within ``give_up_after`` or before ``stop``.
    """

    async def attempt(remaining: float | None) -> AbstractConnection:
        limit = settings.timeout_seconds
        if remaining is not None:
            limit = max(0.05, min(limit, remaining))
        return await connect(settings, name=name, within=limit)

    return await retry_while_unavailable(
        attempt,
        event="amqp_connect_retry",
        context={"connection": name},
        backoff=backoff,
        give_up_after=give_up_after,
        stop=stop,
    )


async def retry_while_unavailable(
    attempt: Callable[[float | None], Awaitable[_T]],
    *,
    event: str,
    context: Mapping[str, str] | None = None,
    backoff: Backoff | None = None,
    give_up_after: float | None = None,
    stop: asyncio.Event | None = None,
) -> _T:
    """Run ``attempt`` until it does not fail with ``TransportError`` or time runs out.

    Any other error is raised at once: only an outage is worth waiting out.

    Args:
        attempt: one try; given the seconds left (None: no deadline).
        event: the log event of each retry; ``context`` adds its ids.
        context: ids to log with each retry (never personal data).
        backoff: the retry schedule; the default when None.
        give_up_after: seconds after which the last failure is raised; None retries forever.
        stop: when set, stop retrying and raise the last failure.

    Raises:
        TransportError: every attempt failed within ``give_up_after`` or before ``stop``.
    """
    schedule = backoff or Backoff()
    deadline = None if give_up_after is None else time.monotonic() + give_up_after
    tries = 0
    while True:
        remaining = None if deadline is None else deadline - time.monotonic()
        try:
            return await attempt(remaining)
        except TransportError as exc:
            wait = schedule.delay(tries)
            tries += 1
            remaining = None if deadline is None else deadline - time.monotonic()
            if (remaining is not None and remaining <= wait) or (stop and stop.is_set()):
                raise
            _log.warning(event, **(context or {}), attempt=tries, wait=wait, error=str(exc))
            if stop is None:
                await asyncio.sleep(wait)
            elif await _wait_event(stop, wait):
                raise


async def _wait_event(event: asyncio.Event, seconds: float) -> bool:
    """Wait up to ``seconds`` for ``event``; True if it was set."""
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        return False
    return True
