"""Fuzzing every adapter: structure-aware hypothesis mutations and a bounded atheris run.

The contract suite (tests/adapters/contract.py) already feeds each adapter random bytes
and byte-level mutations of a sample. These strategies go deeper: they keep the format's
structure (JSON paths, HL7 fields, CSV cells, XML text and attributes) and put hostile
values where the adapter reads them. The atheris run drives libFuzzer with coverage
guidance over the harnesses in fuzz/ (``pytest -m soak`` runs them ten minutes in all).
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters import AdapterContext, AdapterError, get_adapter
from broker.samples import render_all
from broker.samples.catalogue import adapter_for
from schemas import Event

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
HARNESSES = {
    "police": "police.py",
    "hl7v2": "hl7v2.py",
    "fhir": "fhir.py",
    "paris-csv": "paris_csv.py",
    "paris-xml": "paris_xml.py",
}
#: Executions per adapter in the default run, and seconds per adapter under ``-m soak``.
DEFAULT_RUNS = 2_000
SOAK_SECONDS = 120

_FUZZ = settings(
    max_examples=60,
    deadline=None,  # the 1 s bound is asserted per input, below, without hypothesis' overhead
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _samples(adapter: str) -> list[bytes]:
    return [raw for name, raw in sorted(render_all(1).items()) if adapter_for(name) == adapter]


def _check(adapter: str, raw: bytes) -> None:
    """Events or a located AdapterError, within a second; nothing else."""
    parser = get_adapter(adapter)
    started = time.perf_counter()
    try:
        events = parser.parse(raw, AdapterContext(parser.default_source, now=NOW))
    except AdapterError as exc:
        assert exc.problems
        assert all(p.location.strip() and p.reason.strip() for p in exc.problems)
    else:
        assert all(isinstance(e, Event) for e in events)
    elapsed = time.perf_counter() - started
    assert elapsed < 1.0, f"{adapter}: {elapsed:.2f} s"


# --- hostile values ----------------------------------------------------------------------

_hostile_text = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        [
            "",
            " ",
            "\x00",
            "\u202e",
            "\ud7ff\ue000",
            "0" * 300,
            "9" * 5_000,
            "1e309",
            "-0",
            "NaN",
            "2026-02-30",
            "2026-13-01T25:61:61Z",
            "0000-00-00",
            "9999-12-31T23:59:59+14:00",
            "&lt;&#0;&#x110000;",
            "]]>",
            "<![CDATA[x]]>",
            "\\F\\\\S\\\\R\\\\E\\\\T\\",
            "\\X00FF\\",
            "'; DROP TABLE mash_alert; --",
            '=HYPERLINK("http://127.0.0.1")',
            "x" * 70_000,
        ]
    ),
)
_json_leaf = st.one_of(
    _hostile_text,
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.just([]),
    st.just({}),
    st.recursive(st.none(), lambda inner: st.lists(inner, max_size=2), max_leaves=30),
)


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(doc, dict):
        for key, value in doc.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            found += _paths(value, (*prefix, i))
    return found


def _replace(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    head, *rest = path
    copy = dict(doc) if isinstance(doc, dict) else list(doc)
    copy[head] = _replace(copy[head], tuple(rest), value)
    return copy


@st.composite
def _json_mutants(draw: st.DrawFn, samples: list[bytes]) -> bytes:
    doc = json.loads(draw(st.sampled_from(samples)))
    for _ in range(draw(st.integers(1, 4))):
        paths = _paths(doc)
        path = draw(st.sampled_from(paths))
        action = draw(st.sampled_from(["replace", "drop", "add"]))
        if action == "drop" and path:
            parent = _paths(doc)[0] if len(path) == 1 else path[:-1]
            container = doc
            for part in parent:
                container = container[part]
            trimmed = (
                {k: v for k, v in container.items() if k != path[-1]}
                if isinstance(container, dict)
                else [v for i, v in enumerate(container) if i != path[-1]]
            )
            doc = _replace(doc, parent, trimmed)
        elif action == "add":
            doc = _replace(
                doc, path, {draw(st.sampled_from(["x", "id", "entry"])): draw(_json_leaf)}
            )
        else:
            doc = _replace(doc, path, draw(_json_leaf))
    return json.dumps(doc, allow_nan=True).encode()


@st.composite
def _hl7_mutants(draw: st.DrawFn, samples: list[bytes]) -> bytes:
    text = draw(st.sampled_from(samples)).decode("latin-1")
    segments = [s for s in re.split(r"\r\n|\r|\n", text) if s]
    for _ in range(draw(st.integers(1, 4))):
        index = draw(st.integers(0, len(segments) - 1))
        fields = segments[index].split("|")
        where = draw(st.integers(0, len(fields)))
        value = draw(_hostile_text).replace("\r", "").replace("\n", "")
        if draw(st.booleans()) or where == len(fields):
            fields.insert(where, value)
        else:
            fields[where] = value
        segments[index] = "|".join(fields)
        if draw(st.integers(0, 9)) == 0:
            segments.insert(draw(st.integers(0, len(segments))), segments[index])
    return "\r".join(segments).encode("latin-1", "replace")


@st.composite
def _csv_mutants(draw: st.DrawFn, samples: list[bytes]) -> bytes:
    rows = list(csv.reader(io.StringIO(draw(st.sampled_from(samples)).decode("utf-8-sig"))))
    for _ in range(draw(st.integers(1, 5))):
        r = draw(st.integers(0, len(rows) - 1))
        row = list(rows[r])
        if not row:
            continue
        c = draw(st.integers(0, len(row) - 1))
        action = draw(st.sampled_from(["replace", "replace", "drop", "add"]))
        if action == "drop":
            del row[c]
        elif action == "add":
            row.insert(c, draw(_hostile_text))
        else:
            row[c] = draw(_hostile_text)
        rows[r] = row
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    return out.getvalue().encode("utf-8", "surrogatepass")


_XML_VALUE = re.compile(rb">([^<]*)<|=\"([^\"]*)\"")


@st.composite
def _xml_mutants(draw: st.DrawFn, samples: list[bytes]) -> bytes:
    data = draw(st.sampled_from(samples))
    spans = [m.span(1) if m.group(1) is not None else m.span(2) for m in _XML_VALUE.finditer(data)]
    for _ in range(draw(st.integers(1, 4))):
        start, end = draw(st.sampled_from(spans))
        hostile = draw(_hostile_text).encode("utf-8", "surrogatepass")
        raw = draw(st.booleans())
        value = hostile if raw else hostile.replace(b"&", b"&amp;").replace(b"<", b"&lt;")
        data = data[:start] + value + data[end:]
        spans = [
            m.span(1) if m.group(1) is not None else m.span(2) for m in _XML_VALUE.finditer(data)
        ]
        if not spans:
            break
    return data


MUTANTS = {
    "police": _json_mutants,
    "fhir": _json_mutants,
    "hl7v2": _hl7_mutants,
    "paris-csv": _csv_mutants,
    "paris-xml": _xml_mutants,
}


@pytest.mark.parametrize("adapter", list(MUTANTS))
@_FUZZ
@given(data=st.data())
def test_structure_aware_mutants_give_events_or_typed_errors(adapter: str, data: Any) -> None:
    samples = [s[:200_000] for s in _samples(adapter)]
    _check(adapter, data.draw(MUTANTS[adapter](samples), label="input"))


# --- atheris --------------------------------------------------------------------------------


def _atheris(adapter: str, *limits: str) -> subprocess.CompletedProcess[str]:
    pytest.importorskip("atheris")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(  # noqa: S603 - our own harness, fixed arguments
        [sys.executable, str(ROOT / "fuzz" / HARNESSES[adapter]), *limits, "-rss_limit_mb=1024"],
        capture_output=True,
        text=True,
        timeout=SOAK_SECONDS * 3,
        env=env,
        cwd=ROOT,
        check=False,
    )


def _report(done: subprocess.CompletedProcess[str]) -> str:
    return (done.stdout + done.stderr)[-3000:]


@pytest.mark.parametrize("adapter", list(HARNESSES))
def test_atheris_bounded_run(adapter: str, tmp_path: Path) -> None:
    done = _atheris(adapter, f"-runs={DEFAULT_RUNS}", f"-artifact_prefix={tmp_path}/")
    assert done.returncode == 0, _report(done)
    # libFuzzer may finish the inputs it has under way past -runs (2,002 was seen).
    finished = re.search(r"^Done (\d+) runs", done.stderr, re.MULTILINE)
    assert finished is not None, _report(done)
    assert int(finished.group(1)) >= DEFAULT_RUNS, _report(done)
    assert not list(tmp_path.iterdir()), "a crash or slow input was saved"


@pytest.mark.soak
@pytest.mark.parametrize("adapter", list(HARNESSES))
def test_atheris_long_run(adapter: str, tmp_path: Path) -> None:
    done = _atheris(adapter, f"-max_total_time={SOAK_SECONDS}", f"-artifact_prefix={tmp_path}/")
    assert done.returncode == 0, _report(done)
    assert not list(tmp_path.iterdir()), "a crash or slow input was saved"
    print(done.stderr.strip().splitlines()[-1])  # noqa: T201 - the figure for the docs
