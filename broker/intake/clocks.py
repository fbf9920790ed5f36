"""Statutory and practice clocks: return interviews, MASH decisions, notifications, repeat missing.

A :class:`Clock` is a deadline about one subject (an episode, an alert or a child); a
:class:`ClockReading` is what the clock shows at a given ``now``: running, due soon,
overdue or met, and the time left. Elapsed-time clocks (72 hours, 1 hour) count real
hours in UTC, so across a change to or from British Summer Time the local wall-clock
deadline moves by an hour; the working-day clock is counted in Europe/London working
days by :class:`~broker.intake.workingdays.WorkingCalendar`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from types import MappingProxyType
from typing import Literal

from broker.exceptions import ConfigurationError
from broker.intake._time import optional_utc, require_utc
from broker.intake.errors import InvalidRecord
from broker.intake.records import EpisodeRecord, NotificationRecord
from broker.intake.workingdays import WorkingCalendar

__all__ = [
    "Clock",
    "ClockConfig",
    "ClockKind",
    "ClockReading",
    "ClockStatus",
    "RepeatMissingPattern",
    "SubjectKind",
    "episode_clocks",
    "episodes_in_window",
    "mash_decision_clock",
    "notification_clock",
    "read_clock",
    "repeat_missing_clock",
    "repeat_missing_patterns",
    "return_interview_clock",
    "urgency_order",
]

#: What a clock's subject identifies.
SubjectKind = Literal["episode", "alert", "child"]


class ClockKind(StrEnum):
    """The clocks intake watches."""

    #: Return home interview within 72 hours of the child's return.
    RETURN_INTERVIEW = "return_interview"
    #: A MASH decision within one working day of receipt of an alert.
    MASH_DECISION = "mash_decision"
    #: A looked-after child placed here by another authority is missing: tell that authority.
    NOTIFY_PLACING_AUTHORITY = "notify_placing_authority"
    #: This borough's looked-after child placed elsewhere is missing: this borough is told.
    NOTIFY_THIS_BOROUGH = "notify_this_borough"
    #: A repeat-missing pattern formed: the MASH reviews it within one working day.
    REPEAT_MISSING = "repeat_missing"


class ClockStatus(StrEnum):
    """What a clock shows at a moment."""

    RUNNING = "running"
    DUE_SOON = "due_soon"
    OVERDUE = "overdue"
    MET = "met"


_SUBJECT_KIND: Mapping[ClockKind, SubjectKind] = MappingProxyType(
    {
        ClockKind.RETURN_INTERVIEW: "episode",
        ClockKind.MASH_DECISION: "alert",
        ClockKind.NOTIFY_PLACING_AUTHORITY: "episode",
        ClockKind.NOTIFY_THIS_BOROUGH: "episode",
        ClockKind.REPEAT_MISSING: "child",
    }
)


def _default_due_soon() -> Mapping[ClockKind, timedelta]:
    return MappingProxyType(
        {
            ClockKind.RETURN_INTERVIEW: timedelta(hours=24),
            ClockKind.MASH_DECISION: timedelta(hours=2),
            ClockKind.NOTIFY_PLACING_AUTHORITY: timedelta(minutes=15),
            ClockKind.NOTIFY_THIS_BOROUGH: timedelta(minutes=15),
            ClockKind.REPEAT_MISSING: timedelta(hours=2),
        }
    )


@dataclass(frozen=True, slots=True)
class ClockConfig:
    """The clocks' local settings (statutory guidance fixes the 72 hours; practice the rest).

    Attributes:
        return_interview_within: time from return to the interview deadline.
        notify_within: time from the missing report to the notification deadline; the
            guidance says "immediately", which a clock needs as a number.
        repeat_threshold: episodes within ``repeat_window`` that make a pattern.
        repeat_window: the look-back window for repeat missing.
        due_soon: per clock kind, how long before the deadline it shows "due soon".
    """

    return_interview_within: timedelta = timedelta(hours=72)
    notify_within: timedelta = timedelta(hours=1)
    repeat_threshold: int = 3
    repeat_window: timedelta = timedelta(days=90)
    due_soon: Mapping[ClockKind, timedelta] = field(default_factory=_default_due_soon)

    def __post_init__(self) -> None:
        for name in ("return_interview_within", "notify_within", "repeat_window"):
            if getattr(self, name) <= timedelta(0):
                raise ConfigurationError(f"intake clocks {name}: must be positive")
        if self.repeat_threshold < 2:
            raise ConfigurationError("intake clocks repeat_threshold: at least 2 episodes")
        if any(value < timedelta(0) for value in self.due_soon.values()):
            raise ConfigurationError("intake clocks due_soon: thresholds must not be negative")
        object.__setattr__(self, "due_soon", MappingProxyType(dict(self.due_soon)))

    def due_soon_for(self, kind: ClockKind) -> timedelta:
        """The due-soon threshold for ``kind`` (zero when not configured)."""
        return self.due_soon.get(kind, timedelta(0))


@dataclass(frozen=True, slots=True)
class Clock:
    """A deadline about one subject.

    Attributes:
        kind: which clock.
        subject: the episode id, alert id or child key the clock is about.
        started_at: when the clock started.
        due_at: the deadline; always after ``started_at``.
        met_at: when the clock was satisfied, if it has been.
        authority: for notification clocks, the ONS code of the authority to be told.
        instance: tells apart clocks of one kind about one subject (a child's successive
            repeat-missing patterns); ``None`` when there can be only one.
    """

    kind: ClockKind
    subject: str
    started_at: datetime
    due_at: datetime
    met_at: datetime | None = None
    authority: str | None = None
    instance: str | None = None

    def __post_init__(self) -> None:
        where = f"{self.kind} clock for {self.subject}"
        object.__setattr__(self, "started_at", require_utc(self.started_at, f"{where} start"))
        object.__setattr__(self, "due_at", require_utc(self.due_at, f"{where} due_at"))
        object.__setattr__(self, "met_at", optional_utc(self.met_at, f"{where} met_at"))
        if self.due_at <= self.started_at:
            raise InvalidRecord(f"{where}: due_at must be after started_at")

    @property
    def subject_kind(self) -> SubjectKind:
        """Whether the subject is an episode, an alert or a child."""
        return _SUBJECT_KIND[self.kind]

    @property
    def clock_id(self) -> str:
        """A stable id for storage and the page: ``<kind>:<subject>[:<instance>]``."""
        base = f"{self.kind.value}:{self.subject}"
        return base if self.instance is None else f"{base}:{self.instance}"


@dataclass(frozen=True, slots=True)
class ClockReading:
    """What a clock shows at ``as_of``.

    Attributes:
        clock: the clock read.
        as_of: the moment of reading (UTC).
        status: running, due soon, overdue or met.
        time_left: ``due_at - as_of`` while not met (negative when overdue); ``None`` once met.
        met_late: True when met, but after the deadline.
    """

    clock: Clock
    as_of: datetime
    status: ClockStatus
    time_left: timedelta | None
    met_late: bool = False

    @property
    def needs_alert(self) -> bool:
        """True when the clock should be raised to intake staff (due soon or overdue)."""
        return self.status in (ClockStatus.DUE_SOON, ClockStatus.OVERDUE)


def read_clock(clock: Clock, now: datetime, config: ClockConfig | None = None) -> ClockReading:
    """What ``clock`` shows at ``now``.

    A clock met at or before ``now`` is met (late when after its deadline); a met time
    after ``now`` is ignored, so a past moment reads as it did then. Otherwise the clock
    is overdue once ``now`` reaches the deadline, due soon within the kind's threshold
    before it, and running before that.
    """
    cfg = config or ClockConfig()
    moment = require_utc(now, "clock reading now")
    if clock.met_at is not None and clock.met_at <= moment:
        return ClockReading(
            clock, moment, ClockStatus.MET, None, met_late=clock.met_at > clock.due_at
        )
    left = clock.due_at - moment
    if left <= timedelta(0):
        status = ClockStatus.OVERDUE
    elif left <= cfg.due_soon_for(clock.kind):
        status = ClockStatus.DUE_SOON
    else:
        status = ClockStatus.RUNNING
    return ClockReading(clock, moment, status, left)


_STATUS_ORDER = {
    ClockStatus.OVERDUE: 0,
    ClockStatus.DUE_SOON: 1,
    ClockStatus.RUNNING: 2,
    ClockStatus.MET: 3,
}


def urgency_order(readings: Iterable[ClockReading]) -> list[ClockReading]:
    """Readings sorted for the page: overdue, then due soon, then running, then met.

    Within a status the earliest deadline comes first.
    """
    return sorted(readings, key=lambda r: (_STATUS_ORDER[r.status], r.clock.due_at))


def return_interview_clock(
    episode: EpisodeRecord, config: ClockConfig | None = None
) -> Clock | None:
    """The return home interview clock of ``episode``, or ``None`` while the child is missing.

    It starts when the child came back (``returned_at``, else ``found_at``). It is met by a
    completed interview (at ``rhi_completed_at``) or by an offer the child declined (at
    ``rhi_declined_at``): the guidance requires the interview to be offered, and a child
    cannot be made to take part. An offer not yet taken up or declined does not meet it.
    """
    cfg = config or ClockConfig()
    back = episode.back_at
    if back is None:
        return None
    return Clock(
        kind=ClockKind.RETURN_INTERVIEW,
        subject=episode.episode_id,
        started_at=back,
        due_at=back + cfg.return_interview_within,
        met_at=episode.rhi_completed_at or episode.rhi_declined_at,
    )


def mash_decision_clock(
    alert_id: str,
    received_at: datetime,
    decided_at: datetime | None,
    calendar: WorkingCalendar,
) -> Clock:
    """The MASH decision clock: due one working day after the alert was received.

    Args:
        alert_id: the intake alert's id.
        received_at: when the alert reached the MASH.
        decided_at: when a decision was recorded, if one has been.
        calendar: the MASH's working days and hours.
    """
    received = require_utc(received_at, f"alert {alert_id} received_at")
    return Clock(
        kind=ClockKind.MASH_DECISION,
        subject=alert_id,
        started_at=received,
        due_at=calendar.one_working_day_after(received),
        met_at=decided_at,
    )


def notification_clock(
    episode: EpisodeRecord,
    borough: str,
    notifications: Iterable[NotificationRecord],
    config: ClockConfig | None = None,
) -> Clock | None:
    """The cross-authority notification clock of ``episode``, from ``borough``'s point of view.

    * A looked-after child placed in ``borough`` by another authority goes missing: the
      placing authority must be told (:attr:`ClockKind.NOTIFY_PLACING_AUTHORITY`).
    * ``borough``'s own looked-after child placed elsewhere goes missing: ``borough`` must
      be told (:attr:`ClockKind.NOTIFY_THIS_BOROUGH`).

    The clock starts at the missing report and is met by the earliest notification
    record for the episode and that authority. Children who are not looked after, or are
    placed within their own authority, have no such clock (``None``).
    """
    cfg = config or ClockConfig()
    placing, host = episode.home_authority, episode.host_authority
    if not episode.looked_after or placing is None or host is None or placing == host:
        return None
    if host == borough:
        kind, authority = ClockKind.NOTIFY_PLACING_AUTHORITY, placing
    elif placing == borough:
        kind, authority = ClockKind.NOTIFY_THIS_BOROUGH, borough
    else:
        return None
    told = [
        n.notified_at
        for n in notifications
        if n.episode_id == episode.episode_id and n.authority == authority
    ]
    return Clock(
        kind=kind,
        subject=episode.episode_id,
        started_at=episode.reported_at,
        due_at=episode.reported_at + cfg.notify_within,
        met_at=min(told) if told else None,
        authority=authority,
    )


def episode_clocks(
    episode: EpisodeRecord,
    *,
    borough: str,
    notifications: Iterable[NotificationRecord] = (),
    config: ClockConfig | None = None,
) -> tuple[Clock, ...]:
    """Every clock a missing episode has: notification (if any) and return interview (if back)."""
    clocks = (
        notification_clock(episode, borough, notifications, config),
        return_interview_clock(episode, config),
    )
    return tuple(c for c in clocks if c is not None)


def episodes_in_window(
    episodes: Iterable[EpisodeRecord],
    child_key: str,
    at: datetime,
    window: timedelta,
) -> int:
    """How many of the child's episodes were reported in ``(at - window, at]``."""
    end = require_utc(at, "window end")
    start = end - window
    return sum(1 for e in episodes if e.child_key == child_key and start < e.reported_at <= end)


@dataclass(frozen=True, slots=True)
class RepeatMissingPattern:
    """A child's missing episodes reached the repeat threshold within the window.

    Attributes:
        child_key: the child.
        episode_ids: the episodes in the window, oldest first, ending with the trigger.
        formed_at: when the episode completing the pattern was reported.
        window_start: the start of the look-back window (exclusive).
    """

    child_key: str
    episode_ids: tuple[str, ...]
    formed_at: datetime
    window_start: datetime

    @property
    def count(self) -> int:
        """Episodes in the pattern."""
        return len(self.episode_ids)

    @property
    def pattern_id(self) -> str:
        """A stable id: the child and the episode that completed the pattern."""
        return f"{self.child_key}:{self.episode_ids[-1]}"


def repeat_missing_patterns(
    episodes: Iterable[EpisodeRecord], config: ClockConfig | None = None
) -> tuple[RepeatMissingPattern, ...]:
    """The repeat-missing patterns in ``episodes``, per child, oldest first.

    A pattern forms when an episode brings the child's count in the window ending at its
    report to the threshold (3 episodes in 90 days by default). After a pattern is raised,
    no further pattern is raised for the child until a whole window has passed since it,
    so a child missing every week raises one alert per window, not one per episode.
    """
    cfg = config or ClockConfig()
    by_child: dict[str, list[EpisodeRecord]] = {}
    for episode in episodes:
        by_child.setdefault(episode.child_key, []).append(episode)
    patterns: list[RepeatMissingPattern] = []
    for child_key, own in by_child.items():
        own.sort(key=lambda e: (e.reported_at, e.episode_id))
        last_raised: datetime | None = None
        for index, episode in enumerate(own):
            start = episode.reported_at - cfg.repeat_window
            in_window = [e for e in own[: index + 1] if e.reported_at > start]
            quiet = last_raised is None or last_raised <= start
            if len(in_window) >= cfg.repeat_threshold and quiet:
                last_raised = episode.reported_at
                patterns.append(
                    RepeatMissingPattern(
                        child_key=child_key,
                        episode_ids=tuple(e.episode_id for e in in_window),
                        formed_at=episode.reported_at,
                        window_start=start,
                    )
                )
    return tuple(sorted(patterns, key=lambda p: (p.formed_at, p.child_key)))


def repeat_missing_clock(
    pattern: RepeatMissingPattern,
    reviewed_at: datetime | None,
    calendar: WorkingCalendar,
) -> Clock:
    """The clock of a repeat-missing alert: reviewed within one working day of forming.

    The subject is the child key and the instance the episode that completed the
    pattern; the clock is met when the MASH records its review.
    """
    return Clock(
        kind=ClockKind.REPEAT_MISSING,
        subject=pattern.child_key,
        started_at=pattern.formed_at,
        due_at=calendar.one_working_day_after(pattern.formed_at),
        met_at=reviewed_at,
        instance=pattern.episode_ids[-1],
    )
