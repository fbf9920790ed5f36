"""Reading an agreement YAML file into an :class:`Agreement`, with located problems."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from broker.exceptions import ConfigurationError
from broker.policy.findings import Finding, Severity
from broker.policy.model import Agreement

__all__ = [
    "MAX_AGREEMENT_BYTES",
    "AgreementInvalid",
    "LineMap",
    "ParsedAgreement",
    "load_agreement",
    "parse_agreement",
    "read_agreement_file",
]

#: An agreement is a few hundred lines; anything far bigger is refused before parsing.
MAX_AGREEMENT_BYTES = 1024 * 1024

_Path = tuple[str | int, ...]


class AgreementInvalid(ConfigurationError):
    """The agreement file cannot be used; ``findings`` says what is wrong and where."""

    code = "agreement_invalid"

    def __init__(self, source: str, findings: list[Finding]) -> None:
        """Keep the findings and summarise them in the message."""
        self.source = source
        self.findings = findings
        lines = "\n".join(f.format(source) for f in findings)
        super().__init__(f"agreement {source} is not valid:\n{lines}")


@dataclass(frozen=True, slots=True)
class LineMap:
    """Where each key and list item of the YAML document starts (1-based lines)."""

    lines: Mapping[_Path, int] = field(default_factory=dict)

    def line_for(self, path: _Path) -> int | None:
        """The line of ``path``, or of its nearest ancestor the map knows."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(path[:end])
            if line is not None:
                return line
        return None


@dataclass(frozen=True, slots=True)
class ParsedAgreement:
    """An agreement file read as far as it could be: the model (if valid), lines, findings."""

    source: str
    agreement: Agreement | None
    raw: Any
    lines: LineMap
    findings: tuple[Finding, ...]

    def where(self, path: _Path) -> str:
        """A reader's name for what ``path`` points into: ``rule <id>``, ``party <id>``, ..."""
        return _describe(self.raw, path)


def _describe(raw: Any, path: _Path) -> str:
    """Name the party, rule or field set at ``path`` of the raw document."""
    if len(path) >= 2 and path[0] in ("rules", "parties") and isinstance(path[1], int):
        items = raw.get(path[0]) if isinstance(raw, dict) else None
        noun = "rule" if path[0] == "rules" else "party"
        if isinstance(items, list) and path[1] < len(items):
            item = items[path[1]]
            if isinstance(item, dict) and isinstance(item.get("id"), str):
                return f"{noun} {item['id']}"
        return f"{path[0]}[{path[1]}]"
    if len(path) >= 2 and path[0] == "field_sets":
        return f"field set {path[1]}"
    return "agreement"


def _index(root: yaml.Node) -> tuple[LineMap, list[tuple[int, str, _Path]]]:
    """Lines of every key and item, and every duplicate mapping key (line, key, path)."""
    lines: dict[_Path, int] = {(): root.start_mark.line + 1}
    duplicates: list[tuple[int, str, _Path]] = []
    seen: set[int] = set()
    stack: list[tuple[yaml.Node, _Path]] = [(root, ())]
    while stack:
        node, path = stack.pop()
        # An alias repeats a node; walking it once keeps hostile anchors cheap.
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            keys: set[str] = set()
            for key_node, value_node in node.value:
                key = str(key_node.value)
                child = (*path, key)
                if key in keys:
                    duplicates.append((key_node.start_mark.line + 1, key, path))
                    continue
                keys.add(key)
                lines[child] = key_node.start_mark.line + 1
                stack.append((value_node, child))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                lines[(*path, i)] = item.start_mark.line + 1
                stack.append((item, (*path, i)))
    return LineMap(lines), duplicates


def _duplicate_ids(raw: dict[str, Any], lines: LineMap) -> list[Finding]:
    found: list[Finding] = []
    for section, noun in (("parties", "party"), ("rules", "rule")):
        items = raw.get(section)
        if not isinstance(items, list):
            continue
        ids = [item.get("id") if isinstance(item, dict) else None for item in items]
        counts = Counter(i for i in ids if isinstance(i, str))
        first: set[str] = set()
        for index, item_id in enumerate(ids):
            if not isinstance(item_id, str) or counts[item_id] < 2:
                continue
            if item_id in first:
                found.append(
                    Finding(
                        Severity.ERROR,
                        "duplicate-id",
                        f"duplicate {noun} id {item_id}",
                        lines.line_for((section, index, "id")),
                        f"{noun} {item_id}",
                    )
                )
            first.add(item_id)
    return found


_ID_FIELDS = frozenset({"id", "party", "[key]"})
_ID_LISTS = frozenset({"from_parties", "field_sets"})


def _friendly(loc: _Path, error_type: str, message: str) -> str:
    """Say what a pattern means instead of quoting the regular expression."""
    if error_type != "string_pattern_mismatch":
        return message
    last = loc[-1] if loc else None
    parent = loc[-2] if len(loc) >= 2 else None
    if "fields" in loc or (loc[:1] == ("field_sets",) and last != "[key]"):
        return "not a field path (dotted lower-case names, e.g. subject.nhs_number or body.*)"
    if last in _ID_FIELDS or parent in _ID_LISTS:
        return "not an id (lower-case letters, digits and hyphens, e.g. tvp-police)"
    return message


def _validation_findings(
    exc: ValidationError, raw: Any, lines: LineMap, skip_duplicates: bool
) -> list[Finding]:
    errors = exc.errors(include_url=False, include_input=False)
    locs = [tuple(e["loc"]) for e in errors]
    found: list[Finding] = []
    for error, loc in zip(errors, locs, strict=True):
        message = str(error["msg"]).removeprefix("Value error, ")
        if skip_duplicates and message.startswith("duplicate "):
            continue  # already reported, one line per duplicate
        if error["type"] == "too_short" and any(
            other[: len(loc)] == loc and len(other) > len(loc) for other in locs
        ):
            continue  # a list left empty only because its items failed: they are reported
        dotted = ".".join(str(p) for p in loc)
        message = _friendly(loc, error["type"], message)
        text = f"{dotted}: {message}" if dotted else message
        found.append(
            Finding(Severity.ERROR, "invalid", text, lines.line_for(loc), _describe(raw, loc))
        )
    return found


def parse_agreement(text: str, source: str = "<agreement>") -> ParsedAgreement:
    """Parse agreement YAML text, collecting every located problem instead of raising.

    Args:
        text: the YAML document.
        source: the name used in messages (normally the file name).

    Returns:
        The parse result; ``agreement`` is None when the document is not a valid agreement.
    """
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        raw = yaml.load(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or "not valid YAML"
        finding = Finding(Severity.ERROR, "yaml", f"not valid YAML: {problem}", line)
        return ParsedAgreement(source, None, None, LineMap(), (finding,))
    if root is None or not isinstance(raw, dict):
        finding = Finding(
            Severity.ERROR,
            "invalid",
            "the agreement must be a YAML mapping (version, parties, rules, ...)",
            1,
        )
        return ParsedAgreement(source, None, raw, LineMap(), (finding,))

    lines, duplicate_keys = _index(root)
    findings = [
        Finding(Severity.ERROR, "duplicate-key", f"duplicate key {key}", line, _describe(raw, path))
        for line, key, path in duplicate_keys
    ]
    findings += _duplicate_ids(raw, lines)
    try:
        agreement: Agreement | None = Agreement.model_validate(raw)
    except ValidationError as exc:
        agreement = None
        findings += _validation_findings(exc, raw, lines, skip_duplicates=bool(findings))
    findings.sort(key=lambda f: (f.line or 0, f.code))
    if any(f.severity is Severity.ERROR for f in findings):
        # A document with duplicate keys silently loses one value; never use it.
        agreement = None
    return ParsedAgreement(source, agreement, raw, lines, tuple(findings))


def read_agreement_file(path: Path) -> ParsedAgreement:
    """Read and parse an agreement file (see :func:`parse_agreement`).

    Raises:
        ConfigurationError: the file cannot be read, is too large or is not UTF-8.
    """
    try:
        size = path.stat().st_size
        if size > MAX_AGREEMENT_BYTES:
            raise ConfigurationError(
                f"agreement {path} is {size} bytes, over the {MAX_AGREEMENT_BYTES} byte limit"
            )
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"cannot read agreement {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigurationError(f"agreement {path} is not UTF-8 text") from exc
    return parse_agreement(text, path.name)


def load_agreement(path: Path) -> Agreement:
    """Load the agreement the broker runs with.

    Only structural problems stop loading (YAML, unknown keys, wrong values, duplicate keys
    or ids); ``policy check`` / :func:`broker.policy.lint.lint_agreement` find the rest, and
    the engine refuses whatever they would flag (unknown parties, s.115 recipients, ...).

    Raises:
        AgreementInvalid: the document is not a valid agreement (located findings attached).
        ConfigurationError: the file cannot be read.
    """
    parsed = read_agreement_file(path)
    if parsed.agreement is None:
        raise AgreementInvalid(parsed.source, list(parsed.findings))
    return parsed.agreement
