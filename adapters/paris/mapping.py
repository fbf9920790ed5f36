"""One Paris record (a CSV row or an XML ``<record>``) → one canonical event, or its problems."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime, timedelta
from typing import Any, TypeVar

from pydantic import ValidationError

from adapters.base import (
    LONDON,
    MAX_CHILD_AGE_YEARS,
    AdapterContext,
    AdapterError,
    Problem,
    check_date_of_birth,
    check_not_future,
    event_id_for,
)
from adapters.paris.columns import COLUMNS, MAX_CELL_CHARS, Kind, RecordType
from adapters.paris.values import (
    parse_date,
    parse_datetime,
    parse_flag,
    parse_level,
    parse_placement_type,
    parse_removal_reason,
    parse_sex,
)
from schemas.events import Event, LawfulBasis

__all__ = [
    "DEFAULT_LAWFUL_BASIS",
    "DEFAULT_SOURCE",
    "MAX_PROBLEMS",
    "SOURCE_SYSTEM",
    "Locate",
    "Translator",
    "collect",
]

#: The council's children's services: the party that sends Paris exports.
DEFAULT_SOURCE = "wam-childrens-services"
#: The council shares case status under its duty to safeguard (Children Act 2004 s.11).
DEFAULT_LAWFUL_BASIS = LawfulBasis.CA_2004_S11
#: ``metadata.source.system`` of every Paris event.
SOURCE_SYSTEM = "paris"
#: ``parse`` lists at most this many problems; a broken bulk file would otherwise make an
#: error message as large as the file.
MAX_PROBLEMS = 1000

#: Names the place of a column (or, given None, of the whole record) for a problem.
Locate = Callable[[str | None], str]

_KINDS = {c.name: c.kind for c in COLUMNS}
_USED_BY = {c.name: c.used_by for c in COLUMNS}
_REQUIRED_BY = {c.name: c.required_by for c in COLUMNS}
_TAGS = frozenset({"case.status", "rhi.completed"})
#: Codes written in capitals by convention, accepted in any case.
_UPPER = frozenset({"paris_id", "postcode", "local_authority", "placing_authority", "placed_in"})
_T = TypeVar("_T")
_RECORD_ID = re.compile(r"[A-Za-z0-9/_.:-]{1,64}")
_TOO_OLD = f"is more than {MAX_CHILD_AGE_YEARS + 1} years ago"

#: Canonical field path (discriminator tags dropped) → the column it came from.
_COLUMN_OF: dict[tuple[str | int, ...], str] = {
    ("metadata", "source", "reference"): "record_id",
    ("metadata", "correlation_id"): "episode_id",
    ("metadata", "recorded_at"): "recorded_at",
    ("metadata", "source", "agency"): "record_id",
    **{("subject", n): n for n in ("paris_id", "given_name", "family_name", "date_of_birth")},
    **{("subject", n): n for n in ("sex", "nhs_number")},
    **{("subject", "home_address", n): n for n in ("town", "postcode", "local_authority")},
    ("subject", "looked_after", "responsible_authority"): "placing_authority",
    ("subject", "looked_after", "placed_in"): "placed_in",
    ("subject", "looked_after", "placement_type"): "placement_type",
    ("body", "as_of"): "recorded_at",
    ("body", "child_protection_plan"): "child_protection_plan",
    ("body", "child_protection_plan_since"): "child_protection_plan_since",
    ("body", "child_in_need"): "child_in_need",
    ("body", "cse_tracker", "level"): "cse_risk_level",
    ("body", "cse_tracker", "identified_on"): "cse_identified_on",
    ("body", "cse_tracker", "removed_on"): "cse_removed_on",
    ("body", "cse_tracker", "removal_reason"): "cse_removal_reason",
    ("body", "episode_id"): "episode_id",
    ("body", "offered_at"): "rhi_offered_at",
    ("body", "completed_at"): "rhi_completed_at",
    ("body", "declined"): "rhi_declined",
    ("body", "conducted_by"): "rhi_conducted_by",
    ("body", "cse_concerns_disclosed"): "rhi_cse_concerns_disclosed",
}


class _Reader:
    """Reads typed values out of one record, collecting a located problem for each fault."""

    __slots__ = ("failed", "locate", "problems", "values")

    def __init__(self, values: Mapping[str, str], locate: Locate) -> None:
        self.values = values
        self.locate = locate
        self.problems: list[Problem] = []
        self.failed: set[str | None] = set()

    def fail(self, name: str | None, reason: str) -> None:
        self.problems.append(Problem(self.locate(name), reason))
        self.failed.add(name)

    def text(self, name: str) -> str:
        """The column's text, trimmed (inner whitespace collapsed for free text), or ''."""
        value = self.values.get(name)
        if not value:
            return ""
        value = " ".join(value.split()) if _KINDS[name] is Kind.TEXT else value.strip()
        if name in _UPPER:
            value = value.upper()
        if len(value) > MAX_CELL_CHARS:
            self.fail(name, f"is longer than {MAX_CELL_CHARS} characters")
            return ""
        if "\ufffd" in value:
            self.fail(name, "is not valid UTF-8 text")
            return ""
        return value

    def record_type(self) -> RecordType | None:
        text = self.text("record_type")
        if not text:
            self.fail("record_type", "is required")
            return None
        try:
            return RecordType(text.lower())
        except ValueError:
            allowed = " or ".join(r.value for r in RecordType)
            self.fail("record_type", f"not a record type ({allowed})")
            return None

    def check_usage(self, record_type: RecordType) -> None:
        for name, value in self.values.items():
            if value and name in _USED_BY and record_type not in _USED_BY[name] and value.strip():
                self.fail(name, f"is not used in {record_type.value} records; leave it empty")
        for name, required_by in _REQUIRED_BY.items():
            if record_type in required_by and not self.given(name):
                self.fail(name, f"is required in {record_type.value} records")

    def given(self, name: str) -> bool:
        return bool((self.values.get(name) or "").strip())

    def read(self, name: str, parse: Callable[[str], _T]) -> _T | None:
        text = self.text(name)
        if not text:
            return None
        try:
            return parse(text)
        except ValueError as exc:
            self.fail(name, str(exc))
            return None

    def flag(self, name: str) -> bool:
        return bool(self.read(name, parse_flag))


class Translator:
    """Translates Paris records for one message, with the sender's context."""

    def __init__(self, context: AdapterContext) -> None:
        self._context = context
        self._now = context.now
        self._today = context.now.astimezone(LONDON).date()
        # Nothing in a child's record can be older than the oldest child the council serves.
        self._oldest = self._today - timedelta(days=366 * (MAX_CHILD_AGE_YEARS + 1))
        self._basis = context.lawful_basis or DEFAULT_LAWFUL_BASIS

    def translate(self, values: Mapping[str, str], locate: Locate) -> Event | list[Problem]:
        """The event for one record, or every problem found in it.

        Args:
            values: column name → the cell's text, control characters already removed;
                a column absent from the input is absent (or empty) here.
            locate: names the place of a column in the input, for problems.
        """
        r = _Reader(values, locate)
        record_type = r.record_type()
        if record_type is None:
            return r.problems
        r.check_usage(record_type)
        record_id = r.text("record_id")
        if record_id and not _RECORD_ID.fullmatch(record_id):
            r.fail("record_id", "not a record id (1-64 of A-Z a-z 0-9 / _ . : -)")
        recorded_at = self._instant(r, "recorded_at")
        subject, address_columns = self._subject(r)
        if record_type is RecordType.CASE_STATUS:
            body = self._case_status(r, recorded_at, subject.get("date_of_birth"))
            occurred_at, correlation = recorded_at, None
        else:
            body = self._interview(r)
            occurred_at = body.get("completed_at") or body.get("offered_at")
            correlation = body.get("episode_id") or None
        data = {
            "metadata": {
                "event_id": event_id_for(
                    self._context.source_agency,
                    SOURCE_SYSTEM,
                    record_type.value,
                    record_id,
                    recorded_at.isoformat() if recorded_at else "",
                ),
                "occurred_at": occurred_at,
                "recorded_at": recorded_at,
                "source": {
                    "agency": self._context.source_agency,
                    "system": SOURCE_SYSTEM,
                    "reference": record_id,
                },
                "correlation_id": correlation,
                "lawful_basis": self._basis,
            },
            "subject": subject,
            "body": body,
        }
        try:
            event = Event.model_validate(data)
        except ValidationError as exc:
            # The schema's own checks (NHS number, postcode, ONS codes, ids) still run on
            # a record that already failed ours, so the partner hears of every fault at once;
            # only faults that merely echo one already reported are left out.
            return r.problems + _located(exc, locate, address_columns, r.failed)
        return r.problems or event

    def _instant(self, r: _Reader, name: str) -> datetime | None:
        value = r.read(name, parse_datetime)
        if value is None:
            return None
        reason = check_not_future(value, self._now)
        if reason is None and value.date() < self._oldest:
            reason = _TOO_OLD
        if reason:
            r.fail(name, reason)
            return None
        return value

    def _day(self, r: _Reader, name: str, born: date | None = None) -> date | None:
        value = r.read(name, parse_date)
        if value is None:
            return None
        if value > self._today:
            r.fail(name, "is in the future")
            return None
        if value < self._oldest:
            r.fail(name, _TOO_OLD)
            return None
        if born is not None and value < born:
            r.fail(name, "is before the date of birth")
            return None
        return value

    def _subject(self, r: _Reader) -> tuple[dict[str, Any], list[str]]:
        born = r.read("date_of_birth", parse_date)
        if born is not None and (reason := check_date_of_birth(born, self._now)):
            r.fail("date_of_birth", reason)
            born = None
        subject: dict[str, Any] = {
            "paris_id": r.text("paris_id") or None,
            "given_name": r.text("given_name") or None,
            "family_name": r.text("family_name") or None,
            "date_of_birth": born,
            "sex": r.read("sex", parse_sex),
            "nhs_number": r.text("nhs_number") or None,
        }
        lines = {n: r.text(n) for n in ("address_line_1", "address_line_2")}
        address_columns = [n for n, text in lines.items() if text]
        address = {
            "lines": tuple(lines[n] for n in address_columns),
            "town": r.text("town") or None,
            "postcode": r.text("postcode") or None,
            "local_authority": r.text("local_authority") or None,
        }
        if address["lines"] or any(address[k] for k in ("town", "postcode", "local_authority")):
            subject["home_address"] = address
        placing = r.text("placing_authority")
        placed_in = r.text("placed_in")
        placement = r.read("placement_type", parse_placement_type)
        if r.flag("looked_after"):
            if not placing:
                r.fail("placing_authority", "is required when looked_after is Y")
            subject["looked_after"] = {
                "responsible_authority": placing,
                "placed_in": placed_in or None,
                "placement_type": placement,
            }
        else:
            for name, value in (
                ("placing_authority", placing),
                ("placed_in", placed_in),
                ("placement_type", placement),
            ):
                if value:
                    r.fail(name, "is given but looked_after is not Y")
        return subject, address_columns

    def _case_status(self, r: _Reader, as_of: datetime | None, born: date | None) -> dict[str, Any]:
        plan = r.flag("child_protection_plan")
        plan_since = self._day(r, "child_protection_plan_since", born)
        if plan_since is not None and not plan:
            r.fail("child_protection_plan_since", "is given but child_protection_plan is not Y")
        body: dict[str, Any] = {
            "type": "case.status",
            "as_of": as_of,
            "child_protection_plan": plan,
            "child_protection_plan_since": plan_since,
            "child_in_need": r.flag("child_in_need"),
        }
        level = r.read("cse_risk_level", parse_level)
        identified = self._day(r, "cse_identified_on", born)
        removed = self._day(r, "cse_removed_on", born)
        reason = r.read("cse_removal_reason", parse_removal_reason)
        if level is None:
            if r.given("cse_risk_level"):
                return body  # the level itself is wrong; that is the fault to report
            for name, value in (
                ("cse_identified_on", identified),
                ("cse_removed_on", removed),
                ("cse_removal_reason", reason),
            ):
                if value is not None:
                    r.fail(name, "is given but cse_risk_level is empty")
            return body
        if not r.given("cse_identified_on"):
            r.fail("cse_identified_on", "is required with cse_risk_level")
        if removed is not None and not r.given("cse_removal_reason"):
            r.fail("cse_removal_reason", "is required with cse_removed_on")
        if reason is not None and not r.given("cse_removed_on"):
            r.fail("cse_removed_on", "is required with cse_removal_reason")
        if removed is not None and identified is not None and removed < identified:
            r.fail("cse_removed_on", "is before cse_identified_on")
        body["cse_tracker"] = {
            "level": level,
            "identified_on": identified,
            "removed_on": removed,
            "removal_reason": reason,
        }
        return body

    def _interview(self, r: _Reader) -> dict[str, Any]:
        offered = self._instant(r, "rhi_offered_at")
        completed = self._instant(r, "rhi_completed_at")
        declined = r.flag("rhi_declined")
        if declined and completed is not None:
            r.fail("rhi_declined", "a declined interview cannot have rhi_completed_at")
        if completed is not None and offered is not None and completed < offered:
            r.fail("rhi_completed_at", "is before rhi_offered_at")
        return {
            "type": "rhi.completed",
            "episode_id": r.text("episode_id"),
            "offered_at": offered,
            "completed_at": completed,
            "declined": declined,
            "conducted_by": (r.text("rhi_conducted_by") or None),
            "cse_concerns_disclosed": r.flag("rhi_cse_concerns_disclosed"),
        }


def _located(
    exc: ValidationError,
    locate: Locate,
    address_columns: list[str],
    reported: set[str | None],
) -> list[Problem]:
    """Pydantic's errors, each moved onto the column it came from; never the input value.

    Errors on columns in ``reported`` are dropped, and so, when anything was reported,
    are errors on no particular column: they follow from the faults already named.
    """
    problems = []
    named: set[str] = set()  # one problem a column: the episode id is checked twice
    for err in exc.errors(include_input=False, include_url=False):
        path = tuple(p for p in err["loc"] if p not in _TAGS)
        name: str | None = None
        if path[:3] == ("subject", "home_address", "lines") and len(path) > 3:
            index = path[3]
            if isinstance(index, int) and index < len(address_columns):
                name = address_columns[index]
        for cut in range(len(path), 0, -1):
            if name is not None:
                break
            name = _COLUMN_OF.get(path[:cut])
        if name in reported or (name is None and reported) or (name and name in named):
            continue
        if name:
            named.add(name)
        msg = err["msg"].removeprefix("Value error, ")
        reason = msg if name else f"{'.'.join(map(str, path))}: {msg}"
        problems.append(Problem(locate(name), reason))
    return problems


def collect(adapter: str, results: Iterable[Event | Problem]) -> list[Event]:
    """Every event of a whole message, or an AdapterError listing every problem in it.

    Raises:
        AdapterError: at least one record could not be translated.
    """
    events: list[Event] = []
    problems: list[Problem] = []
    more = 0
    for item in results:
        if isinstance(item, Event):
            events.append(item)
        elif len(problems) < MAX_PROBLEMS:
            problems.append(item)
        else:
            more += 1
    if more:
        problems.append(Problem("message", f"{more} further problems are not listed"))
    if problems:
        raise AdapterError(adapter, problems)
    return events
