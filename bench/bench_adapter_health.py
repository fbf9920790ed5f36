"""Translation throughput of the health adapters (HL7 v2 and FHIR) on one core.

Translates the rendered scenario samples (seeds 1 to 3) in a loop and reports messages per
second, both per CPU second of this process (what one core sustains, unaffected by other
work on the machine) and per wall-clock second. Target: at least 5,000 msg/s each.

    .venv/bin/python bench/bench_adapter_health.py [--seconds 3]
"""

from __future__ import annotations

import argparse
import time

from adapters import get_adapter
from adapters.base import AdapterContext
from broker.samples.health import render
from broker.samples.scenario import make_scenario

TARGET = 5_000


def _samples(suffix: str) -> list[bytes]:
    messages: list[bytes] = []
    for seed in (1, 2, 3):
        files = render(make_scenario(seed))
        messages.extend(data for name, data in sorted(files.items()) if name.endswith(suffix))
    return messages


def measure(adapter_name: str, messages: list[bytes], seconds: float) -> tuple[float, float]:
    """(messages per CPU second, messages per wall second) over ``seconds`` of work."""
    adapter = get_adapter(adapter_name)
    context = AdapterContext(source_agency=adapter.default_source, now=make_scenario(1).now)
    for raw in messages:  # warm up caches and check every sample translates
        adapter.parse(raw, context)
    count = 0
    cpu_start, wall_start = time.process_time(), time.perf_counter()
    while time.perf_counter() - wall_start < seconds:
        for raw in messages:
            adapter.parse(raw, context)
        count += len(messages)
    cpu = time.process_time() - cpu_start
    wall = time.perf_counter() - wall_start
    return count / cpu, count / wall


def main() -> None:
    """Run the benchmark and print one line per adapter."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="time per adapter")
    args = parser.parse_args()
    for name, suffix in (("hl7v2", ".hl7"), ("fhir", ".json")):
        messages = _samples(suffix)
        per_cpu, per_wall = measure(name, messages, args.seconds)
        verdict = "meets" if per_cpu >= TARGET else "BELOW"
        size = sum(len(m) for m in messages) // len(messages)
        print(
            f"{name:6} {per_cpu:8,.0f} msg/s per CPU second, {per_wall:8,.0f} msg/s wall "
            f"({len(messages)} samples, mean {size} bytes) - {verdict} the {TARGET:,} target"
        )


if __name__ == "__main__":
    main()
