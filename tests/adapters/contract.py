"""The contract every adapter's tests run: subclass ``AdapterContract`` and fill the hooks.

Golden files live in ``tests/adapters/golden/<adapter>/``: ``NAME.in.<ext>`` is a native
message and ``NAME.out.jsonl`` the canonical events it must translate to (one JSON object a
line, as ``mash-broker adapt`` prints them). ``NAME.err.txt`` instead of ``.out.jsonl``
holds the locations (one a line) the adapter's problems must name for a bad input.
Regenerate the outputs after a deliberate change with ``MASH_UPDATE_GOLDEN=1 pytest``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters import get_adapter
from adapters.base import Adapter, AdapterContext, AdapterError, InputTooLarge
from schemas.events import Event

GOLDEN_ROOT = Path(__file__).parent / "golden"
#: The instant golden files are translated at, so plausibility checks are repeatable.
GOLDEN_NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def golden_cases(adapter_name: str) -> Iterator[tuple[str, Path]]:
    """(case name, input path) for every golden input of one adapter."""
    folder = GOLDEN_ROOT / adapter_name
    for path in sorted(folder.glob("*.in.*")):
        yield path.name.split(".in.", 1)[0], path


def events_to_jsonl(events: list[Event]) -> str:
    """The canonical JSON-lines form the CLI prints and golden files hold."""
    return "".join(e.model_dump_json() + "\n" for e in events)


class AdapterContract:
    """Tests every adapter must pass. Subclasses set ``adapter_name`` and ``sample_input``."""

    adapter_name: str
    #: A realistic, valid native message (bytes) for the generic checks.
    sample_input: bytes

    @pytest.fixture
    def adapter(self) -> Adapter:
        return get_adapter(self.adapter_name)

    @pytest.fixture
    def context(self, adapter: Adapter) -> AdapterContext:
        return AdapterContext(source_agency=adapter.default_source, now=GOLDEN_NOW)

    def test_is_an_adapter(self, adapter: Adapter) -> None:
        assert isinstance(adapter, Adapter)
        assert adapter.name == self.adapter_name
        assert adapter.max_bytes > len(self.sample_input)

    def test_sample_translates(self, adapter: Adapter, context: AdapterContext) -> None:
        events = adapter.parse(self.sample_input, context)
        assert events, "a valid sample must give at least one event"
        for event in events:
            assert isinstance(event, Event)
            assert Event.model_validate_json(event.model_dump_json()) == event

    def test_translation_is_deterministic(self, adapter: Adapter, context: AdapterContext) -> None:
        first = adapter.parse(self.sample_input, context)
        second = adapter.parse(self.sample_input, context)
        assert [e.metadata.event_id for e in first] == [e.metadata.event_id for e in second]

    def test_golden_files(self, adapter: Adapter, context: AdapterContext) -> None:
        cases = list(golden_cases(self.adapter_name))
        assert cases, f"no golden inputs under {GOLDEN_ROOT / self.adapter_name}"
        for name, path in cases:
            raw = path.read_bytes()
            err_path = path.with_name(f"{name}.err.txt")
            if err_path.exists():
                with pytest.raises(AdapterError) as caught:
                    adapter.parse(raw, context)
                named = "\n".join(p.location for p in caught.value.problems)
                for expected in err_path.read_text().split("\n"):
                    if expected.strip():
                        assert expected.strip() in named, f"{name}: {expected!r} not in {named!r}"
                continue
            out_path = path.with_name(f"{name}.out.jsonl")
            produced = events_to_jsonl(adapter.parse(raw, context))
            if os.environ.get("MASH_UPDATE_GOLDEN") == "1" or not out_path.exists():
                out_path.write_text(produced)
            assert [json.loads(x) for x in produced.splitlines()] == [
                json.loads(x) for x in out_path.read_text().splitlines()
            ], name

    def test_every_problem_is_located(self, adapter: Adapter, context: AdapterContext) -> None:
        for raw in (b"", b"\x00\xff garbage", self.sample_input[: len(self.sample_input) // 2]):
            try:
                adapter.parse(raw, context)
            except AdapterError as exc:
                assert exc.problems
                for problem in exc.problems:
                    assert problem.location.strip()
                    assert problem.reason.strip()

    def test_over_size_refused_before_parsing(
        self, adapter: Adapter, context: AdapterContext
    ) -> None:
        too_big = self.sample_input + b" " * (adapter.max_bytes + 1 - len(self.sample_input))
        started = time.perf_counter()
        with pytest.raises(InputTooLarge):
            adapter.parse(too_big, context)
        assert time.perf_counter() - started < 0.5

    @settings(
        max_examples=150,
        deadline=1000,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.differing_executors,
        ],
    )
    @given(data=st.data())
    def test_any_input_gives_events_or_typed_error(
        self, adapter: Adapter, context: AdapterContext, data: st.DataObject
    ) -> None:
        raw = data.draw(_mutations(self.sample_input))
        started = time.perf_counter()
        try:
            events = adapter.parse(raw, context)
        except AdapterError as exc:
            assert exc.problems
        else:
            assert all(isinstance(e, Event) for e in events)
        assert time.perf_counter() - started < 1.0


def _mutations(seed: bytes) -> st.SearchStrategy[bytes]:
    """Random bytes, and the sample with bytes flipped, cut, or spliced."""

    @st.composite
    def mutate(draw: st.DrawFn) -> bytes:
        data = bytearray(seed)
        for _ in range(draw(st.integers(1, 8))):
            if not data:
                break
            i = draw(st.integers(0, len(data) - 1))
            action = draw(st.sampled_from(("flip", "delete", "insert", "truncate")))
            if action == "flip":
                data[i] = draw(st.integers(0, 255))
            elif action == "delete":
                del data[i]
            elif action == "insert":
                data[i:i] = draw(st.binary(min_size=1, max_size=16))
            else:
                del data[i:]
        return bytes(data)

    return st.one_of(st.binary(max_size=512), mutate())
