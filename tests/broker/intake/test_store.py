"""The intake store: what storing an alert sets off, staff steps, and what the pages read."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import event as sa_event
from sqlalchemy import select, text
from sqlmodel import Session, col
from structlog.testing import capture_logs

from broker.audit import verify
from broker.db import session_scope
from broker.exceptions import DecryptionFailed
from broker.intake import consumer as consumer_module
from broker.intake import store as store_module
from broker.intake.clocks import ClockKind, ClockStatus
from broker.intake.consumer import IntakeConsumer, StoreOutcome
from broker.intake.context import IntakeContext, parse_event
from broker.intake.opening import DisclosureOpener
from broker.intake.store import IntakeStore, ParsedBatch
from broker.intake.tables import (
    Decision,
    IntakeAlert,
    IntakeChild,
    IntakeClock,
    IntakeEpisode,
    IntakeTracker,
    LinkReview,
)
from broker.intake.triage import Actor, TransitionRefused, Triage
from broker.intake.views import (
    alert_detail,
    child_view,
    clock_views,
    kpi_view,
    profile_views,
    queue,
)
from broker.messaging import RejectMessage
from broker.models import AlertStatus, AuditEntry, AuditKind, MashAlert
from broker.runtime import audit_public_keys
from broker.service import Service
from schemas import DisclosureClaims
from schemas.common import make_test_nhs_number
from schemas.events import (
    AttendanceSetting,
    CaseStatus,
    CseLevel,
    CseTrackerEntry,
    Event,
    MissingFound,
    MissingReported,
    RemovalReason,
    RiskGrade,
    SafeguardingFlag,
    UnscheduledCareAttendance,
)
from schemas.person import LookedAfter
from tests.broker.intake.conftest import Deliver, frozen, seal_for_mash
from tests.broker.intake.factories import SLOUGH, WAM, child, event, utc

#: "Now" for every reading in these tests: a Tuesday in winter (GMT).
NOW = utc(2026, 11, 24, 10, 0)
SAM = Actor(name="sam.intake", role="intake")


def reported(episode: str, at, subject, grade: RiskGrade = RiskGrade.MEDIUM):
    return event(
        MissingReported(episode_id=episode, risk_grade=grade, reported_at=at, missing_from=WAM),
        subject=subject,
        at=at,
        correlation_id=episode,
    )


def found(episode: str, at, subject):
    return event(
        MissingFound(episode_id=episode, found_at=at, returned_at=at),
        subject=subject,
        at=at,
        correlation_id=episode,
    )


@pytest.fixture
def context(intake_service: Service) -> IntakeContext:
    return IntakeContext.load(intake_service, clock=frozen(NOW))


def session_of(service: Service) -> Session:
    return service.sessions()


def test_events_about_one_child_link_by_nhs_number_and_fold_into_one_episode(
    intake_service: Service, deliver: Deliver, context: IntakeContext
) -> None:
    maisie = child()
    first = deliver(reported("EP-1", utc(2026, 11, 20, 21, 30), maisie, RiskGrade.HIGH))
    second = deliver(found("EP-1", utc(2026, 11, 22, 8, 0), maisie))
    with session_scope(intake_service.sessions) as session:
        a, b = session.get(IntakeAlert, first), session.get(IntakeAlert, second)
        assert a is not None
        assert b is not None
        assert (a.link, b.link, b.linked_by) == ("new", "linked", "nhs_number")
        assert a.child_key == b.child_key
        assert a.band == "immediate"
        assert "police risk grade high" in a.reasons
        episode = session.get(IntakeEpisode, "EP-1")
        assert episode is not None
        assert episode.reported_at == utc(2026, 11, 20, 21, 30)
        assert episode.found_at == utc(2026, 11, 22, 8, 0)
        assert episode.risk_grade == "high"
        rhi = session.get(IntakeClock, "return_interview:EP-1")
        assert rhi is not None
        assert rhi.due_at == utc(2026, 11, 25, 8, 0)  # 72 hours after return
        readings = {c.kind: c for c in clock_views(session, context, NOW)}
    # Read at the frozen "now": 22 hours left, so due soon (within 24 h).
    assert readings["return_interview"].status is ClockStatus.DUE_SOON
    assert readings["return_interview"].seconds_left == 22 * 3600


def test_identifiers_are_kept_only_as_keyed_hashes(
    intake_service: Service, deliver: Deliver
) -> None:
    maisie = child(police="TVP/123/26", paris="P-100200")
    deliver(reported("EP-1", utc(2026, 11, 20, 21, 30), maisie))
    nhs = make_test_nhs_number(7)
    with session_scope(intake_service.sessions) as session:
        row = session.execute(select(IntakeChild)).scalar_one()
        stored = [row.nhs_number, row.paris_id, row.police_person_ref, row.family_name]
        assert all(value is not None and len(value) == 64 for value in stored)
        # Nothing in any intake table holds the identifiers, names or birth date in clear.
        dump = " ".join(
            str(values)
            for table in ("intake_child", "intake_alert", "intake_episode", "intake_clock")
            for values in session.execute(text(f"SELECT * FROM {table}")).all()  # noqa: S608
        )
    for secret in (nhs, "P-100200", "TVP/123/26", "Thornlow", "Maisie", "2012-05-17"):
        assert secret not in dump


def test_a_name_and_birth_match_is_kept_apart_until_a_person_confirms_it(
    intake_service: Service, deliver: Deliver, context: IntakeContext
) -> None:
    known = deliver(reported("EP-1", utc(2026, 11, 1, 20, 0), child(nhs=7)))
    # The same name and date of birth, no NHS number, a police reference instead.
    doubtful = deliver(
        reported("EP-2", utc(2026, 11, 20, 20, 0), child(nhs=None, police="TVP/9/26"))
    )
    with session_scope(intake_service.sessions) as session:
        a, b = session.get(IntakeAlert, known), session.get(IntakeAlert, doubtful)
        assert a is not None
        assert b is not None
        assert b.link == "possible"
        assert b.child_key != a.child_key  # never merged silently
        review = session.execute(select(LinkReview)).scalar_one()
        assert review.candidates == [a.child_key]
        assert review.status == "open"
        assert review.id is not None
        assert any(r.review_open for r in queue(session, context, NOW))
        Triage(context).resolve_review(session, review.id, SAM, same_as=a.child_key)
    with session_scope(intake_service.sessions) as session:
        b = session.get(IntakeAlert, doubtful)
        assert b is not None
        assert a is not None
        assert b.child_key == a.child_key
        assert session.get(IntakeEpisode, "EP-2").child_key == a.child_key  # type: ignore[union-attr]
        view = child_view(session, context, a.child_key, NOW)  # type: ignore[arg-type]
        assert [e.alert_id for e in view.timeline] == [known, doubtful]
        entry = session.execute(
            select(AuditEntry).where(col(AuditEntry.reason) == "link_confirmed")
        ).scalar_one()
        assert entry.actor == "sam.intake"
        assert verify(session, audit_public_keys(intake_service)).ok


def test_conflicting_identifiers_gather_under_one_provisional_child(
    intake_service: Service, deliver: Deliver
) -> None:
    deliver(reported("EP-1", utc(2026, 11, 1, 20, 0), child(nhs=7, police="TVP/1/26")))
    # Same NHS number, a different police reference: not linked, flagged.
    second = deliver(reported("EP-2", utc(2026, 11, 5, 20, 0), child(nhs=7, police="TVP/2/26")))
    third = deliver(found("EP-2", utc(2026, 11, 6, 9, 0), child(nhs=7, police="TVP/2/26")))
    with session_scope(intake_service.sessions) as session:
        b, c = session.get(IntakeAlert, second), session.get(IntakeAlert, third)
        assert b is not None
        assert c is not None
        assert (b.link, c.link) == ("conflict", "conflict")
        assert b.child_key == c.child_key
        reviews = session.execute(select(LinkReview)).scalars().all()
        assert len(reviews) == 1
        assert reviews[0].conflicting == ["police_person_ref"]
        assert session.execute(select(IntakeChild)).scalars().all().__len__() == 2


def test_three_episodes_in_90_days_raise_a_repeat_missing_clock_and_score(
    intake_service: Service, deliver: Deliver, context: IntakeContext
) -> None:
    maisie = child()
    for n, day in enumerate((1, 10, 20), start=1):
        last = deliver(reported(f"EP-{n}", utc(2026, 11, day, 20, 0), maisie, RiskGrade.LOW))
    with session_scope(intake_service.sessions) as session:
        triage = session.get(IntakeAlert, last)
        assert triage is not None
        assert "repeat missing: 3 episodes in window" in triage.reasons
        clock = session.execute(
            select(IntakeClock).where(col(IntakeClock.kind) == "repeat_missing")
        ).scalar_one()
        assert clock.instance == "EP-3"
        # Friday 20 November 20:00, after hours: reviewed by the close of Monday.
        assert clock.due_at == utc(2026, 11, 23, 17, 0)
        Triage(context).record_review(session, clock.clock_id, SAM)
        with pytest.raises(TransitionRefused):
            Triage(context).record_review(session, clock.clock_id, SAM)
    # A fourth episode does not raise another pattern within the window, and the review stays.
    deliver(reported("EP-4", utc(2026, 11, 21, 20, 0), maisie))
    with session_scope(intake_service.sessions) as session:
        clocks = (
            session.execute(select(IntakeClock).where(col(IntakeClock.kind) == "repeat_missing"))
            .scalars()
            .all()
        )
        assert [c.met_at for c in clocks] == [NOW]


def test_a_child_placed_here_by_slough_starts_the_placing_authority_clock(
    intake_service: Service, deliver: Deliver, context: IntakeContext
) -> None:
    placed = child(
        nhs=11, home=SLOUGH, looked_after=LookedAfter(responsible_authority=SLOUGH, placed_in=WAM)
    )
    alert = deliver(reported("EP-9", utc(2026, 11, 24, 9, 0), placed))
    with session_scope(intake_service.sessions) as session:
        clock = session.get(IntakeClock, "notify_placing_authority:EP-9")
        assert clock is not None
        assert (clock.authority, clock.due_at, clock.met_at) == (
            SLOUGH,
            utc(2026, 11, 24, 10, 0),
            None,
        )
        triage = session.get(IntakeAlert, alert)
        assert triage is not None
        assert "placed out of area" in triage.reasons
        Triage(context).record_notification(
            session, "EP-9", SLOUGH, SAM, notified_at=utc(2026, 11, 24, 9, 40)
        )
    with session_scope(intake_service.sessions) as session:
        clock = session.get(IntakeClock, "notify_placing_authority:EP-9")
        assert clock is not None
        assert clock.met_at == utc(2026, 11, 24, 9, 40)


def test_our_child_placed_elsewhere_is_told_to_us_when_the_alert_arrives(
    intake_service: Service, deliver: Deliver
) -> None:
    ours = child(nhs=12, looked_after=LookedAfter(responsible_authority=WAM, placed_in=SLOUGH))
    event_ = reported("EP-8", utc(2026, 11, 24, 9, 0), ours)
    event_ = event_.model_copy(
        update={"body": event_.body.model_copy(update={"missing_from": SLOUGH})}
    )
    alert_id = deliver(event_)
    with session_scope(intake_service.sessions) as session:
        clock = session.get(IntakeClock, "notify_this_borough:EP-8")
        alert = session.get(MashAlert, alert_id)
        assert clock is not None
        assert alert is not None
        assert clock.met_at == alert.received_at


def test_the_triage_workflow_is_audited_and_meets_the_decision_clock(
    intake_service: Service, deliver: Deliver, context: IntakeContext
) -> None:
    alert_id = deliver(reported("EP-1", utc(2026, 11, 20, 21, 30), child()))
    triage = Triage(context)
    with session_scope(intake_service.sessions) as session:
        with pytest.raises(TransitionRefused, match="from new to decided"):
            triage.decide(session, alert_id, SAM, Decision.S47_ENQUIRY)
        triage.record_view(session, [alert_id], SAM)
        triage.acknowledge(session, alert_id, SAM)
        triage.assign(session, alert_id, SAM, "jo.social")
        triage.decide(session, alert_id, SAM, Decision.STRATEGY_DISCUSSION)
        triage.close(session, alert_id, SAM)
    with session_scope(intake_service.sessions) as session:
        detail = alert_detail(session, context, alert_id, NOW)
        assert detail.item.status is AlertStatus.CLOSED
        assert [h.action for h in detail.history] == [
            "viewed",
            "acknowledged",
            "assigned",
            "decided",
            "closed",
        ]
        assert detail.history[2].assignee == "jo.social"
        assert detail.rule_id == "missing-to-mash"
        assert {"subject.nhs_number", "body.risk_grade"} <= {f.path for f in detail.fields}
        assert detail.item.decision_clock is not None
        assert detail.item.decision_clock.status is ClockStatus.MET
        reasons = (
            session.execute(
                select(col(AuditEntry.reason))
                .where(col(AuditEntry.kind) == AuditKind.OPENED)
                .order_by(col(AuditEntry.seq))
            )
            .scalars()
            .all()
        )
        assert reasons == [
            "viewed",
            "acknowledged",
            "assigned",
            "decided:strategy_discussion",
            "closed",
        ]
        assert verify(session, audit_public_keys(intake_service)).ok


def test_case_status_keeps_the_tracker_and_feeds_the_kpis(
    intake_service: Service, deliver: Deliver, context: IntakeContext
) -> None:
    maisie = child(paris="P-100200")

    def status(at: datetime, level: CseLevel, removed: date | None = None) -> Event:
        entry = CseTrackerEntry(
            level=level,
            identified_on=date(2026, 6, 2),
            removed_on=removed,
            removal_reason=RemovalReason.SUCCESSFUL_INTERVENTION if removed else None,
        )
        return event(CaseStatus(as_of=at, cse_tracker=entry), subject=maisie, at=at)

    deliver(status(utc(2026, 6, 2, 12), CseLevel.LEVEL_2))
    deliver(status(utc(2026, 7, 1, 12), CseLevel.LEVEL_3))
    with session_scope(intake_service.sessions) as session:
        spell = session.execute(select(IntakeTracker)).scalar_one()
        assert spell.level == 3
        assert spell.history == [["2026-06-02", 2], ["2026-07-01", 3]]
        view, _, _ = kpi_view(session, utc(2026, 7, 20, 12))
        assert view.protection_level_3 == 1
        assert view.protection_band == "significantly exceeded"
    deliver(status(utc(2026, 8, 15, 12), CseLevel.LEVEL_3, removed=date(2026, 8, 15)))
    with session_scope(intake_service.sessions) as session:
        view, _, _ = kpi_view(session, NOW)
        assert view.protection_level_3 == 0
        assert (view.prevented, view.denominator, view.prevention_band) == (
            1,
            1,
            "significantly exceeded",
        )
        june = next(p for p in view.trend if p.month == "2026-06")
        july = next(p for p in view.trend if p.month == "2026-07")
        assert (june.level_3, july.level_3) == (0, 1)


def test_an_attendance_is_scored_from_its_flags(intake_service: Service, deliver: Deliver) -> None:
    attendance = UnscheduledCareAttendance(
        setting=AttendanceSetting.SEXUAL_HEALTH,
        site="RDU01",
        arrived_at=utc(2026, 11, 20, 15, 0),
        flags=(SafeguardingFlag.UNDER_16_PREGNANCY,),
    )
    alert_id = deliver(event(attendance, subject=child(), at=utc(2026, 11, 20, 15, 0)))
    with session_scope(intake_service.sessions) as session:
        triage = session.get(IntakeAlert, alert_id)
        assert triage is not None
        assert triage.band == "urgent"
        assert "flag: under-16 pregnancy" in triage.reasons


def test_profiles_count_victims_without_naming_them(
    intake_service: Service, deliver: Deliver, context: IntakeContext
) -> None:
    attendance = UnscheduledCareAttendance(
        setting=AttendanceSetting.EMERGENCY_DEPARTMENT,
        site="RDU01",
        arrived_at=utc(2026, 11, 20, 15, 0),
        flags=(SafeguardingFlag.CSE_CONCERN,),
    )
    for _ in range(2):  # the same child twice counts once
        deliver(event(attendance, subject=child(), at=utc(2026, 11, 20, 15, 0)))
    with session_scope(intake_service.sessions) as session:
        tables = {t.title: t for t in profile_views(session, context, NOW)}
    by_sex = tables["victims by sex"]
    assert [(r.period, r.dimensions, r.count) for r in by_sex.rows] == [
        ("2026-11", ["female"], "<5")
    ]
    assert "Thornlow" not in str(list(tables.values()))


def test_an_episode_folds_from_stored_facts_without_opening_earlier_alerts(
    intake_service: Service,
    deliver: Deliver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    maisie = child()
    deliver(reported("EP-1", utc(2026, 11, 20, 21, 30), maisie, RiskGrade.HIGH))

    def refuse(self: IntakeContext, alert: MashAlert) -> object:
        raise AssertionError(f"alert {alert.id} was opened again")

    monkeypatch.setattr(IntakeContext, "open_alert", refuse)
    second = deliver(found("EP-1", utc(2026, 11, 22, 8, 0), maisie))
    with session_scope(intake_service.sessions) as session:
        row = session.get(IntakeAlert, second)
        assert row is not None
        assert row.band != "untriaged"
        assert row.episode_fact is not None
        assert row.episode_fact["kind"] == "found"
        episode = session.get(IntakeEpisode, "EP-1")
        assert episode is not None
        assert (episode.risk_grade, episode.found_at) == ("high", utc(2026, 11, 22, 8, 0))


def test_an_alert_stored_without_its_fact_is_opened_to_fold_its_episode(
    intake_service: Service, deliver: Deliver
) -> None:
    maisie = child()
    first = deliver(reported("EP-1", utc(2026, 11, 20, 21, 30), maisie, RiskGrade.HIGH))
    with session_scope(intake_service.sessions) as session:
        row = session.get(IntakeAlert, first)
        assert row is not None
        row.episode_fact = None  # as stored before facts were kept
        session.add(row)
    deliver(found("EP-1", utc(2026, 11, 22, 8, 0), maisie))
    with session_scope(intake_service.sessions) as session:
        episode = session.get(IntakeEpisode, "EP-1")
        assert episode is not None
        assert episode.reported_at == utc(2026, 11, 20, 21, 30)
        assert (episode.risk_grade, episode.found_at) == ("high", utc(2026, 11, 22, 8, 0))


def test_a_fault_in_triage_keeps_the_alert_in_the_queue(
    intake_service: Service,
    consumer: IntakeConsumer,
    deliver: Deliver,
    context: IntakeContext,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug in the clocks")

    monkeypatch.setattr(IntakeStore, "on_alert", broken)
    alert_id = deliver(reported("EP-1", utc(2026, 11, 20, 21, 30), child()))
    with session_scope(intake_service.sessions) as session:
        assert session.get(IntakeAlert, alert_id) is None
        [item] = queue(session, context, NOW)
    assert (item.alert_id, item.triaged, item.band) == (alert_id, False, "untriaged")


def test_the_queue_puts_the_most_urgent_first_and_filters(
    intake_service: Service, deliver: Deliver, context: IntakeContext
) -> None:
    low = deliver(reported("EP-1", utc(2026, 11, 20, 9, 0), child(nhs=21), RiskGrade.LOW))
    high = deliver(reported("EP-2", utc(2026, 11, 20, 10, 0), child(nhs=22), RiskGrade.HIGH))
    with session_scope(intake_service.sessions) as session:
        assert [i.alert_id for i in queue(session, context, NOW)] == [high, low]
        assert [i.alert_id for i in queue(session, context, NOW, band="immediate")] == [high]
        assert queue(session, context, NOW, statuses=[AlertStatus.CLOSED]) == []
        newest = queue(session, context, NOW, sort="received")
        assert [i.alert_id for i in newest] == [high, low]
        due = [i.decision_clock for i in queue(session, context, NOW, sort="due")]
        assert all(c is not None and c.kind == ClockKind.MASH_DECISION.value for c in due)
        assert due[0] is not None
        assert due[0].due_at - due[0].started_at <= timedelta(days=4)


def _break_triage_of(monkeypatch: pytest.MonkeyPatch, faulty: UUID) -> None:
    """Make the triage of the alert of event ``faulty`` fail (as a bug would), others not."""
    original = IntakeStore.on_alert

    def sometimes_broken(
        store: IntakeStore, session: Session, alert: MashAlert, claims: DisclosureClaims
    ) -> None:
        if alert.event_id == faulty:
            raise RuntimeError("a bug in the clocks")
        original(store, session, alert, claims)

    monkeypatch.setattr(IntakeStore, "on_alert", sometimes_broken)


def _store_all(intake_service: Service, consumer: IntakeConsumer, events: list[Event]) -> None:
    """Seal each event for the MASH and store them in one batch; every one is stored."""
    outcomes = consumer.store_many(
        [(seal_for_mash(intake_service, event), None) for event in events]
    )
    assert outcomes == [StoreOutcome.STORED] * len(events)


def test_a_fault_in_one_alert_of_a_batch_leaves_the_others_triaged(
    intake_service: Service,
    consumer: IntakeConsumer,
    context: IntakeContext,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The batch's one savepoint is rolled back and each alert triaged on its own."""
    events = [reported(f"EP-{n}", utc(2026, 11, 20, 9, n), child(nhs=30 + n)) for n in range(4)]
    faulty = events[2].metadata.event_id
    _break_triage_of(monkeypatch, faulty)
    _store_all(intake_service, consumer, events)
    with session_scope(intake_service.sessions) as session:
        triaged = {
            alert.event_id: session.get(IntakeAlert, alert.id) is not None
            for alert in session.execute(select(MashAlert)).scalars()
        }
        episodes = set(session.execute(select(col(IntakeEpisode.episode_id))).scalars())
    assert triaged == {e.metadata.event_id: e.metadata.event_id != faulty for e in events}
    assert episodes == {"EP-0", "EP-1", "EP-3"}


def test_alerts_triaged_one_by_one_in_one_transaction_find_what_the_first_wrote(
    intake_service: Service,
    consumer: IntakeConsumer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """After a batch's triage fails, its alerts are triaged one by one in the same
    transaction: the child, episode and clocks the first wrote (by INSERT, not through
    the session) are found by the next, which links to that child and folds that episode
    instead of making them again."""
    subject = child(nhs=90)
    events = [
        reported("EP-90", utc(2026, 11, 20, 9, 0), subject),
        found("EP-90", utc(2026, 11, 20, 15, 0), subject),
        reported("EP-91", utc(2026, 11, 21, 9, 0), child(nhs=91)),
    ]
    faulty = events[2].metadata.event_id
    _break_triage_of(monkeypatch, faulty)
    _store_all(intake_service, consumer, events)
    with session_scope(intake_service.sessions) as session:
        children = list(session.execute(select(IntakeChild)).scalars())
        triage_rows = list(session.execute(select(IntakeAlert)).scalars())
        episode = session.get(IntakeEpisode, "EP-90")
        clocks = list(
            session.execute(
                select(IntakeClock).where(col(IntakeClock.episode_id) == "EP-90")
            ).scalars()
        )
    assert len(children) == 1, "the second alert made its child again"
    assert {row.child_key for row in triage_rows} == {children[0].child_key}
    assert [row.link for row in sorted(triage_rows, key=lambda r: r.alert_id)] == [
        "new",
        "linked",
    ]
    assert episode is not None
    assert episode.child_key == children[0].child_key
    assert episode.found_at == utc(2026, 11, 20, 15, 0)
    assert clocks, "the episode's clocks were not written"
    assert all(clock.child_key == children[0].child_key for clock in clocks)


@pytest.mark.parametrize("batch", [True, False], ids=["batch", "one-by-one"])
def test_stored_and_triaged_alerts_are_logged_by_id_once_their_transaction_has_committed(
    intake_service: Service,
    consumer: IntakeConsumer,
    monkeypatch: pytest.MonkeyPatch,
    batch: bool,
) -> None:
    """``alert_stored`` and ``alert_triaged`` are written after the commit (the write gate
    is not held for the log), once per new alert, with ids only; a replay logs neither."""
    events = [reported(f"EP-{n}", utc(2026, 11, 20, 9, n), child(nhs=60 + n)) for n in range(3)]
    tokens = [(seal_for_mash(intake_service, event), None) for event in events]
    committed: list[int] = []

    def count(_session: Session) -> None:
        committed.append(1)

    logged_after: dict[str, list[int]] = {"alert_stored": [], "alert_triaged": []}
    for module in (consumer_module, store_module):
        original = module._log.info

        def counting_info(message: str, _original: Any = original, **values: object) -> None:
            if message in logged_after:
                logged_after[message].append(len(committed))
            _original(message, **values)

        monkeypatch.setattr(module._log, "info", counting_info)
    sa_event.listen(intake_service.sessions, "after_commit", count)
    with capture_logs() as logs:
        if batch:
            outcomes = consumer.store_many(tokens)
            last_commit = [len(committed)] * 3  # the batch's transaction commits last
        else:
            outcomes, last_commit = [], []
            for token, message_id in tokens:
                outcomes.append(consumer.store(token, message_id))
                last_commit.append(len(committed))
        with pytest.raises(RejectMessage):
            consumer.store(*tokens[0])  # the same token again: a replay, no alert
    sa_event.remove(intake_service.sessions, "after_commit", count)
    assert outcomes == [StoreOutcome.STORED] * 3
    with session_scope(intake_service.sessions) as session:
        ids = sorted(session.execute(select(col(MashAlert.id))).scalars())
    for name, allowed in (
        ("alert_stored", {"component", "event", "log_level", "alert_id", "event_type"}),
        (
            "alert_triaged",
            {"component", "event", "log_level", "alert_id", "band", "link", "episode"},
        ),
    ):
        entries = [entry for entry in logs if entry["event"] == name]
        assert sorted(entry["alert_id"] for entry in entries) == ids, name
        assert all(set(entry) <= allowed for entry in entries), name
        assert logged_after[name] == last_commit, f"{name} logged before its commit"


def test_an_alert_stored_by_another_intake_after_the_batch_looked_is_still_one_alert(
    intake_service: Service, consumer: IntakeConsumer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch reads which of its events have alerts before it takes the write lock; one
    stored meanwhile (by a second intake process) breaks the alerts' unique key, the batch
    is split, and the delivery stored alone is the duplicate it is."""
    resent = reported("EP-70", utc(2026, 11, 20, 9), child(nhs=70))
    first = seal_for_mash(intake_service, resent)
    assert consumer.store_many([(first, None)]) == [StoreOutcome.STORED]
    # The same event sealed again (a new token id), looked up as if not yet stored.
    again = seal_for_mash(intake_service, resent)
    other = reported("EP-71", utc(2026, 11, 20, 9), child(nhs=71))
    original = IntakeConsumer._stored_events
    looks: list[int] = []

    def looked_too_early(
        self: IntakeConsumer, session: Session, batch: Sequence[DisclosureClaims]
    ) -> set[UUID]:
        looks.append(len(batch))
        # The batch's look, before the write lock, misses it; later looks find it.
        return set() if len(looks) == 1 else original(self, session, batch)

    monkeypatch.setattr(IntakeConsumer, "_stored_events", looked_too_early)
    with capture_logs() as logs:
        outcomes = consumer._store_batch(
            [(again, "m-again", None), (seal_for_mash(intake_service, other), "m-other", None)]
        )
    assert outcomes == [StoreOutcome.DUPLICATE, StoreOutcome.STORED]
    assert [entry["error"] for entry in logs if entry["event"] == "batch_split"] == [
        "IntegrityError"
    ]
    with session_scope(intake_service.sessions) as session:
        events = list(session.execute(select(col(MashAlert.event_id))).scalars())
    assert sorted(map(str, events)) == sorted(
        [str(resent.metadata.event_id), str(other.metadata.event_id)]
    )


def test_a_fault_in_parsing_a_batch_costs_its_triage_never_its_storing(
    intake_service: Service,
    consumer: IntakeConsumer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The batch is parsed before the write lock, outside the triage's savepoint: a fault
    there must not fail the batch's storing, and the alerts are still triaged."""
    events = [reported(f"EP-{n}", utc(2026, 11, 20, 9, n), child(nhs=40 + n)) for n in range(3)]

    def broken(store: IntakeStore, batch: Sequence[DisclosureClaims]) -> ParsedBatch:
        raise RuntimeError("a bug in parsing")

    monkeypatch.setattr(IntakeStore, "parse_batch", broken)
    _store_all(intake_service, consumer, events)
    with session_scope(intake_service.sessions) as session:
        triaged = [
            session.get(IntakeAlert, alert.id) is not None
            for alert in session.execute(select(MashAlert)).scalars()
        ]
    assert triaged == [True] * 3


@pytest.mark.parametrize("size", [1, 3], ids=["one-alert", "batch"])
def test_an_alert_is_parsed_once_before_the_write_lock_whatever_its_batch(
    intake_service: Service,
    consumer: IntakeConsumer,
    monkeypatch: pytest.MonkeyPatch,
    size: int,
) -> None:
    """A batch's events are parsed before the gate; a batch of one alert (triaged without
    the batch's preload) must not parse its event again under the write lock."""
    events = [reported(f"EP-{n}", utc(2026, 11, 20, 9, n), child(nhs=70 + n)) for n in range(size)]
    parsed: list[object] = []

    def counted(event: dict[str, Any]) -> object:
        parsed.append(event)
        return parse_event(event)

    monkeypatch.setattr("broker.intake.store.parse_event", counted)
    _store_all(intake_service, consumer, events)
    assert len(parsed) == size
    with session_scope(intake_service.sessions) as session:
        triaged = list(session.execute(select(IntakeAlert)).scalars())
    assert len(triaged) == size
    assert all(row.episode_id is not None for row in triaged)


def test_what_a_prepare_process_opened_is_stored_once_and_what_it_refused_is_refused(
    intake_service: Service, consumer: IntakeConsumer
) -> None:
    """The one-by-one path takes what opening already gave (no second decryption): the
    token id is still remembered in the storing transaction, so a replay is refused, and
    a refusal found by the prepare process is audited and dead-lettered as any other."""
    token = seal_for_mash(intake_service, reported("EP-9", utc(2026, 11, 20, 9), child(nhs=39)))
    opener = DisclosureOpener(intake_service, "wam-mash")
    opened = opener.open(token, datetime.now(UTC))
    assert consumer.store(token, "m-1", opened=opened) == StoreOutcome.STORED
    with pytest.raises(RejectMessage) as replay:
        consumer.store(token, "m-2", opened=opener.open(token, datetime.now(UTC)))
    assert replay.value.reason == "replay"
    with pytest.raises(RejectMessage) as refused:
        consumer.store(b"not-a-token", "m-3", opened=DecryptionFailed("no key"))
    assert refused.value.reason == DecryptionFailed("no key").code
    with session_scope(intake_service.sessions) as session:
        alerts = session.execute(select(MashAlert)).scalars().all()
        reasons = [
            e.reason
            for e in session.execute(select(AuditEntry)).scalars()
            if e.kind == AuditKind.DEAD_LETTERED
        ]
    assert [a.jti for a in alerts] == [opened.claims.jti]
    assert sorted(reasons) == sorted(["replay", DecryptionFailed("no key").code])
