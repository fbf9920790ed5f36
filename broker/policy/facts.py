"""The facts of an event that rules test: type, source, risk, CSE level, flags, boroughs."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from broker.policy.model import BoroughRole
from schemas.events import (
    CaseStatus,
    CseLevel,
    CseScreening,
    Event,
    EventType,
    Intelligence,
    MissingFound,
    MissingReported,
    MissingUpdated,
    RiskGrade,
    SafeguardingFlag,
    UnscheduledCareAttendance,
)

__all__ = [
    "CSE_LEVEL_TYPES",
    "FLAG_TYPES",
    "RISK_GRADE_TYPES",
    "ROLES_BY_TYPE",
    "EventFacts",
    "event_facts",
]

_CHILD_ROLES = frozenset(
    {BoroughRole.HOME, BoroughRole.LIVES_IN, BoroughRole.PLACING, BoroughRole.PLACED_IN}
)

#: The borough roles an event of each type can carry (what a ``linked_to`` or selector can use).
ROLES_BY_TYPE: Mapping[EventType, frozenset[BoroughRole]] = {
    EventType.MISSING_REPORTED: _CHILD_ROLES | {BoroughRole.MISSING_FROM, BoroughRole.SEEN_IN},
    EventType.MISSING_UPDATED: _CHILD_ROLES | {BoroughRole.SEEN_IN},
    EventType.MISSING_FOUND: _CHILD_ROLES | {BoroughRole.FOUND_IN},
    EventType.RETURN_INTERVIEW: _CHILD_ROLES,
    EventType.CSE_SCREENING: _CHILD_ROLES,
    EventType.ATTENDANCE: _CHILD_ROLES,
    EventType.CASE_STATUS: _CHILD_ROLES,
    EventType.INTELLIGENCE: _CHILD_ROLES | {BoroughRole.AREA},
}

#: Event types that can carry a police risk grade.
RISK_GRADE_TYPES = frozenset({EventType.MISSING_REPORTED, EventType.MISSING_UPDATED})

#: Event types that can carry a CSE level (a screening, or a case status with a tracker entry).
CSE_LEVEL_TYPES = frozenset({EventType.CSE_SCREENING, EventType.CASE_STATUS})

#: Event types that can carry safeguarding flags.
FLAG_TYPES = frozenset({EventType.ATTENDANCE})

_NO_BOROUGHS: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class EventFacts:
    """What the rules of an agreement look at in one event. Holds codes and ids only."""

    event_type: EventType
    source: str
    risk_grade: RiskGrade | None
    cse_level: CseLevel | None
    flags: frozenset[SafeguardingFlag]
    boroughs: Mapping[BoroughRole, frozenset[str]]

    def boroughs_via(self, roles: Iterable[BoroughRole]) -> frozenset[str]:
        """The ONS codes the event links to through any of ``roles``."""
        found: set[str] = set()
        for role in roles:
            found |= self.boroughs.get(role, _NO_BOROUGHS)
        return frozenset(found)


def _child_boroughs(event: Event) -> dict[BoroughRole, set[str]]:
    roles: dict[BoroughRole, set[str]] = {}
    child = event.subject
    if child is None:
        return roles
    if child.home_authority is not None:
        roles[BoroughRole.HOME] = {child.home_authority}
    if child.home_address is not None and child.home_address.local_authority is not None:
        roles[BoroughRole.LIVES_IN] = {child.home_address.local_authority}
    if child.looked_after is not None:
        roles[BoroughRole.PLACING] = {child.looked_after.responsible_authority}
        if child.looked_after.placed_in is not None:
            roles[BoroughRole.PLACED_IN] = {child.looked_after.placed_in}
    return roles


def _body_boroughs(event: Event) -> dict[BoroughRole, set[str]]:
    body = event.body
    roles: dict[BoroughRole, set[str]] = {}

    def add(role: BoroughRole, code: str | None) -> None:
        if code is not None:
            roles.setdefault(role, set()).add(code)

    if isinstance(body, MissingReported):
        add(BoroughRole.MISSING_FROM, body.missing_from)
        add(BoroughRole.SEEN_IN, body.last_seen.local_authority if body.last_seen else None)
    elif isinstance(body, MissingUpdated):
        add(BoroughRole.SEEN_IN, body.sighting.local_authority if body.sighting else None)
    elif isinstance(body, MissingFound):
        add(BoroughRole.FOUND_IN, body.found_place.local_authority if body.found_place else None)
    elif isinstance(body, Intelligence):
        add(BoroughRole.AREA, body.area)
        for location in body.locations:
            add(BoroughRole.AREA, location.local_authority)
    return roles


def _risk_grade(event: Event) -> RiskGrade | None:
    body = event.body
    if isinstance(body, MissingReported | MissingUpdated):
        return body.risk_grade
    return None


def _cse_level(event: Event) -> CseLevel | None:
    body = event.body
    if isinstance(body, CseScreening):
        return body.level
    # A child removed from the tracker is no longer at that level.
    if isinstance(body, CaseStatus) and body.cse_tracker and body.cse_tracker.removed_on is None:
        return body.cse_tracker.level
    return None


def event_facts(event: Event) -> EventFacts:
    """Extract what rules test from a canonical event.

    Args:
        event: a validated canonical event.

    Returns:
        The event's facts; ``boroughs`` maps each role present (and ``linked``, the union of
        all of them) to the ONS codes it names.
    """
    found = _child_boroughs(event)
    for role, codes in _body_boroughs(event).items():
        found.setdefault(role, set()).update(codes)
    boroughs = {role: frozenset(codes) for role, codes in found.items()}
    linked = frozenset().union(*boroughs.values()) if boroughs else _NO_BOROUGHS
    if linked:
        boroughs[BoroughRole.LINKED] = linked
    body = event.body
    flags = frozenset(body.flags) if isinstance(body, UnscheduledCareAttendance) else frozenset()
    return EventFacts(
        event_type=EventType(body.type),
        source=event.metadata.source.agency,
        risk_grade=_risk_grade(event),
        cse_level=_cse_level(event),
        flags=flags,
        boroughs=boroughs,
    )
