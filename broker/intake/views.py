"""What the intake pages and their JSON twins show: queue, alert, child, episodes, clocks, KPIs.

Each function reads the store in the caller's session and returns pydantic models that
the HTML templates render and the JSON API returns as they are. Functions that show an
alert's content open its JWE with the MASH key; the caller audits that reading
(``Triage.record_view``) in the same transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel
from sqlalchemy import Select, or_, select
from sqlmodel import Session, col

from broker.intake._time import add_months, london_date, month_start
from broker.intake.clocks import Clock as PureClock
from broker.intake.clocks import ClockKind, ClockStatus, read_clock, urgency_order
from broker.intake.context import IntakeContext, parse_event
from broker.intake.kpi import (
    PROTECTION_BAND_NOTE,
    KpiReport,
    TrendPoint,
    kpi_report,
    monthly_trend,
)
from broker.intake.profiles import (
    Granularity,
    ProfileTable,
    associate_profile,
    location_profile,
    vehicle_profile,
    victim_profile,
)
from broker.intake.store import tracker_record
from broker.intake.tables import (
    Decision,
    IntakeAction,
    IntakeAlert,
    IntakeClock,
    IntakeEpisode,
    IntakeNotification,
    IntakeTracker,
    LinkReview,
    ReviewStatus,
)
from broker.intake.triage import IntakeNotFound
from broker.models import AlertStatus, MashAlert
from schemas.events import (
    CaseStatus,
    CseScreening,
    Event,
    Intelligence,
    MissingFound,
    MissingReported,
    MissingUpdated,
    ReturnHomeInterview,
    UnscheduledCareAttendance,
)

__all__ = [
    "CLOCK_LABELS",
    "AlertDetail",
    "ChildView",
    "ClockView",
    "DisclosedField",
    "EpisodeView",
    "HistoryItem",
    "KpiView",
    "NotificationView",
    "ProfileRowView",
    "ProfileTableView",
    "QueueItem",
    "QueueSort",
    "ReviewView",
    "SpellView",
    "TimelineEntry",
    "TrackerView",
    "TrendView",
    "alert_detail",
    "child_view",
    "clock_views",
    "disclosed_fields",
    "episode_views",
    "event_summary",
    "kpi_view",
    "profile_views",
    "queue",
    "tracker_records",
    "tracker_view",
]

#: How each clock is named on the page.
CLOCK_LABELS: Mapping[str, str] = {
    ClockKind.RETURN_INTERVIEW.value: "Return home interview (72 h)",
    ClockKind.MASH_DECISION.value: "MASH decision (1 working day)",
    ClockKind.NOTIFY_PLACING_AUTHORITY.value: "Tell the placing authority",
    ClockKind.NOTIFY_THIS_BOROUGH.value: "This borough told",
    ClockKind.REPEAT_MISSING.value: "Repeat missing review",
}

QueueSort = Literal["priority", "received", "due"]


class ClockView(BaseModel):
    """A clock as read at ``as_of``."""

    clock_id: str
    kind: str
    label: str
    subject: str
    child_key: str | None
    alert_id: int | None
    episode_id: str | None
    authority: str | None
    started_at: datetime
    due_at: datetime
    met_at: datetime | None
    status: ClockStatus
    seconds_left: int | None
    met_late: bool
    needs_alert: bool


class QueueItem(BaseModel):
    """One row of the intake queue: ids, codes, priority and the decision clock; no content."""

    alert_id: int
    received_at: datetime
    occurred_at: datetime | None
    event_type: str
    source_agency: str
    status: AlertStatus
    band: str
    band_rank: int
    score: int
    reasons: list[str]
    triaged: bool
    assigned_to: str | None
    decision: str | None
    child_key: str | None
    episode_id: str | None
    link: str
    review_open: bool
    decision_clock: ClockView | None


class DisclosedField(BaseModel):
    """One disclosed field: its path in the canonical event and its value as text."""

    path: str
    value: str


class HistoryItem(BaseModel):
    """One step of an alert's history."""

    action: str
    actor: str
    at: datetime
    from_status: str | None
    to_status: str | None
    decision: str | None
    assignee: str | None
    audit_seq: int | None


class ReviewView(BaseModel):
    """A flagged link awaiting (or after) a person's decision."""

    review_id: int
    alert_id: int
    child_key: str
    kind: str
    candidates: list[str]
    agreeing: list[str]
    conflicting: list[str]
    status: str
    resolved_by: str | None
    resolved_at: datetime | None


class AlertDetail(BaseModel):
    """An alert opened: what was disclosed, under which rule and basis, from whom, and after."""

    item: QueueItem
    jti: str
    issuer: str
    rule_id: str
    lawful_basis: str
    purpose: str
    source_agency: str
    source_event_id: str
    original_sha256: str
    issued_at: datetime
    summary: str
    fields: list[DisclosedField]
    history: list[HistoryItem]
    clocks: list[ClockView]
    reviews: list[ReviewView]
    decisions: list[str]


class TimelineEntry(BaseModel):
    """One event in a child's timeline."""

    alert_id: int
    occurred_at: datetime | None
    received_at: datetime
    event_type: str
    source_agency: str
    summary: str
    band: str
    status: AlertStatus


class NotificationView(BaseModel):
    """An authority told of a missing episode."""

    authority: str
    notified_at: datetime
    recorded_by: str


class EpisodeView(BaseModel):
    """A missing episode with its clocks."""

    episode_id: str
    child_key: str
    reported_at: datetime
    risk_grade: str | None
    found_at: datetime | None
    returned_at: datetime | None
    missing_from: str | None
    home_authority: str | None
    looked_after: bool
    placed_in: str | None
    rhi_offered_at: datetime | None
    rhi_completed_at: datetime | None
    rhi_declined_at: datetime | None
    missing_now: bool
    notifications: list[NotificationView]
    clocks: list[ClockView]


class SpellView(BaseModel):
    """A spell on the CSE tracker (child key, dates and level only)."""

    child_key: str
    identified_on: date
    level: int
    removed_on: date | None
    removal_reason: str | None


class ChildView(BaseModel):
    """Everything the MASH holds about one child, in time order."""

    child_key: str
    timeline: list[TimelineEntry]
    episodes: list[EpisodeView]
    spells: list[SpellView]
    clocks: list[ClockView]
    reviews: list[ReviewView]


class TrackerView(BaseModel):
    """The CSE tracker: children by level on ``as_of`` and every spell."""

    as_of: date
    by_level: dict[int, int]
    spells: list[SpellView]


class TrendView(BaseModel):
    """One month of the KPI charts."""

    month: str
    level_3: int
    prevention_percent: float | None
    prevention_band: str
    prevention_denominator: int


class KpiView(BaseModel):
    """The KPI table and its trend for the strategic group."""

    as_of: date
    identified_from: date
    identified_to: date
    by_level: dict[int, int]
    prevention_percent: float | None
    prevention_band: str
    prevented: int
    denominator: int
    pending: int
    excluded: int
    identified: int
    protection_level_3: int
    protection_band: str
    band_note: str
    trend: list[TrendView]


# --------------------------------------------------------------------------- clocks


def _pure(row: IntakeClock) -> PureClock:
    return PureClock(
        kind=ClockKind(row.kind),
        subject=row.subject,
        started_at=row.started_at,
        due_at=row.due_at,
        met_at=row.met_at,
        authority=row.authority,
        instance=row.instance,
    )


def _clock_view(context: IntakeContext, row: IntakeClock, now: datetime) -> ClockView:
    reading = read_clock(_pure(row), now, context.clocks)
    left = reading.time_left
    return ClockView(
        clock_id=row.clock_id,
        kind=row.kind,
        label=CLOCK_LABELS.get(row.kind, row.kind),
        subject=row.subject,
        child_key=row.child_key,
        alert_id=row.alert_id,
        episode_id=row.episode_id,
        authority=row.authority,
        started_at=row.started_at,
        due_at=row.due_at,
        met_at=row.met_at,
        status=reading.status,
        seconds_left=int(left.total_seconds()) if left is not None else None,
        met_late=reading.met_late,
        needs_alert=reading.needs_alert,
    )


def _sorted_views(
    context: IntakeContext, rows: Iterable[IntakeClock], now: datetime
) -> list[ClockView]:
    by_id = {row.clock_id: row for row in rows}
    readings = urgency_order(read_clock(_pure(r), now, context.clocks) for r in by_id.values())
    return [_clock_view(context, by_id[r.clock.clock_id], now) for r in readings]


def clock_views(
    session: Session,
    context: IntakeContext,
    now: datetime,
    *,
    statuses: Iterable[ClockStatus] | None = None,
    kinds: Iterable[str] | None = None,
) -> list[ClockView]:
    """Every clock read at ``now``, overdue first, filtered by status and kind."""
    statement = select(IntakeClock)
    if kinds:
        statement = statement.where(col(IntakeClock.kind).in_(list(kinds)))
    views = _sorted_views(context, session.execute(statement).scalars(), now)
    wanted = set(statuses) if statuses else None
    return [v for v in views if wanted is None or v.status in wanted]


# --------------------------------------------------------------------------- queue

_OPEN = (AlertStatus.NEW, AlertStatus.ACKNOWLEDGED, AlertStatus.ASSIGNED, AlertStatus.DECIDED)


def _queue_statement() -> Select[MashAlert, IntakeAlert]:
    return select(MashAlert, IntakeAlert).outerjoin(
        IntakeAlert, col(IntakeAlert.alert_id) == col(MashAlert.id)
    )


def _items(
    session: Session,
    context: IntakeContext,
    rows: Sequence[Any],
    now: datetime,
) -> list[QueueItem]:
    ids = [alert.id for alert, _ in rows]
    clocks = {
        c.alert_id: c
        for c in session.execute(
            select(IntakeClock).where(
                col(IntakeClock.kind) == ClockKind.MASH_DECISION.value,
                col(IntakeClock.alert_id).in_(ids),
            )
        ).scalars()
    }
    reviewing = set(
        session.execute(
            select(col(LinkReview.alert_id)).where(
                col(LinkReview.alert_id).in_(ids),
                col(LinkReview.status) == ReviewStatus.OPEN.value,
            )
        ).scalars()
    )
    items = []
    for alert, triage in rows:
        clock = clocks.get(alert.id)
        items.append(
            QueueItem(
                alert_id=alert.id,
                received_at=alert.received_at,
                occurred_at=triage.occurred_at if triage else None,
                event_type=alert.event_type,
                source_agency=alert.source_agency,
                status=AlertStatus(alert.status),
                band=triage.band if triage else "untriaged",
                band_rank=triage.band_rank if triage else 1,
                score=triage.score if triage else 0,
                reasons=list(triage.reasons) if triage else ["not triaged: see the service log"],
                triaged=triage is not None,
                assigned_to=triage.assigned_to if triage else None,
                decision=triage.decision if triage else None,
                child_key=triage.child_key if triage else None,
                episode_id=triage.episode_id if triage else alert.correlation_id,
                link=triage.link if triage else "none",
                review_open=alert.id in reviewing,
                decision_clock=_clock_view(context, clock, now) if clock else None,
            )
        )
    return items


def queue(
    session: Session,
    context: IntakeContext,
    now: datetime,
    *,
    statuses: Iterable[AlertStatus] | None = None,
    band: str | None = None,
    event_type: str | None = None,
    sort: QueueSort = "priority",
    limit: int = 200,
) -> list[QueueItem]:
    """The intake queue: open alerts (by default) most urgent first.

    ``priority`` sorts by band, score, then oldest first; ``received`` newest first;
    ``due`` by the decision clock's deadline.
    """
    chosen = list(statuses) if statuses else list(_OPEN)
    statement = _queue_statement().where(
        col(MashAlert.recipient) == context.party,
        col(MashAlert.status).in_(chosen),
    )
    if band:
        statement = statement.where(col(IntakeAlert.band) == band)
    if event_type:
        statement = statement.where(col(MashAlert.event_type) == event_type)
    if sort == "received":
        statement = statement.order_by(col(MashAlert.received_at).desc(), col(MashAlert.id).desc())
    else:
        statement = statement.order_by(
            col(IntakeAlert.band_rank).desc(),
            col(IntakeAlert.score).desc(),
            col(MashAlert.received_at),
            col(MashAlert.id),
        )
    items = _items(session, context, session.execute(statement.limit(limit)).all(), now)
    if sort == "due":
        far = datetime.max.replace(tzinfo=now.tzinfo)
        items.sort(key=lambda i: i.decision_clock.due_at if i.decision_clock else far)
    return items


# --------------------------------------------------------------------------- alert detail


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(_text(v) for v in value)
    return str(value)


def disclosed_fields(document: Mapping[str, Any], prefix: str = "") -> list[DisclosedField]:
    """The disclosed event as (path, value) rows; list items are numbered from 1."""
    rows: list[DisclosedField] = []
    for key, value in document.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            rows.extend(disclosed_fields(value, path + "."))
        elif isinstance(value, list) and any(isinstance(v, dict) for v in value):
            for n, item in enumerate(value, start=1):
                if isinstance(item, dict):
                    rows.extend(disclosed_fields(item, f"{path}[{n}]."))
        elif value is not None and value not in ([], ""):
            rows.append(DisclosedField(path=path, value=_text(value)))
    return rows


def _words(code: str) -> str:
    return code.replace("_", " ")


def _reported(body: Any) -> str:
    return f"reported missing, risk {_words(body.risk_grade.value)}"


def _updated(body: Any) -> str:
    grade = f", risk now {_words(body.risk_grade.value)}" if body.risk_grade else ""
    return f"missing episode updated{grade}"


def _found(body: Any) -> str:
    return "found" + (" and returned" if body.returned_at else "")


def _interview(body: Any) -> str:
    state = "completed" if body.completed_at else "declined" if body.declined else "offered"
    concerns = "; CSE concerns disclosed" if body.cse_concerns_disclosed else ""
    return f"return home interview {state}{concerns}"


def _attendance(body: Any) -> str:
    flags = ", ".join(_words(f.value) for f in body.flags) or "no flags"
    return f"{_words(body.setting.value)} attendance ({flags})"


def _screening(body: Any) -> str:
    return f"CSE screening, level {int(body.level)}"


def _case_status(body: Any) -> str:
    parts = ["child protection plan"] if body.child_protection_plan else []
    tracker = body.cse_tracker
    if tracker is not None:
        removed = f", removed {tracker.removed_on}" if tracker.removed_on else ""
        parts.append(f"CSE tracker level {int(tracker.level)}{removed}")
    return "case status: " + (", ".join(parts) or "no plan, not on the tracker")


_SUMMARIES: dict[type, Any] = {
    MissingReported: _reported,
    MissingUpdated: _updated,
    MissingFound: _found,
    ReturnHomeInterview: _interview,
    UnscheduledCareAttendance: _attendance,
    CseScreening: _screening,
    CaseStatus: _case_status,
    Intelligence: lambda _: "intelligence",
}


def event_summary(event: Event | None) -> str:
    """One line about what happened, in codes and grades, never naming the child."""
    if event is None:
        return "partial disclosure"
    summarise = _SUMMARIES.get(type(event.body))
    return str(summarise(event.body)) if summarise else event.event_type.value


def _history(session: Session, alert_id: int) -> list[HistoryItem]:
    rows = session.execute(
        select(IntakeAction)
        .where(col(IntakeAction.alert_id) == alert_id)
        .order_by(col(IntakeAction.at), col(IntakeAction.id))
    ).scalars()
    return [
        HistoryItem(
            action=r.action,
            actor=r.actor,
            at=r.at,
            from_status=r.from_status,
            to_status=r.to_status,
            decision=r.decision,
            assignee=r.assignee,
            audit_seq=r.audit_seq,
        )
        for r in rows
    ]


def _review_view(row: LinkReview) -> ReviewView:
    assert row.id is not None  # noqa: S101 - stored rows have ids
    return ReviewView(
        review_id=row.id,
        alert_id=row.alert_id,
        child_key=row.child_key,
        kind=row.kind,
        candidates=list(row.candidates),
        agreeing=list(row.agreeing),
        conflicting=list(row.conflicting),
        status=row.status,
        resolved_by=row.resolved_by,
        resolved_at=row.resolved_at,
    )


def _related_clocks(
    session: Session, context: IntakeContext, triage: IntakeAlert | None, alert_id: int
) -> list[IntakeClock]:
    conditions = [col(IntakeClock.alert_id) == alert_id]
    if triage is not None and triage.episode_id:
        conditions.append(col(IntakeClock.episode_id) == triage.episode_id)
    return list(session.execute(select(IntakeClock).where(or_(*conditions))).scalars())


def alert_detail(
    session: Session, context: IntakeContext, alert_id: int, now: datetime
) -> AlertDetail:
    """An alert with its disclosed content (opened from its JWE), provenance and history.

    Raises:
        IntakeNotFound: no such alert for this MASH.
    """
    row = session.execute(
        _queue_statement().where(
            col(MashAlert.id) == alert_id, col(MashAlert.recipient) == context.party
        )
    ).first()
    if row is None:
        raise IntakeNotFound(f"alert {alert_id}: not found")
    alert, triage = row
    claims = context.open_alert(alert)
    reviews = session.execute(
        select(LinkReview).where(col(LinkReview.alert_id) == alert_id)
    ).scalars()
    return AlertDetail(
        item=_items(session, context, [row], now)[0],
        jti=claims.jti,
        issuer=claims.iss,
        rule_id=claims.rule_id,
        lawful_basis=str(claims.lawful_basis),
        purpose=claims.purpose,
        source_agency=claims.provenance.source_agency,
        source_event_id=str(claims.provenance.source_event_id),
        original_sha256=claims.provenance.original_sha256,
        issued_at=datetime.fromtimestamp(claims.iat, tz=now.tzinfo),
        summary=event_summary(parse_event(claims.event)),
        fields=disclosed_fields(claims.event),
        history=_history(session, alert_id),
        clocks=_sorted_views(context, _related_clocks(session, context, triage, alert_id), now),
        reviews=[_review_view(r) for r in reviews],
        decisions=[d.value for d in Decision],
    )


# --------------------------------------------------------------------------- episodes


def _episode_view(
    session: Session, context: IntakeContext, row: IntakeEpisode, now: datetime
) -> EpisodeView:
    notifications = session.execute(
        select(IntakeNotification).where(col(IntakeNotification.episode_id) == row.episode_id)
    ).scalars()
    clocks = session.execute(
        select(IntakeClock).where(col(IntakeClock.episode_id) == row.episode_id)
    ).scalars()
    return EpisodeView(
        episode_id=row.episode_id,
        child_key=row.child_key,
        reported_at=row.reported_at,
        risk_grade=row.risk_grade,
        found_at=row.found_at,
        returned_at=row.returned_at,
        missing_from=row.missing_from,
        home_authority=row.home_authority,
        looked_after=row.looked_after,
        placed_in=row.placed_in,
        rhi_offered_at=row.rhi_offered_at,
        rhi_completed_at=row.rhi_completed_at,
        rhi_declined_at=row.rhi_declined_at,
        missing_now=row.found_at is None and row.returned_at is None,
        notifications=[
            NotificationView(
                authority=n.authority, notified_at=n.notified_at, recorded_by=n.recorded_by
            )
            for n in notifications
        ],
        clocks=_sorted_views(context, clocks, now),
    )


def episode_views(
    session: Session,
    context: IntakeContext,
    now: datetime,
    *,
    child_key: str | None = None,
    open_only: bool = False,
) -> list[EpisodeView]:
    """Missing episodes, latest report first; ``open_only`` keeps those with a clock running."""
    statement = select(IntakeEpisode).order_by(col(IntakeEpisode.reported_at).desc())
    if child_key is not None:
        statement = statement.where(col(IntakeEpisode.child_key) == child_key)
    views = [_episode_view(session, context, r, now) for r in session.execute(statement).scalars()]
    if open_only:
        views = [
            v for v in views if v.missing_now or any(c.status != ClockStatus.MET for c in v.clocks)
        ]
    return views


# --------------------------------------------------------------------------- child


def child_view(
    session: Session, context: IntakeContext, child_key: str, now: datetime
) -> ChildView:
    """A child's timeline (opened from each alert's JWE), episodes, spells and clocks.

    Raises:
        IntakeNotFound: the store holds nothing under that key.
    """
    rows = session.execute(
        _queue_statement()
        .where(col(IntakeAlert.child_key) == child_key)
        .order_by(col(IntakeAlert.occurred_at), col(MashAlert.received_at))
    ).all()
    if not rows:
        raise IntakeNotFound(f"child {child_key}: not found")
    timeline = []
    for alert, triage in rows:
        event = parse_event(context.open_alert(alert).event)
        timeline.append(
            TimelineEntry(
                alert_id=alert.id,
                occurred_at=triage.occurred_at if triage else None,
                received_at=alert.received_at,
                event_type=alert.event_type,
                source_agency=alert.source_agency,
                summary=event_summary(event),
                band=triage.band if triage else "untriaged",
                status=AlertStatus(alert.status),
            )
        )
    spells = session.execute(
        select(IntakeTracker).where(col(IntakeTracker.child_key) == child_key)
    ).scalars()
    clocks = session.execute(
        select(IntakeClock).where(col(IntakeClock.child_key) == child_key)
    ).scalars()
    # Reviews are few; the candidates list is JSON, which the backends search differently.
    reviews = [
        r
        for r in session.execute(select(LinkReview)).scalars()
        if r.child_key == child_key or child_key in r.candidates
    ]
    return ChildView(
        child_key=child_key,
        timeline=timeline,
        episodes=episode_views(session, context, now, child_key=child_key),
        spells=[_spell(s) for s in spells],
        clocks=_sorted_views(context, clocks, now),
        reviews=[_review_view(r) for r in reviews],
    )


# --------------------------------------------------------------------------- tracker and KPIs


def _spell(row: IntakeTracker) -> SpellView:
    return SpellView(
        child_key=row.child_key,
        identified_on=row.identified_on,
        level=row.level,
        removed_on=row.removed_on,
        removal_reason=row.removal_reason,
    )


def tracker_records(session: Session) -> list[Any]:
    """Every stored tracker spell as a pure record."""
    return [tracker_record(r) for r in session.execute(select(IntakeTracker)).scalars()]


def tracker_view(session: Session, as_of: date) -> TrackerView:
    """The tracker on ``as_of``: counts by level and every spell, newest first."""
    rows = list(
        session.execute(
            select(IntakeTracker).order_by(col(IntakeTracker.identified_on).desc())
        ).scalars()
    )
    report = kpi_report([tracker_record(r) for r in rows], as_of, as_of, as_of)
    return TrackerView(
        as_of=as_of,
        by_level={int(k): v for k, v in report.by_level.items()},
        spells=[_spell(r) for r in rows],
    )


def _trend(point: TrendPoint) -> TrendView:
    return TrendView(
        month=point.label,
        level_3=point.level_3_at_month_end,
        prevention_percent=point.prevention.percent,
        prevention_band=point.prevention.band.label,
        prevention_denominator=point.prevention.denominator,
    )


def kpi_view(
    session: Session, now: datetime, *, months: int = 12
) -> tuple[KpiView, KpiReport, tuple[TrendPoint, ...]]:
    """The KPI table for the ``months`` up to today (London), and the monthly trend.

    The prevention cohort is the children identified in those months; its figures count
    only children whose three-month window has ended (see ``docs/intake.md``).
    """
    as_of = london_date(now)
    first = month_start(add_months(as_of, -(months - 1)))
    records = tracker_records(session)
    report = kpi_report(records, first, as_of, as_of)
    trend = monthly_trend(records, first, as_of, as_of)
    prevention = report.prevention
    view = KpiView(
        as_of=as_of,
        identified_from=first,
        identified_to=as_of,
        by_level={int(k): v for k, v in report.by_level.items()},
        prevention_percent=prevention.percent,
        prevention_band=prevention.band.label,
        prevented=prevention.prevented,
        denominator=prevention.denominator,
        pending=prevention.pending,
        excluded=prevention.excluded,
        identified=prevention.identified,
        protection_level_3=report.protection.level_3,
        protection_band=report.protection.band.label,
        band_note=PROTECTION_BAND_NOTE,
        trend=[_trend(p) for p in trend],
    )
    return view, report, trend


# --------------------------------------------------------------------------- profiles


class ProfileRowView(BaseModel):
    """One published cell: period, dimension values, the count or ``<5``."""

    period: str
    dimensions: list[str]
    count: str


class ProfileTableView(BaseModel):
    """One profile table for the strategic group (counts only, small numbers suppressed)."""

    title: str
    dimension_names: list[str]
    threshold: int
    rows: list[ProfileRowView]


def _profile_view(table: ProfileTable) -> ProfileTableView:
    return ProfileTableView(
        title=table.title,
        dimension_names=list(table.dimension_names),
        threshold=table.threshold,
        rows=[
            ProfileRowView(period=r.period, dimensions=list(r.dimensions), count=r.count.display)
            for r in table.rows
        ],
    )


def profile_views(
    session: Session,
    context: IntakeContext,
    now: datetime,
    *,
    months: int = 12,
    granularity: Granularity = "month",
) -> list[ProfileTableView]:
    """Profiles of locations, vehicles, associates and victims over the last ``months``.

    Built from the alerts' events (opened from their JWEs inside this function); what
    leaves it is counts only, with small numbers suppressed, and no totals (see the
    profiles section above on differencing).
    """
    since = datetime.combine(
        month_start(add_months(london_date(now), -(months - 1))), datetime.min.time(), now.tzinfo
    )
    rows = session.execute(
        _queue_statement().where(
            col(MashAlert.recipient) == context.party, col(MashAlert.received_at) >= since
        )
    ).all()
    keyed: list[tuple[str, Event]] = []
    for alert, triage in rows:
        event = parse_event(context.open_alert(alert).event)
        if event is not None and event.metadata.occurred_at >= since:
            # An alert not linked to a child counts as a child of its own.
            keyed.append(
                (triage.child_key if triage and triage.child_key else f"a{alert.id}", event)
            )
    events = [event for _, event in keyed]
    victims = victim_profile(keyed, granularity=granularity)
    tables = (
        location_profile(events, granularity=granularity),
        vehicle_profile(events, granularity=granularity),
        associate_profile(events, granularity=granularity),
        victims.by_age_band,
        victims.by_sex,
        victims.by_looked_after,
        victims.by_area,
    )
    return [_profile_view(t) for t in tables]
