"""What the API holds for its lifetime: the service, verifiers, limiters, stores, metrics."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import hashlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from aio_pika.abc import AbstractConnection

from broker.api.auth import (
    AccountStore,
    CheckedAssertion,
    ClientAssertionVerifier,
    LocalStaffVerifier,
    StaffTokens,
    StaffVerifier,
)
from broker.api.idempotency import IdempotencyStore
from broker.api.metrics import ApiMetrics
from broker.api.ratelimit import RateLimiter
from broker.audit import AuditKind
from broker.batching import Batcher
from broker.db import DbReplayStore, gate_if_free, gated_session
from broker.exceptions import BrokerError, ReplayDetected
from broker.logging import get_logger
from broker.messaging import AMQP_ERRORS, connect
from broker.pipeline import Ingestor, IngestResult, OnStored, PreparedMessage
from broker.preparers import PrepareProcessDied, PrepareProcesses
from broker.replay import MemoryReplayStore
from broker.service import Service
from broker.settings import ApiSettings
from broker.walcheckpoints import hold_wal_checkpoints, release_wal_checkpoints

__all__ = [
    "AMQP_PROBE_SECONDS",
    "INGEST_BATCH_MAX",
    "INGEST_PREPARE_THREADS",
    "PROBE_ERRORS",
    "ApiContext",
    "Refusal",
]

_log = get_logger("api")

#: How long the readiness and metrics probes wait for RabbitMQ.
AMQP_PROBE_SECONDS = 3.0
#: What a RabbitMQ probe can fail with.
PROBE_ERRORS: tuple[type[BaseException], ...] = (*AMQP_ERRORS, BrokerError)
#: The most HTTP ingest requests stored in one transaction.
INGEST_BATCH_MAX = 64
#: Threads that prepare HTTP ingest messages (parse, decide, seal). The work holds the
#: GIL nearly throughout, so more threads add no throughput, only more threads for the
#: event loop and the batch's commit to wait behind whenever they give the GIL up.
INGEST_PREPARE_THREADS = 2


@dataclass(frozen=True, slots=True)
class Refusal:
    """One refused request, as the audit log records it: ids and codes only."""

    reason: str
    endpoint: str
    request_id: str
    party: str | None = None
    actor: str | None = None
    kid: str | None = None
    claimed_party: str | None = None


@dataclass
class ApiContext:
    """Everything the routes share; built once by ``create_app``."""

    service: Service
    assertions: ClientAssertionVerifier
    staff: StaffVerifier
    accounts: AccountStore
    tokens: StaffTokens
    ingestor: Ingestor
    #: Stores prepared HTTP ingest messages: what concurrent requests have ready while a
    #: transaction commits is stored together in the next one (group commit).
    ingest_batcher: Batcher[PreparedMessage, IngestResult]
    idempotency: IdempotencyStore
    limiter: RateLimiter
    login_limiter: RateLimiter
    metrics: ApiMetrics
    agreement_sha256: str
    #: Told (on the event loop) the outbox rows each ingest commit wrote, e.g. to hand
    #: them to the outbox relay running in the same process.
    on_stored: OnStored | None = None
    #: The client assertion ids this process saw remembered, until they expire: a reuse
    #: is refused before any work. Memory grows with the assertions accepted within one
    #: assertion lifetime (a few hundred bytes each).
    recent_assertions: MemoryReplayStore = field(default_factory=MemoryReplayStore)
    _prepare_threads: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(
            INGEST_PREPARE_THREADS, thread_name_prefix="http ingest prepare"
        ),
        repr=False,
    )
    #: With ``api.prepare_processes``: processes that prepare ingested messages.
    _prepare_processes: PrepareProcesses | None = field(default=None, repr=False)
    #: Whether those processes belong to the rest of the service (which starts and
    #: closes them) rather than to the API.
    _shared_preparers: bool = field(default=False, repr=False)
    #: The AsyncAPI document, built on first request.
    asyncapi: dict[str, Any] | None = None
    _amqp: AbstractConnection | None = field(default=None, repr=False)
    _amqp_lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)
    #: Whether ``start`` asked for the database's background WAL checkpoints.
    _wal_held: bool = field(default=False, repr=False)

    @classmethod
    def build(
        cls,
        service: Service,
        *,
        staff_verifier: StaffVerifier | None = None,
        accounts: AccountStore | None = None,
        on_stored: OnStored | None = None,
        preparers: PrepareProcesses | None = None,
    ) -> ApiContext:
        """Wire the API's parts from a loaded service.

        Args:
            service: the loaded service (agreement, keys, database).
            staff_verifier: the deployment's identity provider; the local account store's
                tokens when omitted.
            accounts: the local account store (e.g. with a cheaper hasher in tests).
            on_stored: told the outbox rows each ingest commit wrote.
            preparers: prepare processes the service shares (its own are not started).
        """
        api = service.settings.api
        crypto = service.settings.crypto
        assertions = ClientAssertionVerifier(
            service.registry,
            [party.id for party in service.agreement.parties],
            DbReplayStore(service.engine),
            max_lifetime=timedelta(seconds=api.assertion_max_lifetime_seconds),
            clock_skew=timedelta(seconds=min(crypto.clock_skew_seconds, 60)),
        )
        store = accounts or AccountStore(service.sessions)
        tokens = StaffTokens(
            service.service_keys.signing,
            service.registry,
            crypto.service_party,
            lifetime=timedelta(seconds=api.staff_token_lifetime_seconds),
        )
        ingestor = Ingestor(service)
        return cls(
            service=service,
            assertions=assertions,
            staff=staff_verifier or LocalStaffVerifier(tokens, store),
            accounts=store,
            tokens=tokens,
            ingestor=ingestor,
            ingest_batcher=Batcher(
                functools.partial(ingestor.store_isolated, label="http ingest"),
                max_size=INGEST_BATCH_MAX,
                name="http ingest",
                inline=functools.partial(gate_if_free, service.sessions),
            ),
            idempotency=IdempotencyStore(
                service.sessions, ttl=timedelta(seconds=api.idempotency_ttl_seconds)
            ),
            limiter=RateLimiter(api.rate_per_second, api.rate_burst),
            # Password guessing: a handful of attempts a minute from one address.
            login_limiter=RateLimiter(5 / 60, 10),
            metrics=ApiMetrics(service),
            agreement_sha256=_sha256_of(service.settings.agreement_path),
            on_stored=on_stored,
            _prepare_processes=preparers,
            _shared_preparers=preparers is not None,
        )

    @property
    def settings(self) -> ApiSettings:
        """The API settings."""
        return self.service.settings.api

    @property
    def tls(self) -> bool:
        """Whether this process serves TLS itself (HSTS and Secure cookies follow)."""
        return self.settings.tls_certfile is not None

    async def prepare(
        self, adapter: str, raw: bytes, party: str, replay_token: tuple[str, datetime]
    ) -> PreparedMessage:
        """``Ingestor.prepare`` in a prepare process (``api.prepare_processes``) or thread.

        Raises:
            Exception: as ``Ingestor.prepare``; nothing is stored.
        """
        if self.settings.prepare_processes > 0:
            try:
                return await self._preparers().prepare(adapter, raw, party, replay_token)
            except PrepareProcessDied:
                # A prepare process died (killed, out of memory) or none has loaded yet:
                # nothing was stored, so this message is prepared here; a replacement
                # process is starting.
                _log.warning("prepare_process_unavailable")
        work = functools.partial(
            self.ingestor.prepare, adapter, raw, party, replay_token=replay_token
        )
        # As asyncio.to_thread: the request's context (its log fields) goes along.
        run = functools.partial(contextvars.copy_context().run, work)
        return await asyncio.get_running_loop().run_in_executor(self._prepare_threads, run)

    def _preparers(self) -> PrepareProcesses:
        if self._prepare_processes is None:
            self._prepare_processes = PrepareProcesses(
                self.service.settings, self.settings.prepare_processes
            )
        return self._prepare_processes

    def check_assertion(self, token: str, audience: str) -> CheckedAssertion:
        """Check a client assertion completely without remembering its id; no I/O.

        An id this process has already seen remembered is refused here, before the
        request does any work. The check that counts is remembering the id in the
        database, which the caller must still do once: it also catches an id that
        another process remembered.

        Raises:
            CredentialRefused: whatever is wrong with the token, ``replay`` included.
        """
        checked = self.assertions.check(token, audience)
        if checked.replay_id in self.recent_assertions:
            raise checked.replay_refusal()
        return checked

    def note_remembered(self, checked: CheckedAssertion) -> None:
        """The database now holds ``checked``'s id (remembered, or found there before)."""
        with contextlib.suppress(ReplayDetected):
            self.recent_assertions.check_and_remember(checked.replay_id, checked.remember_until)

    def audit_refusal(self, refusal: Refusal) -> None:
        """Record a refused request in the audit chain (blocking; call in a thread)."""
        pairs = [f"endpoint={refusal.endpoint}", f"request_id={refusal.request_id}"]
        if refusal.kid:
            pairs.append(f"kid={refusal.kid}")
        if refusal.claimed_party:
            pairs.append(f"claimed_party={refusal.claimed_party}")
        # At the write gate, like the ingest batches (see ``DbReplayStore``).
        with gated_session(self.service.sessions) as session:
            self.service.audit.append(
                session,
                kind=AuditKind.REJECTED,
                reason=f"auth.{refusal.reason}",
                party=refusal.party,
                actor=refusal.actor,
                detail=" ".join(pairs),
            )

    async def amqp(self) -> AbstractConnection:
        """A connection for probes (readiness, queue depths), opened on first use.

        Raises:
            TransportError: RabbitMQ cannot be reached in time.
        """
        async with self._amqp_lock:
            if self._amqp is None or self._amqp.is_closed:
                self._amqp = await connect(
                    self.service.settings.amqp, name="api probes", within=AMQP_PROBE_SECONDS
                )
            return self._amqp

    async def start(self) -> None:
        """Start what the API needs before its first request: the prepare processes
        (``api.prepare_processes``), each loaded, so no request waits for one to start;
        the database's background WAL checkpoints (``broker.walcheckpoints``)."""
        if not self._wal_held:
            hold_wal_checkpoints(self.service.engine)
            self._wal_held = True
        if self.settings.prepare_processes > 0 and not self._shared_preparers:
            await self._preparers().start()

    async def aclose(self) -> None:
        """Close the probe connection; let the ingest threads end; let go of the WAL
        checkpoints ``start`` asked for."""
        self.ingest_batcher.close()
        if self._wal_held:
            await asyncio.to_thread(release_wal_checkpoints, self.service.engine)
            self._wal_held = False
        self._prepare_threads.shutdown(wait=False)
        if self._prepare_processes is not None and not self._shared_preparers:
            await self._prepare_processes.aclose()
        if self._amqp is not None and not self._amqp.is_closed:
            try:
                await self._amqp.close()
            except PROBE_ERRORS:  # pragma: no cover - best effort at shutdown
                _log.warning("amqp_close_failed")
        self._amqp = None


def _sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
