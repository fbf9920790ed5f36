"""Paris sample exports for the scenario: case status, CSE tracker and interviews, CSV and XML."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Mapping
from datetime import date, datetime, timedelta
from enum import Enum
from xml.sax.saxutils import escape

from adapters.base import LONDON
from adapters.paris.columns import COLUMNS, GROUPS, RecordType
from broker.samples.scenario import ChildRecord, Episode, Scenario, TrackerRow

__all__ = [
    "CONDUCTED_BY",
    "case_status_record",
    "csv_document",
    "csv_header",
    "csv_line",
    "interview_record",
    "records",
    "render",
    "xml_document",
    "xml_record",
]

#: The service that holds return home interviews in the seed borough.
CONDUCTED_BY = "wam-childrens-services"

#: A record as the renderer holds it: column name → typed value (None for empty).
Record = Mapping[str, object]

_NAMES = tuple(c.name for c in COLUMNS)


def render(scenario: Scenario) -> dict[str, bytes]:
    """The scenario's Paris export in both formats, keyed by relative file name."""
    rows = list(records(scenario))
    return {
        "paris/cse-tracker.csv": csv_document(rows),
        "paris/cse-tracker.xml": xml_document(rows),
    }


def records(scenario: Scenario) -> Iterator[Record]:
    """One case-status record per child, then one record per interview offered so far."""
    tracker = {t.child: t for t in scenario.tracker}
    for index, child in enumerate(scenario.children, start=1):
        recorded_at = scenario.now - timedelta(hours=index)
        yield case_status_record(
            f"CS-{scenario.seed:02d}{index:04d}", child, tracker.get(child.key), recorded_at
        )
    for number, episode in enumerate(scenario.episodes, start=1):
        if episode.rhi_offered_at > scenario.now:
            continue  # not offered yet: Paris holds no record of it
        yield interview_record(
            f"RHI-{scenario.seed:02d}{number:04d}",
            scenario.child(episode.child),
            episode,
            scenario.now,
        )


def _person(child: ChildRecord) -> dict[str, object]:
    return {
        "paris_id": child.paris_id,
        "given_name": child.given_name,
        "family_name": child.family_name,
        "date_of_birth": child.date_of_birth,
        "sex": child.sex.value[0].upper(),
        "nhs_number": child.nhs_number,
        "address_line_1": child.address_line,
        "town": child.town,
        "postcode": child.postcode,
        "local_authority": child.home_authority,
        "looked_after": child.looked_after_by is not None,
        "placing_authority": child.looked_after_by,
        "placed_in": child.placed_in,
        "placement_type": child.placement_type,
    }


def case_status_record(
    record_id: str, child: ChildRecord, tracker: TrackerRow | None, recorded_at: datetime
) -> Record:
    """A child's case status, with the tracker row when the child has one."""
    record: dict[str, object] = {
        "record_type": RecordType.CASE_STATUS,
        "record_id": record_id,
        "recorded_at": recorded_at,
        **_person(child),
        "child_protection_plan": bool(tracker and tracker.child_protection_plan),
        "child_in_need": bool(tracker and not tracker.child_protection_plan),
    }
    if tracker is not None:
        record |= {
            "child_protection_plan_since": tracker.child_protection_plan_since,
            "cse_risk_level": int(tracker.level),
            "cse_identified_on": tracker.identified_on,
            "cse_removed_on": tracker.removed_on,
            "cse_removal_reason": tracker.removal_reason,
        }
    return record


def interview_record(record_id: str, child: ChildRecord, episode: Episode, now: datetime) -> Record:
    """The return home interview after ``episode``: completed, or offered and outstanding."""
    completed = episode.rhi_completed_at
    last_change = min(now, (completed or episode.rhi_offered_at) + timedelta(minutes=30))
    return {
        "record_type": RecordType.RETURN_INTERVIEW,
        "record_id": record_id,
        "recorded_at": last_change,
        **_person(child),
        "episode_id": episode.episode_id,
        "rhi_offered_at": episode.rhi_offered_at,
        "rhi_completed_at": completed,
        "rhi_declined": False,
        "rhi_conducted_by": CONDUCTED_BY if completed else None,
        "rhi_cse_concerns_disclosed": bool(completed and episode.cse_indicators),
    }


def _csv_text(value: object) -> str:
    """Paris's CSV habits: UK dates, London wall-clock times without offset, Y/N flags."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "Y" if value else "N"
    if isinstance(value, datetime):
        local = value.astimezone(LONDON)
        return local.strftime("%d/%m/%Y %H:%M:%S" if local.second else "%d/%m/%Y %H:%M")
    if isinstance(value, date):
        return value.strftime("%d/%m/%Y")
    if isinstance(value, Enum):
        return str(value.value)
    return str(value)


def _xml_text(value: object) -> str:
    """Paris's XML habits: ISO dates, London wall-clock times without offset, Y/N flags."""
    if isinstance(value, datetime):
        return value.astimezone(LONDON).replace(tzinfo=None).isoformat(timespec="seconds")
    if isinstance(value, date):
        return value.isoformat()
    return _csv_text(value)


def csv_header() -> bytes:
    """The header line naming every column."""
    return csv_line({n: n for n in _NAMES})


def csv_line(record: Record) -> bytes:
    """One record as a CSV line (quoted where needed), every column in header order."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerow(_csv_text(record.get(n)) for n in _NAMES)
    return buffer.getvalue().encode("utf-8")


def xml_record(record: Record) -> str:
    """One ``<record>`` element; empty columns are left out."""
    parts = ["  <record>\n"]
    for column in COLUMNS:
        if column.group == "record" and record.get(column.name) is not None:
            parts.append(_leaf(column.name, record[column.name], 4))
    for group in GROUPS:
        leaves = [
            _leaf(c.name, record[c.name], 6)
            for c in COLUMNS
            if c.group == group and record.get(c.name) is not None
        ]
        if leaves:
            parts.extend([f"    <{group}>\n", *leaves, f"    </{group}>\n"])
    parts.append("  </record>\n")
    return "".join(parts)


def _leaf(name: str, value: object, indent: int) -> str:
    return f"{' ' * indent}<{name}>{escape(_xml_text(value))}</{name}>\n"


def csv_document(rows: Iterable[Record]) -> bytes:
    """A whole CSV export: the header, then one line per record."""
    return b"".join([csv_header(), *(csv_line(r) for r in rows)])


def xml_document(rows: Iterable[Record]) -> bytes:
    """A whole XML export holding one ``<record>`` per record."""
    body = "".join(xml_record(r) for r in rows)
    prolog = '<?xml version="1.0" encoding="UTF-8"?>\n<paris-export version="1">\n'
    return f"{prolog}{body}</paris-export>\n".encode()
