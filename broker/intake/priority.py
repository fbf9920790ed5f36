"""Triage priority: a score, a band and the reasons, from the risk factors of an alert.

Each factor adds points (weights in :class:`PriorityWeights`); the total falls into a
band by thresholds, and some factors set a minimum band on their own (a child graded
high risk by the police is always "immediate"). The reasons name the factors that
counted, never the child, so the page can show why an alert sits where it does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from types import MappingProxyType

from broker.exceptions import ConfigurationError
from broker.intake._time import age_in_years, london_date
from schemas.events import (
    CaseStatus,
    CseLevel,
    CseScreening,
    Event,
    MissingReported,
    MissingUpdated,
    ReturnHomeInterview,
    RiskGrade,
    SafeguardingFlag,
    UnscheduledCareAttendance,
)

__all__ = [
    "Band",
    "Contribution",
    "Priority",
    "PriorityFactors",
    "PriorityWeights",
    "factors_from_event",
    "prioritise",
]


class Band(StrEnum):
    """Triage bands, most urgent first."""

    IMMEDIATE = "immediate"
    URGENT = "urgent"
    STANDARD = "standard"
    ROUTINE = "routine"

    @property
    def rank(self) -> int:
        """3 for immediate down to 0 for routine; higher is more urgent."""
        return _BAND_RANK[self]


_BAND_RANK = {Band.IMMEDIATE: 3, Band.URGENT: 2, Band.STANDARD: 1, Band.ROUTINE: 0}
_GRADE_ORDER = (RiskGrade.NO_APPARENT_RISK, RiskGrade.LOW, RiskGrade.MEDIUM, RiskGrade.HIGH)
_LEVEL_ORDER = (CseLevel.LEVEL_1, CseLevel.LEVEL_2, CseLevel.LEVEL_3)


def _frozen(mapping: Mapping[object, object]) -> MappingProxyType[object, object]:
    return MappingProxyType(dict(mapping))


def _risk_points() -> Mapping[RiskGrade, int]:
    return MappingProxyType(
        {
            RiskGrade.NO_APPARENT_RISK: 0,
            RiskGrade.LOW: 10,
            RiskGrade.MEDIUM: 30,
            RiskGrade.HIGH: 50,
        }
    )


def _cse_points() -> Mapping[CseLevel, int]:
    return MappingProxyType({CseLevel.LEVEL_1: 10, CseLevel.LEVEL_2: 25, CseLevel.LEVEL_3: 40})


def _flag_points() -> Mapping[SafeguardingFlag, int]:
    return MappingProxyType(
        {
            SafeguardingFlag.UNDER_16_PREGNANCY: 30,
            SafeguardingFlag.CSE_CONCERN: 30,
            SafeguardingFlag.ASSAULT: 25,
            SafeguardingFlag.SELF_HARM: 20,
            SafeguardingFlag.SAFEGUARDING_CONCERN: 15,
            SafeguardingFlag.SUBSTANCE_MISUSE: 10,
            SafeguardingFlag.CHILD_PROTECTION_PLAN: 10,
            # Looked-after status is scored once, as its own factor.
            SafeguardingFlag.LOOKED_AFTER: 0,
        }
    )


def _risk_floors() -> Mapping[RiskGrade, Band]:
    return MappingProxyType({RiskGrade.HIGH: Band.IMMEDIATE})


def _cse_floors() -> Mapping[CseLevel, Band]:
    return MappingProxyType({CseLevel.LEVEL_3: Band.URGENT})


def _flag_floors() -> Mapping[SafeguardingFlag, Band]:
    return MappingProxyType(
        {
            SafeguardingFlag.UNDER_16_PREGNANCY: Band.URGENT,
            SafeguardingFlag.CSE_CONCERN: Band.URGENT,
        }
    )


@dataclass(frozen=True, slots=True)
class PriorityWeights:
    """Points per factor, band thresholds and minimum bands. The defaults are documented
    in docs/intake.md; a partnership tunes them here, not in code.

    Attributes:
        risk_grade: points per police risk grade; must not fall as the grade rises.
        cse_level: points per CSE level; must not fall as the level rises.
        age_bands: ``(under_age, points)`` pairs, ascending ages, points not rising:
            a child younger than ``under_age`` gets ``points`` (first match wins).
        looked_after: points for a looked-after child.
        out_of_area: further points when placed outside the responsible authority.
        repeat_per_episode: points for each earlier episode in the repeat window.
        repeat_cap: the most points repeat missing can add.
        flags: points per safeguarding flag on an attendance.
        immediate_from: the score from which the band is immediate.
        urgent_from: the score from which the band is urgent.
        standard_from: the score from which the band is standard; routine below.
        risk_grade_floor: the minimum band a risk grade sets by itself.
        cse_level_floor: the minimum band a CSE level sets by itself.
        flag_floor: the minimum band a safeguarding flag sets by itself.
    """

    risk_grade: Mapping[RiskGrade, int] = field(default_factory=_risk_points)
    cse_level: Mapping[CseLevel, int] = field(default_factory=_cse_points)
    age_bands: tuple[tuple[int, int], ...] = ((11, 20), (14, 15), (16, 10), (18, 5))
    looked_after: int = 10
    out_of_area: int = 10
    repeat_per_episode: int = 5
    repeat_cap: int = 20
    flags: Mapping[SafeguardingFlag, int] = field(default_factory=_flag_points)
    immediate_from: int = 70
    urgent_from: int = 45
    standard_from: int = 20
    risk_grade_floor: Mapping[RiskGrade, Band] = field(default_factory=_risk_floors)
    cse_level_floor: Mapping[CseLevel, Band] = field(default_factory=_cse_floors)
    flag_floor: Mapping[SafeguardingFlag, Band] = field(default_factory=_flag_floors)

    def __post_init__(self) -> None:
        for name in ("risk_grade", "cse_level", "flags"):
            object.__setattr__(self, name, _frozen(getattr(self, name)))
        for name in ("risk_grade_floor", "cse_level_floor", "flag_floor"):
            object.__setattr__(self, name, _frozen(getattr(self, name)))
        self._check()

    def _check(self) -> None:
        numbers = [
            *self.risk_grade.values(),
            *self.cse_level.values(),
            *self.flags.values(),
            *(points for _, points in self.age_bands),
            self.looked_after,
            self.out_of_area,
            self.repeat_per_episode,
            self.repeat_cap,
        ]
        if any(n < 0 for n in numbers):
            raise ConfigurationError("intake priority weights: points must not be negative")
        if not self.immediate_from > self.urgent_from > self.standard_from > 0:
            raise ConfigurationError(
                "intake priority thresholds: immediate_from > urgent_from > standard_from > 0"
            )
        # Monotonic in grade and level, so a worse grade can never lower an alert.
        _check_monotonic("risk_grade", [self.risk_grade.get(g, 0) for g in _GRADE_ORDER])
        _check_monotonic("cse_level", [self.cse_level.get(lv, 0) for lv in _LEVEL_ORDER])
        _check_monotonic(
            "risk_grade_floor",
            [self.risk_grade_floor.get(g, Band.ROUTINE).rank for g in _GRADE_ORDER],
        )
        _check_monotonic(
            "cse_level_floor",
            [self.cse_level_floor.get(lv, Band.ROUTINE).rank for lv in _LEVEL_ORDER],
        )
        ages = [age for age, _ in self.age_bands]
        points = [p for _, p in self.age_bands]
        if ages != sorted(set(ages)) or points != sorted(points, reverse=True):
            raise ConfigurationError(
                "intake priority age_bands: ages ascending, points not rising with age"
            )

    def band_for(self, score: int) -> Band:
        """The band a score falls into, before minimum bands."""
        if score >= self.immediate_from:
            return Band.IMMEDIATE
        if score >= self.urgent_from:
            return Band.URGENT
        if score >= self.standard_from:
            return Band.STANDARD
        return Band.ROUTINE


def _check_monotonic(name: str, values: list[int]) -> None:
    if values != sorted(values):
        raise ConfigurationError(f"intake priority {name}: must not fall as the risk rises")


@dataclass(frozen=True, slots=True)
class PriorityFactors:
    """The risk factors of one alert, as triage sees them.

    Attributes:
        risk_grade: the police risk grade of a missing episode.
        cse_level: the child's CSE level (screening or tracker).
        age_years: the child's age in completed years.
        looked_after: whether the child is looked after.
        out_of_area: whether a looked-after child is placed outside the responsible authority.
        recent_episodes: missing episodes in the repeat window, this one included.
        flags: safeguarding flags from attendances.
    """

    risk_grade: RiskGrade | None = None
    cse_level: CseLevel | None = None
    age_years: int | None = None
    looked_after: bool = False
    out_of_area: bool = False
    recent_episodes: int = 0
    flags: frozenset[SafeguardingFlag] = frozenset()


@dataclass(frozen=True, slots=True)
class Contribution:
    """One factor's part in a priority: a stable code, a short reason and its points."""

    code: str
    reason: str
    points: int


@dataclass(frozen=True, slots=True)
class Priority:
    """The outcome of triage scoring.

    Attributes:
        score: the sum of the factors' points.
        band: the band, after any minimum band a factor sets.
        contributions: the factors that counted, most points first.
        reasons: short strings naming those factors (and any minimum band applied).
    """

    score: int
    band: Band
    contributions: tuple[Contribution, ...]
    reasons: tuple[str, ...]

    @property
    def sort_key(self) -> tuple[int, int]:
        """Sorts most urgent first: by band, then by score."""
        return (-self.band.rank, -self.score)


_FLAG_LABELS = {
    SafeguardingFlag.UNDER_16_PREGNANCY: "under-16 pregnancy",
    SafeguardingFlag.CSE_CONCERN: "CSE concern",
    SafeguardingFlag.ASSAULT: "assault",
    SafeguardingFlag.SELF_HARM: "self-harm",
    SafeguardingFlag.SAFEGUARDING_CONCERN: "safeguarding concern",
    SafeguardingFlag.SUBSTANCE_MISUSE: "substance misuse",
    SafeguardingFlag.CHILD_PROTECTION_PLAN: "child protection plan",
    SafeguardingFlag.LOOKED_AFTER: "looked after",
}


def _age_label(weights: PriorityWeights, age: int) -> str:
    lower = 0
    for under, _ in weights.age_bands:
        if age < under:
            return f"age under {under}" if lower == 0 else f"age {lower}–{under - 1}"
        lower = under
    return f"age {lower} or over"


def _age_points(weights: PriorityWeights, age: int) -> int:
    return next((points for under, points in weights.age_bands if age < under), 0)


def _contributions(f: PriorityFactors, w: PriorityWeights) -> list[Contribution]:
    found: list[Contribution] = []
    if f.risk_grade is not None:
        label = f.risk_grade.value.replace("_", " ")
        found.append(
            Contribution(
                "risk_grade", f"police risk grade {label}", w.risk_grade.get(f.risk_grade, 0)
            )
        )
    if f.cse_level is not None:
        found.append(
            Contribution(
                "cse_level", f"CSE level {int(f.cse_level)}", w.cse_level.get(f.cse_level, 0)
            )
        )
    if f.age_years is not None:
        found.append(Contribution("age", _age_label(w, f.age_years), _age_points(w, f.age_years)))
    if f.looked_after:
        found.append(Contribution("looked_after", "looked after", w.looked_after))
        if f.out_of_area:
            found.append(Contribution("out_of_area", "placed out of area", w.out_of_area))
    if f.recent_episodes > 1:
        points = min(w.repeat_cap, w.repeat_per_episode * (f.recent_episodes - 1))
        reason = f"repeat missing: {f.recent_episodes} episodes in window"
        found.append(Contribution("repeat_missing", reason, points))
    for flag in sorted(f.flags):
        found.append(
            Contribution(f"flag:{flag.value}", f"flag: {_FLAG_LABELS[flag]}", w.flags.get(flag, 0))
        )
    return found


def _floors(f: PriorityFactors, w: PriorityWeights) -> list[tuple[Band, str]]:
    floors: list[tuple[Band, str]] = []
    if f.risk_grade is not None and f.risk_grade in w.risk_grade_floor:
        floors.append((w.risk_grade_floor[f.risk_grade], "police risk grade"))
    if f.cse_level is not None and f.cse_level in w.cse_level_floor:
        floors.append((w.cse_level_floor[f.cse_level], "CSE level"))
    floors.extend(
        (w.flag_floor[flag], "attendance flag") for flag in f.flags if flag in w.flag_floor
    )
    return floors


def prioritise(factors: PriorityFactors, weights: PriorityWeights | None = None) -> Priority:
    """Score ``factors`` and place them in a band, with the reasons.

    Args:
        factors: the alert's risk factors.
        weights: points, thresholds and minimum bands; the documented defaults if omitted.

    Returns:
        The score, the band (the higher of the score's band and any factor's minimum
        band), and the contributing factors, most points first.
    """
    w = weights or PriorityWeights()
    parts = [c for c in _contributions(factors, w) if c.points > 0]
    parts.sort(key=lambda c: -c.points)  # stable: equal points keep factor order
    score = sum(c.points for c in parts)
    band = w.band_for(score)
    reasons = [c.reason for c in parts]
    for floor, source in _floors(factors, w):
        if floor.rank > band.rank:
            band = floor
            reasons.append(f"minimum band {floor.value} set by {source}")
    return Priority(score=score, band=band, contributions=tuple(parts), reasons=tuple(reasons))


def _event_cse_level(event: Event) -> CseLevel | None:
    body = event.body
    if isinstance(body, CseScreening):
        return body.level
    if isinstance(body, CaseStatus) and body.cse_tracker and body.cse_tracker.removed_on is None:
        return body.cse_tracker.level
    return None


def _event_flags(event: Event) -> set[SafeguardingFlag]:
    body = event.body
    if isinstance(body, UnscheduledCareAttendance):
        return set(body.flags)
    if isinstance(body, ReturnHomeInterview) and body.cse_concerns_disclosed:
        return {SafeguardingFlag.CSE_CONCERN}
    if isinstance(body, CaseStatus) and body.child_protection_plan:
        return {SafeguardingFlag.CHILD_PROTECTION_PLAN}
    return set()


def factors_from_event(
    event: Event,
    *,
    known_cse_level: CseLevel | None = None,
    recent_episodes: int = 0,
    known_flags: frozenset[SafeguardingFlag] = frozenset(),
    age_on: date | None = None,
) -> PriorityFactors:
    """The risk factors of a canonical event, with what the intake store already knows.

    Args:
        event: the event the alert carries.
        known_cse_level: the child's current tracker level; the higher of it and the
            event's own level is used.
        recent_episodes: the child's missing episodes in the repeat window (this one
            included), from :func:`~broker.intake.clocks.episodes_in_window`.
        known_flags: safeguarding flags already known for the child.
        age_on: the day to take the child's age on; the event's London date by default.
    """
    body = event.body
    grade = body.risk_grade if isinstance(body, MissingReported | MissingUpdated) else None
    levels = [lv for lv in (known_cse_level, _event_cse_level(event)) if lv is not None]
    child = event.subject
    age = None
    if child is not None and child.date_of_birth is not None:
        day = age_on or london_date(event.metadata.occurred_at)
        age = max(0, age_in_years(child.date_of_birth, day))
    looked_after = child is not None and child.looked_after is not None
    out_of_area = bool(child and child.looked_after and child.looked_after.out_of_area)
    return PriorityFactors(
        risk_grade=grade,
        cse_level=max(levels) if levels else None,
        age_years=age,
        looked_after=looked_after,
        out_of_area=out_of_area,
        recent_episodes=recent_episodes,
        flags=frozenset(_event_flags(event) | set(known_flags)),
    )
