"""Sample police records (docs/partners/police.md format) rendered from the borough scenario."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from adapters.base import LONDON
from broker.samples.scenario import ChildRecord, Episode, IntelItem, Scenario
from schemas.events import FoundBy
from schemas.person import PlacementType, Sex

__all__ = ["FORCE_CODE", "render"]

#: Thames Valley Police's Home Office force code.
FORCE_CODE = "43"
_SYSTEM = "niche-rms"
_SEX = {Sex.MALE: "M", Sex.FEMALE: "F", Sex.OTHER: "X", Sex.UNKNOWN: "U"}


def render(scenario: Scenario) -> dict[str, bytes]:
    """Each police record of the scenario: relative file name → JSON bytes.

    Episodes give ``police/episode-NN-reported.json``, ``-update.json`` when the risk is
    regraded, and ``-found.json``; intelligence gives ``police/intelligence-NN.json``.
    Times alternate between Europe/London wall time and explicit offsets, as forces send both.
    """
    files: dict[str, bytes] = {}
    for n, episode in enumerate(scenario.episodes, start=1):
        child = scenario.child(episode.child)
        stem = f"police/episode-{n:02d}"
        files[f"{stem}-reported.json"] = _dump(_reported(n, episode, child))
        if episode.updated_risk is not None:
            files[f"{stem}-update.json"] = _dump(_update(n, episode, child))
        files[f"{stem}-found.json"] = _dump(_found(n, episode, child))
    for n, item in enumerate(scenario.intelligence, start=1):
        about = scenario.child(item.about_child) if item.about_child else None
        files[f"police/intelligence-{n:02d}.json"] = _dump(_intelligence(item, about))
    return files


def _dump(record: dict[str, Any]) -> bytes:
    return (json.dumps(record, indent=2, ensure_ascii=False) + "\n").encode()


def _label(code: StrEnum) -> str:
    """The published spelling of a coded value: ``self_returned`` is ``SELF RETURNED``."""
    return code.value.replace("_", " ").upper()


def _time(value: datetime, local: bool) -> str:
    """Wall-clock London time without offset, or the instant with its London offset."""
    london = value.astimezone(LONDON)
    if local:
        return london.replace(tzinfo=None).isoformat(timespec="seconds")
    return london.isoformat(timespec="seconds")


def _header(record_type: str, record_id: str, recorded_at: datetime, n: int) -> dict[str, Any]:
    return {
        "format_version": 1,
        "record_type": record_type,
        "record_id": record_id,
        "force_code": FORCE_CODE,
        "source_system": _SYSTEM,
        "recorded_at": _time(recorded_at, local=n % 2 == 1),
    }


def _person(child: ChildRecord) -> dict[str, Any]:
    person: dict[str, Any] = {
        "forenames": child.given_name,
        "surname": child.family_name,
        "date_of_birth": child.date_of_birth.isoformat(),
        "sex": _SEX[child.sex],
        "police_person_ref": child.police_person_ref,
    }
    nhs = child.nhs_number
    # Some force systems keep the NHS number as written on a form, in 3-3-4 groups.
    person["nhs_number"] = f"{nhs[:3]} {nhs[3:6]} {nhs[6:]}" if child.key == "child-2" else nhs
    person["address"] = {
        "lines": [child.address_line],
        "town": child.town,
        "postcode": child.postcode,
        "local_authority": child.home_authority,
    }
    if child.looked_after_by is not None:
        person["local_authority_ref"] = child.paris_id
        looked_after: dict[str, Any] = {"placing_authority": child.looked_after_by}
        if child.placed_in is not None:
            looked_after["placed_in"] = child.placed_in
        if child.placement_type is not None:
            looked_after["placement_type"] = _label(child.placement_type)
        person["looked_after"] = looked_after
    return person


def _missing(kind: str, suffix: str, n: int, episode: Episode, at: datetime) -> dict[str, Any]:
    return {
        **_header(kind, f"{episode.episode_id}-{suffix}", at + timedelta(minutes=5), n),
        "occurrence_ref": episode.occurrence_ref,
        "episode_ref": episode.episode_id,
    }


def _reported(n: int, episode: Episode, child: ChildRecord) -> dict[str, Any]:
    last_seen: dict[str, Any] = {
        "description": episode.last_seen_place,
        "local_authority": episode.missing_from,
        "time": _time(episode.last_seen_at, local=True),
    }
    if episode.coordinates is not None:
        last_seen["coordinates"] = {
            "latitude": episode.coordinates[0],
            "longitude": episode.coordinates[1],
        }
    residential = child.placement_type == PlacementType.RESIDENTIAL
    return {
        **_missing("missing_report", "R", n, episode, episode.reported_at),
        "missing_person": _person(child),
        "report": {
            "reported_at": _time(episode.reported_at, local=n % 2 == 1),
            "risk_grade": _label(episode.risk_grade),
            "last_seen": last_seen,
            "missing_from": episode.missing_from,
            "circumstances": "Did not return at the agreed time; phone switched off. "
            "Known to associate with older peers.",
            "philomena_protocol": residential,
        },
    }


def _update(n: int, episode: Episode, child: ChildRecord) -> dict[str, Any]:
    assert episode.updated_risk is not None  # noqa: S101 - render() only asks when regraded
    at = episode.reported_at + timedelta(hours=3)
    return {
        **_missing("missing_update", "U1", n, episode, at),
        "missing_person": _person(child),
        "update": {
            "at": _time(at, local=False),
            "risk_grade": _label(episode.updated_risk),
            "sighting": {"description": episode.found_place, "local_authority": episode.found_in},
            "note": "Reported seen with unknown older males; risk regraded by the duty inspector.",
        },
    }


def _found(n: int, episode: Episode, child: ChildRecord) -> dict[str, Any]:
    returned = episode.found_at
    if episode.found_by != FoundBy.SELF_RETURNED:
        returned += timedelta(hours=1)
    record = {
        **_missing("missing_found", "F", n, episode, returned),
        "missing_person": _person(child),
        "found": {
            "found_at": _time(episode.found_at, local=n % 2 == 0),
            "place": {"description": episode.found_place, "local_authority": episode.found_in},
            "found_by": _label(episode.found_by),
            "returned_at": _time(returned, local=False),
        },
    }
    if episode.cse_indicators:
        record["cse"] = {"indicators": [_label(i) for i in episode.cse_indicators]}
    return record


def _intelligence(item: IntelItem, about: ChildRecord | None) -> dict[str, Any]:
    details: dict[str, Any] = {
        "area": item.area,
        "locations": [
            {
                "kind": _label(item.location_kind),
                "description": item.location,
                "local_authority": item.area,
            }
        ],
    }
    if item.vehicle_registration is not None:
        details["vehicles"] = [
            {"registration": item.vehicle_registration, "colour": item.vehicle_colour}
        ]
    record = _header("exploitation_intelligence", item.reference, item.recorded_at, 0)
    if about is not None:
        record["subject"] = _person(about)
    record["intelligence"] = details
    return record
