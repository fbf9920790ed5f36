"""CSE tracker KPIs: children by risk level, prevention and protection measures, trend, CSV.

* Prevention: of the children identified (put on the tracker) in the reporting period
  whose three-month window has ended, the share removed within three months of
  identification due to successful intervention. Children who left the tracker within
  the window because they moved away or reached adulthood are outside the measure
  (configurable); children whose window is still open are counted as pending and left
  out, so the share is never flattered by early successes. An empty cohort is "no data".
* Protection: the number of children on the tracker at risk level 3 at the report date.
  The published bands overlap at 2–3 and say nothing of 6; this module reads them as
  0–1 significantly exceeded, 2 exceeded, 3–5 met, 6 or more unmet (see ``band_note``).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from fractions import Fraction

from broker.exceptions import ConfigurationError
from broker.intake._time import add_months, iter_months, month_end
from broker.intake.records import TrackerRecord
from schemas.events import CseLevel, RemovalReason

__all__ = [
    "PROTECTION_BAND_NOTE",
    "KpiBand",
    "KpiConfig",
    "KpiReport",
    "PreventionKpi",
    "ProtectionKpi",
    "TrendPoint",
    "children_by_level",
    "kpi_csv",
    "kpi_report",
    "monthly_trend",
    "prevention_band",
    "prevention_kpi",
    "protection_band",
    "protection_kpi",
    "trend_csv",
]

#: How the overlapping published protection bands are read, shown with every result.
PROTECTION_BAND_NOTE = (
    "The published bands (>6 unmet, 3–5 met, 2–3 exceeded, 0–1 significantly exceeded) "
    "overlap at 2–3 and leave 6 unassigned; read here as 0–1 significantly exceeded, "
    "2 exceeded, 3–5 met, 6 or more unmet."
)


class KpiBand(StrEnum):
    """Performance against a KPI target."""

    NO_DATA = "no_data"
    UNMET = "unmet"
    MET = "met"
    EXCEEDED = "exceeded"
    SIGNIFICANTLY_EXCEEDED = "significantly_exceeded"

    @property
    def label(self) -> str:
        """The band as people write it ("significantly exceeded", "no data")."""
        return self.value.replace("_", " ")


@dataclass(frozen=True, slots=True)
class KpiConfig:
    """The KPI definitions' local settings.

    Attributes:
        window_months: calendar months from identification for the prevention measure.
        excluded_reasons: removal reasons, within the window, that take a child out of
            the prevention measure rather than counting as not prevented.
        prevention_met_from: the lowest share that is met (90%).
        prevention_exceeded_from: the lowest share that is exceeded (95%).
        prevention_significantly_above: shares above this are significantly exceeded (99%).
        protection_significantly_exceeded_max: counts up to this are significantly exceeded.
        protection_exceeded_max: counts up to this (and above the previous) are exceeded.
        protection_met_max: counts up to this are met; above it unmet.
    """

    window_months: int = 3
    excluded_reasons: frozenset[RemovalReason] = frozenset(
        {RemovalReason.MOVED_AWAY, RemovalReason.REACHED_ADULTHOOD}
    )
    prevention_met_from: Fraction = Fraction(90, 100)
    prevention_exceeded_from: Fraction = Fraction(95, 100)
    prevention_significantly_above: Fraction = Fraction(99, 100)
    protection_significantly_exceeded_max: int = 1
    protection_exceeded_max: int = 2
    protection_met_max: int = 5

    def __post_init__(self) -> None:
        if self.window_months < 1:
            raise ConfigurationError("intake KPI window_months: at least 1")
        shares = (
            self.prevention_met_from,
            self.prevention_exceeded_from,
            self.prevention_significantly_above,
        )
        if not 0 < shares[0] <= shares[1] <= shares[2] <= 1:
            raise ConfigurationError("intake KPI prevention bands: 0 < met <= exceeded <= 1")
        counts = (
            self.protection_significantly_exceeded_max,
            self.protection_exceeded_max,
            self.protection_met_max,
        )
        if not 0 <= counts[0] <= counts[1] <= counts[2]:
            raise ConfigurationError("intake KPI protection bands: must rise from 0")


def prevention_band(share: Fraction | None, config: KpiConfig | None = None) -> KpiBand:
    """The band of a prevention share (``None`` is no data).

    Below 90% unmet; 90% up to 95% met; 95% up to and including 99% exceeded; above 99%
    significantly exceeded. Shares are exact fractions, so 94.99% is met, not exceeded.
    """
    cfg = config or KpiConfig()
    if share is None:
        return KpiBand.NO_DATA
    if share > cfg.prevention_significantly_above:
        return KpiBand.SIGNIFICANTLY_EXCEEDED
    if share >= cfg.prevention_exceeded_from:
        return KpiBand.EXCEEDED
    if share >= cfg.prevention_met_from:
        return KpiBand.MET
    return KpiBand.UNMET


def protection_band(count: int, config: KpiConfig | None = None) -> KpiBand:
    """The band of a level-3 count (see :data:`PROTECTION_BAND_NOTE`)."""
    cfg = config or KpiConfig()
    if count < 0:
        raise ValueError("a count cannot be negative")
    if count <= cfg.protection_significantly_exceeded_max:
        return KpiBand.SIGNIFICANTLY_EXCEEDED
    if count <= cfg.protection_exceeded_max:
        return KpiBand.EXCEEDED
    if count <= cfg.protection_met_max:
        return KpiBand.MET
    return KpiBand.UNMET


def children_by_level(records: Iterable[TrackerRecord], as_of: date) -> dict[CseLevel, int]:
    """Children on the tracker at the end of ``as_of``, by risk level (every level listed).

    A child counted in two open spells (a data error) counts once, at the higher level.
    """
    levels: dict[str, CseLevel] = {}
    for record in records:
        level = record.level_on(as_of)
        if level is not None and level > levels.get(record.child_key, 0):
            levels[record.child_key] = level
    counts = dict.fromkeys(CseLevel, 0)
    for level in levels.values():
        counts[level] += 1
    return counts


@dataclass(frozen=True, slots=True)
class PreventionKpi:
    """The prevention measure for one cohort.

    Attributes:
        identified_from: first day of the cohort's identification period.
        identified_to: last day of it.
        as_of: the day the measure was taken.
        identified: children identified in the period.
        pending: of those, children whose window had not ended on ``as_of``.
        excluded: children out of the measure (removed within the window for an
            excluded reason).
        prevented: children removed within the window due to successful intervention.
        denominator: ``identified - pending - excluded``.
        share: ``prevented / denominator``; ``None`` when the denominator is 0.
        band: the band of ``share``; no data when ``share`` is ``None``.
    """

    identified_from: date
    identified_to: date
    as_of: date
    identified: int
    pending: int
    excluded: int
    prevented: int
    denominator: int
    share: Fraction | None
    band: KpiBand

    @property
    def percent(self) -> float | None:
        """``share`` as a percentage, for display."""
        return None if self.share is None else float(self.share * 100)


def _first_spells(records: Iterable[TrackerRecord], start: date, end: date) -> list[TrackerRecord]:
    first: dict[str, TrackerRecord] = {}
    for record in records:
        if not start <= record.identified_on <= end:
            continue
        held = first.get(record.child_key)
        if held is None or record.identified_on < held.identified_on:
            first[record.child_key] = record
    return list(first.values())


def prevention_kpi(
    records: Iterable[TrackerRecord],
    identified_from: date,
    identified_to: date,
    as_of: date,
    config: KpiConfig | None = None,
) -> PreventionKpi:
    """The prevention measure for children identified from ``identified_from`` to
    ``identified_to`` (inclusive), taken on ``as_of``.

    Each child counts once, by their first identification in the period. A child's
    window ends ``window_months`` calendar months after identification (clamped to the
    month's end: 30 November + 3 months is 28 or 29 February); the child is pending until
    ``as_of`` is past that day. Removal on the window's last day is within it.
    """
    cfg = config or KpiConfig()
    if identified_to < identified_from:
        raise ValueError("identified_to is before identified_from")
    pending = excluded = prevented = 0
    cohort = _first_spells(records, identified_from, identified_to)
    for record in cohort:
        window_end = add_months(record.identified_on, cfg.window_months)
        removed_within = record.removed_on is not None and record.removed_on <= window_end
        if as_of <= window_end:
            # Inside the window every child is pending, even one already removed: counting
            # early removals but not yet-unknown failures would flatter the share.
            pending += 1
        elif removed_within and record.removal_reason in cfg.excluded_reasons:
            excluded += 1
        elif removed_within and record.removal_reason is RemovalReason.SUCCESSFUL_INTERVENTION:
            prevented += 1
    denominator = len(cohort) - pending - excluded
    share = Fraction(prevented, denominator) if denominator else None
    return PreventionKpi(
        identified_from=identified_from,
        identified_to=identified_to,
        as_of=as_of,
        identified=len(cohort),
        pending=pending,
        excluded=excluded,
        prevented=prevented,
        denominator=denominator,
        share=share,
        band=prevention_band(share, cfg),
    )


@dataclass(frozen=True, slots=True)
class ProtectionKpi:
    """The protection measure: children at risk level 3 on ``as_of``.

    Attributes:
        as_of: the day counted.
        level_3: children on the tracker at level 3 at the end of that day.
        band: the band of the count.
        band_note: how the overlapping published bands are read.
    """

    as_of: date
    level_3: int
    band: KpiBand
    band_note: str = PROTECTION_BAND_NOTE


def protection_kpi(
    records: Iterable[TrackerRecord], as_of: date, config: KpiConfig | None = None
) -> ProtectionKpi:
    """The protection measure on ``as_of``."""
    count = children_by_level(records, as_of)[CseLevel.LEVEL_3]
    return ProtectionKpi(as_of=as_of, level_3=count, band=protection_band(count, config))


@dataclass(frozen=True, slots=True)
class KpiReport:
    """The KPI table for the strategic group.

    Attributes:
        as_of: the report date.
        by_level: children on the tracker at each level on ``as_of``.
        prevention: the prevention measure for the reporting period.
        protection: the protection measure on ``as_of``.
    """

    as_of: date
    by_level: dict[CseLevel, int]
    prevention: PreventionKpi
    protection: ProtectionKpi


def kpi_report(
    records: Sequence[TrackerRecord],
    identified_from: date,
    identified_to: date,
    as_of: date,
    config: KpiConfig | None = None,
) -> KpiReport:
    """Every KPI for a reporting period (prevention cohort) and report date."""
    return KpiReport(
        as_of=as_of,
        by_level=children_by_level(records, as_of),
        prevention=prevention_kpi(records, identified_from, identified_to, as_of, config),
        protection=protection_kpi(records, as_of, config),
    )


@dataclass(frozen=True, slots=True)
class TrendPoint:
    """One month of the trend charts.

    Attributes:
        month: the first day of the month.
        level_3_at_month_end: children at level 3 at the end of the month's last day
            (or of ``as_of`` for the current month).
        prevention: the prevention measure for children identified in the month.
    """

    month: date
    level_3_at_month_end: int
    prevention: PreventionKpi

    @property
    def label(self) -> str:
        """``YYYY-MM``."""
        return self.month.strftime("%Y-%m")


def monthly_trend(
    records: Sequence[TrackerRecord],
    first_month: date,
    last_month: date,
    as_of: date,
    config: KpiConfig | None = None,
) -> tuple[TrendPoint, ...]:
    """The month-by-month series for the charts, from ``first_month`` to ``last_month``.

    Months after ``as_of`` are not included: their figures do not exist yet.
    """
    points = []
    for month in iter_months(first_month, min(last_month, as_of)):
        end = min(month_end(month), as_of)
        points.append(
            TrendPoint(
                month=month,
                level_3_at_month_end=children_by_level(records, end)[CseLevel.LEVEL_3],
                prevention=prevention_kpi(records, month, month_end(month), as_of, config),
            )
        )
    return tuple(points)


def _percent(share: Fraction | None) -> str:
    return "" if share is None else f"{float(share * 100):.1f}"


def _write(rows: Iterable[Sequence[object]]) -> str:
    buffer = io.StringIO()
    # RFC 4180 line endings, so spreadsheet tools read it as the strategic group expects.
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerows(rows)
    return buffer.getvalue()


def kpi_csv(report: KpiReport) -> str:
    """The KPI table as CSV: measures, values and bands only, no names or identifiers."""
    prevention, protection = report.prevention, report.protection
    rows: list[Sequence[object]] = [
        ("measure", "value", "band", "detail"),
        *(
            (f"children on tracker at level {int(level)}", count, "", f"as of {report.as_of}")
            for level, count in sorted(report.by_level.items())
        ),
        (
            "prevention: % removed within 3 months due to successful intervention",
            _percent(prevention.share),
            prevention.band.label,
            (
                f"identified {prevention.identified_from} to {prevention.identified_to}; "
                f"{prevention.prevented} of {prevention.denominator}; "
                f"{prevention.pending} pending; {prevention.excluded} excluded"
            ),
        ),
        (
            "protection: children at risk level 3",
            protection.level_3,
            protection.band.label,
            protection.band_note,
        ),
    ]
    return _write(rows)


def trend_csv(points: Iterable[TrendPoint]) -> str:
    """The monthly trend as CSV, one row per month; no names or identifiers."""
    rows: list[Sequence[object]] = [
        (
            "month",
            "level_3_at_month_end",
            "identified",
            "prevented",
            "denominator",
            "pending",
            "prevention_percent",
            "prevention_band",
        )
    ]
    for p in points:
        kpi = p.prevention
        rows.append(
            (
                p.label,
                p.level_3_at_month_end,
                kpi.identified,
                kpi.prevented,
                kpi.denominator,
                kpi.pending,
                _percent(kpi.share),
                kpi.band.label,
            )
        )
    return _write(rows)
