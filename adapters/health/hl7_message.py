"""Reading an HL7 v2 message: MLLP framing, character sets, the ``hl7`` parser, escapes, times.

The ``hl7`` package does the splitting (it honours the separators MSH declares); this
module gives its nested lists a typed face: ``Hl7Message.segments`` in order, each a
``Segment`` whose ``value(field, component, ...)`` is unescaped text. The package's own
unescape is not used because it logs field contents (personal data) on odd escapes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import hl7

from adapters.base import Problem, london_to_utc, strip_control

__all__ = [
    "MLLP_END",
    "MLLP_START",
    "Hl7Message",
    "Hl7SyntaxError",
    "Segment",
    "Separators",
    "escape",
    "frame_mllp",
    "parse_message",
    "parse_ts",
    "parse_ts_date",
    "unescape",
    "unframe",
]

MLLP_START = b"\x0b"
MLLP_END = b"\x1c\r"

_SEGMENT_NAME = re.compile(r"^[A-Z][A-Z0-9]{2}$")

# Far beyond any real message (an ADT message has a few dozen segments, a segment at most
# a few dozen fields), and checked before the parser builds a list for every delimiter:
# 100,000 empty fields cost it a second of CPU and a hundred thousand objects.
#: The most segments one message may have.
MAX_SEGMENTS = 2_000
#: The most fields one segment may have.
MAX_FIELDS = 500
#: The most repetitions, components and subcomponents one segment may have, together.
MAX_PARTS = 5_000
_TS = re.compile(
    r"^(\d{4})(\d{2})(\d{2})(?:(\d{2})(\d{2})?(?:(\d{2})(?:\.(\d{1,4}))?)?)?([+-]\d{4})?$"
)


class Hl7SyntaxError(Exception):
    """The bytes are not an HL7 v2 message we can read; carries located problems."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))


@dataclass(frozen=True, slots=True)
class Separators:
    """The delimiters MSH-1 and MSH-2 declare."""

    field: str = "|"
    component: str = "^"
    repetition: str = "~"
    escape: str = "\\"
    subcomponent: str = "&"

    @property
    def encoding_characters(self) -> str:
        """MSH-2 as written."""
        return self.component + self.repetition + self.escape + self.subcomponent


def unframe(raw: bytes) -> bytes:
    """The message inside an MLLP frame (``0x0B ... 0x1C 0x0D``), or ``raw`` unframed.

    Raises:
        Hl7SyntaxError: a start block without an end block, or data after the end block.
    """
    data = raw.strip(b" \t\r\n")
    if not data.startswith(MLLP_START):
        if b"\x1c" in data:
            raise Hl7SyntaxError([Problem("message", "MLLP end block without a start block")])
        return data
    end = data.find(b"\x1c")
    if end < 0:
        raise Hl7SyntaxError([Problem("message", "MLLP start block without an end block")])
    if data[end + 1 :].strip(b"\r\n"):
        raise Hl7SyntaxError(
            [Problem("message", "data after the MLLP end block: send one message per frame")]
        )
    return data[1:end]


def frame_mllp(message: bytes) -> bytes:
    """``message`` wrapped in an MLLP frame."""
    return MLLP_START + message + MLLP_END


def _charset(data: bytes) -> str:
    # MSH-18 names the character set; MSH itself is plain ASCII, so peek before decoding.
    head = data.split(b"\r", 1)[0].split(b"\n", 1)[0].decode("latin-1")
    if len(head) < 4 or not head.startswith("MSH"):
        return ""
    fields = head.split(head[3], 18)
    return fields[17].split(head[5:6] or "~")[0].strip().upper() if len(fields) > 17 else ""


def _decode(data: bytes) -> str:
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    charset = _charset(data)
    try:
        if charset == "8859/1":
            return data.decode("latin-1")
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise Hl7SyntaxError(
            [Problem("message", "not valid UTF-8 text, and MSH-18 names no other character set")]
        ) from None


class _Node(list[Any]):
    """A lighter container than ``hl7.Container``: the parser only needs a list."""

    __slots__ = ()


# One class per level: the parser tells a segment from a message by its class.
class _Message(_Node):
    __slots__ = ()


class _Segment(_Node):
    __slots__ = ()


class _Field(_Node):
    __slots__ = ()

    def __init__(self, sequence: Any = (), **_: Any) -> None:
        # The parser builds MSH-1 and MSH-2 itself, with keyword arguments.
        list.__init__(self, sequence)


class _Repetition(_Node):
    __slots__ = ()


class _Component(_Node):
    __slots__ = ()


class _HeavyFactory(hl7.Factory):  # type: ignore[misc]
    """The package's own containers, for the public parser (no plan of ours)."""


class _Factory(hl7.Factory):  # type: ignore[misc]
    create_message = _Message
    create_segment = _Segment
    create_field = _Field
    create_repetition = _Repetition
    create_component = _Component


def _split_with_hl7(text: str) -> list[Any]:
    result: list[Any] = hl7.parse(text, factory=_HeavyFactory)
    return result


try:
    # The package's public ``parse`` rebuilds its parse plan for every field, which costs
    # more than the rest of a translation; the same plan, built once per level, halves it.
    from hl7.parser import _ParsePlan, _split, create_parse_plan

    class _CachedPlan(_ParsePlan):  # type: ignore[misc]
        def __init__(self, *args: Any) -> None:
            super().__init__(*args)
            self._next: _CachedPlan | None = None
            self._mine = self.separators[self.separators.find(self.separator) :]

        def next(self) -> _CachedPlan | None:
            if self._next is None and len(self.containers) > 1:
                self._next = super().next()
            return self._next

        def applies(self, text: str) -> bool:
            # A plain loop: any() over a generator costs a tenth of the whole parse here.
            for separator in self._mine:  # noqa: SIM110
                if separator in text:
                    return True
            return False

        def container(self, data: list[Any]) -> Any:
            # The plain list constructor: the library's containers take keyword arguments
            # this code never reads.
            return self.containers[0](data)

    def _split_fast(text: str) -> list[Any]:
        base = create_parse_plan(text, _Factory)
        plan = _CachedPlan(base.separator, base.separators, base.containers, base.esc, _Factory)
        result: list[Any] = _split(text, plan)
        return result

    _split_message = _split_fast
except ImportError:  # pragma: no cover - a future hl7 release without the private names
    _split_message = _split_with_hl7


@dataclass(frozen=True, slots=True)
class Segment:
    """One segment: its 1-based position, its name, and its fields as parsed."""

    position: int
    name: str
    fields: list[Any]
    separators: Separators

    def location(self, field: int, component: int | None = None) -> str:
        """Where a field is, as a partner reads it: ``PID-7`` or ``PID-11.5``."""
        base = f"{self.name}-{field}"
        return f"{base}.{component}" if component else base

    def raw(self, field: int) -> list[list[list[str]]]:
        """Field ``field`` as repetitions of components of subcomponents, still escaped."""
        if field >= len(self.fields):
            return []
        node = self.fields[field]
        if not node:
            return []
        first = node[0]
        if isinstance(first, str):
            return [[[first]]]
        return [[[c] if isinstance(c, str) else list(c) for c in rep] for rep in node]

    def value(
        self, field: int, component: int = 1, subcomponent: int = 1, repetition: int = 1
    ) -> str:
        """The unescaped text at a position, ``""`` when absent or the HL7 null ``""``."""
        # Walks the parsed lists directly: this is the hot path of every translation.
        fields = self.fields
        leaf: Any = ""
        node = fields[field] if field < len(fields) else None
        if not node:
            pass
        elif isinstance(node[0], str):  # a field without delimiters is one plain value
            if repetition == component == subcomponent == 1:
                leaf = node[0]
        elif repetition <= len(node) and component <= len(node[repetition - 1]):
            leaf = node[repetition - 1][component - 1]
            if not isinstance(leaf, str):  # subcomponents
                leaf = leaf[subcomponent - 1] if subcomponent <= len(leaf) else ""
            elif subcomponent != 1:
                leaf = ""
        return self.text(leaf) if leaf else ""

    def text(self, escaped: str) -> str:
        """Unescape one leaf value and trim it."""
        if escaped == '""':
            return ""
        if self.separators.escape in escaped:
            escaped = strip_control(unescape(escaped, self.separators))
        return escaped.strip()

    def repetitions(self, field: int) -> list[list[list[str]]]:
        """Every repetition of a field (see ``raw``)."""
        return self.raw(field)


@dataclass(frozen=True, slots=True)
class Hl7Message:
    """A parsed message: its separators and its segments in order (MSH first)."""

    separators: Separators
    segments: tuple[Segment, ...]

    def first(self, name: str) -> Segment | None:
        """The first segment called ``name``, if any."""
        return next((s for s in self.segments if s.name == name), None)

    def all(self, name: str) -> list[Segment]:
        """Every segment called ``name``, in order."""
        return [s for s in self.segments if s.name == name]


def _separators(text: str) -> Separators:
    if not text.startswith("MSH"):
        raise Hl7SyntaxError([Problem("segment 1", "a message must start with an MSH segment")])
    if len(text) < 8:
        raise Hl7SyntaxError([Problem("MSH-2", "the encoding characters are missing")])
    field = text[3]
    chars = text[4:8]
    if text[8:9] != field:
        return_problem = Problem(
            "MSH-2", "the encoding characters must be four characters followed by MSH-1"
        )
        raise Hl7SyntaxError([return_problem])
    delimiters = field + chars
    if len(set(delimiters)) != 5 or any(c.isalnum() or c in "\r\n " for c in delimiters):
        raise Hl7SyntaxError(
            [Problem("MSH-2", "the delimiters must be five distinct non-alphanumeric characters")]
        )
    return Separators(field, chars[0], chars[1], chars[2], chars[3])


def parse_message(raw: bytes) -> Hl7Message:
    """Unframe, decode and parse one HL7 v2 message.

    Raises:
        Hl7SyntaxError: with located problems when the input is not one readable message.
    """
    text = _decode(unframe(raw))
    # Senders use \r (the standard), \n or \r\n between segments; the parser wants \r.
    text = strip_control(text.replace("\r\n", "\r").replace("\n", "\r")).strip("\r\t ")
    seps = _separators(text)
    problems: list[Problem] = []
    lines = [line for line in text.split("\r") if line.strip()]
    if len(lines) > MAX_SEGMENTS:
        raise Hl7SyntaxError(
            [Problem("message", f"{len(lines)} segments: at most {MAX_SEGMENTS} are accepted")]
        )
    parts = (seps.repetition, seps.component, seps.subcomponent)
    for position, line in enumerate(lines, start=1):
        name = line[:3]
        if not _SEGMENT_NAME.match(name) or (len(line) > 3 and line[3] != seps.field):
            problems.append(Problem(f"segment {position}", "not a valid segment"))
        elif line.count(seps.field) > MAX_FIELDS:
            problems.append(
                Problem(f"segment {position} ({name})", f"more than {MAX_FIELDS} fields")
            )
        elif sum(line.count(p) for p in parts) > MAX_PARTS:
            problems.append(
                Problem(
                    f"segment {position} ({name})",
                    f"more than {MAX_PARTS} repetitions, components and subcomponents",
                )
            )
        elif name in ("MSH", "BHS", "FHS", "BTS", "FTS") and position > 1:
            problems.append(
                Problem(f"segment {position} ({name})", "one message per input, without batches")
            )
    if problems:
        raise Hl7SyntaxError(problems)
    try:
        parsed = _split_message("\r".join(lines))
    except Exception as exc:  # the parser raises bare library errors on malformed input
        raise Hl7SyntaxError([Problem("message", "not a readable HL7 v2 message")]) from exc
    segments = []
    for position, parsed_fields in enumerate(parsed, start=1):
        fields = parsed_fields
        if isinstance(fields[0], str):  # a segment with no fields at all: "NTE"
            fields = [_Field(sequence=[fields[0]])]
        segments.append(Segment(position, fields[0][0], fields, seps))
    return Hl7Message(seps, tuple(segments))


def escape(text: str, seps: Separators) -> str:
    """``text`` with the delimiters escaped, ready to stand in a field."""
    esc = seps.escape
    out = text.replace(esc, f"{esc}E{esc}")
    for char, code in (
        (seps.field, "F"),
        (seps.component, "S"),
        (seps.subcomponent, "T"),
        (seps.repetition, "R"),
    ):
        out = out.replace(char, f"{esc}{code}{esc}")
    return out.replace("\r", f"{esc}.br{esc}").replace("\n", f"{esc}.br{esc}")


def unescape(value: str, seps: Separators) -> str:
    r"""Resolve HL7 escape sequences: ``\F\ \S\ \T\ \R\ \E\``, ``\Xhh\`` and ``\.br\``.

    Highlighting and character-set switches carry no text and are dropped; an escape
    character without its closing partner is kept as written.
    """
    esc = seps.escape
    out: list[str] = []
    i = 0
    n = len(value)
    while i < n:
        start = value.find(esc, i)
        if start < 0:
            out.append(value[i:])
            break
        out.append(value[i:start])
        end = value.find(esc, start + 1)
        if end < 0:
            out.append(value[start:])
            break
        out.append(_escape_text(value[start + 1 : end], seps))
        i = end + 1
    return "".join(out)


def _escape_text(sequence: str, seps: Separators) -> str:
    simple = {
        "F": seps.field,
        "S": seps.component,
        "T": seps.subcomponent,
        "R": seps.repetition,
        "E": seps.escape,
        ".br": "\n",
        ".sp": "\n",
    }
    if sequence in simple:
        return simple[sequence]
    if sequence[:1] == "X" and len(sequence) % 2 == 1:
        try:
            data = bytes.fromhex(sequence[1:])
        except ValueError:
            return ""
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            return data.decode("latin-1")
    return ""


def parse_ts(value: str) -> datetime | None:
    """An HL7 TS/DTM value as a UTC instant; local times are Europe/London wall time.

    At least the hour is needed. Returns None when the value is not a valid timestamp.
    """
    match = _TS.match(value)
    if not match or match.group(4) is None:
        return None
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    try:
        local = datetime(  # noqa: DTZ001 - a partner wall time, given its zone just below
            int(year),
            int(month),
            int(day),
            int(hour),
            int(minute or 0),
            int(second or 0),
            int((fraction or "0").ljust(6, "0")[:6]),
        )
    except ValueError:
        return None
    if offset:
        sign = -1 if offset[0] == "-" else 1
        hours, minutes = int(offset[1:3]), int(offset[3:5])
        if hours > 14 or minutes > 59:
            return None
        tz = timezone(sign * timedelta(hours=hours, minutes=minutes))
        return local.replace(tzinfo=tz).astimezone(UTC)
    return london_to_utc(local)


def parse_ts_date(value: str) -> date | None:
    """The calendar date at the start of an HL7 DT/TS value (``YYYYMMDD[...]``), or None."""
    match = _TS.match(value)
    if not match:
        return None
    try:
        return date(int(match.group(1)), int(match.group(2)), int(match.group(3)))
    except ValueError:
        return None
