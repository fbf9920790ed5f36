"""The police adapter: size check, JSON validation with located errors, rules, mapping."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import ClassVar

from pydantic import ValidationError

from adapters.base import AdapterContext, AdapterError, Problem, check_size
from adapters.police.format import RECORD_ADAPTER, RECORD_TYPES, PoliceRecord
from adapters.police.mapping import ADAPTER_NAME, record_to_events
from adapters.police.rules import record_problems
from schemas.events import Event

__all__ = ["MAX_PROBLEMS", "PoliceAdapter", "json_path", "read_record"]

#: Problems listed in one error; the rest are counted.
MAX_PROBLEMS = 50

_BOM = b"\xef\xbb\xbf"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_KEY_SHOWN = 40
_JSON_POSITION = re.compile(r"at line (\d+) column (\d+)")

#: Plainer words for partners than pydantic's for the errors they meet most.
_REASONS = {
    "extra_forbidden": "is not a field of the police record format",
    "missing": "is required",
}


class PoliceAdapter:
    """Translates one police missing-person or exploitation record (JSON) to canonical events."""

    name: ClassVar[str] = ADAPTER_NAME
    #: A record with every list at its limit stays well under this.
    max_bytes: ClassVar[int] = 128 * 1024
    default_source: ClassVar[str] = "tvp-police"

    def parse(self, raw: bytes, context: AdapterContext) -> list[Event]:
        """Translate one police record into canonical events, primary event first.

        Raises:
            InputTooLarge: ``raw`` is over ``max_bytes``; nothing was parsed.
            AdapterError: the record is not valid; every problem is located by JSON path.
        """
        check_size(self.name, raw, self.max_bytes)
        record = read_record(raw, context)
        try:
            return record_to_events(record, context)
        except ValidationError as exc:
            # The native models are meant to be at least as strict as the canonical ones, so
            # this is a defect or a bad context (e.g. a source agency that is not a party id).
            # The canonical field is named to find it; values are never quoted.
            raise AdapterError(
                self.name,
                [
                    Problem(
                        "message",
                        f"cannot be mapped: canonical {_dotted(exc.title, e['loc'])}: {e['msg']}",
                    )
                    for e in exc.errors(
                        include_input=False, include_url=False, include_context=False
                    )
                ],
            ) from exc


def read_record(raw: bytes, context: AdapterContext) -> PoliceRecord:
    """Validate raw JSON into a police record and check its cross-field rules.

    Raises:
        AdapterError: with every problem found, each located by JSON path.
    """
    if raw.startswith(_BOM):
        raw = raw[len(_BOM) :]
    if not raw.lstrip().startswith(b"{"):
        raise AdapterError(ADAPTER_NAME, [Problem("message", "must be a JSON object")])
    try:
        record = RECORD_ADAPTER.validate_json(raw, context={"now": context.now})
    except ValidationError as exc:
        raise AdapterError(ADAPTER_NAME, _problems(exc)) from exc
    problems = record_problems(record)
    if problems:
        raise AdapterError(ADAPTER_NAME, problems)
    return record


def json_path(loc: Sequence[int | str]) -> str:
    """A pydantic error location as a JSON path: ``missing_person.address.lines[0]``.

    The record-type tag pydantic puts first for a tagged union is left out.
    """
    parts = list(loc[1:] if loc and loc[0] in RECORD_TYPES else loc)
    path = ""
    for part in parts:
        if isinstance(part, int):
            path += f"[{part}]"
        elif _NAME.match(part):
            path += f".{part}" if path else part
        else:
            # An unknown key of the sender's: quoted, escaped and cut short, so a location
            # stays one short line whatever the key holds.
            quoted = json.dumps(part[:_KEY_SHOWN]) + ("..." if len(part) > _KEY_SHOWN else "")
            path += f"[{quoted}]"
    return path


def _dotted(model: str, loc: Sequence[int | str]) -> str:
    return ".".join([model, *(str(part) for part in loc)])


def _problems(exc: ValidationError) -> list[Problem]:
    problems = []
    errors = exc.errors(include_input=False, include_url=False, include_context=False)
    for err in errors[:MAX_PROBLEMS]:
        reason = _REASONS.get(err["type"]) or str(err["msg"]).removeprefix("Value error, ")
        if err["type"] == "record_type":
            location = "record_type"
        elif err["type"] == "json_invalid":
            found = _JSON_POSITION.search(reason)
            location = f"line {found[1]}, column {found[2]}" if found else "message"
        else:
            location = json_path(err["loc"]) or "message"
        problems.append(Problem(location, reason))
    if len(errors) > MAX_PROBLEMS:
        # A record with thousands of stray keys must not make an error thousands of lines long.
        problems.append(Problem("message", f"{len(errors) - MAX_PROBLEMS} more problems"))
    return problems
