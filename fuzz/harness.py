"""The shared atheris harness: one adapter, libFuzzer's inputs, and the properties each must keep.

Every input must end in events or a typed ``AdapterError``, within one second, without the
process growing past the RSS limit given to libFuzzer (``-rss_limit_mb``). Anything else
(another exception, a slow input) is reported as a crash and its input saved.

Run one adapter's harness directly, e.g. ``.venv/bin/python fuzz/police.py -runs=2000``;
without a corpus directory a temporary one is seeded with the golden files and samples.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import atheris  # type: ignore[import-untyped]  # ships no type information

with atheris.instrument_imports(include=["adapters", "schemas"]):
    from adapters import ADAPTER_NAMES, AdapterContext, AdapterError, get_adapter

    # get_adapter imports each adapter's module on first use: do it here, instrumented.
    for _name in ADAPTER_NAMES:
        get_adapter(_name)

# The samples seed the corpus; imported after the adapters so those are the instrumented ones.
from broker.samples import render_all
from broker.samples.catalogue import adapter_for

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "adapters" / "golden"
#: The slowest any one input may take.
SLOWEST_SECONDS = 1.0
#: The instant inputs are translated at, so plausibility checks do not drift.
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


class SlowInput(Exception):
    """An input took longer than ``SLOWEST_SECONDS``: a crash for the fuzzer."""


class UntypedError(Exception):
    """The adapter raised something other than ``AdapterError``: a crash for the fuzzer."""


def seeds(adapter_name: str) -> list[bytes]:
    """Golden inputs and rendered samples for ``adapter_name``: the starting corpus."""
    found = [path.read_bytes() for path in sorted((GOLDEN / adapter_name).glob("*.in.*"))]
    found += [
        raw for name, raw in sorted(render_all(1).items()) if adapter_for(name) == adapter_name
    ]
    # libFuzzer's default -max_len is taken from the corpus; keep seeds small enough to mutate.
    return [raw[: 64 * 1024] for raw in found]


def make_target(adapter_name: str) -> Callable[[bytes], None]:
    """The function libFuzzer calls with each input."""
    adapter = get_adapter(adapter_name)
    context = AdapterContext(source_agency=adapter.default_source, now=NOW)

    def test_one_input(data: bytes) -> None:
        started = time.perf_counter()
        try:
            adapter.parse(data, context)
        except AdapterError as exc:
            if not exc.problems:
                raise UntypedError(f"{adapter_name}: AdapterError with no problems") from exc
        except Exception as exc:
            raise UntypedError(f"{adapter_name}: {type(exc).__name__}") from exc
        elapsed = time.perf_counter() - started
        if elapsed > SLOWEST_SECONDS:
            raise SlowInput(f"{adapter_name}: one input took {elapsed:.2f} s")

    return test_one_input


def main(adapter_name: str) -> None:
    """Fuzz ``adapter_name`` with libFuzzer's command-line arguments from ``sys.argv``."""
    args = list(sys.argv)
    corpus: Path | None = None
    if not any(not a.startswith("-") for a in args[1:]):
        corpus = Path(tempfile.mkdtemp(prefix=f"fuzz-{adapter_name}-"))
        for n, raw in enumerate(seeds(adapter_name)):
            (corpus / f"seed-{n:03d}").write_bytes(raw)
        args.append(str(corpus))
    if not any(a.startswith("-rss_limit_mb=") for a in args):
        args.append("-rss_limit_mb=1024")
    if not any(a.startswith("-timeout=") for a in args):
        args.append("-timeout=5")
    try:
        atheris.Setup(args, make_target(adapter_name))
        atheris.Fuzz()
    finally:
        if corpus is not None:
            shutil.rmtree(corpus, ignore_errors=True)
