"""The JSON twins of the intake pages under ``/v1/intake`` (bearer token or session cookie)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, Field
from sqlmodel import Session

from broker.api.auth import StaffIdentity
from broker.intake._time import london_date
from broker.intake.clocks import ClockStatus
from broker.intake.context import IntakeContext
from broker.intake.kpi import kpi_csv, trend_csv
from broker.intake.tables import Decision
from broker.intake.triage import Triage
from broker.intake.views import (
    AlertDetail,
    ChildView,
    ClockView,
    EpisodeView,
    KpiView,
    ProfileTableView,
    QueueItem,
    QueueSort,
    TrackerView,
    alert_detail,
    child_view,
    clock_views,
    episode_views,
    kpi_view,
    profile_views,
    queue,
    tracker_view,
)
from broker.models import AlertStatus, MashAlert
from broker.web.access import (
    INTAKE_ROLES,
    actor_of,
    get_intake,
    require_intake,
    require_kpi,
)
from broker.web.work import in_transaction

__all__ = [
    "AssignRequest",
    "DecisionRequest",
    "NotificationRequest",
    "ReviewRequest",
    "StatusAnswer",
    "router",
]

router = APIRouter(prefix="/v1/intake", tags=["intake"])

Intake = Annotated[IntakeContext, Depends(get_intake)]
Staff = Annotated[StaffIdentity, Depends(require_intake)]
Manager = Annotated[StaffIdentity, Depends(require_kpi)]
_USERNAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"


class AssignRequest(BaseModel):
    """Whom to assign an alert to (a staff user name)."""

    assignee: str = Field(pattern=_USERNAME)


class DecisionRequest(BaseModel):
    """The MASH decision on an alert."""

    decision: Decision


class ReviewRequest(BaseModel):
    """A flagged link decided: the candidate it is the same child as, or null if different."""

    same_as: str | None = Field(default=None, pattern=r"^ch-[0-9a-f]{16}$")


class NotificationRequest(BaseModel):
    """An authority was told that the child went missing."""

    authority: str = Field(pattern=r"^[EWSN]\d{8}$")
    notified_at: datetime | None = None


class StatusAnswer(BaseModel):
    """An alert's status after a step."""

    alert_id: int
    status: AlertStatus


@router.get("/alerts", name="intake_queue", summary="The intake queue, most urgent first")
async def list_alerts(
    staff: Staff,
    intake: Intake,
    *,
    status: Annotated[list[AlertStatus] | None, Query()] = None,
    band: Annotated[str | None, Query(pattern=r"^[a-z]{1,16}$")] = None,
    event_type: Annotated[str | None, Query(pattern=r"^[a-z.]{1,32}$")] = None,
    sort: QueueSort = "priority",
) -> list[QueueItem]:
    """Open alerts (or those with the given statuses): ids, codes, priority, decision clock."""
    now = intake.clock()
    return await in_transaction(
        intake,
        lambda s: queue(
            s, intake, now, statuses=status, band=band, event_type=event_type, sort=sort
        ),
    )


@router.get("/alerts/{alert_id}", name="intake_alert", summary="One alert, opened (audited)")
async def get_alert(alert_id: int, staff: Staff, intake: Intake) -> AlertDetail:
    """The disclosed fields, provenance, lawful basis, clocks and history of an alert."""
    now = intake.clock()
    actor = actor_of(staff, INTAKE_ROLES)

    def work(session: Session) -> AlertDetail:
        detail = alert_detail(session, intake, alert_id, now)
        Triage(intake).record_view(session, [alert_id], actor)
        return detail

    return await in_transaction(intake, work)


async def _step(
    intake: IntakeContext, alert_id: int, step: Callable[[Session], None]
) -> StatusAnswer:
    def work(session: Session) -> StatusAnswer:
        step(session)
        return StatusAnswer(alert_id=alert_id, status=_status_of(session, alert_id))

    return await in_transaction(intake, work)


def _status_of(session: Session, alert_id: int) -> AlertStatus:
    alert = session.get(MashAlert, alert_id)
    return AlertStatus(alert.status) if alert is not None else AlertStatus.NEW


@router.post("/alerts/{alert_id}/acknowledge", name="intake_acknowledge")
async def acknowledge(alert_id: int, staff: Staff, intake: Intake) -> StatusAnswer:
    """New → acknowledged."""
    actor = actor_of(staff, INTAKE_ROLES)
    return await _step(intake, alert_id, lambda s: Triage(intake).acknowledge(s, alert_id, actor))


@router.post("/alerts/{alert_id}/assign", name="intake_assign")
async def assign(alert_id: int, body: AssignRequest, staff: Staff, intake: Intake) -> StatusAnswer:
    """Acknowledged → assigned (or re-assigned)."""
    actor = actor_of(staff, INTAKE_ROLES)
    return await _step(
        intake, alert_id, lambda s: Triage(intake).assign(s, alert_id, actor, body.assignee)
    )


@router.post("/alerts/{alert_id}/decision", name="intake_decide")
async def decide(
    alert_id: int, body: DecisionRequest, staff: Staff, intake: Intake
) -> StatusAnswer:
    """Record the decision (meets the one-working-day clock)."""
    actor = actor_of(staff, INTAKE_ROLES)
    return await _step(
        intake, alert_id, lambda s: Triage(intake).decide(s, alert_id, actor, body.decision)
    )


@router.post("/alerts/{alert_id}/close", name="intake_close")
async def close(alert_id: int, staff: Staff, intake: Intake) -> StatusAnswer:
    """Decided → closed."""
    actor = actor_of(staff, INTAKE_ROLES)
    return await _step(intake, alert_id, lambda s: Triage(intake).close(s, alert_id, actor))


@router.get("/children/{child_key}", name="intake_child", summary="A child's timeline (audited)")
async def get_child(child_key: str, staff: Staff, intake: Intake) -> ChildView:
    """Every alert, episode, tracker spell and clock held under a child key."""
    now = intake.clock()
    actor = actor_of(staff, INTAKE_ROLES)

    def work(session: Session) -> ChildView:
        view = child_view(session, intake, child_key, now)
        Triage(intake).record_view(session, [e.alert_id for e in view.timeline], actor)
        return view

    return await in_transaction(intake, work)


@router.post("/reviews/{review_id}", name="intake_review", status_code=204)
async def resolve_review(
    review_id: int, body: ReviewRequest, staff: Staff, intake: Intake
) -> Response:
    """Confirm a flagged link (merging the children) or record that they differ."""
    actor = actor_of(staff, INTAKE_ROLES)
    await in_transaction(
        intake,
        lambda s: Triage(intake).resolve_review(s, review_id, actor, same_as=body.same_as),
    )
    return Response(status_code=204)


@router.get("/episodes", name="intake_episodes", summary="Missing episodes with their clocks")
async def list_episodes(staff: Staff, intake: Intake, open_only: bool = False) -> list[EpisodeView]:
    """Episodes, latest first; ``open_only`` keeps the missing and those with clocks running."""
    now = intake.clock()
    return await in_transaction(
        intake, lambda s: episode_views(s, intake, now, open_only=open_only)
    )


@router.post("/episodes/{episode_id}/notifications", name="intake_notify", status_code=204)
async def record_notification(
    episode_id: str, body: NotificationRequest, staff: Staff, intake: Intake
) -> Response:
    """Record that an authority was told (meets a notification clock)."""
    actor = actor_of(staff, INTAKE_ROLES)
    await in_transaction(
        intake,
        lambda s: Triage(intake).record_notification(
            s, episode_id, body.authority, actor, notified_at=body.notified_at
        ),
    )
    return Response(status_code=204)


@router.get("/clocks", name="intake_clocks", summary="Every clock, overdue first")
async def list_clocks(
    staff: Staff,
    intake: Intake,
    status: Annotated[list[ClockStatus] | None, Query()] = None,
) -> list[ClockView]:
    """Clocks read now, filtered by status (``overdue``, ``due_soon``, ``running``, ``met``)."""
    now = intake.clock()
    return await in_transaction(intake, lambda s: clock_views(s, intake, now, statuses=status))


@router.post("/clocks/{clock_id}/review", name="intake_clock_review", status_code=204)
async def review_clock(clock_id: str, staff: Staff, intake: Intake) -> Response:
    """Record the review of a repeat-missing pattern."""
    actor = actor_of(staff, INTAKE_ROLES)
    await in_transaction(intake, lambda s: Triage(intake).record_review(s, clock_id, actor))
    return Response(status_code=204)


@router.get("/tracker", name="intake_tracker", summary="The CSE tracker (managers)")
async def get_tracker(staff: Manager, intake: Intake) -> TrackerView:
    """Children on the tracker by level today, and every spell (child keys, no names)."""
    today = london_date(intake.clock())
    return await in_transaction(intake, lambda s: tracker_view(s, today))


@router.get("/kpis", name="intake_kpis", summary="CSE tracker KPIs and trend (managers)")
async def get_kpis(staff: Manager, intake: Intake, months: int = Query(12, ge=1, le=36)) -> KpiView:
    """The prevention and protection measures, children by level, and the monthly trend."""
    now = intake.clock()
    return await in_transaction(intake, lambda s: kpi_view(s, now, months=months)[0])


@router.get("/kpis.csv", name="intake_kpis_csv", summary="The KPI table as CSV (managers)")
async def get_kpis_csv(
    staff: Manager, intake: Intake, months: int = Query(12, ge=1, le=36)
) -> Response:
    """Measures, values and bands only: no child keys or names."""
    now = intake.clock()
    _, report, _ = await in_transaction(intake, lambda s: kpi_view(s, now, months=months))
    return _csv(kpi_csv(report), f"cse-kpis-{report.as_of}.csv")


@router.get("/kpis/trend.csv", name="intake_trend_csv", summary="The KPI trend as CSV")
async def get_trend_csv(
    staff: Manager, intake: Intake, months: int = Query(12, ge=1, le=36)
) -> Response:
    """The monthly series of the charts."""
    now = intake.clock()
    _, report, trend = await in_transaction(intake, lambda s: kpi_view(s, now, months=months))
    return _csv(trend_csv(trend), f"cse-kpi-trend-{report.as_of}.csv")


@router.get("/profiles", name="intake_profiles", summary="Strategic profiles (managers)")
async def get_profiles(
    staff: Manager, intake: Intake, months: int = Query(12, ge=1, le=36)
) -> list[ProfileTableView]:
    """Locations, vehicles, associates and victims per month: counts only, small ones hidden."""
    now = intake.clock()
    return await in_transaction(intake, lambda s: profile_views(s, intake, now, months=months))


def _csv(text: str, filename: str) -> Response:
    return Response(
        text,
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="{filename}"'},
    )
