"""The intake web pages under ``/intake``: sign-in, queue, alert, child, episodes, clocks, KPIs.

Server-rendered HTML; forms post back and redirect (303) to the page they came from, so
everything works without script. ``static/intake.js`` only refreshes the queue in place.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request, Response
from fastapi.responses import FileResponse, RedirectResponse
from sqlmodel import Session

from broker.api.auth import CredentialRefused, Role, StaffIdentity
from broker.api.deps import end_session, get_context, refuse, start_session
from broker.intake._time import london_date
from broker.intake.clocks import ClockStatus
from broker.intake.context import IntakeContext
from broker.intake.kpi import PROTECTION_BAND_NOTE, kpi_csv
from broker.intake.tables import Decision
from broker.intake.triage import Triage
from broker.intake.views import (
    CLOCK_LABELS,
    QueueSort,
    alert_detail,
    child_view,
    clock_views,
    episode_views,
    kpi_view,
    profile_views,
    queue,
    tracker_view,
)
from broker.models import AlertStatus
from broker.web.access import INTAKE_ROLES, KPI_ROLES, actor_of, get_intake, page_role
from broker.web.charts import bar_chart, month_bars
from broker.web.render import STATIC_DIR, page, page_headers
from broker.web.work import in_transaction

__all__ = ["STATIC_FILES", "router"]

router = APIRouter(prefix="/intake", include_in_schema=False)

Intake = Annotated[IntakeContext, Depends(get_intake)]
Staff = Annotated[StaffIdentity, Depends(page_role(*INTAKE_ROLES))]
Manager = Annotated[StaffIdentity, Depends(page_role(*KPI_ROLES))]

#: The only files served from ``static/`` (no directory listing, no other paths).
STATIC_FILES = {
    "intake.css": "text/css",
    "intake.js": "text/javascript",
    "favicon.svg": "image/svg+xml",
}

_BANDS = ("immediate", "urgent", "standard", "routine")
_EVENT_TYPES = (
    "missing.reported",
    "missing.updated",
    "missing.found",
    "rhi.completed",
    "care.attendance",
    "cse.screening",
    "case.status",
)
_STATUS_FILTERS = {
    "open": None,
    "new": [AlertStatus.NEW],
    "acknowledged": [AlertStatus.ACKNOWLEDGED],
    "assigned": [AlertStatus.ASSIGNED],
    "decided": [AlertStatus.DECIDED],
    "closed": [AlertStatus.CLOSED],
}


def _common(staff: StaffIdentity, intake: IntakeContext, **extra: Any) -> dict[str, Any]:
    return {
        "staff": staff,
        "is_manager": Role.MANAGER in staff.roles,
        "refresh_seconds": intake.service.settings.intake.refresh_seconds,
        **extra,
    }


def _back(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303, headers=page_headers())


# --------------------------------------------------------------------------- static, sign-in


@router.get("/static/{name}", name="intake_static")
async def static_file(name: str) -> FileResponse:
    """One of the pages' own static files."""
    media = STATIC_FILES.get(name)
    if media is None:
        raise HTTPException(status_code=404)
    return FileResponse(
        STATIC_DIR / name, media_type=media, headers={"cache-control": "max-age=300"}
    )


@router.get("/sign-in", name="intake_sign_in_page")
async def sign_in_page() -> Response:
    """The sign-in form."""
    return page("sign_in.html", staff=None, error=None)


@router.post("/sign-in", name="intake_sign_in")
async def sign_in(
    request: Request,
    username: Annotated[str, Form(min_length=1, max_length=64)],
    password: Annotated[str, Form(min_length=1, max_length=1024)],
) -> Response:
    """Check the user name and password; set the session cookie and go to the queue."""
    context = get_context(request)
    client = request.client.host if request.client is not None else "unknown"
    context.login_limiter.take(f"login:{client}")
    try:
        identity, version = await asyncio.to_thread(
            context.accounts.authenticate, username, password
        )
    except CredentialRefused as exc:
        await refuse(request, exc)
        return page(
            "sign_in.html",
            status_code=401,
            staff=None,
            error="The user name or password is not right.",
        )
    request.state.actor = identity.username
    issued = context.tokens.issue(identity.username, version)
    response = _back("/intake")
    start_session(response, issued, secure=context.tls or context.settings.secure_cookies)
    return response


@router.post("/sign-out", name="intake_sign_out")
async def sign_out(request: Request) -> Response:
    """Clear the session cookie."""
    context = get_context(request)
    response = _back("/intake/sign-in")
    end_session(response, secure=context.tls or context.settings.secure_cookies)
    return response


# --------------------------------------------------------------------------- queue


def _queue_context(
    intake: IntakeContext, status: str, band: str | None, event_type: str | None, sort: str
) -> Callable[[Session], dict[str, Any]]:
    now = intake.clock()
    chosen_sort: QueueSort = sort if sort in ("priority", "received", "due") else "priority"  # type: ignore[assignment]

    def work(session: Session) -> dict[str, Any]:
        items = queue(
            session,
            intake,
            now,
            statuses=_STATUS_FILTERS.get(status),
            band=band if band in _BANDS else None,
            event_type=event_type if event_type in _EVENT_TYPES else None,
            sort=chosen_sort,
        )
        attention = clock_views(
            session, intake, now, statuses=[ClockStatus.OVERDUE, ClockStatus.DUE_SOON]
        )
        return {
            "items": items,
            "overdue": sum(1 for c in attention if c.status == ClockStatus.OVERDUE),
            "due_soon": sum(1 for c in attention if c.status == ClockStatus.DUE_SOON),
            "now": now,
            "filters": {
                "status": status,
                "band": band or "",
                "event_type": event_type or "",
                "sort": chosen_sort,
            },
        }

    return work


_Filter = Annotated[str | None, Query(max_length=32)]


@router.get("", name="intake_queue_page")
async def queue_page(
    staff: Staff,
    intake: Intake,
    *,
    status: Annotated[str, Query(max_length=16)] = "open",
    band: _Filter = None,
    event_type: _Filter = None,
    sort: Annotated[str, Query(max_length=16)] = "priority",
) -> Response:
    """The intake queue, most urgent first, refreshing itself as alerts arrive."""
    data = await in_transaction(intake, _queue_context(intake, status, band, event_type, sort))
    return page(
        "queue.html",
        **_common(staff, intake, **data),
        bands=_BANDS,
        event_types=_EVENT_TYPES,
        statuses=list(_STATUS_FILTERS),
    )


@router.get("/queue/live", name="intake_queue_live")
async def queue_live(
    staff: Staff,
    intake: Intake,
    *,
    status: Annotated[str, Query(max_length=16)] = "open",
    band: _Filter = None,
    event_type: _Filter = None,
    sort: Annotated[str, Query(max_length=16)] = "priority",
) -> Response:
    """The live part of the queue page (clock banner and table), for the refresh script."""
    data = await in_transaction(intake, _queue_context(intake, status, band, event_type, sort))
    return page("queue_live.html", **_common(staff, intake, **data))


# --------------------------------------------------------------------------- alert


@router.get("/alerts/{alert_id}", name="intake_alert_page")
async def alert_page(alert_id: int, staff: Staff, intake: Intake) -> Response:
    """An alert opened: its content, provenance, clocks and history (the opening is audited)."""
    now = intake.clock()
    actor = actor_of(staff, INTAKE_ROLES)

    def work(session: Session) -> Any:
        detail = alert_detail(session, intake, alert_id, now)
        Triage(intake).record_view(session, [alert_id], actor)
        return detail

    detail = await in_transaction(intake, work)
    return page(
        "alert.html",
        **_common(staff, intake),
        detail=detail,
        decisions=list(Decision),
        now=now,
    )


_STEPS = ("acknowledge", "assign", "decide", "close")


@router.post("/alerts/{alert_id}/{step}", name="intake_alert_step")
async def alert_step(
    alert_id: int,
    step: str,
    staff: Staff,
    intake: Intake,
    *,
    assignee: Annotated[str | None, Form(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")] = None,
    decision: Annotated[Decision | None, Form()] = None,
) -> Response:
    """Move an alert on: acknowledge, assign, record the decision, close."""
    if step not in _STEPS:
        raise HTTPException(status_code=404)
    actor = actor_of(staff, INTAKE_ROLES)
    triage = Triage(intake)

    def work(session: Session) -> None:
        if step == "acknowledge":
            triage.acknowledge(session, alert_id, actor)
        elif step == "assign":
            triage.assign(session, alert_id, actor, assignee or staff.username)
        elif step == "decide":
            if decision is None:
                raise HTTPException(status_code=422)
            triage.decide(session, alert_id, actor, decision)
        else:
            triage.close(session, alert_id, actor)

    await in_transaction(intake, work)
    return _back(f"/intake/alerts/{alert_id}")


@router.post("/reviews/{review_id}", name="intake_review_step")
async def review_step(
    review_id: int,
    staff: Staff,
    intake: Intake,
    *,
    same_as: Annotated[str, Form(pattern=r"^(ch-[0-9a-f]{16}|different)$")],
    back: Annotated[int, Form()],
) -> Response:
    """Decide a flagged link from the alert page."""
    actor = actor_of(staff, INTAKE_ROLES)
    target = None if same_as == "different" else same_as
    await in_transaction(
        intake, lambda s: Triage(intake).resolve_review(s, review_id, actor, same_as=target)
    )
    return _back(f"/intake/alerts/{back}")


# --------------------------------------------------------------------------- child


@router.get("/children/{child_key}", name="intake_child_page")
async def child_page(child_key: str, staff: Staff, intake: Intake) -> Response:
    """A child's timeline: every alert, episode, tracker spell and clock (audited)."""
    now = intake.clock()
    actor = actor_of(staff, INTAKE_ROLES)

    def work(session: Session) -> Any:
        view = child_view(session, intake, child_key, now)
        Triage(intake).record_view(session, [e.alert_id for e in view.timeline], actor)
        return view

    view = await in_transaction(intake, work)
    return page("child.html", **_common(staff, intake), child=view, now=now)


# --------------------------------------------------------------------------- episodes, clocks


@router.get("/episodes", name="intake_episodes_page")
async def episodes_page(
    staff: Staff, intake: Intake, *, show: Annotated[str, Query(max_length=8)] = "open"
) -> Response:
    """Missing episodes with their clocks (the open ones by default)."""
    now = intake.clock()
    episodes = await in_transaction(
        intake, lambda s: episode_views(s, intake, now, open_only=show != "all")
    )
    return page(
        "episodes.html",
        **_common(staff, intake),
        episodes=episodes,
        show=show,
        now=now,
        borough=intake.borough,
    )


@router.post("/episodes/{episode_id}/notifications", name="intake_notify_step")
async def notify_step(
    episode_id: str,
    staff: Staff,
    intake: Intake,
    *,
    authority: Annotated[str, Form(pattern=r"^[EWSN]\d{8}$")],
) -> Response:
    """Record that an authority was told the child went missing (now)."""
    actor = actor_of(staff, INTAKE_ROLES)
    await in_transaction(
        intake,
        lambda s: Triage(intake).record_notification(s, episode_id, authority, actor),
    )
    return _back("/intake/episodes")


@router.get("/clocks", name="intake_clocks_page")
async def clocks_page(
    staff: Staff, intake: Intake, *, show: Annotated[str, Query(max_length=8)] = "open"
) -> Response:
    """Every clock, overdue first; the met ones only with ``show=all``."""
    now = intake.clock()
    wanted = None if show == "all" else list(set(ClockStatus) - {ClockStatus.MET})
    clocks = await in_transaction(intake, lambda s: clock_views(s, intake, now, statuses=wanted))
    return page(
        "clocks.html",
        **_common(staff, intake),
        clocks=clocks,
        show=show,
        now=now,
        labels=CLOCK_LABELS,
    )


@router.post("/clocks/{clock_id}/review", name="intake_clock_review_step")
async def clock_review_step(clock_id: str, staff: Staff, intake: Intake) -> Response:
    """Record the review of a repeat-missing pattern."""
    actor = actor_of(staff, INTAKE_ROLES)
    await in_transaction(intake, lambda s: Triage(intake).record_review(s, clock_id, actor))
    return _back("/intake/clocks")


# --------------------------------------------------------------------------- KPIs


def _one_place(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


@router.get("/kpis", name="intake_kpis_page")
async def kpis_page(staff: Manager, intake: Intake) -> Response:
    """The CSE tracker and its KPIs, with the trend charts (managers)."""
    now = intake.clock()
    today = london_date(now)

    def work(session: Session) -> Any:
        return kpi_view(session, now)[0], tracker_view(session, today)

    view, tracker = await in_transaction(intake, work)
    level_chart = bar_chart(
        month_bars([p.month for p in view.trend], [p.level_3 for p in view.trend]),
        chart_id="chart-level-3",
        title="Children at CSE risk level 3 at each month end",
        description="; ".join(f"{p.month}: {p.level_3}" for p in view.trend),
    )
    prevention_chart = bar_chart(
        month_bars(
            [p.month for p in view.trend],
            [
                None if p.prevention_percent is None else round(p.prevention_percent, 1)
                for p in view.trend
            ],
        ),
        chart_id="chart-prevention",
        title="Removed from the tracker within three months due to successful intervention",
        description="; ".join(
            f"{p.month}: "
            + (f"{p.prevention_percent:.1f}%" if p.prevention_percent is not None else "no data")
            for p in view.trend
        ),
        unit="%",
        maximum=100,
        targets=[(90, "90% met"), (95, "95% exceeded")],
    )
    return page(
        "kpis.html",
        **_common(staff, intake),
        kpi=view,
        tracker=tracker,
        level_chart=level_chart,
        prevention_chart=prevention_chart,
        band_note=PROTECTION_BAND_NOTE,
        now=now,
    )


@router.get("/profiles", name="intake_profiles_page")
async def profiles_page(staff: Manager, intake: Intake) -> Response:
    """Profiles of locations, vehicles, associates and victims for the strategic group."""
    now = intake.clock()
    tables = await in_transaction(intake, lambda s: profile_views(s, intake, now))
    return page("profiles.html", **_common(staff, intake), tables=tables, now=now)


@router.get("/kpis.csv", name="intake_kpis_csv_page")
async def kpis_csv_page(staff: Manager, intake: Intake) -> Response:
    """The KPI table as CSV for the strategic group's report."""
    now = intake.clock()
    _, report, _ = await in_transaction(intake, lambda s: kpi_view(s, now))
    return Response(
        kpi_csv(report),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="cse-kpis-{report.as_of}.csv"'},
    )
