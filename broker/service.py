"""What a running broker holds once: settings, agreement, keys, database and audit log."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session

from adapters import ADAPTER_NAMES
from broker.atrest import load_data_key
from broker.audit import AuditLog
from broker.db import engine_from_settings, make_sessionmaker, migrate
from broker.keys import KeyRegistry, PartyKeys
from broker.policy import Agreement, PartyKind, Policy, compile_policy, load_agreement
from broker.settings import Settings
from broker.topology import (
    CROSS_BORDER_INGEST,
    Recipient,
    RecipientKind,
    Topology,
    build_topology,
)

__all__ = ["Service", "agreement_recipients", "recipients_of", "topology_for"]

_KIND_TO_QUEUE = {
    PartyKind.MASH: RecipientKind.MASH,
    PartyKind.NEIGHBOURING_BROKER: RecipientKind.CROSS_BORDER,
}


def recipients_of(agreement: Agreement) -> list[Recipient]:
    """One queue-owning recipient per party of the agreement."""
    return [
        Recipient(
            party_id=party.id,
            kind=_KIND_TO_QUEUE.get(party.kind, RecipientKind.PARTNER),
            borough=party.borough,
        )
        for party in agreement.parties
    ]


def agreement_recipients(settings: Settings) -> list[Recipient]:
    """The recipients of the agreement named in ``settings`` (for ``topology declare``)."""
    return recipients_of(load_agreement(settings.agreement_path))


def topology_for(settings: Settings, agreement: Agreement) -> Topology:
    """The RabbitMQ topology this broker declares for its agreement.

    With a neighbouring broker in the agreement it also holds ``ingest.xborder``, where
    neighbours' shovels deliver.
    """
    adapters: tuple[str, ...] = ADAPTER_NAMES
    if any(p.kind is PartyKind.NEIGHBOURING_BROKER for p in agreement.parties):
        adapters = (*ADAPTER_NAMES, CROSS_BORDER_INGEST)
    return build_topology(
        borough=settings.borough,
        recipients=recipients_of(agreement),
        adapters=adapters,
        delivery_limit=settings.amqp.delivery_limit,
    )


@dataclass(frozen=True)
class Service:
    """Everything loaded once at start and shared by the ingest, relay and intake workers."""

    settings: Settings
    agreement: Agreement
    policy: Policy
    registry: KeyRegistry
    service_keys: PartyKeys
    data_key_id: str
    data_key: bytes
    engine: Engine
    sessions: sessionmaker[Session]
    audit: AuditLog
    topology: Topology

    @classmethod
    def load(cls, settings: Settings, *, keys_dir: Path | None = None) -> Service:
        """Load the agreement and keys, migrate the database, and describe the topology.

        Raises:
            ConfigurationError: an agreement, key or database setting cannot be used.
        """
        keys = keys_dir or settings.crypto.keys_dir
        agreement = load_agreement(settings.agreement_path)
        registry = KeyRegistry.load(keys)
        service_party = settings.crypto.service_party
        data_key_id, data_key = load_data_key(
            keys, service_party, create=settings.environment != "production"
        )
        engine = engine_from_settings(settings)
        migrate(engine)
        return cls(
            settings=settings,
            agreement=agreement,
            policy=compile_policy(agreement),
            registry=registry,
            service_keys=PartyKeys.load(keys, service_party, registry),
            data_key_id=data_key_id,
            data_key=data_key,
            engine=engine,
            sessions=make_sessionmaker(engine),
            audit=AuditLog(),
            topology=topology_for(settings, agreement),
        )

    @property
    def keys_dir(self) -> Path:
        """The key directory in use."""
        return self.settings.crypto.keys_dir
