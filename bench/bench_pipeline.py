"""End to end: AMQP ingest → MASH intake store, beside a bare JOSE + AMQP pipeline, one run.

Run against the RabbitMQ on loopback (guest/guest, management API on 15672)::

    .venv/bin/python bench/bench_pipeline.py                 # SQLite; 2-5 minutes
    .venv/bin/python bench/bench_pipeline.py --database-url postgresql://postgres@127.0.0.1/postgres
    .venv/bin/python bench/bench_pipeline.py --rounds 5 --events 2000 --json out.json
    .venv/bin/python bench/bench_pipeline.py --without-triage   # diagnostic, see below

Both paths carry the same messages: native police JSON records (``missing_report``, the
scenario's first report padded to 2,048 bytes, each about a child of its own), published
with confirms to a RabbitMQ ingest queue, each causing one event sealed for two recipients.

- **Broker**: the real service (``broker.runtime.Runtime``: ingest worker, outbox relay,
  MASH intake consumer with its triage, audit checkpoints) over a temporary database, with
  ``bench/agreement.yaml`` (each event goes to the MASH and to children's services).
  An event is done when its MASH alert's transaction has committed in the intake store
  (observed with SQLAlchemy session events).
- **Bare**: the same hops with no database at all: consume the native message, parse it
  with the police adapter, sign and encrypt the event for each of the two recipients with
  joserfc (registries built once), publish both with confirms (bare aio-pika), ack; a
  second consumer decrypts and verifies the MASH copy with joserfc and acks. An event is
  done when that ack is sent. No policy, outbox, audit, inbox or replay store.

The second recipient's queue is consumed by no one here; it is emptied between
measurements (a partner consumes it on its own machine).

- **Throughput**: ``--rounds`` rounds; in each, ``--events`` messages are put on the
  ingest queue first, then that path's consumers start. The sustained rate is the
  completions between 10% and 90% of the backlog over the time between them (start-up
  and tail excluded). Rounds alternate bare and broker, so that both meet the machine's
  load of the moment; the ratio is the median of the rounds' ratios.
- **Latency**: ``--rate`` messages a second (paced, by a publisher in a process of its
  own) for ``--duration`` seconds after a ``--warmup`` whose samples are dropped, bare
  first, then broker; latency runs from just before the publish of the native message
  to the commit of its alert (broker) or the ack of its opened copy (bare).

``--intake-process`` runs the MASH intake as a process of its own, as a deployment on
SQLite may (``mash-broker run --only intake`` with ``MASH_AMQP__PREPARE_PROCESSES=0``,
beside ``--only ingest --only relay --only checkpoints``): the two processes queue at
the database's write gate (a file lock), and the intake's commits are reported to the
benchmark over a pipe; its CPU is counted with the service's.

``--stages`` adds, for the broker's paced run, where each event's time went: when it
passed each hop (the ingest's delivery, its prepared message, its batch's start and
commit, the relay's publish, the intake's delivery, its batch's start and commit),
observed by wrapping those methods in this benchmark's processes (the service is not
changed), and reported hop to hop as percentiles.

``--without-triage`` skips the MASH intake's triage (linking the child, folding the
episode, clocks, scoring) to show what the rest of the path costs; it is not the real
path and its figures are labelled so.

Each run uses a fresh RabbitMQ virtual host, fresh keys and a temporary database (a file
in a temporary directory, or a ``mash_bench_<random>`` database on the PostgreSQL server
given), all removed at the end. Exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import contextvars
import functools
import json
import math
import multiprocessing
import os
import platform
import statistics
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

# Run from a checkout without installing: the repository root is the import root.
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import aio_pika  # noqa: E402
import sqlalchemy as sa  # noqa: E402
from aio_pika.abc import AbstractIncomingMessage  # noqa: E402
from joserfc import jwe, jws  # noqa: E402
from pydantic import SecretStr  # noqa: E402

from adapters import AdapterContext, get_adapter  # noqa: E402
from broker.db import GateStats, write_gate_stats  # noqa: E402
from broker.demokeys import ensure_demo_keys  # noqa: E402
from broker.ingest import IngestWorker  # noqa: E402
from broker.intake.consumer import IntakeConsumer  # noqa: E402
from broker.keys import ENCRYPTION_ALG, SIGNING_ALG, KeyRegistry, PartyKeys  # noqa: E402
from broker.logging import configure_logging  # noqa: E402
from broker.messaging.publisher import Publisher  # noqa: E402
from broker.policy import load_agreement  # noqa: E402
from broker.runtime import ALL_PARTS, Runtime  # noqa: E402
from broker.samples import render_all  # noqa: E402
from broker.service import Service  # noqa: E402
from broker.settings import AmqpSettings, CryptoSettings, DatabaseSettings, Settings  # noqa: E402
from broker.topology import INGEST_EXCHANGE, ensure_topology, ingest_routing_key  # noqa: E402
from schemas.common import make_test_nhs_number  # noqa: E402

AGREEMENT = ROOT / "bench" / "agreement.yaml"
SENDER = "tvp-police"
SERVICE_PARTY = "wam-broker"
RECIPIENTS = ("wam-mash", "wam-childrens-services")
#: The broker's queue for the second recipient, which no one consumes in this benchmark.
PARTNER_QUEUE = "partner.wam-childrens-services"
MESSAGE_BYTES = 2048
#: The parts of the service the broker path runs (the HTTP API, if any, is not needed).
PARTS = tuple(p for p in ALL_PARTS if p in {"ingest", "relay", "intake", "checkpoints"})

TARGET_RATIO = 0.8
TARGET_P99_MS = 50.0


# --------------------------------------------------------------------------- messages


_FORENAMES = ("Ellie", "Jaden", "Maisie", "Tomasz", "Aaliyah", "Rory", "Keira", "Dev")
_SURNAMES = ("Pellington", "Ashcombe", "Marlow", "Quennell", "Brightwater", "Okonedo")


def native_messages(count: int, run: str, first: int = 0) -> list[bytes]:
    """``count`` police missing reports of about 2 KB, each with its own record id.

    The record id decides the event id, so every message is a new event (no dedup).
    """
    template = json.loads(render_all(1)["police/episode-01-reported.json"])
    template["report"]["risk_grade"] = "MEDIUM"
    # Distinct NHS numbers: make_test_nhs_number gives a serial whose check digit would be
    # 10 the next serial's number, so consecutive serials would share one about once in
    # eleven, and the intake would file those children as conflicts for review.
    numbers = sorted({make_test_nhs_number(serial) for serial in range(2 * (first + count) + 16)})

    def render(n: int, note: str) -> bytes:
        record = json.loads(json.dumps(template))
        record["record_id"] = f"BENCH-{run}-{n:06d}-R"
        record["episode_ref"] = f"BENCH-{run}-{n:06d}"
        # A child of its own for each event, as in a real stream: the MASH intake links
        # children and counts their episodes, and one child with thousands of episodes
        # would measure something else.
        person = record["missing_person"]
        person["forenames"] = _FORENAMES[n % len(_FORENAMES)]
        person["surname"] = _SURNAMES[(n // len(_FORENAMES)) % len(_SURNAMES)]
        person["nhs_number"] = numbers[n]
        person["police_person_ref"] = f"TVP/P/{n:06d}"
        # Name and date of birth together stay unique for 34,800 messages, so no two
        # children look alike (which would open link reviews for a person to settle).
        person["date_of_birth"] = (date(2009, 1, 1) + timedelta(days=n % 5800)).isoformat()
        record["report"]["circumstances"] = note
        return (json.dumps(record, indent=2, ensure_ascii=False) + "\n").encode()

    base = template["report"]["circumstances"]
    filler = " Seen near the river path with two older youths; phone off since."
    note = base
    while len(render(0, note + filler)) <= MESSAGE_BYTES:
        note += filler
    short = MESSAGE_BYTES - len(render(0, note))
    note += filler[:short]
    return [render(n, note) for n in range(first, first + count)]


def event_ids(messages: list[bytes]) -> list[uuid.UUID]:
    """The event id each message causes (one event per missing report)."""
    adapter = get_adapter("police")
    context = AdapterContext(source_agency=SENDER, now=datetime.now(UTC))
    ids = []
    for raw in messages:
        (event,) = adapter.parse(raw, context)
        ids.append(event.metadata.event_id)
    return ids


# --------------------------------------------------------------------------- RabbitMQ


@dataclass(frozen=True)
class Rabbit:
    """Where RabbitMQ is, and a virtual host made for this run."""

    amqp_base: str
    management: str
    vhost: str

    @property
    def url(self) -> str:
        parts = urllib.parse.urlsplit(self.amqp_base)
        return urllib.parse.urlunsplit(
            (parts.scheme, parts.netloc, "/" + urllib.parse.quote(self.vhost, safe=""), "", "")
        )

    def _call(self, method: str, path: str, body: Any = None) -> None:
        parts = urllib.parse.urlsplit(self.amqp_base)
        user = urllib.parse.unquote(parts.username or "guest")
        password = urllib.parse.unquote(parts.password or "guest")
        auth = base64.b64encode(f"{user}:{password}".encode()).decode()
        request = urllib.request.Request(  # noqa: S310 - the operator's management URL
            self.management.rstrip("/") + "/api" + path,
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Basic {auth}", "content-type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30):  # noqa: S310 - as above
            pass

    @contextlib.contextmanager
    def fresh_vhost(self) -> Iterator[None]:
        quoted = urllib.parse.quote(self.vhost, safe="")
        parts = urllib.parse.urlsplit(self.amqp_base)
        user = urllib.parse.unquote(parts.username or "guest")
        self._call("PUT", f"/vhosts/{quoted}", {})
        try:
            self._call(
                "PUT",
                f"/permissions/{quoted}/{urllib.parse.quote(user, safe='')}",
                {"configure": ".*", "write": ".*", "read": ".*"},
            )
            yield
        finally:
            self._call("DELETE", f"/vhosts/{quoted}")


async def purge(url: str, queues: list[str]) -> None:
    """Empty queues nobody consumes here (the second recipient's), between measurements.

    A real partner consumes its own queue on its own machine; left to grow here, the
    queue would make RabbitMQ's work (and so the next measurement) depend on the order.
    """
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        for name in queues:
            with contextlib.suppress(aio_pika.exceptions.ChannelNotFoundEntity):
                queue = await channel.declare_queue(name, passive=True)
                await queue.purge()


async def publish_all(
    url: str, exchange_name: str, routing_key: str, messages: list[bytes], first: int = 0
) -> None:
    """Publish every message with pipelined confirms (the backlog for a throughput run)."""
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        exchange = (
            channel.default_exchange
            if exchange_name == ""
            else await channel.get_exchange(exchange_name, ensure=False)
        )
        for start in range(0, len(messages), 500):
            await asyncio.gather(
                *(
                    exchange.publish(
                        _native(raw, first + start + i), routing_key=routing_key, mandatory=True
                    )
                    for i, raw in enumerate(messages[start : start + 500])
                )
            )


async def publish_paced(url: str, **kwargs: Any) -> dict[int, float]:
    """``publish_at_rate`` in a process of its own, so that the path measured, which runs
    in this process, neither slows the load down nor is slowed by making it.

    ``time.perf_counter`` is the system's monotonic clock, the same in both processes.
    The pool is shut down (its process joined) from a thread: on the event loop, which
    also runs the path measured, the join held the loop about 180 ms, and the last
    events' relay publish with it.
    """
    pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
    try:
        job = functools.partial(_publish_at_rate_now, url, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(pool, job)
    finally:
        await asyncio.to_thread(pool.shutdown)


def _publish_at_rate_now(url: str, **kwargs: Any) -> dict[int, float]:
    return asyncio.run(publish_at_rate(url, **kwargs))


async def publish_at_rate(
    url: str,
    *,
    exchange_name: str,
    routing_key: str,
    messages: list[bytes],
    rate: float,
    first: int,
) -> dict[int, float]:
    """Publish at ``rate`` a second, confirms in the background; when each publish began."""
    sent: dict[int, float] = {}
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        exchange = (
            channel.default_exchange
            if exchange_name == ""
            else await channel.get_exchange(exchange_name, ensure=False)
        )
        pending: list[Awaitable[Any]] = []
        start = time.perf_counter()
        for i, raw in enumerate(messages):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            n = first + i
            sent[n] = time.perf_counter()
            pending.append(
                asyncio.ensure_future(
                    exchange.publish(_native(raw, n), routing_key=routing_key, mandatory=True)
                )
            )
        await asyncio.gather(*pending)
    return sent


def _native(raw: bytes, n: int) -> aio_pika.Message:
    return aio_pika.Message(
        raw,
        app_id=SENDER,
        message_id=f"native-{n}",
        content_type="application/json",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
    )


# --------------------------------------------------------------------------- stages


#: The hops of the broker's path, in order (``--stages``); the first is the native
#: message's publish, the last the commit of its MASH alert's batch.
HOPS = (
    "published",
    "ingest received",
    "prepared",
    "ingest batch began",
    "ingest committed",
    "relay published",
    "intake received",
    "intake batch began",
    "intake committed",
)
#: Off the path (the intake is often delivered the disclosure before the relay hears of
#: the confirm), reported from ``relay published``.
CONFIRMED = "relay confirmed"

_ingest_message: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "bench_ingest_message", default=None
)


class StageClock:
    """``--stages``: when each event passed each hop, by wrapping the methods at the hops.

    Ingest hops are keyed by the native message's id, the rest by the MASH disclosure's
    token id (its AMQP message id); ``disclosure`` joins the two. Only what happens while
    ``recording`` is set is kept (the paced run, not the backlog rounds).
    """

    def __init__(self, mash: str) -> None:
        self.marks: dict[str, dict[str, float]] = {hop: {} for hop in (*HOPS, CONFIRMED)}
        #: Native message id → the MASH disclosure's token id.
        self.disclosure: dict[str, str] = {}
        self.recording = False
        self._mash = mash

    def mark(self, hop: str, key: str | None) -> None:
        if self.recording and key is not None:
            self.marks[hop].setdefault(key, time.perf_counter())

    def merge(self, marks: dict[str, dict[str, float]], disclosure: dict[str, str]) -> None:
        """Add the marks another process's clock made (the intake's, ``--intake-process``)."""
        for hop, times in marks.items():
            self.marks[hop].update(times)
        self.disclosure.update(disclosure)

    def _mash_tokens(self, prepared: Any) -> list[str]:
        return [o["jti"] for o in prepared.batch.outbox if o.get("recipient") == self._mash]

    def wrap_service(self) -> None:
        """The ingest worker's and the relay's hops, in this process."""
        clock = self
        handle, prepare, store = (
            IngestWorker._handle,
            IngestWorker._prepare,
            IngestWorker._store_batch,
        )
        publish = Publisher.publish_batch

        async def _handle(worker: IngestWorker, message: Any) -> None:
            clock.mark("ingest received", message.message_id)
            _ingest_message.set(message.message_id)
            await handle(worker, message)

        async def _prepare(worker: IngestWorker, body: bytes, source: str) -> Any:
            prepared = await prepare(worker, body, source)
            native = _ingest_message.get()
            clock.mark("prepared", native)
            if clock.recording and native is not None:
                # One disclosure a message goes to the MASH (one outbox row a recipient).
                for token in clock._mash_tokens(prepared)[:1]:
                    clock.disclosure[native] = token
            return prepared

        def _store_batch(worker: IngestWorker, items: Any) -> Any:
            if not clock.recording:
                return store(worker, items)
            tokens = [t for item in items for t in clock._mash_tokens(item)]
            for token in tokens:
                clock.mark("ingest batch began", token)
            outcomes = store(worker, items)
            for token in tokens:
                clock.mark("ingest committed", token)
            return outcomes

        async def _publish_batch(publisher: Publisher, messages: Any) -> Any:
            for message in messages:
                clock.mark("relay published", message.message_id)
            results = await publish(publisher, messages)
            for message in messages:
                clock.mark(CONFIRMED, message.message_id)
            return results

        setattr(IngestWorker, "_handle", _handle)  # noqa: B010 - measuring only
        setattr(IngestWorker, "_prepare", _prepare)  # noqa: B010 - measuring only
        setattr(IngestWorker, "_store_batch", _store_batch)  # noqa: B010 - measuring only
        setattr(Publisher, "publish_batch", _publish_batch)  # noqa: B010 - measuring only

    def wrap_intake(self) -> None:
        """The MASH intake's hops, in the process it runs in."""
        clock = self
        handle, store = IntakeConsumer._handle, IntakeConsumer._store_batch

        async def _handle(consumer: IntakeConsumer, message: Any) -> None:
            clock.mark("intake received", message.message_id)
            await handle(consumer, message)

        def _store_batch(consumer: IntakeConsumer, deliveries: Any) -> Any:
            for delivery in deliveries:
                clock.mark("intake batch began", delivery[1])
            outcomes = store(consumer, deliveries)
            for delivery in deliveries:
                clock.mark("intake committed", delivery[1])
            return outcomes

        setattr(IntakeConsumer, "_handle", _handle)  # noqa: B010 - measuring only
        setattr(IntakeConsumer, "_store_batch", _store_batch)  # noqa: B010 - measuring only

    def hops(self, sent: dict[int, float], warm: int) -> list[tuple[str, str, list[float]]]:
        """Per hop, its milliseconds for every measured event that passed them all."""
        rows: list[list[float]] = []
        for n, at in sent.items():
            native = f"native-{n}"
            token = self.disclosure.get(native)
            if n < warm or token is None:
                continue
            times = [at]
            for hop in HOPS[1:]:
                key = native if hop in ("ingest received", "prepared") else token
                if key not in self.marks[hop]:
                    break
                times.append(self.marks[hop][key])
            else:
                times.append(self.marks[CONFIRMED].get(token, float("nan")))
                rows.append(times)
        result = [
            (HOPS[i - 1], HOPS[i], [(r[i] - r[i - 1]) * 1000 for r in rows])
            for i in range(1, len(HOPS))
        ]
        confirmed = [(r[-1] - r[HOPS.index("relay published")]) * 1000 for r in rows]
        result.append(("relay published", CONFIRMED, [c for c in confirmed if not math.isnan(c)]))
        return result


# --------------------------------------------------------------------------- results


@dataclass
class Throughput:
    """A backlog drained: how fast, sustained and overall, and at what CPU cost."""

    events: int
    sustained_per_s: float
    overall_per_s: float
    cpu_us_per_event: float
    load_before: float
    load_after: float


@dataclass
class Latency:
    """Paced publishing: latency percentiles in milliseconds."""

    rate: float
    events: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    achieved_per_s: float
    load_before: float
    load_after: float
    #: The share of the paced run that the service process's writers held SQLite's write
    #: gate, and their transactions (None: PostgreSQL, or the bare path); the same for the
    #: intake's own process (``--intake-process``), over its life.
    gate_held_share: float | None = None
    gate_transactions: int | None = None
    intake_gate_held_share: float | None = None
    intake_gate_transactions: int | None = None
    #: ``--stages``: per hop of the path, its percentiles in milliseconds.
    stages: list[HopTimes] | None = None


@dataclass(frozen=True)
class HopTimes:
    """One hop of the broker's path over the paced run's measured events (``--stages``)."""

    start: str
    end: str
    events: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float

    @classmethod
    def of(cls, start: str, end: str, samples: list[float]) -> HopTimes:
        if len(samples) < 2:
            nan = float("nan")
            return cls(start, end, len(samples), nan, nan, nan, max(samples, default=nan))
        q = statistics.quantiles(samples, n=100, method="inclusive")
        return cls(start, end, len(samples), q[49], q[89], q[98], max(samples))


@dataclass
class PathResult:
    """One path's figures: a throughput per round, and one latency run."""

    name: str
    rounds: list[Throughput] = field(default_factory=list)
    latency: Latency | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def sustained(self) -> float:
        """The median sustained rate over the rounds."""
        return statistics.median(t.sustained_per_s for t in self.rounds)

    @property
    def cpu_us(self) -> float:
        """The median CPU time per event over the rounds."""
        return statistics.median(t.cpu_us_per_event for t in self.rounds)


def _throughput(done: list[float], started: float, cpu: float, load: float) -> Throughput:
    done = sorted(done)
    count = len(done)
    low, high = int(count * 0.1), int(count * 0.9) - 1
    overall = count / (done[-1] - started)
    span = done[high] - done[low]
    # A backlog no larger than a batch commits its 10%-90% at one instant: no rate there.
    sustained = (high - low) / span if span > 0 else overall
    return Throughput(
        events=count,
        sustained_per_s=sustained,
        overall_per_s=overall,
        cpu_us_per_event=cpu / count * 1e6,
        load_before=load,
        load_after=os.getloadavg()[0],
    )


def _latency(
    sent: dict[int, float], done: dict[int, float], warm: int, rate: float, load: float
) -> Latency:
    samples = sorted((done[n] - sent[n]) * 1000 for n in sent if n >= warm)
    quantiles = statistics.quantiles(samples, n=100, method="inclusive")
    measured = [n for n in sent if n >= warm]
    span = max(done[n] for n in measured) - min(sent[n] for n in measured)
    return Latency(
        rate=rate,
        events=len(samples),
        p50_ms=quantiles[49],
        p95_ms=quantiles[94],
        p99_ms=quantiles[98],
        max_ms=samples[-1],
        achieved_per_s=len(measured) / span,
        load_before=load,
        load_after=os.getloadavg()[0],
    )


async def _wait_for(check: Callable[[], bool], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"{what}: not finished within {within:.0f} s")
        await asyncio.sleep(0.01)


# --------------------------------------------------------------------------- bare pipeline


class BarePipeline:
    """The same hops with joserfc and aio-pika only: no database, policy, outbox or audit."""

    INGEST = "bench.bare.ingest"
    QUEUES: ClassVar[dict[str, str]] = {
        "wam-mash": "bench.bare.mash",
        "wam-childrens-services": "bench.bare.partner",
    }

    def __init__(self, url: str, keys_dir: Path, prefetch: int) -> None:
        self._url = url
        self._prefetch = prefetch
        registry = KeyRegistry.load(keys_dir)
        service = PartyKeys.load(keys_dir, SERVICE_PARTY, registry)
        if service.signing is None:
            raise SystemExit("the service party has no signing key")
        self._signing = service.signing
        self._verify_key = registry.get(self._signing.kid).public
        self._encrypt_to = {party: registry.encryption_key(party) for party in RECIPIENTS}
        mash = PartyKeys.load(keys_dir, "wam-mash", registry)
        (self._decrypt,) = (key.key for key in mash.decryption.values())
        self._jws = jws.JWSRegistry(algorithms=[SIGNING_ALG])
        self._jwe = jwe.JWERegistry(algorithms=[ENCRYPTION_ALG, "A256GCM"])
        self._adapter = get_adapter("police")
        self.done: dict[int, float] = {}
        self._connections: list[aio_pika.abc.AbstractConnection] = []

    def seal(self, payload: bytes, party: str) -> str:
        signed = jws.serialize_compact(
            {"alg": SIGNING_ALG, "typ": "JWT", "kid": self._signing.kid},
            payload,
            self._signing.key,
            registry=self._jws,
        )
        recipient = self._encrypt_to[party]
        return jwe.encrypt_compact(
            {"alg": ENCRYPTION_ALG, "enc": "A256GCM", "cty": "JWT", "kid": recipient.kid},
            signed,
            recipient.public,
            registry=self._jwe,
        )

    def open(self, token: bytes) -> bytes:
        signed = jwe.decrypt_compact(token, self._decrypt, registry=self._jwe).plaintext
        if signed is None:
            raise SystemExit("a bare token decrypted to nothing")
        return jws.deserialize_compact(signed, self._verify_key, registry=self._jws).payload

    def _claims(self, event_json: bytes, party: str, now: datetime) -> bytes:
        iat = int(now.timestamp())
        head = json.dumps(
            {
                "iss": SERVICE_PARTY,
                "aud": party,
                "iat": iat,
                "exp": iat + 604800,
                "jti": uuid.uuid4().hex,
            },
            separators=(",", ":"),
        ).encode()
        return head[:-1] + b',"event":' + event_json + b"}"

    async def declare(self) -> None:
        connection = await aio_pika.connect(self._url)
        async with connection:
            channel = await connection.channel()
            for name in (self.INGEST, *self.QUEUES.values()):
                await channel.declare_queue(
                    name, durable=True, arguments={"x-queue-type": "quorum"}
                )

    async def start(self) -> None:
        """Start both stages, each on connections of its own as the broker does."""
        publishing = await aio_pika.connect(self._url)
        consuming = await aio_pika.connect(self._url)
        intake = await aio_pika.connect(self._url)
        self._connections = [publishing, consuming, intake]
        out = await publishing.channel(publisher_confirms=True, on_return_raises=True)
        exchange = out.default_exchange

        async def on_ingest(message: AbstractIncomingMessage) -> None:
            now = datetime.now(UTC)
            events = self._adapter.parse(message.body, AdapterContext(SENDER, now=now))
            n = message.message_id or ""
            publishes = []
            for event in events:
                event_json = event.model_dump_json().encode()
                for party, queue in self.QUEUES.items():
                    token = self.seal(self._claims(event_json, party, now), party)
                    publishes.append(
                        exchange.publish(
                            aio_pika.Message(
                                token.encode("ascii"),
                                message_id=f"{n}.{party}",
                                content_type="application/jose",
                                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                                type=event.event_type.value,
                            ),
                            routing_key=queue,
                            mandatory=True,
                        )
                    )
            await asyncio.gather(*publishes)
            await message.ack()

        async def on_mash(message: AbstractIncomingMessage) -> None:
            self.open(message.body)
            await message.ack()
            n = int((message.message_id or "").split(".", 1)[0].rsplit("-", 1)[1])
            self.done[n] = time.perf_counter()

        for connection, queue, handler in (
            (consuming, self.INGEST, on_ingest),
            (intake, self.QUEUES["wam-mash"], on_mash),
        ):
            channel = await connection.channel()
            await channel.set_qos(prefetch_count=self._prefetch)
            source = await channel.declare_queue(queue, passive=True)
            await source.consume(handler)

    async def stop(self) -> None:
        for connection in self._connections:
            await connection.close()
        self._connections = []


class BareHarness:
    """Measures the bare pipeline: a backlog drained, or a paced run."""

    def __init__(self, rabbit: Rabbit, keys_dir: Path, prefetch: int) -> None:
        self._rabbit = rabbit
        self.pipeline = BarePipeline(rabbit.url, keys_dir, prefetch)

    async def setup(self) -> None:
        await self.pipeline.declare()

    async def throughput(self, messages: list[bytes], first: int) -> Throughput:
        pipeline = self.pipeline
        pipeline.done.clear()
        await publish_all(self._rabbit.url, "", BarePipeline.INGEST, messages, first)
        load = os.getloadavg()[0]
        cpu = time.process_time()
        started = time.perf_counter()
        await pipeline.start()
        await _wait_for(
            lambda: len(pipeline.done) >= len(messages), 60 + len(messages) / 20, "bare backlog"
        )
        cpu = time.process_time() - cpu
        await pipeline.stop()
        return _throughput(list(pipeline.done.values()), started, cpu, load)

    async def latency(self, messages: list[bytes], first: int, rate: float, warm: int) -> Latency:
        pipeline = self.pipeline
        pipeline.done.clear()
        await pipeline.start()
        load = os.getloadavg()[0]
        sent = await publish_paced(
            self._rabbit.url,
            exchange_name="",
            routing_key=BarePipeline.INGEST,
            messages=messages,
            rate=rate,
            first=first,
        )
        await _wait_for(
            lambda: len(pipeline.done) >= len(messages), 60 + len(messages) / 20, "bare paced"
        )
        await pipeline.stop()
        return _latency(sent, pipeline.done, first + warm, rate, load)


# --------------------------------------------------------------------------- broker path


class AlertClock:
    """When each MASH alert's transaction committed, by event id (engine events).

    The intake stores alerts by one INSERT statement per transaction, on the session's
    connection; its rows name the events. ``report`` takes each committed transaction's
    event ids instead of ``committed`` (the intake in a process of its own sends them to
    the benchmark).
    """

    def __init__(
        self, service: Service, report: Callable[[list[uuid.UUID]], None] | None = None
    ) -> None:
        self.committed: dict[uuid.UUID, float] = {}
        self._report = report or self._record
        sa.event.listen(service.engine, "after_execute", self._on_execute)
        sa.event.listen(service.engine, "commit", self._after_commit)
        sa.event.listen(service.engine, "rollback", self._after_rollback)

    @staticmethod
    def _on_execute(connection: sa.Connection, statement: Any, *args: Any) -> None:
        if isinstance(statement, sa.Insert) and statement.table.name == "mash_alert":
            multiparams, params = args[0], args[1]
            rows = list(multiparams) if multiparams else [params]
            connection.info.setdefault("bench_alerts", []).extend(r["event_id"] for r in rows)

    def _after_commit(self, connection: sa.Connection) -> None:
        alerts = connection.info.pop("bench_alerts", None)
        if alerts:
            self._report(alerts)

    def _record(self, alerts: list[uuid.UUID]) -> None:
        now = time.perf_counter()
        for event_id in alerts:
            self.committed[event_id] = now

    @staticmethod
    def _after_rollback(connection: sa.Connection) -> None:
        connection.info.pop("bench_alerts", None)


def _skip_triage() -> None:
    """``--without-triage``: the MASH intake stores alerts and does not triage them."""
    IntakeConsumer._triage = lambda *_args, **_kwargs: []  # type: ignore[method-assign]
    IntakeConsumer._triage_many = lambda *_args, **_kwargs: []  # type: ignore[method-assign]


@dataclass(frozen=True)
class IntakeOptions:
    """How the MASH intake's own process (``--intake-process``) runs and logs."""

    without_triage: bool = False
    #: Mark the intake's hops (``--stages``) and send them to the benchmark at the end.
    stages: bool = False
    log_level: str = "error"
    #: Its log file (JSON lines, as the service's); None: errors only, to the terminal.
    log_path: Path | None = None


def _intake_child(settings: Settings, results: Any, control: Any, options: IntakeOptions) -> None:
    """The MASH intake as a process of its own (``mash-broker run --only intake``).

    Says when it has started, then sends ``(event id, commit time)`` lists as alerts
    commit; stops when ``control`` says so (or closes), and sends what its writers spent
    at SQLite's write gate (``("gate", GateStats | None)``) last.
    """
    if options.without_triage:
        _skip_triage()
    if options.log_path is None:
        configure_logging("error", json=True)
    else:
        sys.stderr = options.log_path.open("a")  # for the process's lifetime
        configure_logging(options.log_level, json=True)
    # A process of its own has the interpreter lock to itself: it opens the disclosures on
    # its storing thread rather than in a prepare process of its own (which measured slower
    # on two cores: one more process, and a pickled round trip per disclosure).
    amqp = settings.amqp.model_copy(update={"prepare_processes": 0})
    service = Service.load(settings.model_copy(update={"amqp": amqp}))

    def committed(alerts: list[uuid.UUID]) -> None:
        now = time.perf_counter()  # CLOCK_MONOTONIC: the same clock in every process
        results.send([(event_id, now) for event_id in alerts])

    AlertClock(service, committed)
    clock = StageClock(RECIPIENTS[0]) if options.stages else None
    if clock is not None:
        clock.wrap_intake()
        clock.recording = True

    async def serve() -> None:
        runtime = Runtime(service, ("intake",))
        await runtime.start()
        results.send("started")
        try:
            await asyncio.get_running_loop().run_in_executor(None, control.recv)
        except EOFError:
            pass
        finally:
            await runtime.stop()
            service.engine.dispose()

    asyncio.run(serve())
    results.send(("gate", write_gate_stats(service.sessions)))
    if clock is not None:
        results.send(("stages", (clock.marks, clock.disclosure)))
    results.send(None)


class IntakeProcess:
    """Starts and stops ``_intake_child``; fills ``committed`` from what it reports."""

    def __init__(
        self, settings: Settings, committed: dict[uuid.UUID, float], options: IntakeOptions
    ) -> None:
        context = multiprocessing.get_context("spawn")
        self._results, child_results = context.Pipe(duplex=False)
        child_control, self._control = context.Pipe(duplex=False)
        self._process = context.Process(
            target=_intake_child,
            args=(settings, child_results, child_control, options),
        )
        self._committed = committed
        self._reader: Any = None
        self.pids: list[int] = []
        #: What the process's writers spent at the write gate, once it has stopped.
        self.gate: GateStats | None = None
        #: The intake's hops and disclosures (``IntakeOptions.stages``), once it has stopped.
        self.stages: tuple[dict[str, dict[str, float]], dict[str, str]] | None = None

    async def start(self) -> None:
        self._process.start()
        await asyncio.to_thread(self._results.recv)  # started
        self.pids = [self._process.pid or 0]
        self._reader = asyncio.get_running_loop().run_in_executor(None, self._read)

    def _read(self) -> None:
        while (batch := self._results.recv()) is not None:
            if isinstance(batch, tuple) and batch[0] == "stages":
                self.stages = batch[1]
            elif isinstance(batch, tuple):
                self.gate = batch[1]
            else:
                self._committed.update(batch)

    async def stop(self) -> None:
        self._control.send("stop")
        await self._reader
        await asyncio.to_thread(self._process.join, 30)


def broker_settings(
    rabbit: Rabbit, db_url: str, keys_dir: Path, prefetch: int, prepare_processes: int = 0
) -> Settings:
    return Settings(
        _env_file=None,
        environment="development",
        agreement_path=AGREEMENT,
        amqp=AmqpSettings(
            url=SecretStr(rabbit.url),
            timeout_seconds=10,
            prefetch=prefetch,
            prepare_processes=prepare_processes,
        ),
        database=DatabaseSettings(url=SecretStr(db_url)),
        crypto=CryptoSettings(keys_dir=keys_dir, service_party=SERVICE_PARTY),
    )


class BrokerHarness:
    """Measures the broker: the service's runtime started over a backlog, or paced."""

    def __init__(
        self,
        rabbit: Rabbit,
        settings: Settings,
        *,
        intake_process: IntakeOptions | None = None,
        stages: bool = False,
    ) -> None:
        """``intake_process``: run the MASH intake as a process of its own, so;
        ``stages``: time the paced run's hops (``StageClock``)."""
        self._rabbit = rabbit
        self._settings = settings
        self.service = Service.load(settings)
        self._clock = AlertClock(self.service)
        self._route = ingest_routing_key("police")
        self._intake_process = intake_process
        self._parts = PARTS if intake_process is None else tuple(p for p in PARTS if p != "intake")
        #: The intake's process of the last run, if it had one.
        self._intake: IntakeProcess | None = None
        self._stages = StageClock(RECIPIENTS[0]) if stages else None
        if self._stages is not None:
            self._stages.wrap_service()
            if intake_process is None:
                self._stages.wrap_intake()

    @contextlib.asynccontextmanager
    async def _running(self, *, paced: bool = False) -> Any:
        """The service's runtime (and, with ``intake_process``, the intake's process)."""
        options = self._intake_process
        if options is not None and paced and self._stages is not None:
            options = replace(options, stages=True)
        intake = (
            None
            if options is None
            else IntakeProcess(self._settings, self._clock.committed, options)
        )
        runtime = Runtime(self.service, self._parts)
        self._intake = intake
        if intake is not None:
            await intake.start()
        try:
            await runtime.start()
            try:
                helpers = list(runtime.preparers.pids) if runtime.preparers is not None else []
                yield helpers + (intake.pids if intake is not None else [])
            finally:
                await runtime.stop()
        finally:
            if intake is not None:
                await intake.stop()

    async def setup(self) -> None:
        await ensure_topology(self._settings.amqp, self.service.topology)

    def close(self) -> None:
        self.service.engine.dispose()

    async def throughput(self, messages: list[bytes], first: int) -> Throughput:
        ids = event_ids(messages)
        committed = self._clock.committed
        target = len(committed) + len(ids)
        await publish_all(self._rabbit.url, INGEST_EXCHANGE, self._route, messages, first)
        load = os.getloadavg()[0]
        cpu = time.process_time()
        started = time.perf_counter()
        async with self._running() as helpers:
            # The other processes (prepare, intake) start loaded: their CPU from here.
            helper_cpu = sum(_cpu_of(pid) for pid in helpers)
            # Only this run's alerts commit meanwhile, so counting them is enough.
            await _wait_for(
                lambda: len(committed) >= target, 60 + len(messages) / 20, "broker backlog"
            )
            cpu = time.process_time() - cpu + sum(_cpu_of(pid) for pid in helpers) - helper_cpu
        return _throughput([committed[i] for i in ids], started, cpu, load)

    async def latency(self, messages: list[bytes], first: int, rate: float, warm: int) -> Latency:
        ids = event_ids(messages)
        committed = self._clock.committed
        target = len(committed) + len(ids)
        stages = self._stages
        async with self._running(paced=True):
            if stages is not None:
                stages.recording = True
            load = os.getloadavg()[0]
            gate_before, since = write_gate_stats(self.service.sessions), time.perf_counter()
            sent = await publish_paced(
                self._rabbit.url,
                exchange_name=INGEST_EXCHANGE,
                routing_key=self._route,
                messages=messages,
                rate=rate,
                first=first,
            )
            await _wait_for(
                lambda: len(committed) >= target, 60 + len(messages) / 20, "broker paced"
            )
            gate_after, until = write_gate_stats(self.service.sessions), time.perf_counter()
        done = {first + k: committed[i] for k, i in enumerate(ids)}
        result = _latency(sent, done, first + warm, rate, load)
        if stages is not None:
            stages.recording = False
            if self._intake is not None and self._intake.stages is not None:
                stages.merge(*self._intake.stages)
            result = replace(
                result,
                stages=[HopTimes.of(*hop) for hop in stages.hops(sent, first + warm)],
            )

        if gate_before is None or gate_after is None:
            return result
        span = until - since
        result = replace(
            result,
            gate_held_share=(gate_after.held_seconds - gate_before.held_seconds) / span,
            gate_transactions=gate_after.transactions - gate_before.transactions,
        )
        intake = self._intake.gate if self._intake is not None else None
        if intake is None:
            return result
        return replace(
            result,
            intake_gate_held_share=intake.held_seconds / span,
            intake_gate_transactions=intake.transactions,
        )


def _cpu_of(pid: int) -> float:
    """CPU seconds (user and system) another process has used, from ``/proc``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _broker_counts(service: Service) -> dict[str, Any]:
    """Rows in the store after the run: proof that the real path did its work."""
    counts: dict[str, Any] = {}
    with service.engine.connect() as connection:
        for table in (
            "mash_alert",
            "intake_alert",
            "outbox",
            "audit_entry",
            "inbox",
            "raw_message",
        ):
            with contextlib.suppress(sa.exc.DBAPIError):
                counts[table] = connection.execute(
                    sa.text(f"SELECT count(*) FROM {table}")  # noqa: S608 - fixed names
                ).scalar_one()
    return counts


# --------------------------------------------------------------------------- databases


@contextlib.contextmanager
def temporary_database(server_url: str | None, directory: Path) -> Iterator[str]:
    """A fresh database: a SQLite file, or a new database on the PostgreSQL server given."""
    if server_url is None:
        yield f"sqlite:///{directory / 'bench.db'}"
        return
    name = f"mash_bench_{uuid.uuid4().hex[:10]}"
    admin_url = sa.make_url(server_url).set(drivername="postgresql+psycopg")
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin_url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


# --------------------------------------------------------------------------- main


def _ms(value: float) -> str:
    return f"{value:,.1f}"


def report(args: argparse.Namespace, backend: str, bare: PathResult, real: PathResult) -> bool:
    """Print the tables and the verdicts; True when every target measured was met."""
    paths = [p for p in (bare, real) if p.rounds]
    print(
        f"\n{platform.python_implementation()} {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, broker database {backend}; {args.rounds} rounds of "
        f"{args.events} events each way; paced {args.rate:g}/s x {args.duration:g} s "
        f"(+{args.warmup:g} s warm-up); prefetch {args.prefetch}"
        + ("; WITHOUT the intake's triage (diagnostic)" if args.without_triage else "")
        + (f"; {args.prepare_processes} prepare processes" if args.prepare_processes else "")
        + ("; the MASH intake in a process of its own" if args.intake_process else "")
    )
    print(
        "\n| round | path | sustained ev/s | overall ev/s | CPU µs/event | load before→after |\n"
        "|---:|---|---:|---:|---:|---|"
    )
    for index in range(args.rounds):
        for path in paths:
            if index < len(path.rounds):
                t = path.rounds[index]
                print(
                    f"| {index + 1} | {path.name} | {t.sustained_per_s:,.0f} | "
                    f"{t.overall_per_s:,.0f} | {t.cpu_us_per_event:,.0f} | "
                    f"{t.load_before:.2f}→{t.load_after:.2f} |"
                )
    print(
        f"\n| path at {args.rate:g} ev/s | p50 ms | p95 ms | p99 ms | max ms | achieved ev/s "
        "| load before→after |\n|---|---:|---:|---:|---:|---:|---|"
    )
    for path in paths:
        lat = path.latency
        if lat is not None:
            print(
                f"| {path.name} | {_ms(lat.p50_ms)} | {_ms(lat.p95_ms)} | {_ms(lat.p99_ms)} | "
                f"{_ms(lat.max_ms)} | {lat.achieved_per_s:,.0f} | "
                f"{lat.load_before:.2f}→{lat.load_after:.2f} |"
            )
    ok = True
    ratio = None
    if real.rounds:
        print(f"\nbroker store after the run: {real.extra}")
    if real.latency is not None and real.latency.gate_held_share is not None:
        print(
            f"SQLite's write gate during the paced run: held {real.latency.gate_held_share:.0%}"
            f" of the time by the service process's writers, in "
            f"{real.latency.gate_transactions:,} transactions"
            + (
                f"; by the intake's own process {real.latency.intake_gate_held_share:.0%}, in "
                f"{real.latency.intake_gate_transactions:,}"
                if real.latency.intake_gate_held_share is not None
                else ""
            )
        )
    if real.latency is not None and real.latency.stages is not None:
        print(
            f"\nWhere the broker's paced events spent their time, hop by hop "
            f"({real.latency.stages[0].events:,} events):\n\n"
            "| from | to | p50 ms | p90 ms | p99 ms | max ms |\n|---|---|---:|---:|---:|---:|"
        )
        for hop in real.latency.stages:
            print(
                f"| {hop.start} | {hop.end} | {_ms(hop.p50_ms)} | {_ms(hop.p90_ms)} | "
                f"{_ms(hop.p99_ms)} | {_ms(hop.max_ms)} |"
            )
    if real.latency is not None:
        p99_ok = real.latency.p99_ms <= TARGET_P99_MS
        ok = ok and p99_ok
        print(
            f"broker p99 at {args.rate:g}/s: {real.latency.p99_ms:.1f} ms "
            f"(target <= {TARGET_P99_MS:g} ms: {'met' if p99_ok else 'MISSED'})"
        )
    if real.rounds and bare.rounds:
        ratios = [
            r.sustained_per_s / b.sustained_per_s
            for r, b in zip(real.rounds, bare.rounds, strict=True)
        ]
        ratio = statistics.median(ratios)
        ratio_ok = ratio >= TARGET_RATIO
        ok = ok and ratio_ok
        print(
            f"throughput broker/bare, median of rounds: {ratio:.2f}x "
            f"(rounds: {', '.join(f'{r:.2f}' for r in ratios)}; "
            f"medians {real.sustained:,.0f} / {bare.sustained:,.0f} ev/s; "
            f"target >= {TARGET_RATIO}x: {'met' if ratio_ok else 'MISSED'})"
        )
        print(
            f"CPU per event, median: broker {real.cpu_us:,.0f} µs, bare {bare.cpu_us:,.0f} µs "
            f"(broker/bare {real.cpu_us / bare.cpu_us:.2f}x: steadier than either on a machine "
            "whose speed wanders)"
        )
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "backend": backend,
                    "args": {k: v for k, v in vars(args).items() if k != "database_url"},
                    "bare": asdict(bare),
                    "broker": asdict(real),
                    "ratio": ratio,
                },
                indent=2,
                default=str,
            )
        )
    return ok


async def run(args: argparse.Namespace) -> bool:
    """Both paths, rounds interleaved, on a fresh virtual host and database; cleaned up."""
    run_id = uuid.uuid4().hex[:8]
    rabbit = Rabbit(args.amqp_url, args.management_url, f"mash-bench-{run_id}")
    paced_count = int(args.rate * (args.duration + args.warmup))
    warm = int(args.rate * args.warmup)
    # The same payloads for both paths; each round and the paced run have their own.
    backlogs = [
        native_messages(args.events, run_id, first=r * args.events) for r in range(args.rounds)
    ]
    paced_first = args.rounds * args.events
    paced = native_messages(paced_count, run_id, first=paced_first)
    bare = PathResult("bare (joserfc + aio-pika)")
    real = PathResult("broker (AMQP ingest → MASH intake)")
    backend = "sqlite" if args.database_url is None else "postgresql"
    with tempfile.TemporaryDirectory(prefix="mash-bench-") as tmp, rabbit.fresh_vhost():
        directory = Path(tmp)
        keys_dir = directory / "keys"
        ensure_demo_keys(keys_dir, load_agreement(AGREEMENT), SERVICE_PARTY)
        with (
            _log_to_file(args, directory) as log_path,
            temporary_database(args.database_url, directory) as db_url,
        ):
            bare_harness = BareHarness(rabbit, keys_dir, args.prefetch)
            await bare_harness.setup()
            broker = None
            if args.only in (None, "broker"):
                broker = BrokerHarness(
                    rabbit,
                    broker_settings(
                        rabbit, db_url, keys_dir, args.prefetch, args.prepare_processes
                    ),
                    intake_process=IntakeOptions(
                        without_triage=args.without_triage,
                        log_level=args.log_level,
                        log_path=None if log_path is None else log_path.with_suffix(".intake.log"),
                    )
                    if args.intake_process
                    else None,
                    stages=args.stages,
                )
                await broker.setup()
            try:
                # Rounds alternate the paths, so both meet the machine's load of the moment.
                unconsumed = [BarePipeline.QUEUES[RECIPIENTS[1]], PARTNER_QUEUE]
                for r, messages in enumerate(backlogs):
                    first = r * args.events
                    if args.only in (None, "bare"):
                        bare.rounds.append(await bare_harness.throughput(messages, first))
                        await purge(rabbit.url, unconsumed)
                    if broker is not None:
                        real.rounds.append(await broker.throughput(messages, first))
                        await purge(rabbit.url, unconsumed)
                if args.only in (None, "bare"):
                    bare.latency = await bare_harness.latency(paced, paced_first, args.rate, warm)
                    await purge(rabbit.url, unconsumed)
                if broker is not None:
                    real.latency = await broker.latency(paced, paced_first, args.rate, warm)
                    real.extra = _broker_counts(broker.service)
            finally:
                if broker is not None:
                    broker.close()
    return report(args, backend, bare, real)


@contextlib.contextmanager
def _log_to_file(args: argparse.Namespace, directory: Path) -> Iterator[Path | None]:
    """The service logs as in production (JSON lines), into a file rather than the terminal.

    The service's loggers write to whatever ``sys.stderr`` is when they log, so it points
    at the file for the whole run. Gives the file (None with ``--log-level none``).
    """
    if args.log_level == "none":
        configure_logging("error", json=True)
        yield None
        return
    log_path = Path(args.log_file or directory / "broker.log")
    with (
        log_path.open("w") as log_file,
        contextlib.redirect_stderr(log_file),
    ):
        configure_logging(args.log_level, json=True)
        yield log_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1000, help="backlog of each round")
    parser.add_argument("--rounds", type=int, default=3, help="throughput rounds per path")
    parser.add_argument("--rate", type=float, default=200.0, help="paced events a second")
    parser.add_argument("--duration", type=float, default=10.0, help="paced seconds measured")
    parser.add_argument("--warmup", type=float, default=2.0, help="paced seconds not measured")
    parser.add_argument("--prefetch", type=int, default=64, help="consumer prefetch")
    parser.add_argument(
        "--database-url",
        default=None,
        help="a PostgreSQL server to make a temporary database on (default: SQLite file)",
    )
    parser.add_argument("--amqp-url", default="amqp://guest:guest@127.0.0.1:5672/")
    parser.add_argument("--management-url", default="http://127.0.0.1:15672")
    parser.add_argument(
        "--log-level",
        default="info",
        choices=["info", "warning", "none"],
        help="service log level (JSON lines to a temporary file, as in production)",
    )
    parser.add_argument(
        "--only", choices=["bare", "broker"], default=None, help="measure one path (profiling)"
    )
    parser.add_argument(
        "--stages",
        action="store_true",
        help="time the broker's paced run hop by hop (ingest, batch, relay, intake)",
    )
    parser.add_argument(
        "--without-triage",
        action="store_true",
        help="diagnostic: skip the MASH intake's triage (linking, episodes, clocks, scoring) "
        "to show what the rest of the path costs; not the real path",
    )
    parser.add_argument(
        "--prepare-processes",
        type=int,
        default=0,
        help="amqp.prepare_processes of the broker (their CPU is counted with the service's)",
    )
    parser.add_argument(
        "--intake-process",
        action="store_true",
        help="run the MASH intake as a process of its own (``mash-broker run --only intake``, "
        "no prepare process) beside the rest of the service (``--only ingest --only relay "
        "--only checkpoints``)",
    )
    parser.add_argument("--log-file", default=None, help="keep the service log here")
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args()
    if args.without_triage:
        _skip_triage()
    ok = asyncio.run(run(args))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
