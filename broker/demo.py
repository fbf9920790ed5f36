"""The demo scenario: what ``make demo`` shows a newcomer, step by step."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import signal
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aio_pika
import typer
from sqlalchemy import Select, func, select
from sqlmodel import col

from broker import envelope
from broker.audit import verify
from broker.db import session_scope
from broker.demokeys import ensure_demo_keys
from broker.keys import PartyKeys
from broker.models import AuditEntry, AuditKind, MashAlert
from broker.outbox import outbox_backlog
from broker.policy import evaluate, leaf_paths, load_agreement
from broker.replay import MemoryReplayStore
from broker.runtime import ALL_PARTS, Runtime, audit_public_keys
from broker.samples.catalogue import adapter_for, sender_for
from broker.service import Service
from broker.settings import Settings
from broker.topology import INGEST_EXCHANGE, ingest_routing_key
from schemas import EventType, Provenance, example_event

__all__ = ["DEMO_STAFF", "run_demo", "run_envelope_demo"]

#: The demo's member of staff: intake and manager, so every page can be seen.
DEMO_STAFF = "demo.manager"


def _say(text: str = "") -> None:
    typer.echo(text)


def run_envelope_demo(settings: Settings, keys_dir: Path) -> None:
    """Seal an example missing-child report for the MASH under the agreement, then open it."""
    agreement = load_agreement(settings.agreement_path)
    registry = ensure_demo_keys(keys_dir, agreement, settings.crypto.service_party)
    _say(f"keys: {len(registry.parties)} parties in {keys_dir / 'jwks.json'}")
    event = example_event(EventType.MISSING_REPORTED)
    now = datetime.now(UTC)
    decision = evaluate(agreement, event, now)
    _say(
        f"event {event.metadata.event_id} ({event.event_type.value}) from "
        f"{event.metadata.source.agency}: agreement {decision.agreement_version}"
    )
    for refusal in decision.refusals:
        _say(f"  refused  {refusal.recipient or '-':<24} {refusal.reason.value}")
    disclosure = decision.require("wam-mash")
    sender = PartyKeys.load(keys_dir, settings.crypto.service_party, registry)
    sealed = envelope.seal(
        disclosure.event,
        sender=sender,
        recipient="wam-mash",
        registry=registry,
        rule_id=disclosure.rule_id,
        lawful_basis=disclosure.lawful_basis,
        purpose=disclosure.purpose,
        provenance=Provenance(
            source_agency=event.metadata.source.agency,
            source_event_id=event.metadata.event_id,
            original_sha256=envelope.digest_original(event.model_dump_json().encode()),
        ),
    )
    _say(
        f"sealed for wam-mash: JWE of {len(sealed.token)} bytes, jti {sealed.jti}, "
        f"signed with {sealed.signing_kid}, encrypted to {sealed.encryption_kid}"
    )
    claims = envelope.open(
        sealed.token,
        recipient=PartyKeys.load(keys_dir, "wam-mash", registry),
        registry=registry,
        replay=MemoryReplayStore(),
    )
    _say(
        f"opened by wam-mash: issuer {claims.iss}, rule {claims.rule_id}, "
        f"basis {claims.lawful_basis}, {len(disclosure.shared_fields())} fields"
    )
    _say(json.dumps(claims.event, indent=2, sort_keys=True))


def run_demo(settings: Settings, samples_dir: Path, *, serve: bool = False) -> None:
    """The whole path: samples → AMQP ingest → policy → sealed disclosures → recipients.

    Uses the demo key directory and a fresh demo database named in ``settings``; the
    recipient queues are emptied first, so what is shown is this run's traffic. With
    ``serve`` the service keeps running afterwards, with the HTTP API and the MASH intake
    pages, until SIGINT or SIGTERM; a demo member of staff is made (development only).
    """
    agreement = load_agreement(settings.agreement_path)
    ensure_demo_keys(settings.crypto.keys_dir, agreement, settings.crypto.service_party)
    service = Service.load(settings)
    files = sorted(p for p in samples_dir.rglob("*") if p.is_file() and p.name != "README.md")
    _say(
        f"agreement {agreement.version}: {len(agreement.parties)} parties, "
        f"{len(agreement.rules)} rules; {len(files)} sample messages from {samples_dir}"
    )
    asyncio.run(_run(service, samples_dir, files, serve=serve))
    service.engine.dispose()


async def _run(service: Service, samples_dir: Path, files: list[Path], *, serve: bool) -> None:
    parts = ALL_PARTS if serve else tuple(p for p in ALL_PARTS if p != "api")
    runtime = Runtime(service, parts)
    await runtime.start()
    try:
        await _purge_recipient_queues(service)
        await _publish(service, samples_dir, files)
        await _settle(service)
        await _show_recipients(service)
        _show_mash(service)
        _show_refusals(service)
        await asyncio.to_thread(runtime.checkpoint_now)
        _show_audit(service)
        if serve:
            await _serve(service)
    finally:
        await runtime.stop()


async def _serve(service: Service) -> None:
    """Print where the intake pages are and a sign-in, then run until told to stop."""
    settings = service.settings
    _say()
    if settings.environment != "development":
        _say("not development: no demo account made; sign in with a real staff account")
    else:
        password = await asyncio.to_thread(_demo_account, service)
        _say(f"MASH intake pages: {settings.api.public_base_url}/intake")
        _say(f"  sign in as {DEMO_STAFF} with password {password}")
        _say(f"  JSON API: {settings.api.public_base_url}/v1/intake/alerts (same sign-in)")
    _say("the service is running (ingest, relay, intake, API); Ctrl-C stops it")
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signum, stopping.set)
    await stopping.wait()


def _demo_account(service: Service) -> str:
    """Make (or reset) the demo member of staff; its password is new each run."""
    # Imported here: only the serving demo needs the API's account store.
    from broker.api.auth import AccountStore, Role  # noqa: PLC0415

    password = "-".join(secrets.token_urlsafe(6) for _ in range(3))
    store = AccountStore(service.sessions)
    if any(name == DEMO_STAFF for name, _, _ in store.list()):
        store.set_password(DEMO_STAFF, password)
    else:
        store.add(DEMO_STAFF, password, [Role.INTAKE, Role.MANAGER])
    return password


async def _purge_recipient_queues(service: Service) -> None:
    connection = await aio_pika.connect(service.settings.amqp.url.get_secret_value())
    async with connection:
        channel = await connection.channel()
        for name in service.topology.recipient_queues.values():
            queue = await channel.get_queue(name, ensure=False)
            await queue.purge()


async def _publish(service: Service, samples_dir: Path, files: list[Path]) -> None:
    connection = await aio_pika.connect(service.settings.amqp.url.get_secret_value())
    by_adapter: Counter[str] = Counter()
    async with connection:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        exchange = await channel.get_exchange(INGEST_EXCHANGE)
        for path in files:
            adapter = adapter_for(path.relative_to(samples_dir).as_posix())
            await exchange.publish(
                aio_pika.Message(
                    path.read_bytes(),
                    app_id=sender_for(adapter),
                    message_id=f"demo-{path.name}",
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                ),
                routing_key=ingest_routing_key(adapter),
                mandatory=True,
            )
            by_adapter[adapter] += 1
    _say(
        "published to the AMQP ingest: "
        + ", ".join(f"{n} {adapter}" for adapter, n in sorted(by_adapter.items()))
    )


async def _settle(service: Service, within: float = 60.0) -> None:
    """Wait until the ingest queues are empty, the outbox is drained and intake is quiet."""
    deadline = time.monotonic() + within
    last = -1
    while time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        alerts = _count(service, select(func.count()).select_from(MashAlert))
        depth = await _ingest_depth(service)
        if depth == 0 and outbox_backlog(service) == 0 and alerts == last:
            return
        last = alerts
    _say("warning: the pipeline had not settled within the time allowed")


async def _ingest_depth(service: Service) -> int:
    connection = await aio_pika.connect(service.settings.amqp.url.get_secret_value())
    async with connection:
        channel = await connection.channel()
        total = 0
        for queue in service.topology.queues:
            if queue.name.startswith("ingest.") and not queue.name.endswith(".dlq"):
                declared = await channel.declare_queue(queue.name, passive=True)
                total += declared.declaration_result.message_count or 0
    return total


async def _show_recipients(service: Service) -> None:
    _say()
    _say("what each recipient received (opened with its own key, as it would):")
    replay = MemoryReplayStore()
    connection = await aio_pika.connect(service.settings.amqp.url.get_secret_value())
    async with connection:
        channel = await connection.channel()
        for party, queue_name in sorted(service.topology.recipient_queues.items()):
            if party == "wam-mash":
                continue
            keys = PartyKeys.load(service.keys_dir, party, service.registry)
            queue = await channel.get_queue(queue_name, ensure=False)
            types: Counter[str] = Counter()
            fields: set[str] = set()
            while (message := await queue.get(no_ack=False, fail=False)) is not None:
                claims = envelope.open(
                    message.body, recipient=keys, registry=service.registry, replay=replay
                )
                await message.ack()
                types[str(claims.event_type)] += 1
                fields.update(leaf_paths(claims.event))
            total = sum(types.values())
            if not total:
                _say(f"  {party:<24} nothing")
                continue
            summary = ", ".join(f"{t} x{n}" for t, n in sorted(types.items()))
            _say(f"  {party:<24} {total:>3} on {queue_name}: {summary}")
            subject = sorted(f.removeprefix("subject.") for f in fields if f.startswith("subject."))
            _say(f"  {'':<24}     fields about the child: {', '.join(subject) or 'none'}")


def _show_mash(service: Service) -> None:
    with session_scope(service.sessions) as session:
        rows = session.execute(
            select(col(MashAlert.event_type), func.count()).group_by(col(MashAlert.event_type))
        ).all()
    total = sum(n for _, n in rows)
    _say(
        f"  {'wam-mash (MASH intake)':<24} {total:>3} alerts stored: "
        + ", ".join(f"{t} x{n}" for t, n in sorted(rows))
    )


def _show_refusals(service: Service) -> None:
    reasons: dict[str, Counter[str]] = defaultdict(Counter)
    with session_scope(service.sessions) as session:
        for recipient, reason in session.execute(
            select(col(AuditEntry.recipient), col(AuditEntry.reason)).where(
                col(AuditEntry.kind).in_([AuditKind.REFUSED, AuditKind.REJECTED])
            )
        ):
            reasons[str(reason)][recipient or "-"] += 1
    _say()
    _say("refused, and why (each one is in the audit log with its rule):")
    for reason, parties in sorted(reasons.items()):
        named = ", ".join(f"{p} x{n}" for p, n in sorted(parties.items()))
        _say(f"  {reason:<24} {named}")


def _show_audit(service: Service) -> None:
    with session_scope(service.sessions) as session:
        report = verify(session, audit_public_keys(service))
    _say()
    _say(f"audit chain: {report.summary()}")


def _count(service: Service, statement: Select[Any]) -> int:
    with session_scope(service.sessions) as session:
        return int(session.execute(statement).scalar_one())
