"""Profiles for the strategic group: counts of locations, vehicles, associates and victims.

Counts only, by period (calendar month or quarter, Europe/London): no names, no
identifiers, no free text. Small numbers are suppressed: a count from 1 up to the
threshold (5 by default) is shown as "<5", so that a rare combination cannot point at
one child. This is primary suppression only; docs/intake.md says what that does not
protect against.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal

from broker.exceptions import ConfigurationError
from broker.intake._time import age_in_years, london_date
from broker.intake.linking import normalise_name
from schemas.events import (
    CaseStatus,
    CseScreening,
    Event,
    Intelligence,
    ReturnHomeInterview,
    SafeguardingFlag,
    UnscheduledCareAttendance,
)
from schemas.person import Child

__all__ = [
    "DEFAULT_THRESHOLD",
    "UNKNOWN_DIMENSION",
    "Count",
    "Granularity",
    "ProfileRow",
    "ProfileTable",
    "VictimProfile",
    "age_band",
    "associate_profile",
    "is_cse_victim_event",
    "location_profile",
    "period_label",
    "profile_csv",
    "suppress",
    "vehicle_profile",
    "victim_profile",
]

#: The value shown for a dimension the data does not give.
UNKNOWN_DIMENSION = "unknown"

Granularity = Literal["month", "quarter"]

#: Default small-number threshold: counts below it are shown as "<5".
DEFAULT_THRESHOLD = 5


@dataclass(frozen=True, slots=True)
class Count:
    """A published count: the number, or ``None`` when it is suppressed.

    Attributes:
        value: the count, or ``None`` when suppressed.
        display: what to show: the number, or ``"<N"``.
    """

    value: int | None
    display: str

    @property
    def suppressed(self) -> bool:
        """True when the count is hidden."""
        return self.value is None


def suppress(count: int, threshold: int = DEFAULT_THRESHOLD) -> Count:
    """``count`` for publication: from 1 to ``threshold - 1`` it becomes ``"<threshold"``.

    Zero is shown as it is: an empty cell reveals nothing about a child.

    Raises:
        ConfigurationError: the threshold is below 1.
    """
    if threshold < 1:
        raise ConfigurationError("profiles suppression threshold: at least 1")
    if count < 0:
        raise ValueError("a count cannot be negative")
    if 0 < count < threshold:
        return Count(None, f"<{threshold}")
    return Count(count, str(count))


def period_label(instant: datetime, granularity: Granularity = "month") -> str:
    """The London calendar period of ``instant``: ``2026-11`` or ``2026-Q4``."""
    day = london_date(instant)
    if granularity == "quarter":
        return f"{day.year}-Q{(day.month - 1) // 3 + 1}"
    return f"{day.year}-{day.month:02d}"


@dataclass(frozen=True, slots=True)
class ProfileRow:
    """One cell of a profile: a period, the dimension values and the count."""

    period: str
    dimensions: tuple[str, ...]
    count: Count


@dataclass(frozen=True, slots=True)
class ProfileTable:
    """A profile: rows sorted by period then dimensions.

    Attributes:
        title: what is counted.
        dimension_names: the names of the dimension columns.
        rows: the cells with a count above zero.
        threshold: the suppression threshold applied.
    """

    title: str
    dimension_names: tuple[str, ...]
    rows: tuple[ProfileRow, ...]
    threshold: int


def _table(
    title: str,
    names: tuple[str, ...],
    groups: dict[tuple[str, tuple[str, ...]], set[object]],
    threshold: int,
) -> ProfileTable:
    rows = tuple(
        ProfileRow(period, dims, suppress(len(members), threshold))
        for (period, dims), members in sorted(groups.items())
    )
    return ProfileTable(title, names, rows, threshold)


def _unique_events(events: Iterable[Event]) -> list[Event]:
    # Delivery is at-least-once: an event seen twice must not be counted twice.
    seen: set[object] = set()
    unique = []
    for event in events:
        if event.metadata.event_id not in seen:
            seen.add(event.metadata.event_id)
            unique.append(event)
    return unique


def _intelligence(events: Iterable[Event]) -> list[tuple[Event, Intelligence]]:
    return [(e, e.body) for e in _unique_events(events) if isinstance(e.body, Intelligence)]


def location_profile(
    events: Iterable[Event],
    *,
    granularity: Granularity = "month",
    threshold: int = DEFAULT_THRESHOLD,
) -> ProfileTable:
    """Distinct locations of concern per period, by kind and area.

    A location is identified within a period by its kind, folded description and postcode,
    so repeated reports of one hotel count once. Its area is its own local authority,
    else the intelligence's area, else unknown.
    """
    groups: dict[tuple[str, tuple[str, ...]], set[object]] = {}
    for event, body in _intelligence(events):
        period = period_label(event.metadata.occurred_at, granularity)
        for loc in body.locations:
            area = loc.local_authority or body.area or UNKNOWN_DIMENSION
            identity = (loc.kind, normalise_name(loc.description), (loc.postcode or "").upper())
            groups.setdefault((period, (loc.kind.value, area)), set()).add(identity)
    return _table("locations of concern", ("kind", "area"), groups, threshold)


def vehicle_profile(
    events: Iterable[Event],
    *,
    granularity: Granularity = "month",
    threshold: int = DEFAULT_THRESHOLD,
) -> ProfileTable:
    """Distinct vehicle registrations per period, by the intelligence's area.

    Registrations are compared without spaces. Vehicles reported without a registration
    cannot be told apart and are not counted.
    """
    groups: dict[tuple[str, tuple[str, ...]], set[object]] = {}
    for event, body in _intelligence(events):
        period = period_label(event.metadata.occurred_at, granularity)
        for vehicle in body.vehicles:
            if vehicle.registration:
                reg = "".join(vehicle.registration.split())
                groups.setdefault((period, (body.area or UNKNOWN_DIMENSION,)), set()).add(reg)
    return _table("vehicles of concern (distinct registrations)", ("area",), groups, threshold)


def associate_profile(
    events: Iterable[Event],
    *,
    granularity: Granularity = "month",
    threshold: int = DEFAULT_THRESHOLD,
) -> ProfileTable:
    """Associates per period, by role.

    An associate with a police person reference counts once per period however often
    reported; one without is counted per report, since a description cannot identify.
    """
    groups: dict[tuple[str, tuple[str, ...]], set[object]] = {}
    for event, body in _intelligence(events):
        period = period_label(event.metadata.occurred_at, granularity)
        for index, associate in enumerate(body.associates):
            identity: object = associate.police_person_ref or (event.metadata.event_id, index)
            groups.setdefault((period, (associate.role,)), set()).add(identity)
    return _table("associates", ("role",), groups, threshold)


#: Age bands for victim profiles: (under this age, label).
_AGE_BANDS: tuple[tuple[int, str], ...] = (
    (10, "under 10"),
    (13, "10-12"),
    (16, "13-15"),
    (18, "16-17"),
)


def age_band(born: date | None, on: date) -> str:
    """The profile age band of a child born on ``born`` on ``on``."""
    if born is None:
        return UNKNOWN_DIMENSION
    age = age_in_years(born, on)
    return next((label for under, label in _AGE_BANDS if age < under), "18 and over")


def is_cse_victim_event(event: Event) -> bool:
    """True for events that put a child in the CSE victim profile.

    A CSE screening at any level, a Paris status with the child on the CSE tracker, a
    return interview in which CSE concerns were disclosed, or an attendance flagged
    for CSE concern.
    """
    body = event.body
    if isinstance(body, CseScreening):
        return True
    if isinstance(body, CaseStatus):
        return body.cse_tracker is not None
    if isinstance(body, ReturnHomeInterview):
        return body.cse_concerns_disclosed
    if isinstance(body, UnscheduledCareAttendance):
        return SafeguardingFlag.CSE_CONCERN in body.flags
    return False


@dataclass(frozen=True, slots=True)
class VictimProfile:
    """Victims per period, one table per dimension (cross-tabulating them would make
    almost every cell small enough to suppress)."""

    by_age_band: ProfileTable
    by_sex: ProfileTable
    by_looked_after: ProfileTable
    by_area: ProfileTable


def _area(child: Child) -> str:
    # Where the child lives: the placement for a looked-after child, else the home address.
    if child.looked_after is not None and child.looked_after.placed_in is not None:
        return child.looked_after.placed_in
    if child.home_address is not None and child.home_address.local_authority is not None:
        return child.home_address.local_authority
    return UNKNOWN_DIMENSION


def _victim_dimensions(child: Child, on: date) -> tuple[str, str, str, str]:
    return (
        age_band(child.date_of_birth, on),
        child.sex.value if child.sex is not None else UNKNOWN_DIMENSION,
        "looked after" if child.looked_after is not None else "not looked after",
        _area(child),
    )


def victim_profile(
    keyed_events: Iterable[tuple[str, Event]],
    *,
    granularity: Granularity = "month",
    threshold: int = DEFAULT_THRESHOLD,
    include: Callable[[Event], bool] = is_cse_victim_event,
) -> VictimProfile:
    """Distinct victims per period by age band, sex, looked-after status and area.

    Args:
        keyed_events: ``(child_key, event)`` pairs; the child key (from linking) is what
            makes a child count once per period.
        granularity: month or quarter.
        threshold: the small-number suppression threshold.
        include: which events make a child a victim; :func:`is_cse_victim_event` by default.

    Each child counts once per period (so a repeated event cannot count twice), with the
    attributes of their latest event in it.
    """
    latest: dict[tuple[str, str], tuple[datetime, Child]] = {}
    for child_key, event in keyed_events:
        if event.subject is None or not include(event):
            continue
        when = event.metadata.occurred_at
        slot = (period_label(when, granularity), child_key)
        if slot not in latest or latest[slot][0] < when:
            latest[slot] = (when, event.subject)
    tables: list[dict[tuple[str, tuple[str, ...]], set[object]]] = [{}, {}, {}, {}]
    for (period, child_key), (when, child) in latest.items():
        dims = _victim_dimensions(child, london_date(when))
        for table, value in zip(tables, dims, strict=True):
            table.setdefault((period, (value,)), set()).add(child_key)
    return VictimProfile(
        by_age_band=_table("victims by age band", ("age_band",), tables[0], threshold),
        by_sex=_table("victims by sex", ("sex",), tables[1], threshold),
        by_looked_after=_table(
            "victims by looked-after status", ("looked_after",), tables[2], threshold
        ),
        by_area=_table("victims by area", ("area",), tables[3], threshold),
    )


def profile_csv(table: ProfileTable) -> str:
    """A profile as CSV: period, dimensions, count (suppressed counts as ``<N``)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(("period", *table.dimension_names, "count"))
    rows: Sequence[ProfileRow] = table.rows
    writer.writerows((row.period, *row.dimensions, row.count.display) for row in rows)
    return buffer.getvalue()
