"""Clocks, read with a frozen ``now``: return interviews, MASH decisions, notifications, repeats."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.exceptions import ConfigurationError
from broker.intake import (
    Clock,
    ClockConfig,
    ClockKind,
    ClockStatus,
    EpisodeFact,
    EpisodeRecord,
    InvalidRecord,
    NotificationRecord,
    WorkingCalendar,
    episode_clocks,
    episode_record_from_events,
    episode_record_from_facts,
    episodes_in_window,
    mash_decision_clock,
    notification_clock,
    read_clock,
    repeat_missing_clock,
    repeat_missing_patterns,
    return_interview_clock,
    urgency_order,
)
from schemas.events import (
    CaseStatus,
    Event,
    MissingFound,
    MissingReported,
    MissingUpdated,
    ReturnHomeInterview,
    RiskGrade,
)
from schemas.person import LookedAfter
from tests.broker.intake.factories import BRACKNELL, READING, SLOUGH, WAM, child, event, utc

CAL = WorkingCalendar()


def episode(**overrides: object) -> EpisodeRecord:
    fields: dict[str, object] = {
        "episode_id": "TVP-MP-2026-000900",
        "child_key": "child-1",
        "reported_at": utc(2026, 3, 27, 22, 0),
    }
    fields.update(overrides)
    return EpisodeRecord(**fields)  # type: ignore[arg-type]


# --- return home interview -------------------------------------------------------------


def test_return_interview_is_72_elapsed_hours_across_the_spring_change() -> None:
    # Back at noon GMT on Saturday 28 March 2026; clocks go forward early on the Sunday.
    clock = return_interview_clock(episode(returned_at=utc(2026, 3, 28, 12, 0)))
    assert clock is not None
    assert clock.due_at == utc(2026, 3, 31, 12, 0)  # 13:00 BST on the Tuesday
    assert clock.due_at - clock.started_at == timedelta(hours=72)
    assert clock.subject == "TVP-MP-2026-000900"
    assert clock.subject_kind == "episode"


def test_return_interview_across_the_autumn_change() -> None:
    clock = return_interview_clock(episode(returned_at=utc(2026, 10, 24, 12, 0)))  # 13:00 BST
    assert clock is not None
    assert clock.due_at == utc(2026, 10, 27, 12, 0)  # 12:00 GMT: wall clock an hour earlier


def test_return_interview_statuses_through_time() -> None:
    clock = return_interview_clock(episode(returned_at=utc(2026, 3, 28, 12, 0)))
    assert clock is not None
    at = {
        utc(2026, 3, 28, 12, 0): (ClockStatus.RUNNING, timedelta(hours=72)),
        utc(2026, 3, 30, 11, 59): (ClockStatus.RUNNING, timedelta(hours=24, minutes=1)),
        utc(2026, 3, 30, 12, 0): (ClockStatus.DUE_SOON, timedelta(hours=24)),
        utc(2026, 3, 31, 11, 0): (ClockStatus.DUE_SOON, timedelta(hours=1)),
        utc(2026, 3, 31, 12, 0): (ClockStatus.OVERDUE, timedelta(0)),
        utc(2026, 4, 1, 12, 0): (ClockStatus.OVERDUE, timedelta(hours=-24)),
    }
    for now, (status, left) in at.items():
        reading = read_clock(clock, now)
        assert (reading.status, reading.time_left) == (status, left), now
        assert reading.needs_alert is (status in (ClockStatus.DUE_SOON, ClockStatus.OVERDUE))


def test_return_interview_starts_at_found_when_no_return_time() -> None:
    clock = return_interview_clock(episode(found_at=utc(2026, 5, 1, 8, 0)))
    assert clock is not None
    assert clock.started_at == utc(2026, 5, 1, 8, 0)


def test_no_return_interview_clock_while_still_missing() -> None:
    assert return_interview_clock(episode()) is None


def test_completed_interview_meets_the_clock_and_lateness_is_kept() -> None:
    back = utc(2026, 5, 1, 8, 0)
    on_time = return_interview_clock(
        episode(returned_at=back, rhi_completed_at=back + timedelta(hours=70))
    )
    late = return_interview_clock(
        episode(returned_at=back, rhi_completed_at=back + timedelta(hours=80))
    )
    assert on_time is not None
    assert late is not None
    now = back + timedelta(days=5)
    assert read_clock(on_time, now).status is ClockStatus.MET
    assert read_clock(on_time, now).met_late is False
    assert read_clock(late, now).status is ClockStatus.MET
    assert read_clock(late, now).met_late is True
    assert read_clock(late, now).time_left is None


def test_declined_offer_meets_the_clock_but_a_pending_offer_does_not() -> None:
    back = utc(2026, 5, 1, 8, 0)
    declined = return_interview_clock(
        episode(returned_at=back, rhi_declined_at=back + timedelta(hours=10))
    )
    offered = return_interview_clock(
        episode(returned_at=back, rhi_offered_at=back + timedelta(hours=10))
    )
    assert declined is not None
    assert offered is not None
    now = back + timedelta(hours=73)
    assert read_clock(declined, now).status is ClockStatus.MET
    assert read_clock(offered, now).status is ClockStatus.OVERDUE


def test_a_reading_in_the_past_ignores_a_later_met_time() -> None:
    back = utc(2026, 5, 1, 8, 0)
    clock = return_interview_clock(
        episode(returned_at=back, rhi_completed_at=back + timedelta(hours=60))
    )
    assert clock is not None
    assert read_clock(clock, back + timedelta(hours=59)).status is ClockStatus.DUE_SOON
    assert read_clock(clock, back + timedelta(hours=60)).status is ClockStatus.MET


def test_interview_both_completed_and_declined_is_refused() -> None:
    with pytest.raises(InvalidRecord, match="both completed and declined"):
        episode(rhi_completed_at=utc(2026, 5, 1), rhi_declined_at=utc(2026, 5, 1))


def test_configured_interview_window_and_due_soon() -> None:
    config = ClockConfig(
        return_interview_within=timedelta(hours=48),
        due_soon={ClockKind.RETURN_INTERVIEW: timedelta(hours=6)},
    )
    back = utc(2026, 5, 1, 8, 0)
    clock = return_interview_clock(episode(returned_at=back), config)
    assert clock is not None
    assert clock.due_at == back + timedelta(hours=48)
    assert read_clock(clock, back + timedelta(hours=41), config).status is ClockStatus.RUNNING
    assert read_clock(clock, back + timedelta(hours=42), config).status is ClockStatus.DUE_SOON


# --- MASH decision ---------------------------------------------------------------------


def test_mash_decision_clock_over_a_weekend() -> None:
    received = utc(2026, 11, 20, 16, 0)  # Friday 16:00 GMT
    clock = mash_decision_clock("alert-77", received, None, CAL)
    assert clock.due_at == utc(2026, 11, 23, 17, 0)  # Monday close
    assert clock.subject_kind == "alert"
    assert read_clock(clock, utc(2026, 11, 22, 12, 0)).status is ClockStatus.RUNNING
    assert read_clock(clock, utc(2026, 11, 23, 15, 0)).status is ClockStatus.DUE_SOON
    assert read_clock(clock, utc(2026, 11, 23, 17, 0)).status is ClockStatus.OVERDUE


def test_mash_decision_clock_over_the_spring_change_and_met() -> None:
    received = utc(2026, 3, 27, 10, 0)  # Friday 10:00 GMT
    decided = utc(2026, 3, 30, 15, 59)  # Monday 16:59 BST
    clock = mash_decision_clock("alert-78", received, decided, CAL)
    assert clock.due_at == utc(2026, 3, 30, 16, 0)
    reading = read_clock(clock, utc(2026, 3, 31, 9, 0))
    assert reading.status is ClockStatus.MET
    assert not reading.met_late


def test_mash_decision_clock_over_easter() -> None:
    clock = mash_decision_clock("alert-79", utc(2026, 4, 2, 15, 0), None, CAL)
    assert clock.due_at == utc(2026, 4, 7, 16, 0)  # Tuesday after Easter Monday, 17:00 BST


# --- notification of the other authority -----------------------------------------------


def looked_after_episode(placing: str, host: str, **overrides: object) -> EpisodeRecord:
    return episode(
        looked_after=True, home_authority=placing, placed_in=host, missing_from=host, **overrides
    )


def test_child_placed_here_by_another_authority_needs_that_authority_told() -> None:
    ep = looked_after_episode(SLOUGH, WAM)
    clock = notification_clock(ep, WAM, [])
    assert clock is not None
    assert clock.kind is ClockKind.NOTIFY_PLACING_AUTHORITY
    assert clock.authority == SLOUGH
    assert clock.due_at == ep.reported_at + timedelta(hours=1)
    assert read_clock(clock, ep.reported_at + timedelta(minutes=30)).status is ClockStatus.RUNNING
    assert read_clock(clock, ep.reported_at + timedelta(minutes=50)).status is ClockStatus.DUE_SOON
    assert read_clock(clock, ep.reported_at + timedelta(hours=2)).status is ClockStatus.OVERDUE


def test_notification_record_for_the_right_authority_and_episode_meets_it() -> None:
    ep = looked_after_episode(SLOUGH, WAM)
    told = ep.reported_at + timedelta(minutes=20)
    records = [
        NotificationRecord(ep.episode_id, READING, ep.reported_at),  # wrong authority
        NotificationRecord("TVP-MP-2026-000001", SLOUGH, ep.reported_at),  # wrong episode
        NotificationRecord(ep.episode_id, SLOUGH, told + timedelta(minutes=5)),
        NotificationRecord(ep.episode_id, SLOUGH, told),
    ]
    clock = notification_clock(ep, WAM, records)
    assert clock is not None
    assert clock.met_at == told
    assert read_clock(clock, told).status is ClockStatus.MET
    assert read_clock(clock, told - timedelta(seconds=1)).status is ClockStatus.RUNNING
    unmet = notification_clock(ep, WAM, records[:2])
    assert unmet is not None
    assert unmet.met_at is None


def test_own_child_placed_elsewhere_needs_this_borough_told() -> None:
    ep = looked_after_episode(WAM, READING)
    clock = notification_clock(ep, WAM, [NotificationRecord(ep.episode_id, WAM, ep.reported_at)])
    assert clock is not None
    assert clock.kind is ClockKind.NOTIFY_THIS_BOROUGH
    assert clock.authority == WAM
    assert clock.met_at == ep.reported_at


@pytest.mark.parametrize(
    "ep",
    [
        episode(home_authority=SLOUGH, missing_from=WAM),  # not looked after
        looked_after_episode(WAM, WAM),  # placed within its own authority
        looked_after_episode(SLOUGH, BRACKNELL),  # neither side is this borough
        episode(looked_after=True, home_authority=SLOUGH),  # placement unknown
    ],
)
def test_no_notification_clock(ep: EpisodeRecord) -> None:
    assert notification_clock(ep, WAM, []) is None


def test_configured_notification_deadline() -> None:
    ep = looked_after_episode(SLOUGH, WAM)
    clock = notification_clock(ep, WAM, [], ClockConfig(notify_within=timedelta(minutes=30)))
    assert clock is not None
    assert clock.due_at - clock.started_at == timedelta(minutes=30)


def test_episode_clocks_lists_both_when_back() -> None:
    ep = looked_after_episode(SLOUGH, WAM, returned_at=utc(2026, 3, 28, 12, 0))
    kinds = [c.kind for c in episode_clocks(ep, borough=WAM)]
    assert kinds == [ClockKind.NOTIFY_PLACING_AUTHORITY, ClockKind.RETURN_INTERVIEW]
    assert episode_clocks(episode(), borough=WAM) == ()


# --- repeat missing --------------------------------------------------------------------


def episodes_at(days: list[float], child_key: str = "child-1") -> list[EpisodeRecord]:
    start = utc(2026, 1, 5, 20, 0)
    return [
        episode(
            episode_id=f"EP-{child_key}-{i}",
            child_key=child_key,
            reported_at=start + timedelta(days=d),
        )
        for i, d in enumerate(days)
    ]


def test_three_episodes_in_ninety_days_form_a_pattern() -> None:
    eps = episodes_at([0, 40, 89])
    (pattern,) = repeat_missing_patterns(eps)
    assert pattern.count == 3
    assert pattern.episode_ids == tuple(e.episode_id for e in eps)
    assert pattern.formed_at == eps[-1].reported_at
    assert pattern.pattern_id == f"child-1:{eps[-1].episode_id}"


def test_ninety_days_apart_is_outside_the_window() -> None:
    assert repeat_missing_patterns(episodes_at([0, 45, 90])) == ()


def test_weekly_missing_raises_one_pattern_per_window() -> None:
    eps = episodes_at([7 * n for n in range(20)])  # days 0 .. 133
    patterns = repeat_missing_patterns(eps)
    assert [p.formed_at for p in patterns] == [eps[2].reported_at, eps[15].reported_at]


def test_patterns_are_per_child_and_configurable() -> None:
    eps = episodes_at([0, 10], "child-a") + episodes_at([0, 40], "child-b")
    assert repeat_missing_patterns(eps) == ()
    config = ClockConfig(repeat_threshold=2, repeat_window=timedelta(days=30))
    (pattern,) = repeat_missing_patterns(eps, config)
    assert pattern.child_key == "child-a"


def test_repeat_missing_clock_is_one_working_day_and_distinct_per_pattern() -> None:
    eps = episodes_at([7 * n for n in range(20)])
    first, second = repeat_missing_patterns(eps)
    clock = repeat_missing_clock(first, None, CAL)
    assert clock.kind is ClockKind.REPEAT_MISSING
    assert clock.subject == "child-1"
    assert clock.subject_kind == "child"
    assert clock.due_at == CAL.one_working_day_after(first.formed_at)
    assert clock.clock_id != repeat_missing_clock(second, None, CAL).clock_id


def test_episodes_in_window_counts_the_childs_own_episodes() -> None:
    eps = episodes_at([0, 30, 60]) + episodes_at([59], "child-2")
    at = eps[2].reported_at
    assert episodes_in_window(eps, "child-1", at, timedelta(days=90)) == 3
    assert episodes_in_window(eps, "child-1", at, timedelta(days=60)) == 2
    assert episodes_in_window(eps, "child-2", at, timedelta(days=90)) == 1


# --- the clock itself ------------------------------------------------------------------


def test_clock_refuses_a_deadline_not_after_its_start() -> None:
    with pytest.raises(InvalidRecord, match="after started_at"):
        Clock(ClockKind.MASH_DECISION, "alert-1", utc(2026, 1, 1), utc(2026, 1, 1))


def test_clock_refuses_naive_times() -> None:
    with pytest.raises(InvalidRecord, match="naive"):
        Clock(
            ClockKind.MASH_DECISION,
            "alert-1",
            datetime(2026, 1, 1),  # noqa: DTZ001
            utc(2026, 1, 2),
        )
    with pytest.raises(InvalidRecord, match="naive"):
        episode(returned_at=datetime(2026, 1, 1))  # noqa: DTZ001


@pytest.mark.parametrize(
    "kwargs",
    [
        {"return_interview_within": timedelta(0)},
        {"repeat_threshold": 1},
        {"due_soon": {ClockKind.MASH_DECISION: timedelta(hours=-1)}},
    ],
)
def test_bad_clock_configuration_is_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        ClockConfig(**kwargs)  # type: ignore[arg-type]


def test_urgency_order() -> None:
    now = utc(2026, 6, 1, 12, 0)
    clocks = [
        Clock(
            ClockKind.MASH_DECISION,
            "met",
            now - timedelta(hours=5),
            now - timedelta(hours=1),
            met_at=now - timedelta(hours=2),
        ),
        Clock(ClockKind.MASH_DECISION, "running", now, now + timedelta(hours=8)),
        Clock(
            ClockKind.MASH_DECISION, "overdue-2", now - timedelta(hours=9), now - timedelta(hours=1)
        ),
        Clock(ClockKind.MASH_DECISION, "soon", now, now + timedelta(hours=1)),
        Clock(
            ClockKind.MASH_DECISION, "overdue-1", now - timedelta(hours=9), now - timedelta(hours=2)
        ),
    ]
    ordered = urgency_order(read_clock(c, now) for c in clocks)
    assert [r.clock.subject for r in ordered] == [
        "overdue-1",
        "overdue-2",
        "soon",
        "running",
        "met",
    ]


# --- building an episode record from events --------------------------------------------


def test_episode_record_from_events_in_any_arrival_order() -> None:
    placed = LookedAfter(responsible_authority=SLOUGH, placed_in=WAM)
    subject = child(looked_after=placed)
    ep_id = "TVP-MP-2026-000555"
    reported = event(
        MissingReported(
            episode_id=ep_id,
            risk_grade=RiskGrade.MEDIUM,
            reported_at=utc(2026, 3, 27, 22, 0),
            missing_from=WAM,
        ),
        subject=subject,
        at=utc(2026, 3, 27, 22, 0),
    )
    updated = event(
        MissingUpdated(episode_id=ep_id, risk_grade=RiskGrade.HIGH),
        subject=subject,
        at=utc(2026, 3, 28, 1, 0),
    )
    found = event(
        MissingFound(
            episode_id=ep_id, found_at=utc(2026, 3, 28, 11, 0), returned_at=utc(2026, 3, 28, 12, 0)
        ),
        subject=subject,
        at=utc(2026, 3, 28, 11, 0),
    )
    declined = event(
        ReturnHomeInterview(episode_id=ep_id, offered_at=utc(2026, 3, 29, 10, 0), declined=True),
        subject=subject,
        at=utc(2026, 3, 29, 10, 0),
    )
    record = episode_record_from_events("child-9", [declined, found, updated, reported])
    assert record.episode_id == ep_id
    assert record.risk_grade is RiskGrade.HIGH
    assert record.returned_at == utc(2026, 3, 28, 12, 0)
    assert record.rhi_declined_at == utc(2026, 3, 29, 10, 0)
    assert record.rhi_completed_at is None
    assert (record.looked_after, record.home_authority, record.host_authority) == (
        True,
        SLOUGH,
        WAM,
    )
    kinds = {c.kind: c for c in episode_clocks(record, borough=WAM)}
    assert read_clock(kinds[ClockKind.RETURN_INTERVIEW], utc(2026, 4, 2)).status is ClockStatus.MET
    assert kinds[ClockKind.NOTIFY_PLACING_AUTHORITY].authority == SLOUGH


def test_episode_record_before_the_report_arrives() -> None:
    found = event(
        MissingFound(episode_id="TVP-MP-2026-000556", found_at=utc(2026, 3, 28, 11, 0)),
        subject=child(),
        at=utc(2026, 3, 28, 11, 5),
    )
    record = episode_record_from_events("child-9", [found])
    assert record.reported_at == utc(2026, 3, 28, 11, 5)
    assert record.risk_grade is None
    assert record.looked_after is False


def test_episode_record_refuses_mixed_or_no_episodes() -> None:
    a = event(MissingUpdated(episode_id="EP-A-0001"), subject=child())
    b = event(MissingUpdated(episode_id="EP-B-0002"), subject=child())
    with pytest.raises(InvalidRecord, match="2 episodes"):
        episode_record_from_events("child-9", [a, b])
    with pytest.raises(InvalidRecord, match="no missing-episode event"):
        episode_record_from_events("child-9", [])


def _episode_events() -> list[Event]:
    """One event of each episode kind, about a looked-after child, out of order."""
    placed = LookedAfter(responsible_authority=SLOUGH, placed_in=WAM)
    ep_id = "TVP-MP-2026-000557"
    return [
        event(
            ReturnHomeInterview(
                episode_id=ep_id,
                offered_at=utc(2026, 3, 29, 10, 0),
                completed_at=utc(2026, 3, 30, 9, 0),
            ),
            subject=child(),  # not looked after, as this source has it: the report wins
            at=utc(2026, 3, 30, 9, 0),
        ),
        event(
            MissingFound(episode_id=ep_id, found_at=utc(2026, 3, 28, 11, 0)),
            subject=child(looked_after=placed),
            at=utc(2026, 3, 28, 11, 0),
        ),
        event(
            MissingReported(
                episode_id=ep_id,
                risk_grade=RiskGrade.LOW,
                reported_at=utc(2026, 3, 27, 22, 0),
                missing_from=READING,
            ),
            subject=child(looked_after=placed),
            at=utc(2026, 3, 27, 22, 0),
        ),
        event(
            MissingUpdated(episode_id=ep_id, risk_grade=RiskGrade.HIGH),
            subject=child(),
            at=utc(2026, 3, 28),
        ),
    ]


def test_an_episode_fact_survives_its_stored_form() -> None:
    for source in _episode_events():
        fact = EpisodeFact.of(source)
        assert fact is not None
        stored = json.loads(json.dumps(fact.to_json()))
        assert EpisodeFact.from_json(stored) == fact
        assert "Thornlow" not in json.dumps(stored)  # no identifier of the child is kept


def test_folding_stored_facts_gives_the_record_the_events_give() -> None:
    events = _episode_events()
    facts = [EpisodeFact.from_json(EpisodeFact.of(e).to_json()) for e in events]  # type: ignore[union-attr]
    for order in (facts, facts[::-1], facts[1:] + facts[:1]):
        assert episode_record_from_facts("child-9", order) == episode_record_from_events(
            "child-9", events
        )
    record = episode_record_from_facts("child-9", facts)
    assert (record.risk_grade, record.missing_from, record.home_authority) == (
        RiskGrade.HIGH,
        READING,
        SLOUGH,
    )
    assert record.rhi_completed_at == utc(2026, 3, 30, 9, 0)


def test_other_events_state_no_episode_fact() -> None:
    status = event(CaseStatus(as_of=utc(2026, 3, 1)), subject=child())
    assert EpisodeFact.of(status) is None


@pytest.mark.parametrize(
    "stored",
    [
        {"episode_id": "EP-1", "kind": "reported"},
        {"episode_id": "EP-1", "kind": "moved", "occurred_at": "2026-03-01T00:00:00+00:00"},
        {
            "episode_id": "EP-1",
            "kind": "found",
            "occurred_at": "yesterday",
            "recorded_at": "2026-03-01T00:00:00+00:00",
        },
        {
            "episode_id": "EP-1",
            "kind": "found",
            "occurred_at": "2026-03-01T00:00:00",
            "recorded_at": "2026-03-01T00:00:00",
        },
        {"episode_id": "EP-1", "kind": "found", "colour": "red"},
    ],
)
def test_a_damaged_stored_fact_is_refused(stored: dict[str, object]) -> None:
    with pytest.raises(InvalidRecord):
        EpisodeFact.from_json(stored)


# --- properties ------------------------------------------------------------------------

_instants = st.datetimes(
    min_value=datetime(2025, 1, 1),  # noqa: DTZ001
    max_value=datetime(2029, 12, 1),  # noqa: DTZ001
    timezones=st.sampled_from([utc(2026, 1, 1).tzinfo]),
)


@settings(max_examples=150, deadline=None)
@given(start=_instants, hours=st.integers(min_value=1, max_value=24 * 14))
def test_every_clock_is_due_after_it_starts(start: datetime, hours: int) -> None:
    config = ClockConfig(
        return_interview_within=timedelta(hours=hours), notify_within=timedelta(minutes=hours)
    )
    ep = looked_after_episode(SLOUGH, WAM, reported_at=start, returned_at=start)
    clocks = [
        *episode_clocks(ep, borough=WAM, config=config),
        mash_decision_clock("alert-1", start, None, CAL),
    ]
    assert len(clocks) == 3
    for clock in clocks:
        assert clock.due_at > clock.started_at
        reading = read_clock(clock, start)
        assert reading.status in (ClockStatus.RUNNING, ClockStatus.DUE_SOON)
        assert reading.time_left == clock.due_at - start
