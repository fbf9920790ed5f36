"""CSE tracker KPIs: levels, the prevention cohort and its bands, protection bands, trend, CSV."""

from __future__ import annotations

import csv
import io
from datetime import date, timedelta
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.exceptions import ConfigurationError
from broker.intake import (
    PROTECTION_BAND_NOTE,
    InvalidRecord,
    KpiBand,
    KpiConfig,
    LevelChange,
    TrackerRecord,
    children_by_level,
    kpi_csv,
    kpi_report,
    monthly_trend,
    prevention_band,
    prevention_kpi,
    protection_band,
    protection_kpi,
    trend_csv,
)
from schemas.events import CseLevel, CseTrackerEntry, RemovalReason

L1, L2, L3 = CseLevel.LEVEL_1, CseLevel.LEVEL_2, CseLevel.LEVEL_3
SUCCESS = RemovalReason.SUCCESSFUL_INTERVENTION


def spell(
    key: str,
    identified: date,
    level: CseLevel = L2,
    *,
    removed: date | None = None,
    reason: RemovalReason | None = None,
    history: tuple[LevelChange, ...] = (),
) -> TrackerRecord:
    if removed is not None and reason is None:
        reason = SUCCESS
    return TrackerRecord(key, identified, level, removed, reason, history)


def cohort(
    prevented: int, not_prevented: int, identified: date = date(2026, 1, 10)
) -> list[TrackerRecord]:
    records = [
        spell(f"p{i}", identified, removed=identified + timedelta(days=30))
        for i in range(prevented)
    ]
    records += [spell(f"n{i}", identified) for i in range(not_prevented)]
    return records


# --- bands ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("share", "band"),
    [
        (None, KpiBand.NO_DATA),
        (Fraction(0), KpiBand.UNMET),
        (Fraction(8999, 10000), KpiBand.UNMET),
        (Fraction(90, 100), KpiBand.MET),
        (Fraction(9499, 10000), KpiBand.MET),
        (Fraction(95, 100), KpiBand.EXCEEDED),
        (Fraction(99, 100), KpiBand.EXCEEDED),
        (Fraction(9901, 10000), KpiBand.SIGNIFICANTLY_EXCEEDED),
        (Fraction(1), KpiBand.SIGNIFICANTLY_EXCEEDED),
    ],
)
def test_prevention_bands(share: Fraction | None, band: KpiBand) -> None:
    assert prevention_band(share) is band


@pytest.mark.parametrize(
    ("count", "band"),
    [
        (0, KpiBand.SIGNIFICANTLY_EXCEEDED),
        (1, KpiBand.SIGNIFICANTLY_EXCEEDED),
        (2, KpiBand.EXCEEDED),
        (3, KpiBand.MET),
        (5, KpiBand.MET),
        (6, KpiBand.UNMET),
        (7, KpiBand.UNMET),
    ],
)
def test_protection_bands_read_the_overlap(count: int, band: KpiBand) -> None:
    assert protection_band(count) is band


def test_band_note_says_how_the_overlap_is_read() -> None:
    assert "3–5 met" in PROTECTION_BAND_NOTE
    assert "2 exceeded" in PROTECTION_BAND_NOTE
    assert "6 or more unmet" in PROTECTION_BAND_NOTE
    assert protection_kpi([], date(2026, 1, 1)).band_note == PROTECTION_BAND_NOTE
    assert KpiBand.SIGNIFICANTLY_EXCEEDED.label == "significantly exceeded"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"window_months": 0},
        {"prevention_met_from": Fraction(96, 100)},
        {"protection_exceeded_max": 0},
    ],
)
def test_bad_kpi_configuration_is_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        KpiConfig(**kwargs)  # type: ignore[arg-type]


# --- children by level ---------------------------------------------------------------


def test_children_by_level_uses_the_history_and_removals() -> None:
    records = [
        spell(
            "a",
            date(2026, 1, 1),
            L3,
            history=(LevelChange(date(2026, 1, 1), L1), LevelChange(date(2026, 3, 1), L3)),
        ),
        spell("b", date(2026, 1, 1), L2, removed=date(2026, 2, 15)),
        spell("c", date(2026, 2, 20), L3),
    ]
    assert children_by_level(records, date(2026, 2, 1)) == {L1: 1, L2: 1, L3: 0}
    assert children_by_level(records, date(2026, 2, 15)) == {L1: 1, L2: 0, L3: 0}
    assert children_by_level(records, date(2026, 3, 1)) == {L1: 0, L2: 0, L3: 2}
    assert children_by_level([], date(2026, 3, 1)) == {L1: 0, L2: 0, L3: 0}


def test_a_child_in_two_open_spells_counts_once_at_the_higher_level() -> None:
    records = [spell("a", date(2026, 1, 1), L1), spell("a", date(2026, 2, 1), L3)]
    assert children_by_level(records, date(2026, 3, 1)) == {L1: 0, L2: 0, L3: 1}


def test_tracker_record_from_a_paris_entry_and_its_checks() -> None:
    entry = CseTrackerEntry(level=L3, identified_on=date(2026, 9, 14))
    record = TrackerRecord.from_entry("c1", entry)
    assert record.level_on(date(2026, 9, 14)) is L3
    assert record.level_on(date(2026, 9, 13)) is None
    with pytest.raises(InvalidRecord):
        TrackerRecord(
            "c1", date(2026, 1, 2), L1, removed_on=date(2026, 1, 1), removal_reason=SUCCESS
        )
    with pytest.raises(InvalidRecord):
        TrackerRecord("c1", date(2026, 1, 2), L1, removed_on=date(2026, 1, 3))


# --- prevention ----------------------------------------------------------------------


def test_prevention_share_and_band() -> None:
    kpi = prevention_kpi(cohort(9, 1), date(2026, 1, 1), date(2026, 1, 31), date(2026, 6, 1))
    assert (kpi.identified, kpi.prevented, kpi.denominator, kpi.pending) == (10, 9, 10, 0)
    assert kpi.share == Fraction(9, 10)
    assert kpi.percent == pytest.approx(90.0)
    assert kpi.band is KpiBand.MET


def test_empty_cohort_is_no_data_not_zero_or_one_hundred() -> None:
    kpi = prevention_kpi([], date(2026, 1, 1), date(2026, 1, 31), date(2026, 6, 1))
    assert kpi.share is None
    assert kpi.percent is None
    assert kpi.band is KpiBand.NO_DATA


def test_children_whose_window_is_open_are_pending_even_if_removed() -> None:
    records = cohort(3, 1)
    kpi = prevention_kpi(records, date(2026, 1, 1), date(2026, 1, 31), date(2026, 4, 10))
    # Window ends 10 April 2026 (three months after 10 January): on that day still open.
    assert (kpi.pending, kpi.denominator, kpi.band) == (4, 0, KpiBand.NO_DATA)
    kpi = prevention_kpi(records, date(2026, 1, 1), date(2026, 1, 31), date(2026, 4, 11))
    assert (kpi.pending, kpi.prevented, kpi.denominator) == (0, 3, 4)


def test_removal_on_the_last_day_of_the_window_counts() -> None:
    identified = date(2025, 11, 30)  # + 3 months = 28 February 2026 (clamped)
    records = [
        spell("on-time", identified, removed=date(2026, 2, 28)),
        spell("late", identified, removed=date(2026, 3, 1)),
    ]
    kpi = prevention_kpi(records, date(2025, 11, 1), date(2025, 11, 30), date(2026, 6, 1))
    assert (kpi.prevented, kpi.denominator) == (1, 2)
    assert kpi.band is KpiBand.UNMET


def test_only_successful_intervention_counts_and_some_exits_are_excluded() -> None:
    identified = date(2026, 1, 10)
    within = identified + timedelta(days=20)
    records = [
        spell("ok", identified, removed=within),
        spell("moved", identified, removed=within, reason=RemovalReason.MOVED_AWAY),
        spell("adult", identified, removed=within, reason=RemovalReason.REACHED_ADULTHOOD),
        spell("other", identified, removed=within, reason=RemovalReason.NO_LONGER_ASSESSED_AT_RISK),
        spell("moved-late", identified, removed=date(2026, 6, 1), reason=RemovalReason.MOVED_AWAY),
    ]
    kpi = prevention_kpi(records, date(2026, 1, 1), date(2026, 1, 31), date(2026, 7, 1))
    assert (kpi.identified, kpi.excluded, kpi.prevented, kpi.denominator) == (5, 2, 1, 3)
    config = KpiConfig(excluded_reasons=frozenset())
    kpi = prevention_kpi(records, date(2026, 1, 1), date(2026, 1, 31), date(2026, 7, 1), config)
    assert (kpi.excluded, kpi.denominator) == (0, 5)


def test_cohort_is_identified_in_the_period_and_each_child_once() -> None:
    records = [
        spell("a", date(2026, 1, 5), removed=date(2026, 2, 1)),
        spell("a", date(2026, 1, 20)),  # the same child again in the period: first spell counts
        spell("b", date(2025, 12, 31), removed=date(2026, 1, 2)),  # before the period
        spell("c", date(2026, 2, 1)),  # after it
    ]
    kpi = prevention_kpi(records, date(2026, 1, 1), date(2026, 1, 31), date(2026, 12, 1))
    assert (kpi.identified, kpi.prevented, kpi.share) == (1, 1, Fraction(1))
    assert kpi.band is KpiBand.SIGNIFICANTLY_EXCEEDED
    with pytest.raises(ValueError):
        prevention_kpi(records, date(2026, 2, 1), date(2026, 1, 1), date(2026, 12, 1))


@pytest.mark.parametrize(
    ("prevented", "not_prevented", "band"),
    [
        (19, 1, KpiBand.EXCEEDED),
        (99, 1, KpiBand.EXCEEDED),
        (949, 51, KpiBand.MET),
        (8, 2, KpiBand.UNMET),
    ],
)
def test_prevention_band_boundaries_on_real_cohorts(
    prevented: int, not_prevented: int, band: KpiBand
) -> None:
    records = cohort(prevented, not_prevented)
    kpi = prevention_kpi(records, date(2026, 1, 1), date(2026, 1, 31), date(2026, 6, 1))
    assert kpi.band is band


# --- protection, report, trend, CSV ----------------------------------------------------


def test_protection_counts_current_level_3() -> None:
    records = [spell(f"c{i}", date(2026, 1, 1), L3) for i in range(4)]
    records.append(spell("gone", date(2026, 1, 1), L3, removed=date(2026, 2, 1)))
    records.append(spell("two", date(2026, 1, 1), L2))
    kpi = protection_kpi(records, date(2026, 3, 1))
    assert (kpi.level_3, kpi.band) == (4, KpiBand.MET)


def test_monthly_trend() -> None:
    records = [
        spell("a", date(2026, 1, 15), L3, removed=date(2026, 3, 10)),
        spell(
            "b",
            date(2026, 2, 3),
            L3,
            history=(LevelChange(date(2026, 2, 3), L2), LevelChange(date(2026, 3, 1), L3)),
        ),
        spell("c", date(2026, 2, 10), L1, removed=date(2026, 4, 1)),
    ]
    points = monthly_trend(records, date(2026, 1, 1), date(2026, 12, 1), date(2026, 6, 15))
    assert [p.label for p in points] == [
        "2026-01",
        "2026-02",
        "2026-03",
        "2026-04",
        "2026-05",
        "2026-06",
    ]
    assert [p.level_3_at_month_end for p in points] == [1, 1, 1, 1, 1, 1]
    jan, feb = points[0].prevention, points[1].prevention
    assert (jan.identified, jan.prevented, jan.denominator) == (1, 1, 1)
    assert (feb.identified, feb.prevented, feb.denominator) == (2, 1, 2)
    assert points[3].prevention.band is KpiBand.NO_DATA
    rows = list(csv.reader(io.StringIO(trend_csv(points))))
    assert rows[0][0] == "month"
    assert rows[1] == ["2026-01", "1", "1", "1", "1", "0", "100.0", "significantly exceeded"]
    assert rows[4][6:] == ["", "no data"]


def test_kpi_csv_has_the_measures_and_no_identifiers() -> None:
    records = [spell(f"child-key-{i}", date(2026, 1, 10), L3) for i in range(3)]
    records += cohort(9, 1, identified=date(2026, 1, 12))
    report = kpi_report(records, date(2026, 1, 1), date(2026, 1, 31), date(2026, 6, 1))
    text = kpi_csv(report)
    assert "child-key" not in text
    assert "\r\n" in text
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["measure", "value", "band", "detail"]
    table = {row[0]: row[1:] for row in rows[1:]}
    assert table["children on tracker at level 3"][0] == "3"
    assert table["children on tracker at level 2"][0] == "1"
    prevention = table["prevention: % removed within 3 months due to successful intervention"]
    assert prevention[:2] == ["69.2", "unmet"]  # 9 of 13
    assert table["protection: children at risk level 3"][:3] == ["3", "met", PROTECTION_BAND_NOTE]


# --- properties ------------------------------------------------------------------------

_reasons = st.none() | st.sampled_from(list(RemovalReason))


@st.composite
def _records(draw: st.DrawFn) -> TrackerRecord:
    identified = draw(st.dates(min_value=date(2025, 1, 1), max_value=date(2026, 12, 31)))
    reason = draw(_reasons)
    removed = None
    if reason is not None:
        removed = identified + timedelta(days=draw(st.integers(min_value=0, max_value=300)))
    key = draw(st.sampled_from([f"c{i}" for i in range(30)]))
    return TrackerRecord(key, identified, draw(st.sampled_from(list(CseLevel))), removed, reason)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(_records(), max_size=40),
    st.dates(min_value=date(2025, 1, 1), max_value=date(2027, 12, 31)),
)
def test_prevention_share_is_a_proportion(records: list[TrackerRecord], as_of: date) -> None:
    kpi = prevention_kpi(records, date(2025, 1, 1), date(2026, 12, 31), as_of)
    assert kpi.pending + kpi.excluded + kpi.denominator == kpi.identified
    assert 0 <= kpi.prevented <= kpi.denominator
    if kpi.share is None:
        assert kpi.denominator == 0
        assert kpi.band is KpiBand.NO_DATA
    else:
        assert 0 <= kpi.share <= 1
        assert kpi.band is not KpiBand.NO_DATA
