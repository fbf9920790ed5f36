"""The running service: ingest workers, outbox relay, MASH intake, audit checkpoints,
housekeeping, HTTP API.

``mash-broker run`` starts every part in one process; ``--only`` starts some, so each part
can scale out on its own (stateless workers over the same database and RabbitMQ).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Iterator, Mapping, Sequence
from datetime import timedelta
from typing import Any

import uvicorn
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from adapters import ADAPTER_NAMES
from broker.audit import checkpoint_if_due
from broker.crossborder import CrossBorderReceiver
from broker.db import gated_session
from broker.exceptions import ConfigurationError, TransportError
from broker.housekeeping import forget_expired
from broker.ingest import IngestWorker
from broker.intake.consumer import IntakeConsumer
from broker.logging import get_logger
from broker.messaging import (
    Backoff,
    Consumer,
    Publisher,
    redrive_returned,
    retry_while_unavailable,
)
from broker.outbox import OutboxRelay
from broker.preparers import PrepareProcesses
from broker.service import Service
from broker.topology import ensure_topology
from broker.walcheckpoints import hold_wal_checkpoints, release_wal_checkpoints

__all__ = ["ALL_PARTS", "Runtime", "audit_public_keys"]

#: The parts of the service, in start order.
ALL_PARTS = (
    "ingest",
    "relay",
    "intake",
    "xborder",
    "checkpoints",
    "redrive",
    "housekeeping",
    "api",
)

#: Seconds a starting part keeps trying to declare the topology before it gives up.
START_PATIENCE = 120.0

_log = get_logger("runtime")


def audit_public_keys(service: Service) -> dict[str, Ed25519PublicKey]:
    """The service's checkpoint verification keys (every signing key it has had), by kid."""
    party = service.settings.crypto.service_party
    keys: dict[str, Ed25519PublicKey] = {}
    for record in service.registry.keys_of(party):
        public = record.public.public_key
        if record.use.value == "sig" and isinstance(public, Ed25519PublicKey):
            keys[record.kid] = public
    return keys


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its own signal handlers: ``mash-broker run`` owns SIGINT and SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


_heap_frozen = False


def _freeze_startup_heap() -> None:
    """Exempt what start-up made (modules, agreement, keys, policy) from garbage collection.

    Those objects live as long as the process, yet every full collection walks them all:
    about 150,000 objects, 40-400 ms with everything else stopped, which showed as
    latency spikes at the MASH intake. Frozen once per process (``gc.freeze``), only
    what the service makes afterwards is ever scanned.
    """
    global _heap_frozen  # noqa: PLW0603 - once per process, whatever the runtimes
    if not _heap_frozen:
        _heap_frozen = True
        gc.collect()
        gc.freeze()


class Runtime:
    """Starts and stops the chosen parts of the service as tasks of one event loop."""

    def __init__(
        self,
        service: Service,
        parts: Iterable[str] = ALL_PARTS,
        *,
        checkpoint_every: timedelta = timedelta(minutes=5),
    ) -> None:
        chosen = tuple(parts)
        unknown = set(chosen) - set(ALL_PARTS)
        if unknown:
            raise ConfigurationError(f"unknown service parts: {', '.join(sorted(unknown))}")
        self.service = service
        self.parts = chosen
        self._checkpoint_every = checkpoint_every
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []
        self.consumers: list[Consumer] = []
        self._publisher: Publisher | None = None
        self.relay: OutboxRelay | None = None
        self.api_server: uvicorn.Server | None = None
        #: With ``amqp.prepare_processes`` or ``api.prepare_processes``: the prepare
        #: processes of this process's parts (ingest workers, intake, HTTP API), one set.
        self.preparers: PrepareProcesses | None = None
        self._wal_held = False

    async def start(self) -> None:
        """Declare the topology, then start each part and wait until its consumers listen."""
        await self._declare_topology()
        hold_wal_checkpoints(self.service.engine)  # the writers' log, off their commits
        self._wal_held = True
        amqp = self.service.settings.amqp
        wanted = self._prepare_processes_wanted()
        if wanted > 0:
            # One set for the ingest workers (translate, decide, seal), the MASH intake
            # (open) and the HTTP API's ingest: the CPU-bound steps, out of this process's
            # event loop and threads. Two sets would fight over the same cores.
            self.preparers = PrepareProcesses(self.service.settings, wanted)
            await self.preparers.start()
        amqp_preparers = self.preparers if amqp.prepare_processes > 0 else None
        if "ingest" in self.parts:
            for adapter in ADAPTER_NAMES:
                worker = IngestWorker(
                    self.service, adapter, on_stored=self._hand_relay, preparers=amqp_preparers
                )
                self.consumers.append(worker.consumer)
        if "intake" in self.parts:
            intake = IntakeConsumer(self.service, preparers=amqp_preparers)
            self.consumers.append(intake.consumer)
        if "xborder" in self.parts:
            receiver = await CrossBorderReceiver.prepare(self.service)
            if receiver is not None:
                self.consumers.append(receiver.consumer)
        for consumer in self.consumers:
            self._spawn(consumer.run(), f"consumer {consumer.queue}")
        if "relay" in self.parts:
            self._publisher = Publisher(self.service.settings.amqp, name="outbox relay")
            await self._publisher.start()
            self.relay = OutboxRelay(self.service, self._publisher)
            self._spawn(self.relay.run(self._stop), "outbox relay")
        self._spawn_upkeep()
        for consumer in self.consumers:
            await consumer.wait_ready()
        if "api" in self.parts:
            await self._start_api()
        _freeze_startup_heap()
        _log.info("service_started", parts=",".join(self.parts))

    def _spawn_upkeep(self) -> None:
        """The periodic parts: audit checkpoints, dead-letter re-drive, housekeeping."""
        settings = self.service.settings
        if "checkpoints" in self.parts:
            self._spawn(self._checkpoints(), "audit checkpoints")
        amqp = settings.amqp
        if "redrive" in self.parts and amqp.redrive_interval_seconds and amqp.redrive_max:
            self._spawn(self._redrive_returned(), "dead-letter re-drive")
        if "housekeeping" in self.parts and settings.database.housekeeping_interval_seconds:
            self._spawn(self._housekeeping(), "housekeeping")

    def _prepare_processes_wanted(self) -> int:
        """How many prepare processes this process's parts ask for, between them."""
        settings = self.service.settings
        wanted = 0
        if {"ingest", "intake"} & set(self.parts):
            wanted = settings.amqp.prepare_processes
        if "api" in self.parts:
            wanted = max(wanted, settings.api.prepare_processes)
        return wanted

    async def _declare_topology(self) -> None:
        """Declare the topology, retrying while RabbitMQ is unreachable or drops the link.

        A part started while the broker restarts, or whose connection is closed under it,
        keeps trying (with back-off, for ``START_PATIENCE`` seconds) rather than exiting;
        a declaration RabbitMQ refuses (a conflicting queue) fails at once.
        """
        settings, topology = self.service.settings.amqp, self.service.topology

        async def attempt(_remaining: float | None) -> None:
            await ensure_topology(settings, topology)

        await retry_while_unavailable(
            attempt,
            event="topology_declare_retry",
            backoff=Backoff(initial=0.2, maximum=5.0),
            give_up_after=START_PATIENCE,
        )

    async def stop(self) -> None:
        """Stop every part; deliveries in progress finish or return to their queues."""
        self._stop.set()
        if self.api_server is not None:
            # Stop taking requests first; requests in flight finish.
            self.api_server.should_exit = True
        for consumer in self.consumers:
            await consumer.stop()
        for task in self._tasks:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(task), timeout=5)
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._publisher is not None:
            await self._publisher.close()
        if self.preparers is not None:
            await self.preparers.aclose()
        if self._wal_held:
            await asyncio.to_thread(release_wal_checkpoints, self.service.engine)
            self._wal_held = False
        _log.info("service_stopped")

    async def __aenter__(self) -> Runtime:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def wait(self) -> None:
        """Run until ``stop`` is called."""
        await self._stop.wait()

    async def _start_api(self) -> None:
        """Serve the HTTP API with uvicorn (host, port, TLS files from ``settings.api``)."""
        # Imported here: only the api part needs FastAPI, and the API imports this module.
        from broker.api import create_app  # noqa: PLC0415

        api = self.service.settings.api
        config = uvicorn.Config(
            create_app(
                self.service,
                on_stored=self._hand_relay,
                preparers=self.preparers if api.prepare_processes > 0 else None,
            ),
            host=api.host,
            port=api.port,
            ssl_certfile=str(api.tls_certfile) if api.tls_certfile else None,
            ssl_keyfile=str(api.tls_keyfile) if api.tls_keyfile else None,
            log_config=None,
            access_log=False,  # the API logs each request itself, with its request id
            server_header=False,
            proxy_headers=False,
            lifespan="on",
        )
        self.api_server = _EmbeddedServer(config)
        self._spawn(self.api_server.serve(), "http api")
        while not self.api_server.started:
            if self._tasks[-1].done():
                await self._tasks[-1]  # raises why it could not start
                raise ConfigurationError(f"the HTTP API did not start on {api.host}:{api.port}")
            await asyncio.sleep(0.02)
        _log.info("api_listening", host=api.host, port=api.port, tls=api.tls_certfile is not None)

    def _hand_relay(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Outbox rows were just committed: the relay (if it runs here) publishes them now."""
        if self.relay is not None:
            self.relay.hand(rows)

    def _spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        self._tasks.append(asyncio.create_task(work, name=name))

    async def _repeat(
        self,
        one_round: Callable[[], Awaitable[None]],
        every: float,
        *,
        failed: str,
        wait_first: bool = False,
    ) -> None:
        """Run ``one_round`` every ``every`` seconds until the service stops (at once, or
        after the first interval with ``wait_first``). A round that fails is logged as
        ``failed`` (a database or broker outage by its code, anything else with its
        traceback) and the next goes on."""
        if wait_first and await self._stops_within(every):
            return
        while not self._stop.is_set():
            try:
                await one_round()
            except TransportError as exc:
                _log.warning(failed, error=exc.code)
            except Exception:  # noqa: BLE001 - tried again next time
                _log.exception(failed)
            if await self._stops_within(every):
                return

    async def _stops_within(self, seconds: float) -> bool:
        """Wait up to ``seconds`` for the service to stop; whether it did."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), timeout=seconds)
        return self._stop.is_set()

    async def _redrive_returned(self) -> None:
        """Every interval, put back what RabbitMQ dead-lettered for its delivery count alone.

        A consumer killed or a connection lost with deliveries in flight counts as a failed
        delivery on RabbitMQ before 4.3, so enough crashes or cuts in a row dead-letter
        sound messages that were never handled. They go round again (a few times at most:
        a message that crashes its consumer every time stays for an operator); a message
        a consumer refused stays where it is. Each queue with a dead-letter queue is swept.
        """
        amqp = self.service.settings.amqp
        queues = [q.name for q in self.service.topology.queues if q.dead_letter_queue]

        async def sweep() -> None:
            results = await redrive_returned(amqp, queues, max_redrives=amqp.redrive_max)
            moved = sum(r.moved for r in results)
            if moved:
                _log.warning("dead_letters_redriven", moved=moved, queues=len(results))

        await self._repeat(
            sweep, amqp.redrive_interval_seconds, failed="redrive_sweep_failed", wait_first=True
        )

    async def _housekeeping(self) -> None:
        """Remove expired token ids and idempotency answers now, then every interval."""

        async def tidy() -> None:
            forgotten = await asyncio.to_thread(forget_expired, self.service)
            if forgotten.total:
                _log.info(
                    "expired_forgotten",
                    replay_ids=forgotten.replay_ids,
                    idempotency_answers=forgotten.idempotency_answers,
                )

        every = self.service.settings.database.housekeeping_interval_seconds
        await self._repeat(tidy, every, failed="housekeeping_failed")

    async def _checkpoints(self) -> None:
        async def sign_if_due() -> None:
            await asyncio.to_thread(self.checkpoint_now, False)

        every = min(60.0, self._checkpoint_every.total_seconds())
        await self._repeat(sign_if_due, every, failed="checkpoint_failed")

    def checkpoint_now(self, force: bool = True) -> None:
        """Sign an audit checkpoint (when due, or at once with ``force``)."""
        signing = self.service.service_keys.signing
        if signing is None:
            raise ConfigurationError("the service party has no signing key for checkpoints")
        with gated_session(self.service.sessions) as session:
            checkpoint_if_due(
                session,
                signing.key.private_key,  # type: ignore[arg-type]
                signing.kid,
                every_entries=1 if force else 1000,
                every=timedelta(0) if force else self._checkpoint_every,
                issuer=self.service.settings.crypto.service_party,
            )
