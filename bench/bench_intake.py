"""The MASH intake's storing and triage, alone: CPU per alert, no AMQP.

Run from a checkout (SQLite in a temporary directory by default)::

    .venv/bin/python bench/bench_intake.py
    .venv/bin/python bench/bench_intake.py --alerts 2048 --batch 64 --json out.json
    .venv/bin/python bench/bench_intake.py --database-url postgresql://postgres@127.0.0.1/postgres
    .venv/bin/python bench/bench_intake.py --profile        # cProfile of the triage

Disclosures are sealed for the MASH beforehand (as the relay would) and then stored with
``IntakeConsumer.store_many`` in batches of ``--batch``, as the consumer's group commit
does under load. Each case is measured on a fresh database:

- ``one-child-each``: every alert a missing report about a child of its own (the shape
  of the end-to-end benchmark ``bench/bench_pipeline.py``);
- ``episodes``: children with whole episodes (reported, updated, found, return home
  interview, a second episode later), so linking finds the child and each episode is
  folded from several alerts, the shape of a real MASH's traffic;
- each of those with the triage switched off (``IntakeConsumer._triage`` and
  ``_triage_many`` skipped), to show what opening, replay checks, the alert row and the
  audit cost on their own.

Reported: CPU (``time.thread_time``, this thread only; the work runs on it) and wall time
per alert, medians over ``--rounds``. The database server's own CPU (PostgreSQL) is not
counted.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import hashlib
import json
import os
import pstats
import secrets
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402
from pydantic import SecretStr  # noqa: E402

from broker import envelope  # noqa: E402
from broker.demokeys import ensure_demo_keys  # noqa: E402
from broker.intake.consumer import IntakeConsumer  # noqa: E402
from broker.keys import PartyKeys  # noqa: E402
from broker.logging import configure_logging  # noqa: E402
from broker.policy import load_agreement  # noqa: E402
from broker.service import Service  # noqa: E402
from broker.settings import CryptoSettings, DatabaseSettings, Settings  # noqa: E402
from schemas import Provenance  # noqa: E402
from schemas.common import make_test_nhs_number  # noqa: E402
from schemas.events import (  # noqa: E402
    Event,
    EventBody,
    EventMetadata,
    LawfulBasis,
    MissingFound,
    MissingReported,
    MissingUpdated,
    ReturnHomeInterview,
    RiskGrade,
    SourceRef,
)
from schemas.person import Address, Child, Sex  # noqa: E402

AGREEMENT = ROOT / "policy" / "agreement.yaml"
BOROUGH = "E06000040"
START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
GIVEN = ("Ada", "Bea", "Cal", "Dot", "Eli", "Fen", "Gus", "Hal", "Ivy", "Jem")
FAMILY = ("Ashby", "Brede", "Corran", "Dunmere", "Elsing", "Farrow", "Gilden", "Hawkesley")


def child(n: int) -> Child:
    """A synthetic child numbered ``n`` (999-range NHS number, invented name)."""
    return Child(
        given_name=GIVEN[n % len(GIVEN)],
        family_name=f"{FAMILY[n % len(FAMILY)]}{n}",
        date_of_birth=date(2010 + n % 6, 1 + n % 12, 1 + n % 28),
        sex=Sex.FEMALE if n % 2 else Sex.MALE,
        nhs_number=make_test_nhs_number(2 * n),  # a skipped serial takes the next one
        home_address=Address(town="Maidenhead", local_authority=BOROUGH),
    )


def event(body: EventBody, subject: Child, at: datetime, episode: str) -> Event:
    meta = EventMetadata(
        event_id=uuid.uuid4(),
        occurred_at=at,
        recorded_at=at,
        source=SourceRef(agency="tvp-police", system="niche-rms", reference=episode),
        correlation_id=episode,
        lawful_basis=LawfulBasis.CDA_1998_S115,
    )
    return Event(metadata=meta, subject=subject, body=body)


def one_child_each(count: int) -> list[Event]:
    """A missing report per alert, each about a child of its own."""
    events = []
    for n in range(count):
        at = START + timedelta(minutes=n)
        episode = f"EP-{n}"
        body = MissingReported(
            episode_id=episode, risk_grade=RiskGrade.MEDIUM, reported_at=at, missing_from=BOROUGH
        )
        events.append(event(body, child(n + 1), at, episode))
    return events


def episodes(count: int) -> list[Event]:
    """Whole episodes, two per child, five events each: reported ... interview."""
    events: list[Event] = []
    n = 0
    while len(events) < count:
        n += 1
        subject = child(n)
        for spell in range(2):
            episode = f"EP-{n}-{spell}"
            at = START + timedelta(days=spell * 20, minutes=n)
            back = at + timedelta(hours=20)
            bodies: list[tuple[EventBody, datetime]] = [
                (
                    MissingReported(
                        episode_id=episode,
                        risk_grade=RiskGrade.MEDIUM,
                        reported_at=at,
                        missing_from=BOROUGH,
                    ),
                    at,
                ),
                (
                    MissingUpdated(episode_id=episode, risk_grade=RiskGrade.HIGH),
                    at + timedelta(hours=2),
                ),
                (
                    MissingUpdated(episode_id=episode, risk_grade=RiskGrade.MEDIUM),
                    at + timedelta(hours=6),
                ),
                (MissingFound(episode_id=episode, found_at=back, returned_at=back), back),
                (
                    ReturnHomeInterview(
                        episode_id=episode,
                        offered_at=back + timedelta(hours=30),
                        completed_at=back + timedelta(hours=50),
                    ),
                    back + timedelta(hours=50),
                ),
            ]
            events.extend(event(body, subject, when, episode) for body, when in bodies)
    return events[:count]


def seal_all(service: Service, events: list[Event]) -> list[bytes]:
    sender = PartyKeys.load(service.keys_dir, "wam-broker", service.registry)
    tokens = []
    for e in events:
        sealed = envelope.seal(
            e.model_dump(mode="json"),
            sender=sender,
            recipient="wam-mash",
            registry=service.registry,
            rule_id="missing-to-mash",
            lawful_basis="ca-2004-s11",
            purpose="To let the MASH triage the event.",
            jti=f"jt-{secrets.token_urlsafe(18)}",
            provenance=Provenance(
                source_agency=e.metadata.source.agency,
                source_event_id=e.metadata.event_id,
                original_sha256=hashlib.sha256(e.model_dump_json().encode()).hexdigest(),
            ),
        )
        token = sealed.token
        tokens.append(token.encode() if isinstance(token, str) else token)
    return tokens


@contextlib.contextmanager
def database(base_url: str | None, workdir: Path) -> Iterator[str]:
    """A fresh, empty database URL for one case, removed afterwards."""
    if base_url is None:
        path = workdir / f"intake-{uuid.uuid4().hex}.db"
        yield f"sqlite:///{path}"
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.remove(f"{path}{suffix}")
        return
    name = f"mash_bench_{secrets.token_hex(4)}"
    admin = sa.create_engine(base_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield str(sa.engine.make_url(base_url).set(database=name))
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def run_case(
    keys: Path,
    url: str,
    events: list[Event],
    *,
    batch: int,
    triage: bool,
    profile: cProfile.Profile | None,
) -> dict[str, float]:
    settings = Settings(
        _env_file=None,
        environment="test",
        agreement_path=AGREEMENT,
        database=DatabaseSettings(url=SecretStr(url)),
        crypto=CryptoSettings(keys_dir=keys, service_party="wam-broker"),
    )
    service = Service.load(settings)
    try:
        consumer = IntakeConsumer(service)
        if not triage:
            consumer._triage = lambda *_a, **_k: []  # type: ignore[method-assign]
            consumer._triage_many = lambda *_a, **_k: []  # type: ignore[method-assign]
        tokens = seal_all(service, events)
        deliveries = [(token, None) for token in tokens]
        cpu0, wall0 = time.thread_time(), time.perf_counter()
        if profile is not None:
            profile.enable()
        for start in range(0, len(deliveries), batch):
            outcomes = consumer.store_many(deliveries[start : start + batch])
            if any(outcome != "stored" for outcome in outcomes):
                raise SystemExit(f"an alert was not stored: {outcomes[:3]}")
        if profile is not None:
            profile.disable()
        cpu, wall = time.thread_time() - cpu0, time.perf_counter() - wall0
    finally:
        service.engine.dispose()
    return {"cpu_us": cpu / len(events) * 1e6, "wall_us": wall / len(events) * 1e6}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--alerts", type=int, default=1024)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--profile", action="store_true", help="cProfile the triaged cases")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)

    cases = {"one-child-each": one_child_each, "episodes": episodes}
    results: dict[str, Any] = {
        "alerts": args.alerts,
        "batch": args.batch,
        "rounds": args.rounds,
        "database": "postgresql" if args.database_url else "sqlite",
        "load": os.getloadavg(),
        "cases": {},
    }
    configure_logging("warning")
    profile = cProfile.Profile() if args.profile else None
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        keys = workdir / "keys"
        ensure_demo_keys(keys, load_agreement(AGREEMENT), "wam-broker")
        for name, make in cases.items():
            for triage in (True, False):
                label = f"{name}{'' if triage else ', without triage'}"
                samples = []
                for _ in range(args.rounds):
                    with database(args.database_url, workdir) as url:
                        samples.append(
                            run_case(
                                keys,
                                url,
                                make(args.alerts),
                                batch=args.batch,
                                triage=triage,
                                profile=profile if triage else None,
                            )
                        )
                cpu = statistics.median(s["cpu_us"] for s in samples)
                wall = statistics.median(s["wall_us"] for s in samples)
                results["cases"][label] = {"cpu_us_per_alert": cpu, "wall_us_per_alert": wall}
                print(f"{label:36} CPU {cpu:8.0f} µs/alert   wall {wall:8.0f} µs/alert")
    print(f"load average {results['load'][0]:.1f}")
    if profile is not None:
        stats = pstats.Stats(profile)
        stats.sort_stats("cumulative").print_stats("broker/intake", 25)
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
