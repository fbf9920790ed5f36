"""Page helpers: London time either side of a clock change, time left, and the SVG charts."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from broker.web.charts import Bar, bar_chart, month_bars
from broker.web.render import duration, london


@pytest.mark.parametrize(
    ("instant", "shown"),
    [
        (datetime(2026, 3, 29, 0, 59, tzinfo=UTC), "Sun 29 Mar 2026, 00:59 GMT"),
        (datetime(2026, 3, 29, 1, 0, tzinfo=UTC), "Sun 29 Mar 2026, 02:00 BST"),
        (datetime(2026, 10, 25, 0, 59, tzinfo=UTC), "Sun 25 Oct 2026, 01:59 BST"),
        (datetime(2026, 10, 25, 1, 0, tzinfo=UTC), "Sun 25 Oct 2026, 01:00 GMT"),
    ],
)
def test_times_are_shown_in_london_with_their_zone(instant: datetime, shown: str) -> None:
    assert london(instant) == shown


def test_no_time_is_a_dash() -> None:
    assert london(None) == "—"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (59, "0 min left"),
        (2 * 3600 + 15 * 60, "2 h 15 min left"),
        (3 * 86400 + 5 * 3600 + 59, "3 d 5 h left"),
        (0, "overdue by 0 min"),
        (-(3 * 3600 + 5 * 60), "overdue by 3 h 5 min"),
        (None, "—"),
    ],
)
def test_time_left_reads_as_people_say_it(seconds: int | None, text: str) -> None:
    assert duration(seconds) == text


def test_a_chart_escapes_its_text_and_marks_missing_data() -> None:
    svg = str(
        bar_chart(
            [Bar("<Jan>", 2), Bar("Feb", None)],
            chart_id="c1",
            title="Level 3 & more",
            description="Jan: 2; Feb: no data",
        )
    )
    assert svg.startswith("<svg")
    assert 'role="img"' in svg
    assert 'aria-labelledby="c1-title c1-desc"' in svg
    assert "&lt;Jan&gt;" in svg
    assert "Level 3 &amp; more" in svg
    assert svg.count("<rect") == 1  # no bar for the month without data
    assert "style=" not in svg  # the pages' CSP allows no inline styles


def test_month_bars_name_the_year_under_the_first_bar_and_january() -> None:
    bars = month_bars(["2025-11", "2025-12", "2026-01", "2026-02"], [1, 2, 3, None])
    assert [(b.label, b.sublabel) for b in bars] == [
        ("Nov", "2025"),
        ("Dec", ""),
        ("Jan", "2026"),
        ("Feb", ""),
    ]
