"""AMQP ingest workers: one consumer per ``ingest.<adapter>`` queue feeding the pipeline."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from adapters import get_adapter
from broker.batching import Batcher
from broker.exceptions import TransportError
from broker.logging import get_logger
from broker.messaging import Consumer, ReceivedMessage, RejectMessage, RetryLater
from broker.pipeline import Ingestor, IngestResult, OnStored, PreparedMessage
from broker.preparers import PrepareProcessDied, PrepareProcesses
from broker.service import Service
from broker.topology import ingest_queue_name

__all__ = ["IngestWorker", "source_of"]

_log = get_logger("ingest")


def source_of(message: ReceivedMessage, service: Service, default: str) -> str:
    """The party that sent ``message``.

    In production only RabbitMQ's checked ``user_id`` counts, mapped to a party through
    ``amqp.partner_users``. In development and test a message without one may name its
    party in ``app_id`` (or fall back to the adapter's default source) so the demo and
    tests can publish as several partners over one connection.

    Raises:
        RejectMessage: the sender cannot be established or is not a party.
    """
    parties = {p.id for p in service.agreement.parties}
    amqp_user = message.user_id
    if amqp_user is not None and amqp_user in service.settings.amqp.partner_users:
        party = service.settings.amqp.partner_users[amqp_user]
    elif service.settings.environment == "production":
        raise RejectMessage("unknown_sender")
    else:
        party = message.app_id or default
    if party not in parties:
        raise RejectMessage("sender_not_a_party")
    return party


class IngestWorker:
    """Consumes one adapter's ingest queue: pipeline, commit, then ack.

    Each delivery is translated, decided and sealed as soon as it arrives, in a worker
    thread of its own or a prepare process (``amqp.prepare_processes``); what is ready
    while a transaction commits is stored together in the next one (``broker.batching``):
    one commit for many messages, and each message is still acknowledged only after the
    commit that stored it.
    """

    def __init__(
        self,
        service: Service,
        adapter_name: str,
        *,
        on_stored: OnStored | None = None,
        max_batch: int | None = None,
        preparers: PrepareProcesses | None = None,
    ) -> None:
        """Prepare the worker; ``run`` its ``consumer`` to start.

        Args:
            service: the loaded service.
            adapter_name: the adapter whose ingest queue to consume.
            on_stored: told (on the event loop) the outbox rows each commit wrote, e.g.
                to hand them to the relay, which publishes them at once.
            max_batch: the most messages per transaction; the consumer prefetch if None.
            preparers: prepare processes (``amqp.prepare_processes``) to translate, decide
                and seal in; threads of this process if None, or if none is ready.
        """
        self._service = service
        self._adapter = adapter_name
        self._default_source = get_adapter(adapter_name).default_source
        self._ingestor = Ingestor(service)
        self._on_stored = on_stored
        self._preparers = preparers
        self._batcher: Batcher[PreparedMessage, IngestResult] = Batcher(
            self._store_batch,
            max_size=max_batch or service.settings.amqp.prefetch,
            name=f"ingest {adapter_name}",
        )
        self.consumer = Consumer(
            service.settings.amqp,
            ingest_queue_name(adapter_name),
            self._handle,
            name=f"ingest {adapter_name}",
        )

    async def _handle(self, message: ReceivedMessage) -> None:
        source = source_of(message, self._service, self._default_source)
        prepared = await self._prepare(message.body, source)
        try:
            result = await self._batcher.submit(prepared)
        except TransportError as exc:
            _log.warning("ingest_deferred", adapter=self._adapter, error=exc.code)
            raise RetryLater("database_unavailable") from exc
        if self._on_stored is not None and (rows := prepared.stored_outbox(result)):
            self._on_stored(rows)
        if result.rejected and not result.duplicate:
            raise RejectMessage("adapter_error")

    async def _prepare(self, body: bytes, source: str) -> PreparedMessage:
        if self._preparers is not None:
            try:
                return await self._preparers.prepare(self._adapter, body, source, None)
            except PrepareProcessDied:
                # Nothing was stored: this message is prepared here while a replacement
                # process starts.
                _log.warning("prepare_process_unavailable", adapter=self._adapter)
        return await asyncio.to_thread(self._ingestor.prepare, self._adapter, body, source)

    def _store_batch(self, items: Sequence[PreparedMessage]) -> list[IngestResult | BaseException]:
        """One transaction for the batch; if it fails, each message on its own."""
        return self._ingestor.store_isolated(items, label=f"ingest {self._adapter}")
