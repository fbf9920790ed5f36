"""Stored-state records the intake logic reads: missing episodes, tracker spells, notifications.

The storage layer maps its rows to these frozen dataclasses; the logic never touches a
database. Every time is normalised to UTC on construction and naive times are refused.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from broker.intake._time import optional_utc, require_utc
from broker.intake.errors import InvalidRecord
from schemas.events import (
    CseLevel,
    CseTrackerEntry,
    Event,
    MissingFound,
    MissingReported,
    MissingUpdated,
    RemovalReason,
    ReturnHomeInterview,
    RiskGrade,
)

__all__ = [
    "EpisodeFact",
    "EpisodeRecord",
    "LevelChange",
    "NotificationRecord",
    "TrackerRecord",
    "episode_record_from_events",
    "episode_record_from_facts",
]


def _set(obj: object, name: str, value: object) -> None:
    # Frozen dataclasses normalise their own fields in __post_init__ this way.
    object.__setattr__(obj, name, value)


@dataclass(frozen=True, slots=True)
class EpisodeRecord:
    """One missing episode as the intake store holds it.

    Attributes:
        episode_id: the police episode id (also the events' correlation id).
        child_key: the intake store's key for the child.
        reported_at: when the child was reported missing.
        risk_grade: the latest police risk grade, if known.
        found_at: when the child was found.
        returned_at: when the child was back home or at the placement.
        missing_from: ONS code of the authority the child went missing from.
        home_authority: ONS code of the authority responsible for the child: the placing
            authority when looked after, otherwise where the child lives.
        looked_after: whether the child is looked after.
        placed_in: ONS code of the authority where a looked-after child is placed.
        rhi_offered_at: when a return home interview was offered.
        rhi_completed_at: when the return home interview took place.
        rhi_declined_at: when the child declined the interview that was offered.
    """

    episode_id: str
    child_key: str
    reported_at: datetime
    risk_grade: RiskGrade | None = None
    found_at: datetime | None = None
    returned_at: datetime | None = None
    missing_from: str | None = None
    home_authority: str | None = None
    looked_after: bool = False
    placed_in: str | None = None
    rhi_offered_at: datetime | None = None
    rhi_completed_at: datetime | None = None
    rhi_declined_at: datetime | None = None

    def __post_init__(self) -> None:
        where = f"episode {self.episode_id}"
        _set(self, "reported_at", require_utc(self.reported_at, f"{where} reported_at"))
        for name in (
            "found_at",
            "returned_at",
            "rhi_offered_at",
            "rhi_completed_at",
            "rhi_declined_at",
        ):
            _set(self, name, optional_utc(getattr(self, name), f"{where} {name}"))
        if self.rhi_completed_at is not None and self.rhi_declined_at is not None:
            raise InvalidRecord(f"{where}: return interview both completed and declined")

    @property
    def back_at(self) -> datetime | None:
        """When the child came back: ``returned_at``, else ``found_at``, else ``None``."""
        return self.returned_at or self.found_at

    @property
    def host_authority(self) -> str | None:
        """The authority the child was living in when missing: ``missing_from`` or placement."""
        return self.missing_from or self.placed_in


_EPISODIC = (MissingReported, MissingUpdated, MissingFound, ReturnHomeInterview)


@dataclass(frozen=True, slots=True)
class EpisodeFact:
    """What one event says about its missing episode: all that folding the episode reads.

    The intake keeps one beside each episode alert, so that a new alert folds its episode
    from these rather than by opening every earlier alert of it again. It holds no
    identifier of the child, only the episode's times, grades and authorities.

    Attributes:
        episode_id: the episode the event is about.
        kind: ``reported``, ``updated``, ``found`` or ``interview``.
        occurred_at: when the event happened (the fold's order).
        recorded_at: when its source recorded it (breaks ties).
        has_subject: whether the event carried the child (the next three are from it).
        home_authority: the child's home (or placing) authority.
        looked_after: whether the child is looked after.
        placed_in: where a looked-after child is placed.
        reported_at: when the child was reported missing (``reported``).
        risk_grade: the police risk grade (``reported``, ``updated``).
        missing_from: the authority the child went missing from (``reported``).
        found_at: when the child was found (``found``).
        returned_at: when the child was back (``found``).
        offered_at: when an interview was offered (``interview``).
        declined: whether the child declined it (``interview``).
        completed_at: when the interview took place (``interview``).
    """

    episode_id: str
    kind: str
    occurred_at: datetime
    recorded_at: datetime
    has_subject: bool = False
    home_authority: str | None = None
    looked_after: bool = False
    placed_in: str | None = None
    reported_at: datetime | None = None
    risk_grade: RiskGrade | None = None
    missing_from: str | None = None
    found_at: datetime | None = None
    returned_at: datetime | None = None
    offered_at: datetime | None = None
    declined: bool = False
    completed_at: datetime | None = None

    def __post_init__(self) -> None:
        where = f"episode {self.episode_id} fact"
        if self.kind not in _FACT_KINDS:
            raise InvalidRecord(f"{where}: unknown kind {self.kind!r}")
        for name in _FACT_TIMES:
            _set(self, name, optional_utc(getattr(self, name), f"{where} {name}"))
        if self.occurred_at is None or self.recorded_at is None:
            raise InvalidRecord(f"{where}: occurred_at and recorded_at are required")

    @classmethod
    def of(cls, event: Event) -> EpisodeFact | None:
        """The fact an event states about its episode; ``None`` for other kinds of event."""
        body = event.body
        if not isinstance(body, _EPISODIC):
            return None
        fields: dict[str, Any] = {
            "episode_id": body.episode_id,
            "occurred_at": event.metadata.occurred_at,
            "recorded_at": event.metadata.recorded_at,
        }
        subject = event.subject
        if subject is not None:
            looked_after = subject.looked_after
            fields.update(
                has_subject=True,
                home_authority=subject.home_authority,
                looked_after=looked_after is not None,
                placed_in=looked_after.placed_in if looked_after is not None else None,
            )
        if isinstance(body, MissingReported):
            fields.update(
                kind="reported",
                reported_at=body.reported_at,
                risk_grade=body.risk_grade,
                missing_from=body.missing_from,
            )
        elif isinstance(body, MissingUpdated):
            fields.update(kind="updated", risk_grade=body.risk_grade)
        elif isinstance(body, MissingFound):
            fields.update(kind="found", found_at=body.found_at, returned_at=body.returned_at)
        else:
            fields.update(
                kind="interview",
                offered_at=body.offered_at,
                declined=body.declined,
                completed_at=body.completed_at,
            )
        return cls(**fields)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready form (times as ISO 8601 UTC, the grade by value, defaults left out)."""
        out: dict[str, Any] = {}
        for item in dataclasses.fields(self):
            name, value = item.name, getattr(self, item.name)
            if value is None or value is False:
                continue
            if isinstance(value, datetime):
                value = value.isoformat()
            elif isinstance(value, RiskGrade):
                value = value.value
            out[name] = value
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> EpisodeFact:
        """The fact back from :meth:`to_json`'s form.

        Raises:
            InvalidRecord: the stored form is not a fact.
        """
        try:
            fields = dict(data)
            for name in _FACT_TIMES:
                if fields.get(name) is not None:
                    fields[name] = datetime.fromisoformat(fields[name])
            if fields.get("risk_grade") is not None:
                fields["risk_grade"] = RiskGrade(fields["risk_grade"])
            return cls(**fields)
        except (TypeError, ValueError) as exc:
            raise InvalidRecord(f"stored episode fact: {type(exc).__name__}") from exc


_FACT_KINDS = frozenset({"reported", "updated", "found", "interview"})
_FACT_TIMES = (
    "occurred_at",
    "recorded_at",
    "reported_at",
    "found_at",
    "returned_at",
    "offered_at",
    "completed_at",
)


def _subject_fields(fact: EpisodeFact) -> dict[str, object]:
    return {
        "home_authority": fact.home_authority,
        "looked_after": fact.looked_after,
        "placed_in": fact.placed_in,
    }


def episode_record_from_facts(child_key: str, facts: Iterable[EpisodeFact]) -> EpisodeRecord:
    """Fold the facts of one missing episode into its record.

    Facts are applied in the order their events occurred, so a later risk grade or return
    time replaces an earlier one, whatever order they arrived in. When the report itself
    has not arrived (delivery is at-least-once and sources differ), the earliest event's
    time stands in for ``reported_at`` until it does.

    Args:
        child_key: the intake store's key for the child.
        facts: the episode's facts, in any order.

    Raises:
        InvalidRecord: no fact, or facts from more than one episode.
    """
    ordered = sorted(facts, key=lambda f: (f.occurred_at, f.recorded_at))
    if not ordered:
        raise InvalidRecord("episode record: no missing-episode event to build it from")
    episode_ids = {f.episode_id for f in ordered}
    if len(episode_ids) != 1:
        raise InvalidRecord(f"episode record: events from {len(episode_ids)} episodes")
    fields: dict[str, object] = {
        "episode_id": episode_ids.pop(),
        "child_key": child_key,
        "reported_at": ordered[0].occurred_at,
    }
    for fact in ordered:
        if fact.kind == "reported":
            fields.update(reported_at=fact.reported_at, risk_grade=fact.risk_grade)
            fields["missing_from"] = fact.missing_from
            if fact.has_subject:
                fields.update(_subject_fields(fact))
        elif fact.kind == "updated" and fact.risk_grade is not None:
            fields["risk_grade"] = fact.risk_grade
        elif fact.kind == "found":
            fields.update(found_at=fact.found_at, returned_at=fact.returned_at)
        elif fact.kind == "interview":
            fields["rhi_offered_at"] = fact.offered_at
            # A declined offer is recorded at the time it was offered (and refused).
            fields["rhi_declined_at"] = fact.offered_at if fact.declined else None
            fields["rhi_completed_at"] = fact.completed_at
        if "looked_after" not in fields and fact.has_subject:
            fields.update(_subject_fields(fact))
    return EpisodeRecord(**fields)  # type: ignore[arg-type]


def episode_record_from_events(child_key: str, events: Iterable[Event]) -> EpisodeRecord:
    """Fold the events of one missing episode into its record.

    The same fold as :func:`episode_record_from_facts`, over each event's
    :class:`EpisodeFact`; events of other kinds are ignored.

    Raises:
        InvalidRecord: no episode event, or events from more than one episode.
    """
    facts = [fact for fact in map(EpisodeFact.of, events) if fact is not None]
    return episode_record_from_facts(child_key, facts)


@dataclass(frozen=True, slots=True)
class NotificationRecord:
    """A record that an authority was told a child had gone missing.

    Attributes:
        episode_id: the missing episode.
        authority: ONS code of the authority told.
        notified_at: when it was told (for this borough: when its broker received it).
    """

    episode_id: str
    authority: str
    notified_at: datetime

    def __post_init__(self) -> None:
        where = f"notification for episode {self.episode_id}"
        _set(self, "notified_at", require_utc(self.notified_at, f"{where} notified_at"))


@dataclass(frozen=True, slots=True, order=True)
class LevelChange:
    """From ``on`` the child was at CSE risk ``level`` on the tracker."""

    on: date
    level: CseLevel


@dataclass(frozen=True, slots=True)
class TrackerRecord:
    """One spell of a child on the CSE tracker, from identification to removal.

    A child on the tracker more than once has one record per spell.

    Attributes:
        child_key: the intake store's key for the child.
        identified_on: the day the child was put on the tracker.
        level: the current (or, once removed, the last) risk level.
        removed_on: the day the child came off the tracker; ``None`` while on it.
        removal_reason: why the child came off; set exactly when ``removed_on`` is.
        history: dated level changes; without it ``level`` is taken to hold throughout.
    """

    child_key: str
    identified_on: date
    level: CseLevel
    removed_on: date | None = None
    removal_reason: RemovalReason | None = None
    history: tuple[LevelChange, ...] = ()

    def __post_init__(self) -> None:
        where = f"tracker record for child {self.child_key}"
        if (self.removed_on is None) != (self.removal_reason is None):
            raise InvalidRecord(f"{where}: removed_on and removal_reason go together")
        if self.removed_on is not None and self.removed_on < self.identified_on:
            raise InvalidRecord(f"{where}: removed_on is before identified_on")
        _set(self, "history", tuple(sorted(self.history)))

    @classmethod
    def from_entry(cls, child_key: str, entry: CseTrackerEntry) -> TrackerRecord:
        """A record from the tracker entry of a Paris case-status event."""
        return cls(
            child_key=child_key,
            identified_on=entry.identified_on,
            level=entry.level,
            removed_on=entry.removed_on,
            removal_reason=entry.removal_reason,
        )

    def on_tracker(self, day: date) -> bool:
        """True when the child is on the tracker at the end of ``day``.

        A child removed on a day is no longer on the tracker at the end of it.
        """
        return self.identified_on <= day and (self.removed_on is None or day < self.removed_on)

    def level_on(self, day: date) -> CseLevel | None:
        """The risk level at the end of ``day``, or ``None`` when not on the tracker then."""
        if not self.on_tracker(day):
            return None
        level = self.level
        applicable = [change for change in self.history if change.on <= day]
        if applicable:
            level = applicable[-1].level
        elif self.history:
            # Before the first recorded change the first recorded level applies.
            level = self.history[0].level
        return level
