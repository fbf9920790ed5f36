"""Police adapter throughput: rendered sample records translated per second on one core.

Run: ``.venv/bin/python bench/bench_adapter_police.py [--seconds S] [--rounds R]``

The corpus is every police record ``broker/samples/police.py`` renders for seeds 1 to 3
(reports, updates, found records with CSE indicators, intelligence). Each round translates
the corpus over and over for ``--seconds`` of CPU time (``time.process_time``, so other
work on the machine does not count) and the median round is reported, for the whole
``parse`` and for the validation step alone. A last line times the largest record the
adapter accepts (every list at its limit), which must stay far under one second.
The target is 5,000 messages/s; the script exits 1 below it.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adapters.base import AdapterContext
from adapters.police import PoliceAdapter, read_record
from broker.samples.police import render
from broker.samples.scenario import make_scenario

TARGET = 5_000


def corpus() -> tuple[list[bytes], AdapterContext]:
    """Every rendered police record for seeds 1..3, and a context whose clock fits them."""
    messages: list[bytes] = []
    for seed in (1, 2, 3):
        messages += render(make_scenario(seed)).values()
    return messages, AdapterContext("tvp-police", now=make_scenario(1).now)


def largest_record() -> bytes:
    """A found record with every intelligence list and text at its documented limit."""
    messages, _ = corpus()
    record = json.loads(next(m for m in messages if b'"cse"' in m))
    text = "Observed at the location on several evenings. " * 75
    record["intelligence"] = {
        "area": "E06000039",
        "locations": [
            {"kind": "HOTEL", "description": f"Hotel {i} " + "x" * 180, "postcode": "SL1 1ZZ"}
            for i in range(50)
        ],
        "vehicles": [{"registration": f"AB{i:02d} CDE", "colour": "silver"} for i in range(50)],
        "associates": [
            {"role": "PEER", "description": f"Peer {i} " + "y" * 180} for i in range(50)
        ],
        "online_contacts": [{"platform": "Snapchat", "handle": f"h{i}"} for i in range(50)],
        "note": text[:3600],
    }
    return json.dumps(record).encode()


def rate(work: Callable[[], None], count: int, seconds: float) -> float:
    """Items per CPU second: ``work`` handles ``count`` items and is repeated for ``seconds``."""
    done = 0
    started = time.process_time()
    while (elapsed := time.process_time() - started) < seconds:
        work()
        done += count
    return done / elapsed


def main() -> int:
    """Measure and print the figures; exit status 1 when under the target."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="CPU seconds per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    messages, context = corpus()
    adapter = PoliceAdapter()
    mean_bytes = sum(map(len, messages)) / len(messages)
    events = sum(len(adapter.parse(m, context)) for m in messages)

    def translate() -> None:
        for raw in messages:
            adapter.parse(raw, context)

    def validate() -> None:
        for raw in messages:
            read_record(raw, context)

    full, checked = [], []
    for _ in range(args.rounds):
        full.append(rate(translate, len(messages), args.seconds))
        checked.append(rate(validate, len(messages), args.seconds))
    big = largest_record()
    started = time.process_time()
    big_events = adapter.parse(big, context)
    big_ms = (time.process_time() - started) * 1000

    print(f"python {platform.python_version()} on {platform.machine()}, one core")
    print(
        f"corpus: {len(messages)} records, mean {mean_bytes:.0f} bytes, "
        f"{events / len(messages):.2f} events per record"
    )
    print(f"parse (validate + rules + map): {statistics.median(full):,.0f} msg/s")
    print(f"validate + rules only:          {statistics.median(checked):,.0f} msg/s")
    print(f"largest record: {len(big):,} bytes, {len(big_events)} events, {big_ms:.1f} ms")
    achieved = statistics.median(full)
    print(f"target {TARGET:,} msg/s: {'met' if achieved >= TARGET else 'NOT met'}")
    return 0 if achieved >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
