"""Hostile input at every adapter: only typed errors, each within a second and bounded memory.

Item 8 of the reliability suite (docs/reliability.md): XML bombs and external entities,
their JSON equivalents (deep nesting, huge numbers), pathological HL7 and CSV shapes, and
bodies over the size limit, which must be refused before parsing, at once, without
allocating anything in proportion to the body.
"""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from adapters import ADAPTER_NAMES, AdapterContext, AdapterError, InputTooLarge, get_adapter
from broker.samples import render_all
from broker.samples.catalogue import adapter_for

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
SLOWEST = 1.0
#: A refusal for size must not cost more than this, whatever the size.
SIZE_REFUSAL_SECONDS = 0.05
#: Nor allocate more than this (the body itself is the caller's, already in memory).
SIZE_REFUSAL_BYTES = 64 * 1024
FIFTY_MB = 50 * 1024 * 1024
MB = 1024 * 1024


def _sample(adapter: str) -> bytes:
    return next(raw for name, raw in sorted(render_all(1).items()) if adapter_for(name) == adapter)


def _json_cases() -> dict[str, bytes]:
    return {
        "deep-array": b"[" * 50_000 + b"]" * 50_000,
        "deep-object": b'{"a":' * 20_000 + b"1" + b"}" * 20_000,
        "deep-in-a-field": b'{"record_type":"missing_report","resourceType":"Bundle","entry":'
        + b"[" * 40_000
        + b"]" * 40_000
        + b"}",
        "huge-integer": b'{"record_type": ' + b"9" * 100_000 + b"}",
        "huge-exponent": b'{"record_type": 1e999999999, "x": -1e-999999999}',
        "nan-and-infinity": b'{"record_type": NaN, "resourceType": Infinity, "x": -Infinity}',
        "many-entries": b'{"resourceType":"Bundle","type":"message","entry":['
        + b"{}," * 30_000
        + b"{}]}",
        "lone-surrogates": b'{"record_type":"' + b"\\ud800" * 10_000 + b'"}',
        "duplicate-keys": b'{"record_type":"missing_report","record_type":"missing_found"}',
        "long-string": b'{"record_type":"' + b"x" * 100_000 + b'"}',
        "not-utf8": b'{"record_type":"\xff\xfe\xfd"}',
        "utf16-bom": "\ufeff{}".encode("utf-16"),
    }


def _hl7_cases() -> dict[str, bytes]:
    msh = b"MSH|^~\\&|A|B|C|D|20260101||ADT^A04|1|P|2.4\r"
    return {
        "many-fields": b"MSH|^~\\&|" + b"|" * 100_000,
        "many-repetitions": msh + b"PID|||" + b"~" * 100_000,
        "many-components": msh + b"PID|||" + b"^&" * 50_000,
        "many-segments": msh + b"PID|\r" * 25_000,
        "huge-timestamp": b"MSH|^~\\&|A|B|C|D|" + b"9" * 50_000 + b"||ADT^A04|1|P|2.4\r",
        "huge-hex-escape": msh + b"PID|||\\X" + b"41" * 50_000 + b"\\",
        "nul-encoding-characters": b"MSH" + b"\x00" * 100,
        "mllp-frames-only": b"\x0b\x1c\r" * 10_000,
        "same-character-delimiters": b"MSH|||||",
    }


def _csv_cases() -> dict[str, bytes]:
    header = _sample("paris-csv").split(b"\n", 1)[0]
    return {
        "huge-cell": header + b'\n"' + b"x" * 300_000 + b'"\n',
        "unclosed-quote": header + b'\n"' + b"x" * 3_000_000,
        "many-columns": header + b"\n" + b"a," * 200_000 + b"\n",
        "nul-bytes": header + b"\n" + b"\x00" * 1_000 + b"\n",
        "many-blank-lines": header + b"\n" + b"\n" * 500_000,
        "no-header": b"x" * 100_000,
        "formula-cells": header + b"\n" + b"=cmd|' /C calc'!A0," * 20 + b"\n",
    }


_PROLOG = b'<?xml version="1.0" encoding="UTF-8"?>\n'


def _xml_cases() -> dict[str, bytes]:
    laughs = ['<!ENTITY lol0 "lol">'] + [
        f'<!ENTITY lol{n} "{f"&lol{n - 1};" * 10}">' for n in range(1, 10)
    ]
    return {
        "billion-laughs": _PROLOG
        + b"<!DOCTYPE paris-export [\n"
        + "\n".join(laughs).encode()
        + b"\n]>\n<paris-export>&lol9;</paris-export>",
        "quadratic-blowup": _PROLOG
        + b'<!DOCTYPE paris-export [<!ENTITY a "'
        + b"x" * 100_000
        + b'">]><paris-export>'
        + b"&a;" * 1_000
        + b"</paris-export>",
        "external-entity": _PROLOG
        + b'<!DOCTYPE paris-export [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
        + b"<paris-export>&xxe;</paris-export>",
        "external-parameter-entity": _PROLOG
        + b'<!DOCTYPE paris-export [<!ENTITY % remote SYSTEM "http://127.0.0.1:9/x.dtd"> %remote;]>'
        + b"<paris-export/>",
        "external-dtd": _PROLOG
        + b'<!DOCTYPE paris-export SYSTEM "http://127.0.0.1:9/paris.dtd"><paris-export/>',
        "undeclared-entity": _PROLOG + b"<paris-export>&xxe;</paris-export>",
        "xinclude": _PROLOG
        + b'<paris-export xmlns:xi="http://www.w3.org/2001/XInclude">'
        + b'<xi:include href="file:///etc/passwd" parse="text"/></paris-export>',
        "deep-nesting": _PROLOG + b"<paris-export>" + b"<a>" * 100_000,
        "many-attributes": _PROLOG
        + b"<paris-export><r "
        + b" ".join(b'a%d="1"' % i for i in range(50_000))
        + b"/></paris-export>",
        "huge-attribute": _PROLOG + b'<paris-export a="' + b"x" * 5_000_000 + b'"/>',
        "huge-text": _PROLOG + b"<paris-export>" + b"x" * 5_000_000 + b"</paris-export>",
        "many-comments": _PROLOG + b"<paris-export>" + b"<!---->" * 100_000 + b"</paris-export>",
        "cdata-flood": _PROLOG + b"<paris-export><![CDATA[" + b"]" * 1_000_000,
        # pyexpat cannot read these and used to raise a bare ValueError (fixed: typed now).
        "utf-7-declared": b'<?xml version="1.0" encoding="UTF-7"?><paris-export/>',
        "utf-32-declared": b'<?xml version="1.0" encoding="UTF-32"?><paris-export/>',
        "shift-jis-declared": b'<?xml version="1.0" encoding="Shift_JIS"?><paris-export/>',
        "unknown-encoding": b'<?xml version="1.0" encoding="rot13"?><paris-export/>',
    }


CASES: dict[str, Callable[[], dict[str, bytes]]] = {
    "police": _json_cases,
    "fhir": _json_cases,
    "hl7v2": _hl7_cases,
    "paris-csv": _csv_cases,
    "paris-xml": _xml_cases,
}
#: Inputs no adapter may turn into events (each names what must refuse it).
MUST_REFUSE = {
    "billion-laughs",
    "quadratic-blowup",
    "external-entity",
    "external-parameter-entity",
    "external-dtd",
    "undeclared-entity",
    "xinclude",
    "deep-nesting",
    "utf-7-declared",
    "utf-32-declared",
    "shift-jis-declared",
    "unknown-encoding",
}


def _context(adapter: str) -> AdapterContext:
    return AdapterContext(source_agency=get_adapter(adapter).default_source, now=NOW)


def _outcome(adapter: str, raw: bytes) -> str:
    """``events`` or ``refused``; anything but an AdapterError fails the test."""
    try:
        get_adapter(adapter).parse(raw, _context(adapter))
    except AdapterError as exc:
        assert exc.problems
        for problem in exc.problems:
            assert problem.location.strip()
            assert problem.reason.strip()
        return "refused"
    return "events"


def _peak_bytes(work: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        work()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize(
    ("adapter", "case"),
    [(adapter, case) for adapter, make in CASES.items() for case in make()],
)
def test_hostile_input_is_refused_quickly_in_bounded_memory(adapter: str, case: str) -> None:
    raw = CASES[adapter]()[case]
    assert len(raw) <= get_adapter(adapter).max_bytes, "a case must reach the parser"
    # CPU time of this thread: the adapter's own cost, whatever else the machine is doing.
    started = time.thread_time()
    outcome = _outcome(adapter, raw)
    elapsed = time.thread_time() - started
    assert elapsed < SLOWEST, f"{adapter}/{case} took {elapsed:.3f} s of CPU"
    if case in MUST_REFUSE:
        assert outcome == "refused"
    # Memory: a small multiple of the input, never an expansion (tracemalloc's own overhead
    # makes this the slower pass, so it is timed apart from the check above).
    peak = _peak_bytes(lambda: _outcome(adapter, raw))
    assert peak < 8 * len(raw) + 32 * MB, f"{adapter}/{case}: peak {peak / MB:.1f} MB"


def test_entities_are_never_expanded_nor_fetched() -> None:
    """The refusals name the DTD, not a later symptom: nothing was expanded or read."""
    for case in ("billion-laughs", "quadratic-blowup", "external-entity", "external-dtd"):
        with pytest.raises(AdapterError) as caught:
            get_adapter("paris-xml").parse(_xml_cases()[case], _context("paris-xml"))
        assert "DTD" in str(caught.value), case
        assert "root:" not in str(caught.value)  # nothing of /etc/passwd


@pytest.mark.parametrize("adapter", ADAPTER_NAMES)
def test_a_body_over_the_limit_is_refused_before_parsing(adapter: str) -> None:
    """50 MB (or the adapter's own limit plus one, if that is higher) is refused at once."""
    limit = get_adapter(adapter).max_bytes
    size = max(FIFTY_MB, limit + 1)
    # Valid-looking content, so only the size check can refuse it.
    sample = _sample(adapter)
    body = sample + b" " * (size - len(sample))
    context = _context(adapter)
    started = time.perf_counter()
    with pytest.raises(InputTooLarge) as caught:
        get_adapter(adapter).parse(body, context)
    elapsed = time.perf_counter() - started
    assert elapsed < SIZE_REFUSAL_SECONDS, f"{adapter}: refusal took {elapsed * 1000:.1f} ms"
    assert caught.value.code == "too_large"
    assert str(size) in str(caught.value)

    def refuse() -> None:
        with pytest.raises(InputTooLarge):
            get_adapter(adapter).parse(body, context)

    peak = _peak_bytes(refuse)
    assert peak < SIZE_REFUSAL_BYTES, f"{adapter}: refusal allocated {peak} bytes"
