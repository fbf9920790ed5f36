"""Triage priority: scores, bands, minimum bands, reasons, weights, and monotonicity."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.exceptions import ConfigurationError
from broker.intake import (
    Band,
    PriorityFactors,
    PriorityWeights,
    factors_from_event,
    prioritise,
)
from schemas.events import (
    AttendanceSetting,
    CaseStatus,
    CseLevel,
    CseScreening,
    CseTrackerEntry,
    EventType,
    MissingReported,
    RemovalReason,
    ReturnHomeInterview,
    RiskGrade,
    SafeguardingFlag,
    UnscheduledCareAttendance,
)
from schemas.examples import example_event
from schemas.person import LookedAfter
from tests.broker.intake.factories import WAM, child, event, utc

GRADES = [RiskGrade.NO_APPARENT_RISK, RiskGrade.LOW, RiskGrade.MEDIUM, RiskGrade.HIGH]


def test_no_factors_is_routine_with_no_reasons() -> None:
    priority = prioritise(PriorityFactors())
    assert (priority.score, priority.band, priority.reasons) == (0, Band.ROUTINE, ())


def test_high_risk_alone_is_immediate_and_says_why() -> None:
    priority = prioritise(PriorityFactors(risk_grade=RiskGrade.HIGH))
    assert priority.score == 50
    assert priority.band is Band.IMMEDIATE
    assert priority.reasons == (
        "police risk grade high",
        "minimum band immediate set by police risk grade",
    )


def test_points_add_up_and_band_by_thresholds() -> None:
    factors = PriorityFactors(
        risk_grade=RiskGrade.MEDIUM, age_years=12, looked_after=True, out_of_area=True
    )
    priority = prioritise(factors)
    assert priority.score == 30 + 15 + 10 + 10
    assert priority.band is Band.URGENT
    assert priority.reasons == (
        "police risk grade medium",
        "age 11–13",
        "looked after",
        "placed out of area",
    )
    assert [c.code for c in priority.contributions] == [
        "risk_grade",
        "age",
        "looked_after",
        "out_of_area",
    ]


@pytest.mark.parametrize(
    ("age", "points", "reason"),
    [(5, 20, "age under 11"), (13, 15, "age 11–13"), (15, 10, "age 14–15"), (17, 5, "age 16–17")],
)
def test_younger_children_score_higher(age: int, points: int, reason: str) -> None:
    priority = prioritise(PriorityFactors(age_years=age))
    assert priority.score == points
    assert priority.reasons == (reason,)


def test_an_adult_scores_nothing_for_age() -> None:
    assert prioritise(PriorityFactors(age_years=18)).reasons == ()


def test_out_of_area_counts_only_for_looked_after_children() -> None:
    assert prioritise(PriorityFactors(out_of_area=True)).score == 0


def test_repeat_missing_points_are_capped() -> None:
    assert prioritise(PriorityFactors(recent_episodes=1)).score == 0
    three = prioritise(PriorityFactors(recent_episodes=3))
    assert three.score == 10
    assert three.reasons == ("repeat missing: 3 episodes in window",)
    assert prioritise(PriorityFactors(recent_episodes=30)).score == 20


def test_flags_score_and_set_minimum_bands() -> None:
    pregnancy = prioritise(PriorityFactors(flags=frozenset({SafeguardingFlag.UNDER_16_PREGNANCY})))
    assert pregnancy.score == 30
    assert pregnancy.band is Band.URGENT
    assert "flag: under-16 pregnancy" in pregnancy.reasons
    assert "minimum band urgent set by attendance flag" in pregnancy.reasons
    assault = prioritise(PriorityFactors(flags=frozenset({SafeguardingFlag.ASSAULT})))
    assert (assault.score, assault.band) == (25, Band.STANDARD)
    looked_after_flag = prioritise(
        PriorityFactors(flags=frozenset({SafeguardingFlag.LOOKED_AFTER}))
    )
    assert looked_after_flag.score == 0


def test_cse_level_3_is_at_least_urgent() -> None:
    priority = prioritise(PriorityFactors(cse_level=CseLevel.LEVEL_3))
    assert (priority.score, priority.band) == (40, Band.URGENT)
    combined = prioritise(PriorityFactors(cse_level=CseLevel.LEVEL_3, age_years=13))
    assert (combined.score, combined.band) == (55, Band.URGENT)
    assert "minimum band urgent set by CSE level" not in combined.reasons  # the score got there


def test_sort_key_orders_by_band_then_score() -> None:
    priorities = [
        prioritise(PriorityFactors(age_years=15)),
        prioritise(PriorityFactors(risk_grade=RiskGrade.HIGH)),
        prioritise(PriorityFactors(cse_level=CseLevel.LEVEL_3, age_years=10)),
        prioritise(PriorityFactors(cse_level=CseLevel.LEVEL_3)),
    ]
    ordered = sorted(priorities, key=lambda p: p.sort_key)
    assert [(p.band, p.score) for p in ordered] == [
        (Band.IMMEDIATE, 50),
        (Band.URGENT, 60),
        (Band.URGENT, 40),
        (Band.ROUTINE, 10),
    ]


def test_custom_weights() -> None:
    weights = PriorityWeights(risk_grade_floor={}, looked_after=40)
    priority = prioritise(
        PriorityFactors(risk_grade=RiskGrade.HIGH, looked_after=True), weights=weights
    )
    assert (priority.score, priority.band) == (90, Band.IMMEDIATE)
    assert prioritise(PriorityFactors(risk_grade=RiskGrade.HIGH), weights).band is Band.URGENT


def test_weights_are_read_only() -> None:
    points = {RiskGrade.LOW: 1, RiskGrade.MEDIUM: 2, RiskGrade.HIGH: 3}
    weights = PriorityWeights(risk_grade=points)
    points[RiskGrade.HIGH] = 0
    assert weights.risk_grade[RiskGrade.HIGH] == 3
    with pytest.raises(TypeError):
        weights.risk_grade[RiskGrade.HIGH] = 0  # type: ignore[index]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"risk_grade": {RiskGrade.MEDIUM: 40, RiskGrade.HIGH: 30}},
        {"cse_level": {CseLevel.LEVEL_3: 5, CseLevel.LEVEL_2: 10}},
        {"risk_grade_floor": {RiskGrade.MEDIUM: Band.IMMEDIATE, RiskGrade.HIGH: Band.URGENT}},
        {"immediate_from": 40, "urgent_from": 45},
        {"standard_from": 0},
        {"looked_after": -5},
        {"age_bands": ((11, 5), (14, 15))},
        {"age_bands": ((14, 15), (11, 20))},
    ],
)
def test_inconsistent_weights_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        PriorityWeights(**kwargs)  # type: ignore[arg-type]


# --- factors from canonical events ---------------------------------------------------


def test_factors_from_the_example_missing_report() -> None:
    example = example_event(EventType.MISSING_REPORTED)
    factors = factors_from_event(example, recent_episodes=3, known_cse_level=CseLevel.LEVEL_2)
    assert factors.risk_grade is RiskGrade.HIGH
    assert factors.age_years == 15  # born 2 April 2011, reported 20 November 2026
    assert factors.looked_after is True
    assert factors.out_of_area is True  # Slough's child placed in Windsor and Maidenhead
    assert factors.cse_level is CseLevel.LEVEL_2
    assert factors.recent_episodes == 3


def test_reasons_carry_no_personal_data() -> None:
    example = example_event(EventType.ATTENDANCE)
    subject = example.subject
    assert subject is not None
    priority = prioritise(factors_from_event(example, recent_episodes=4))
    text = " ".join(priority.reasons)
    assert priority.reasons
    for personal in (
        subject.given_name,
        subject.family_name,
        subject.nhs_number,
        subject.paris_id,
        subject.police_person_ref,
        str(subject.date_of_birth),
        "2011",
        "Larkspur",
    ):
        assert personal is not None
        assert personal not in text


def test_age_is_taken_on_the_london_date_of_the_event() -> None:
    born = date(2010, 11, 21)
    subject = child(born=born)
    # 23:30 UTC on 20 November is still the 20th in London (GMT): not yet the birthday.
    body = MissingReported(
        episode_id="EP-1234", risk_grade=RiskGrade.LOW, reported_at=utc(2026, 11, 20, 23, 30)
    )
    before = event(body, subject=subject, at=utc(2026, 11, 20, 23, 30))
    assert factors_from_event(before).age_years == 15
    # In summer the London date runs an hour ahead of UTC.
    summer_born = date(2010, 7, 2)
    summer = event(body, subject=child(born=summer_born), at=utc(2026, 7, 1, 23, 30))
    assert factors_from_event(summer).age_years == 16
    assert factors_from_event(summer, age_on=date(2026, 7, 1)).age_years == 15


def test_factors_from_health_paris_and_interview_events() -> None:
    subject = child(
        born=date(2011, 6, 1),
        looked_after=LookedAfter(responsible_authority=WAM, placed_in=WAM),
    )
    attendance = event(
        UnscheduledCareAttendance(
            setting=AttendanceSetting.SEXUAL_HEALTH,
            site="RDU01",
            arrived_at=utc(2026, 11, 1, 12, 0),
            flags=(SafeguardingFlag.UNDER_16_PREGNANCY,),
        ),
        subject=subject,
    )
    factors = factors_from_event(attendance, known_flags=frozenset({SafeguardingFlag.ASSAULT}))
    assert factors.flags == {SafeguardingFlag.UNDER_16_PREGNANCY, SafeguardingFlag.ASSAULT}
    assert (factors.looked_after, factors.out_of_area) == (True, False)

    interview = event(
        ReturnHomeInterview(
            episode_id="EP-1234", offered_at=utc(2026, 11, 2), cse_concerns_disclosed=True
        ),
        subject=subject,
    )
    assert factors_from_event(interview).flags == {SafeguardingFlag.CSE_CONCERN}

    on_tracker = event(
        CaseStatus(
            as_of=utc(2026, 11, 2),
            child_protection_plan=True,
            cse_tracker=CseTrackerEntry(level=CseLevel.LEVEL_2, identified_on=date(2026, 9, 1)),
        ),
        subject=subject,
    )
    status = factors_from_event(on_tracker, known_cse_level=CseLevel.LEVEL_1)
    assert status.cse_level is CseLevel.LEVEL_2
    assert status.flags == {SafeguardingFlag.CHILD_PROTECTION_PLAN}

    removed = event(
        CaseStatus(
            as_of=utc(2026, 11, 2),
            cse_tracker=CseTrackerEntry(
                level=CseLevel.LEVEL_3,
                identified_on=date(2026, 9, 1),
                removed_on=date(2026, 10, 1),
                removal_reason=RemovalReason.SUCCESSFUL_INTERVENTION,
            ),
        ),
        subject=subject,
    )
    assert factors_from_event(removed).cse_level is None

    screening = event(
        CseScreening(level=CseLevel.LEVEL_1, screened_at=utc(2026, 11, 2), screened_by="wam-cs"),
        subject=subject,
    )
    assert factors_from_event(screening, known_cse_level=CseLevel.LEVEL_3).cse_level is (
        CseLevel.LEVEL_3
    )


def test_a_child_without_date_of_birth_has_no_age_factor() -> None:
    subject = child(born=None)
    body = MissingReported(
        episode_id="EP-1234", risk_grade=RiskGrade.LOW, reported_at=utc(2026, 1, 1)
    )
    assert factors_from_event(event(body, subject=subject)).age_years is None


# --- properties ------------------------------------------------------------------------

_factors = st.builds(
    PriorityFactors,
    risk_grade=st.none() | st.sampled_from(GRADES),
    cse_level=st.none() | st.sampled_from(list(CseLevel)),
    age_years=st.none() | st.integers(min_value=0, max_value=25),
    looked_after=st.booleans(),
    out_of_area=st.booleans(),
    recent_episodes=st.integers(min_value=0, max_value=12),
    flags=st.frozensets(st.sampled_from(list(SafeguardingFlag))),
)


@settings(max_examples=200, deadline=None)
@given(_factors, st.sampled_from(GRADES), st.sampled_from(GRADES))
def test_priority_is_monotonic_in_risk_grade(
    factors: PriorityFactors, a: RiskGrade, b: RiskGrade
) -> None:
    lower, higher = sorted((a, b), key=GRADES.index)
    low = prioritise(replace(factors, risk_grade=lower))
    high = prioritise(replace(factors, risk_grade=higher))
    assert high.score >= low.score
    assert high.band.rank >= low.band.rank


@settings(max_examples=200, deadline=None)
@given(_factors, st.sampled_from(list(CseLevel)), st.sampled_from(list(CseLevel)))
def test_priority_is_monotonic_in_cse_level(
    factors: PriorityFactors, a: CseLevel, b: CseLevel
) -> None:
    low = prioritise(replace(factors, cse_level=min(a, b)))
    high = prioritise(replace(factors, cse_level=max(a, b)))
    assert (high.score, high.band.rank) >= (low.score, low.band.rank)
    assert high.band.rank >= low.band.rank


@settings(max_examples=200, deadline=None)
@given(_factors, st.integers(min_value=0, max_value=25), st.integers(min_value=0, max_value=25))
def test_younger_is_never_less_urgent(factors: PriorityFactors, a: int, b: int) -> None:
    younger = prioritise(replace(factors, age_years=min(a, b)))
    older = prioritise(replace(factors, age_years=max(a, b)))
    assert younger.score >= older.score
    assert younger.band.rank >= older.band.rank


@settings(max_examples=100, deadline=None)
@given(_factors)
def test_score_is_the_sum_of_the_reasons_points(factors: PriorityFactors) -> None:
    priority = prioritise(factors)
    assert priority.score == sum(c.points for c in priority.contributions)
    assert all(c.points > 0 for c in priority.contributions)
    assert priority.band.rank >= PriorityWeights().band_for(priority.score).rank
