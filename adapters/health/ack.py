"""HL7 v2 acknowledgements (original mode ACK with MSA) for the MLLP and HTTP ingress."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime

from adapters.base import AdapterError, InputTooLarge, Problem
from adapters.health.hl7_message import (
    Hl7SyntaxError,
    Segment,
    Separators,
    escape,
    parse_message,
)

__all__ = ["ack_code", "ack_for"]

_LOCATION = re.compile(r"^([A-Z][A-Z0-9]{2})-(\d+)(?:\.(\d+))?$")
_WHOLE_SEGMENT = re.compile(r"^segment \d+( \([A-Z0-9]{3}\))?$")
#: MSA-3 is an ST of 80 characters up to 2.5.1.
_MSA_TEXT = 80
_MODERN = ("2.5", "2.5.1")


def ack_code(error: AdapterError | None) -> str:
    """``AA`` when accepted; ``AR`` when the message was refused whole (too large,
    unreadable, a type or version not translated); ``AE`` for errors in its content."""
    if error is None:
        return "AA"
    if isinstance(error, InputTooLarge):
        return "AR"
    for problem in error.problems:
        where = problem.location
        if where == "message" or where.startswith("MSH-") or _WHOLE_SEGMENT.match(where):
            return "AR"
    return "AE"


def _field_text(segment: Segment | None, field: int, seps: Separators) -> str:
    # Copy a field as written: the ACK uses the same delimiters, so escapes stay valid.
    if segment is None:
        return ""
    reps = segment.raw(field)
    return seps.repetition.join(
        seps.component.join(seps.subcomponent.join(sub) for sub in rep) for rep in reps
    )


def _error_code(problem: Problem) -> tuple[str, str]:
    if problem.location == "MSH-9":
        return "200", "Unsupported message type"
    if problem.location == "MSH-12":
        return "203", "Unsupported version id"
    if "required" in problem.reason:
        return "101", "Required field missing"
    return "102", "Data type error"


def _err_segment(problem: Problem, seps: Separators, version: str) -> str:
    f, c, s = seps.field, seps.component, seps.subcomponent
    code, text = _error_code(problem)
    match = _LOCATION.match(problem.location)
    segment, position = (match.group(1), match.group(2)) if match else ("", "")
    if version in _MODERN:
        location = c.join((segment, "1", position)) if match else ""
        message = escape(str(problem), seps)
        return f.join(
            ("ERR", "", location, c.join((code, text, "HL70357")), "E", "", "", "", message)
        )
    coded = s.join((code, text, "HL70357"))
    return f.join(("ERR", c.join((segment, "1" if match else "", position, coded))))


def ack_for(
    raw: bytes,
    error: AdapterError | None,
    *,
    now: datetime | None = None,
) -> bytes:
    """An HL7 v2 ACK answering ``raw``: ``MSH``, ``MSA`` and, on error, one ``ERR`` per problem.

    The ACK swaps the sender and receiver of the original, echoes its control id in
    MSA-2 and its trigger in MSH-9, and uses its delimiters and version. When ``raw``
    cannot be read at all the ACK uses the default delimiters and version 2.5.1 and
    leaves the fields it cannot know empty. Reasons never carry personal data, so they
    can be returned to the sender. The result is not MLLP-framed (see ``frame_mllp``).

    Args:
        raw: the message as received (framed or not).
        error: the adapter's error for it, or None when it was accepted.
        now: the time to stamp in MSH-7; the current time when not given.
    """
    try:
        message = parse_message(raw)
    except (Hl7SyntaxError, ValueError, TypeError, IndexError, KeyError, RecursionError):
        message = None
    seps = message.separators if message else Separators()
    msh = message.segments[0] if message else None
    version = (msh.value(12) if msh else "") or "2.5.1"
    trigger = msh.value(9, 2) if msh else ""
    stamp = (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y%m%d%H%M%S+0000")
    control = hashlib.sha256(raw).hexdigest()[:20].upper()
    f, c = seps.field, seps.component
    header = f.join(
        (
            "MSH",
            seps.encoding_characters,
            _field_text(msh, 5, seps),
            _field_text(msh, 6, seps),
            _field_text(msh, 3, seps),
            _field_text(msh, 4, seps),
            stamp,
            "",
            c.join(("ACK", escape(trigger, seps), "ACK")) if trigger else "ACK",
            control,
            _field_text(msh, 11, seps) or "P",
            escape(version, seps),
        )
    )
    code = ack_code(error)
    text = escape(str(error.problems[0])[:_MSA_TEXT], seps) if error else ""
    msa = f.join(("MSA", code, _field_text(msh, 10, seps), text)).rstrip(f)
    lines = [header, msa]
    if error is not None:
        lines.extend(_err_segment(p, seps, version) for p in error.problems)
    return ("\r".join(lines) + "\r").encode("utf-8")
