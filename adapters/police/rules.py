"""Rules of the police format that span fields, checked on a record that passed its schema."""

from __future__ import annotations

from adapters.base import Problem
from adapters.police.format import (
    CseDetails,
    ExploitationIntelligenceRecord,
    IntelligenceDetails,
    MissingRecord,
    MissingReportRecord,
    MissingUpdateRecord,
    Person,
    PoliceRecord,
)

__all__ = ["record_problems"]


def record_problems(record: PoliceRecord) -> list[Problem]:
    """Every cross-field rule the record breaks, each located by its JSON path.

    The JSON Schema cannot say these (or says them too awkwardly for a partner to read);
    docs/partners/police.md lists them.
    """
    problems: list[Problem] = []
    if isinstance(record, ExploitationIntelligenceRecord):
        if record.subject is not None:
            problems += _person(record.subject, "subject")
        elif record.cse is not None and record.cse.level is not None:
            problems.append(Problem("cse.level", "a CSE grading needs a subject"))
    else:
        problems += _person(record.missing_person, "missing_person")
        problems += _episode(record)
    if record.cse is not None:
        problems += _cse(record.cse)
    if record.intelligence is not None:
        problems += _intelligence(record.intelligence)
    return problems


def _episode(record: MissingRecord) -> list[Problem]:
    if isinstance(record, MissingReportRecord):
        last_seen = record.report.last_seen
        if last_seen and last_seen.time and last_seen.time > record.report.reported_at:
            return [Problem("report.last_seen.time", "is after report.reported_at")]
    elif isinstance(record, MissingUpdateRecord):
        update = record.update
        if update.risk_grade is None and update.sighting is None and update.note is None:
            return [Problem("update", "needs a risk_grade, a sighting or a note")]
    elif record.found.returned_at is not None and record.found.returned_at < record.found.found_at:
        return [Problem("found.returned_at", "is before found.found_at")]
    return []


def _cse(cse: CseDetails) -> list[Problem]:
    problems = []
    if cse.level is None and not cse.indicators:
        problems.append(Problem("cse", "needs a level or at least one indicator"))
    if cse.level is None and cse.screened_at is not None:
        problems.append(Problem("cse.screened_at", "is given without a level"))
    return problems


def _person(person: Person, path: str) -> list[Problem]:
    if person.nhs_number or person.local_authority_ref or person.police_person_ref:
        return []
    if person.surname and person.date_of_birth:
        return []
    return [
        Problem(
            path,
            "needs an nhs_number, local_authority_ref, police_person_ref, "
            "or a surname with date_of_birth",
        )
    ]


def _intelligence(intelligence: IntelligenceDetails) -> list[Problem]:
    problems = []
    if not (
        intelligence.locations
        or intelligence.vehicles
        or intelligence.associates
        or intelligence.online_contacts
    ):
        problems.append(
            Problem("intelligence", "needs a location, vehicle, associate or online contact")
        )
    for i, vehicle in enumerate(intelligence.vehicles):
        if vehicle.registration is None and vehicle.make is None and vehicle.colour is None:
            problems.append(
                Problem(f"intelligence.vehicles[{i}]", "needs a registration, make or colour")
            )
    return problems
