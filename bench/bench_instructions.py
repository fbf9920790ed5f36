"""Instructions per message of the broker's CPU-bound steps, counted by Valgrind: no clock.

On a shared or throttled machine the same code's CPU time varies by half or more from
one minute to the next (a pure-Python loop here took 330 to 650 ms across a few minutes
of the same idle machine), so a change of a few percent cannot be seen in timings.
Instructions executed can: each step is run under ``valgrind --tool=cachegrind`` twice,
over ``--small`` and ``--large`` messages, with the same set-up (the same messages made,
sealed and opened in both, ``PYTHONHASHSEED`` fixed), and the difference is divided by the
extra messages. Repeat runs of the ``intake`` step agreed to within 0.04%; the others
vary by up to about 2% (their keys, token ids and so index positions are random).

Run from a checkout (needs ``valgrind``; each step takes a minute or two)::

    .venv/bin/python bench/bench_instructions.py                  # every step
    .venv/bin/python bench/bench_instructions.py --step intake --batch 3
    .venv/bin/python bench/bench_instructions.py --json out.json

Steps (SQLite in a temporary directory, the service's own code, no AMQP):

- ``prepare``: ``Ingestor.prepare`` of native police missing reports (the prepare
  process's work: adapter, policy, two seals, audit drafts), per message;
- ``ingest``: ``Ingestor.store_prepared`` of prepared messages in transactions of
  ``--batch``, per transaction;
- ``relay``: the outbox relay's database work (``OutboxRelay``'s selection of due rows
  and its recording of their outcome, without AMQP: every publish counted confirmed),
  per message: a selection of the rows of ``--batch`` messages at a time, the rows in
  flight excluded, and a recording every ``RELAY_RECORD_EVERY`` selections, as at 200
  events a second (a commit of two or three messages; a recording every 50 ms). The
  ingest stores all the messages in the set-up, so the step counts the relay alone. This
  is the relay of a process that does not ingest (``run --only relay``);
- ``relay-handed``: the same for a relay in the ingest's process, which is handed the
  rows each ingest commit wrote (``OutboxRelay.hand``) and selects due rows only every
  ``RELAY_SELECT_EVERY`` commits (its 0.2 s poll at 200 events a second), per message;
- ``open``: the MASH opening its disclosures (``DisclosureOpener.open``), per disclosure;
- ``intake``: ``IntakeConsumer.store_many`` of opened disclosures in transactions of
  ``--batch`` (inbox, replay store, alert, audit, triage), per transaction; each alert a
  missing report about a child of its own, as in ``bench/bench_pipeline.py``;
- ``intake-episodes``: the same with children's whole episodes (``bench_intake.py``'s
  ``episodes`` case), so that most alerts find their child and episode stored.

Instructions are not time: a cache miss or a disk flush costs none, and the figures say
nothing of waiting. OpenSSL chooses its code by the processor features it is shown, and
under Valgrind it is shown fewer, so the steps that seal or open (``prepare``, ``open``)
count more instructions for their cryptography than it executes outside. The figures are
for comparing two versions of the code, step by step, not steps with each other.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import bench_intake  # noqa: E402
import bench_pipeline  # noqa: E402
from pydantic import SecretStr  # noqa: E402

from broker.demokeys import ensure_demo_keys  # noqa: E402
from broker.intake.consumer import IntakeConsumer  # noqa: E402
from broker.logging import configure_logging  # noqa: E402
from broker.messaging.publisher import Publisher, PublishResult, PublishStatus  # noqa: E402
from broker.outbox import OutboxRelay  # noqa: E402
from broker.pipeline import Ingestor, PreparedMessage  # noqa: E402
from broker.policy import load_agreement  # noqa: E402
from broker.service import Service  # noqa: E402
from broker.settings import CryptoSettings, DatabaseSettings, Settings  # noqa: E402

STEPS = ("prepare", "ingest", "relay", "relay-handed", "open", "intake", "intake-episodes")
#: Steps whose unit is a transaction of ``--batch`` messages.
BATCHED = frozenset({"ingest", "relay", "relay-handed", "intake", "intake-episodes"})
#: Selections of due rows between two recordings in the ``relay`` step.
RELAY_RECORD_EVERY = 5
#: Ingest commits between two selections of due rows in the ``relay-handed`` step.
RELAY_SELECT_EVERY = 13
#: The police party the benchmark's messages come from (``bench/agreement.yaml``).
SOURCE = "tvp-police"
_REFS = re.compile(r"I\s+refs:\s+([\d,]+)")


def _service(workdir: Path, agreement: Path, party: str) -> Service:
    keys = workdir / "keys"
    ensure_demo_keys(keys, load_agreement(agreement), party)
    return Service.load(
        Settings(
            _env_file=None,
            environment="test",
            agreement_path=agreement,
            database=DatabaseSettings(url=SecretStr(f"sqlite:///{workdir / 'broker.db'}")),
            crypto=CryptoSettings(keys_dir=keys, service_party=party),
        )
    )


def _ingest_side(service: Service, step: str, count: int, total: int, batch: int) -> str:
    ingestor = Ingestor(service)
    raws = bench_pipeline.native_messages(total, "instructions")
    now = datetime.now(UTC)
    if step == "prepare":
        sealed = sum(
            len(ingestor.prepare("police", raw, SOURCE, received_at=now).batch.outbox)
            for raw in raws[:count]
        )
        return f"prepare: {count} messages, {sealed} disclosures sealed"
    prepared = [ingestor.prepare("police", raw, SOURCE, received_at=now) for raw in raws]
    if step == "relay":
        return _relay(service, ingestor, prepared, count, batch)
    if step == "relay-handed":
        return _relay_handed(service, ingestor, prepared, count, batch)
    shared = 0
    for start in range(0, count, batch):
        results = ingestor.store_prepared(prepared[start : start + batch])
        if any(result.rejected for result in results):
            raise SystemExit("a message was rejected")
        shared += sum(result.disclosures for result in results)
    return f"ingest: {count} messages stored, {shared} disclosures in the outbox"


def _relay(
    service: Service, ingestor: Ingestor, prepared: list[PreparedMessage], count: int, batch: int
) -> str:
    for start in range(0, len(prepared), batch):
        ingestor.store_prepared(prepared[start : start + batch])
    rows_a_message = len(prepared[0].batch.outbox)
    # Never published: the relay's publisher is not called by the two steps counted.
    relay = OutboxRelay(service, cast(Publisher, None), batch_size=rows_a_message * batch)
    in_flight: list[Any] = []
    selected = recorded = 0
    for selection in range(1, count // batch + 1):
        rows = relay._due_rows(frozenset(row.jti for row in in_flight))
        in_flight.extend(rows)
        selected += len(rows)
        if selection % RELAY_RECORD_EVERY == 0 or selection == count // batch:
            outcomes = [PublishResult(row.jti, PublishStatus.CONFIRMED) for row in in_flight]
            recorded += relay._record(in_flight, outcomes).sent
            in_flight = []
    return f"relay: {count} messages, {selected} rows selected, {recorded} recorded sent"


def _relay_handed(
    service: Service, ingestor: Ingestor, prepared: list[PreparedMessage], count: int, batch: int
) -> str:
    stored = [
        item.stored_outbox(result)
        for start in range(0, len(prepared), batch)
        for item, result in zip(
            prepared[start : start + batch],
            ingestor.store_prepared(prepared[start : start + batch]),
            strict=True,
        )
    ]
    rows_a_message = len(prepared[0].batch.outbox)
    relay = OutboxRelay(service, cast(Publisher, None), batch_size=rows_a_message * batch)
    in_flight: list[Any] = []
    handed = selected = recorded = 0
    for commit in range(1, count // batch + 1):
        for rows in stored[(commit - 1) * batch : commit * batch]:
            relay.hand(rows)
        taken, relay._handed = relay._handed, []
        in_flight.extend(taken)
        handed += len(taken)
        if commit % RELAY_SELECT_EVERY == 0:
            # At 200/s every committed row is handed over, so the selection finds none
            # in the service; here it finds later messages' rows, which are left alone.
            selected += len(relay._due_rows(frozenset(row.jti for row in in_flight)))
        if commit % RELAY_RECORD_EVERY == 0 or commit == count // batch:
            outcomes = [PublishResult(row.jti, PublishStatus.CONFIRMED) for row in in_flight]
            recorded += relay._record(in_flight, outcomes).sent
            in_flight = []
    return (
        f"relay-handed: {count} messages, {handed} rows handed over, {selected} selected "
        f"by the poll, {recorded} recorded sent"
    )


def _intake_side(service: Service, step: str, count: int, total: int, batch: int) -> str:
    consumer = IntakeConsumer(service)
    make = bench_intake.episodes if step == "intake-episodes" else bench_intake.one_child_each
    tokens = bench_intake.seal_all(service, make(total))
    now = datetime.now(UTC)
    if step == "open":
        jtis = {consumer._opener.open(token, now).claims.jti for token in tokens[:count]}
        return f"open: {len(jtis)} disclosures opened"
    opened = [consumer._opener.open(token, now) for token in tokens]
    for start in range(0, count, batch):
        end = min(start + batch, count)
        outcomes = consumer.store_many(
            [(token, None) for token in tokens[start:end]], opened=opened[start:end]
        )
        if any(outcome != "stored" for outcome in outcomes):
            raise SystemExit(f"an alert was not stored: {outcomes[:3]}")
    return f"{step}: {count} alerts stored"


def run_step(step: str, count: int, total: int, batch: int) -> str:
    """In the process Valgrind watches: set up for ``total`` messages, run ``step`` over
    the first ``count`` of them; what it did, in a line."""
    configure_logging("warning")
    workdir = Path(tempfile.mkdtemp(prefix="mash-instructions-"))
    ingest_side = step in ("prepare", "ingest", "relay", "relay-handed")
    try:
        if ingest_side:
            service = _service(workdir, bench_pipeline.AGREEMENT, bench_pipeline.SERVICE_PARTY)
        else:
            service = _service(workdir, bench_intake.AGREEMENT, "wam-broker")
        try:
            side = _ingest_side if ingest_side else _intake_side
            return side(service, step, count, total, batch)
        finally:
            service.engine.dispose()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def instructions(step: str, count: int, total: int, batch: int) -> int:
    """Instructions Valgrind counted for the whole process running ``step`` over ``count``."""
    command = [
        "valgrind",
        "--tool=cachegrind",
        "--cache-sim=no",
        "--cachegrind-out-file=/dev/null",
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        step,
        str(count),
        str(total),
        str(batch),
    ]
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    done = subprocess.run(  # noqa: S603 - valgrind running this script, fixed arguments
        command, capture_output=True, text=True, env=env, check=False
    )
    found = _REFS.search(done.stderr)
    if done.returncode != 0 or found is None:
        tail = "\n".join(done.stderr.splitlines()[-15:])
        raise SystemExit(f"{step}: the run under valgrind failed ({done.returncode}):\n{tail}")
    return int(found.group(1).replace(",", ""))


def measure(step: str, small: int, large: int, batch: int) -> dict[str, Any]:
    """The step's instructions per message (and per transaction), from two counts."""
    if step in BATCHED and (small % batch or large % batch):
        raise SystemExit(f"--small and --large must be multiples of --batch ({batch})")
    low = instructions(step, small, large, batch)
    high = instructions(step, large, large, batch)
    per_message = (high - low) / (large - small)
    figures: dict[str, Any] = {
        "messages": [small, large],
        "instructions": [low, high],
        "per_message": per_message,
    }
    if step in BATCHED:
        figures["batch"] = batch
        figures["per_transaction"] = per_message * batch
    return figures


def main(argv: list[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else argv
    if arguments[:1] == ["--child"]:
        step, count, total, batch = arguments[1], *map(int, arguments[2:5])
        print(run_step(step, count, total, batch))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--step", choices=STEPS, action="append", help="default: every step")
    parser.add_argument("--batch", type=int, default=3, help="messages a transaction")
    parser.add_argument("--small", type=int, default=30)
    parser.add_argument("--large", type=int, default=120)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(arguments)
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (Debian: apt-get install valgrind)", file=sys.stderr)
        return 2
    if not 0 < args.small < args.large:
        parser.error("need 0 < --small < --large")
    results: dict[str, Any] = {}
    for step in args.step or STEPS:
        figures = results[step] = measure(step, args.small, args.large, args.batch)
        line = f"{step:8} {figures['per_message'] / 1e6:8.3f} M instructions a message"
        if "per_transaction" in figures:
            unit = "selection" if step == "relay" else "transaction"
            line += f"   {figures['per_transaction'] / 1e6:8.3f} M a {unit} of {args.batch}"
        print(line, flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
